//! `k3rs check-config`: is this host able to run k3rs?
//!
//! Owns: read-only checks of the kernel, cgroups, kernel modules, network tools, the
//! container runtime, CNI plugins and ports. May call: the filesystem and `bind(2)`.
//! Prints one line per check (`ok` or `missing` with the fix) and fails when a required
//! check is missing. Optional checks (ports already in use) never fail the command.

use std::path::{Path, PathBuf};

/// Directories searched for CNI plugins (Debian/Fedora, the upstream default, Alpine/SUSE).
pub const CNI_DIRS: &[&str] = &["/usr/lib/cni", "/opt/cni/bin", "/usr/libexec/cni"];
/// CNI plugins the agent uses.
pub const CNI_PLUGINS: &[&str] = &["bridge", "host-local", "loopback", "portmap"];

/// One check's outcome.
#[derive(Debug, Clone)]
pub struct Check {
    /// What was checked.
    pub name: String,
    /// Whether it passed.
    pub ok: bool,
    /// What was found.
    pub detail: String,
    /// How to fix it when missing.
    pub fix: String,
    /// Whether a failure makes the command fail.
    pub required: bool,
}

impl Check {
    fn new(name: impl Into<String>, ok: bool, detail: impl Into<String>, fix: &str) -> Check {
        Check {
            name: name.into(),
            ok,
            detail: detail.into(),
            fix: fix.to_string(),
            required: true,
        }
    }

    fn optional(mut self) -> Check {
        self.required = false;
        self
    }

    /// The printed line.
    pub fn line(&self) -> String {
        let status = if self.ok { "ok" } else { "missing" };
        let mut s = format!("{:<34} {status}", self.name);
        if !self.detail.is_empty() {
            s.push_str(&format!(" ({})", self.detail));
        }
        if !self.ok {
            s.push_str(&format!(" fix: {}", self.fix));
            if !self.required {
                s.push_str(" [optional]");
            }
        }
        s
    }
}

/// Run every check and print them; fails when a required check is missing.
///
/// # Errors
/// Some required check is missing (the lines above say which and how to fix it).
pub fn run() -> anyhow::Result<()> {
    let checks = checks();
    for c in &checks {
        println!("{}", c.line());
    }
    let missing: Vec<&str> = checks
        .iter()
        .filter(|c| c.required && !c.ok)
        .map(|c| c.name.as_str())
        .collect();
    if missing.is_empty() {
        println!("all required checks passed");
        Ok(())
    } else {
        anyhow::bail!(
            "{} required check(s) missing: {}",
            missing.len(),
            missing.join(", ")
        )
    }
}

/// Every check, in print order.
pub fn checks() -> Vec<Check> {
    let mut out = vec![kernel()];
    out.extend(cgroups());
    let release = kernel_release();
    out.push(Check::new(
        "overlayfs",
        has_filesystem("overlay") || has_module(&release, "overlay"),
        "",
        "modprobe overlay (kernel built with CONFIG_OVERLAY_FS)",
    ));
    out.push(Check::new(
        "br_netfilter",
        Path::new("/proc/sys/net/bridge").exists() || has_module(&release, "br_netfilter"),
        "",
        "modprobe br_netfilter",
    ));
    out.push(Check::new(
        "bridge",
        Path::new("/sys/module/bridge").exists() || has_module(&release, "bridge"),
        "",
        "modprobe bridge",
    ));
    out.push(Check::new(
        "network namespaces",
        Path::new("/proc/self/ns/net").exists(),
        "",
        "kernel built with CONFIG_NET_NS",
    ));
    let ipt = which("iptables").or_else(|| which("nft"));
    out.push(Check::new(
        "iptables or nft",
        ipt.is_some(),
        ipt.map(|p| p.display().to_string()).unwrap_or_default(),
        "apt-get install iptables (or nftables)",
    ));
    for tool in ["containerd", "runc"] {
        let found = which(tool);
        out.push(Check::new(
            tool,
            found.is_some(),
            found.map(|p| p.display().to_string()).unwrap_or_default(),
            "apt-get install containerd runc",
        ));
    }
    for plugin in CNI_PLUGINS {
        let found = CNI_DIRS
            .iter()
            .map(|d| Path::new(d).join(plugin))
            .find(|p| p.is_file());
        out.push(Check::new(
            format!("cni plugin {plugin}"),
            found.is_some(),
            found.map(|p| p.display().to_string()).unwrap_or_default(),
            "apt-get install containernetworking-plugins",
        ));
    }
    let listening = listening_ports();
    for (port, what) in [
        (6443, "--https-listen-port"),
        (2379, "--etcd-listen-address"),
        (2380, "--raft-listen-port"),
        (10250, "the agent port"),
    ] {
        let free = !listening.contains(&port);
        out.push(
            Check::new(
                format!("port {port}/tcp free"),
                free,
                if free { "" } else { "in use" },
                &format!("stop what listens on {port} (k3rs already running?) or change {what}"),
            )
            .optional(),
        );
    }
    out
}

/// TCP ports in LISTEN state on any address, from /proc/net/tcp{,6}. Read instead of
/// probing with bind(2), which could make a concurrent server's bind fail.
fn listening_ports() -> Vec<u16> {
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|f| std::fs::read_to_string(f).ok())
        .flat_map(|t| {
            t.lines()
                .skip(1)
                .filter_map(parse_listen_line)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// `sl local_address rem_address st …`: the port of a line whose state is 0A (LISTEN).
fn parse_listen_line(line: &str) -> Option<u16> {
    let f: Vec<&str> = line.split_whitespace().collect();
    if f.get(3) != Some(&"0A") {
        return None;
    }
    let port = f.get(1)?.rsplit(':').next()?;
    u16::from_str_radix(port, 16).ok()
}

fn kernel_release() -> String {
    nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Kernel 4.15 or newer (cgroup v2 controllers, overlayfs multi-lower, nftables).
fn kernel() -> Check {
    let release = kernel_release();
    let mut nums = release
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|p| p.parse::<u32>().ok());
    let version = (nums.next().unwrap_or(0), nums.next().unwrap_or(0));
    Check::new(
        "kernel >= 4.15",
        version >= (4, 15),
        release,
        "upgrade the kernel",
    )
}

/// cpu, memory and pids controllers, on cgroup v2 (unified) or v1.
fn cgroups() -> Vec<Check> {
    let v2 = std::fs::read_to_string("/sys/fs/cgroup/cgroup.controllers").ok();
    let (version, enabled): (&str, Vec<String>) = match v2 {
        Some(list) => ("v2", list.split_whitespace().map(str::to_string).collect()),
        None => {
            // /proc/cgroups: "name hierarchy num_cgroups enabled"
            let text = std::fs::read_to_string("/proc/cgroups").unwrap_or_default();
            let on = text
                .lines()
                .filter(|l| !l.starts_with('#'))
                .filter_map(|l| {
                    let f: Vec<&str> = l.split_whitespace().collect();
                    (f.len() >= 4 && f[3] == "1").then(|| f[0].to_string())
                })
                .collect();
            ("v1", on)
        }
    };
    ["cpu", "memory", "pids"]
        .iter()
        .map(|c| {
            Check::new(
                format!("cgroup {version} controller {c}"),
                enabled.iter().any(|e| e == c),
                "",
                &format!("enable the {c} cgroup controller (kernel cmdline cgroup_enable={c})"),
            )
        })
        .collect()
}

fn has_filesystem(fs: &str) -> bool {
    std::fs::read_to_string("/proc/filesystems")
        .is_ok_and(|t| t.lines().any(|l| l.split_whitespace().last() == Some(fs)))
}

/// Loaded, built in, or available to modprobe.
fn has_module(release: &str, module: &str) -> bool {
    if Path::new("/sys/module").join(module).exists() {
        return true;
    }
    let dir = Path::new("/lib/modules").join(release);
    let dep_name = |line: &str| {
        let file = line.split(':').next().unwrap_or("");
        let base = file.rsplit('/').next().unwrap_or("");
        let stem = base.split('.').next().unwrap_or("");
        stem.replace('-', "_") == module.replace('-', "_")
    };
    ["modules.builtin", "modules.dep"]
        .iter()
        .any(|f| std::fs::read_to_string(dir.join(f)).is_ok_and(|t| t.lines().any(dep_name)))
}

fn which(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_required_line_names_the_fix_and_optional_is_marked() {
        let c = Check::new("runc", false, "", "apt-get install containerd runc");
        assert!(c.line().contains("missing"));
        assert!(c.line().contains("apt-get install containerd runc"));
        assert!(!c.line().contains("[optional]"));
        assert!(c.clone().optional().line().ends_with("[optional]"));
        let ok = Check::new("runc", true, "/usr/sbin/runc", "x");
        assert!(ok.line().contains(" ok (/usr/sbin/runc)"));
        assert!(!ok.line().contains("fix"));
    }

    #[test]
    fn listening_sockets_are_read_from_proc_net_tcp_lines() {
        let listen = "   0: 00000000:192B 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1";
        let estab = "   1: 0100007F:0950 0100007F:9C40 01 00000000:00000000 00:00000000 00000000     0        0 2 1";
        assert_eq!(parse_listen_line(listen), Some(6443));
        assert_eq!(parse_listen_line(estab), None);
        let v6 = "   0: 00000000000000000000000000000000:280A 00000000000000000000000000000000:0000 0A 0 0 0 0 0";
        assert_eq!(parse_listen_line(v6), Some(10250));
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        assert!(listening_ports().contains(&port));
    }

    #[test]
    fn every_required_area_is_checked() {
        let names: Vec<String> = checks().into_iter().map(|c| c.name).collect();
        for want in [
            "kernel",
            "controller cpu",
            "controller memory",
            "controller pids",
            "overlayfs",
            "br_netfilter",
            "network namespaces",
            "iptables",
            "containerd",
            "runc",
            "cni plugin bridge",
            "port 6443",
            "port 10250",
        ] {
            assert!(
                names.iter().any(|n| n.contains(want)),
                "{want} in {names:?}"
            );
        }
    }
}
