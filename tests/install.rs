//! install.sh in a temporary root: unit and env file, scripts, idempotent reruns, agent
//! mode, uninstall. A fake `systemctl` on PATH records its calls; the real killall
//! script is never run (it would tear down this host's networking), only checked.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const INSTALL_SH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/install.sh");

struct Sandbox {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

impl Sandbox {
    fn new() -> Sandbox {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let fake = root.join("fake");
        fs::create_dir_all(&fake).unwrap();
        // systemctl: records calls; is-active succeeds once started.
        write_exec(
            &fake.join("systemctl"),
            &format!(
                "#!/bin/sh\necho \"$*\" >> {log}\ncase \"$1\" in\n  is-active) [ -f {active} ] ;;\n  start|restart) touch {active} ;;\n  stop) rm -f {active} ;;\nesac\n",
                log = root.join("systemctl.log").display(),
                active = root.join("active").display()
            ),
        );
        // A kubectl already on PATH, so by default no symlink is made.
        write_exec(&fake.join("kubectl"), "#!/bin/sh\necho system kubectl\n");
        write_exec(&root.join("k3rs-src"), "#!/bin/sh\necho fake k3rs \"$@\"\n");
        Sandbox { _dir: dir, root }
    }

    fn bin(&self) -> PathBuf {
        self.root.join("bin")
    }
    fn systemd(&self) -> PathBuf {
        self.root.join("systemd")
    }

    fn install(&self, env: &[(&str, &str)], args: &[&str]) -> Output {
        self.install_with(Path::new(INSTALL_SH), env, args)
    }

    fn install_with(&self, script: &Path, env: &[(&str, &str)], args: &[&str]) -> Output {
        let mut cmd = Command::new("sh");
        cmd.arg(script).args(args).env_clear();
        cmd.env(
            "PATH",
            format!(
                "{}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                self.root.join("fake").display()
            ),
        );
        let r = |p: &str| self.root.join(p).display().to_string();
        cmd.env("INSTALL_K3RS_BIN", r("k3rs-src"))
            .env("INSTALL_K3RS_BIN_DIR", r("bin"))
            .env("INSTALL_K3RS_SYSTEMD_DIR", r("systemd"))
            .env("INSTALL_K3RS_DATA_DIR", r("data"))
            .env("INSTALL_K3RS_CONFIG_DIR", r("etc"))
            .env("INSTALL_K3RS_SKIP_DEPS", "true");
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    }

    fn systemctl_log(&self) -> Vec<String> {
        fs::read_to_string(self.root.join("systemctl.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Every file under bin/ and systemd/ with its modification time and content.
    fn snapshot(&self) -> BTreeMap<PathBuf, (std::time::SystemTime, Vec<u8>)> {
        let mut out = BTreeMap::new();
        for dir in [self.bin(), self.systemd()] {
            for e in fs::read_dir(&dir).unwrap() {
                let p = e.unwrap().path();
                let m = fs::symlink_metadata(&p).unwrap();
                let content = if m.file_type().is_symlink() {
                    fs::read_link(&p)
                        .unwrap()
                        .into_os_string()
                        .into_encoded_bytes()
                } else {
                    fs::read(&p).unwrap()
                };
                out.insert(p, (m.modified().unwrap(), content));
            }
        }
        out
    }
}

fn write_exec(path: &Path, text: &str) {
    fs::write(path, text).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
}

fn ok(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "install failed: {}\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn mode(p: &Path) -> u32 {
    fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn server_install_writes_unit_env_file_and_scripts_and_starts_the_service() {
    let s = Sandbox::new();
    ok(&s.install(
        &[
            ("K3RS_TOKEN", "se\"cret"),
            ("K3RS_NODE_NAME", "n$1`x`\\"),
            ("INSTALL_K3RS_EXEC", "server --tls-san k3rs.example"),
            ("OTHER_VAR", "not copied"),
        ],
        &["--node-label", "a=b c"],
    ));
    let bin = s.bin().join("k3rs");
    assert_eq!(
        fs::read(&bin).unwrap(),
        fs::read(s.root.join("k3rs-src")).unwrap()
    );
    assert_eq!(mode(&bin), 0o755);

    let unit = fs::read_to_string(s.systemd().join("k3rs.service")).unwrap();
    let exec = format!(
        "ExecStart={} server \"--tls-san\" \"k3rs.example\" \"--node-label\" \"a=b c\"",
        bin.display()
    );
    assert!(unit.lines().any(|l| l == exec), "{exec} not in\n{unit}");
    for line in [
        "Type=notify",
        "KillMode=process",
        "Delegate=yes",
        "Restart=always",
        "RestartSec=5s",
        "LimitNOFILE=1048576",
        "TasksMax=infinity",
        "TimeoutStartSec=0",
        "ExecStartPre=-/sbin/modprobe br_netfilter",
        "ExecStartPre=-/sbin/modprobe overlay",
    ] {
        assert!(unit.lines().any(|l| l == line), "{line} not in\n{unit}");
    }
    let env_path = s.systemd().join("k3rs.service.env");
    assert!(
        unit.lines()
            .any(|l| l == format!("EnvironmentFile=-{}", env_path.display())),
        "{unit}"
    );
    assert_eq!(mode(&env_path), 0o600);
    let env = fs::read_to_string(&env_path).unwrap();
    assert_eq!(
        env,
        "K3RS_NODE_NAME=\"n\\$1\\`x\\`\\\\\"\nK3RS_TOKEN=\"se\\\"cret\"\n"
    );
    // What the shell (openrc sources this file) reads back is the original value.
    let echoed = Command::new("sh")
        .arg("-c")
        .arg(format!(
            ". {} && printf %s \"$K3RS_NODE_NAME\"",
            env_path.display()
        ))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&echoed.stdout), "n$1`x`\\");

    for script in ["k3rs-killall.sh", "k3rs-uninstall.sh"] {
        assert_eq!(mode(&s.bin().join(script)), 0o755, "{script}");
    }
    // A kubectl exists on PATH (the fake one), so no symlink.
    assert!(fs::symlink_metadata(s.bin().join("kubectl")).is_err());
    assert_eq!(
        s.systemctl_log(),
        vec![
            "daemon-reload",
            "enable k3rs.service",
            "restart k3rs.service"
        ]
    );
}

#[test]
fn kubectl_symlink_is_made_when_forced_or_when_none_exists() {
    let s = Sandbox::new();
    fs::remove_file(s.root.join("fake/kubectl")).unwrap();
    let has_system_kubectl =
        std::env::split_paths("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
            .any(|d| d.join("kubectl").exists());
    let env: &[(&str, &str)] = if has_system_kubectl {
        &[("INSTALL_K3RS_SYMLINK", "force")]
    } else {
        &[]
    };
    ok(&s.install(env, &[]));
    assert_eq!(
        fs::read_link(s.bin().join("kubectl")).unwrap(),
        Path::new("k3rs")
    );
    // skip never makes one.
    let s2 = Sandbox::new();
    ok(&s2.install(&[("INSTALL_K3RS_SYMLINK", "skip")], &[]));
    assert!(fs::symlink_metadata(s2.bin().join("kubectl")).is_err());
}

#[test]
fn rerun_changes_no_file_and_does_not_restart_the_running_service() {
    let s = Sandbox::new();
    let env = [("K3RS_TOKEN", "t"), ("INSTALL_K3RS_SYMLINK", "force")];
    ok(&s.install(&env, &["--node-label", "a=b"]));
    let before = s.snapshot();
    let calls_before = s.systemctl_log().len();
    let out = ok(&s.install(&env, &["--node-label", "a=b"]));
    assert!(out.contains("No change detected"), "{out}");
    assert_eq!(s.snapshot(), before, "a rerun rewrote files");
    let new_calls = &s.systemctl_log()[calls_before..];
    assert!(
        !new_calls
            .iter()
            .any(|c| c.starts_with("restart") || c.starts_with("start") || c == "daemon-reload"),
        "{new_calls:?}"
    );
}

#[test]
fn changed_flags_env_or_binary_restart_the_service() {
    let s = Sandbox::new();
    ok(&s.install(&[("K3RS_TOKEN", "t")], &[]));
    let n = s.systemctl_log().len();
    ok(&s.install(&[("K3RS_TOKEN", "t")], &["--tls-san", "x"]));
    let calls = s.systemctl_log()[n..].to_vec();
    assert!(calls.contains(&"daemon-reload".to_string()), "{calls:?}");
    assert!(
        calls.contains(&"restart k3rs.service".to_string()),
        "{calls:?}"
    );
    let n = s.systemctl_log().len();
    ok(&s.install(&[("K3RS_TOKEN", "t2")], &["--tls-san", "x"]));
    let calls = s.systemctl_log()[n..].to_vec();
    assert!(
        calls.contains(&"restart k3rs.service".to_string()),
        "{calls:?}"
    );
    assert!(!calls.contains(&"daemon-reload".to_string()), "{calls:?}");
    // A new binary restarts it too.
    write_exec(&s.root.join("k3rs-src"), "#!/bin/sh\necho fake k3rs v2\n");
    let n = s.systemctl_log().len();
    ok(&s.install(&[("K3RS_TOKEN", "t2")], &["--tls-san", "x"]));
    let calls = s.systemctl_log()[n..].to_vec();
    assert!(
        calls.contains(&"restart k3rs.service".to_string()),
        "{calls:?}"
    );
    assert_eq!(
        fs::read_to_string(s.bin().join("k3rs")).unwrap(),
        "#!/bin/sh\necho fake k3rs v2\n"
    );
}

#[test]
fn skip_enable_and_skip_start_are_honoured() {
    let s = Sandbox::new();
    ok(&s.install(
        &[
            ("INSTALL_K3RS_SKIP_ENABLE", "true"),
            ("INSTALL_K3RS_SKIP_START", "true"),
        ],
        &[],
    ));
    assert_eq!(s.systemctl_log(), vec!["daemon-reload"]);
}

#[test]
fn url_and_token_install_an_agent() {
    let s = Sandbox::new();
    ok(&s.install(
        &[
            ("K3RS_URL", "https://10.0.0.1:6443"),
            ("K3RS_TOKEN", "K10abc::server:x"),
        ],
        &["--node-label", "role=edge"],
    ));
    let unit = fs::read_to_string(s.systemd().join("k3rs-agent.service")).unwrap();
    let exec = format!(
        "ExecStart={} agent \"--node-label\" \"role=edge\"",
        s.bin().join("k3rs").display()
    );
    assert!(unit.lines().any(|l| l == exec), "{unit}");
    assert!(unit.contains("Type=notify"));
    let env_path = s.systemd().join("k3rs-agent.service.env");
    assert_eq!(mode(&env_path), 0o600);
    assert_eq!(
        fs::read_to_string(env_path).unwrap(),
        "K3RS_TOKEN=\"K10abc::server:x\"\nK3RS_URL=\"https://10.0.0.1:6443\"\n"
    );
    assert!(s.bin().join("k3rs-agent-uninstall.sh").exists());
    assert!(!s.systemd().join("k3rs.service").exists());
    assert!(
        s.systemctl_log()
            .contains(&"restart k3rs-agent.service".to_string())
    );
}

#[test]
fn agent_without_token_or_with_a_plain_http_url_is_refused() {
    let s = Sandbox::new();
    let out = s.install(&[("K3RS_URL", "https://10.0.0.1:6443")], &[]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("K3RS_TOKEN"));
    let out = s.install(&[("K3RS_URL", "http://x:6443"), ("K3RS_TOKEN", "t")], &[]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("https://"));
    assert!(
        !s.bin().join("k3rs").exists(),
        "nothing installed on refusal"
    );
}

#[test]
fn binary_sha256_is_verified_when_given() {
    use sha2::Digest;
    let s = Sandbox::new();
    let bad = s.install(&[("INSTALL_K3RS_BIN_SHA256", &"0".repeat(64))], &[]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("sha256"));
    assert!(!s.bin().join("k3rs").exists());
    let good = hex::encode(sha2::Sha256::digest(
        fs::read(s.root.join("k3rs-src")).unwrap(),
    ));
    let out = ok(&s.install(&[("INSTALL_K3RS_BIN_SHA256", &good)], &[]));
    assert!(out.contains("Verified sha256"), "{out}");
}

#[test]
fn without_a_binary_source_the_script_says_there_is_no_release_download_yet() {
    let s = Sandbox::new();
    // A copy of the script outside the checkout, without INSTALL_K3RS_BIN.
    let script = s.root.join("install.sh");
    fs::copy(INSTALL_SH, &script).unwrap();
    let mut cmd = Command::new("sh");
    cmd.arg(&script)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("INSTALL_K3RS_BIN_DIR", s.bin())
        .env("INSTALL_K3RS_SYSTEMD_DIR", s.systemd())
        .env("INSTALL_K3RS_SKIP_DEPS", "true");
    let out = cmd.output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no release downloads yet"), "{err}");
    assert!(err.contains("INSTALL_K3RS_BIN"), "{err}");
}

#[test]
fn embedded_units_match_the_systemd_directory() {
    for env in [
        vec![("K3RS_TOKEN", "t")],
        vec![("K3RS_URL", "https://a:6443"), ("K3RS_TOKEN", "t")],
    ] {
        let s = Sandbox::new();
        ok(&s.install(&env, &["--debug"]));
        let unit_name = if env.len() == 2 {
            "k3rs-agent.service"
        } else {
            "k3rs.service"
        };
        let from_repo = fs::read_to_string(s.systemd().join(unit_name)).unwrap();
        fs::remove_file(s.systemd().join(unit_name)).unwrap();
        let script = s.root.join("install.sh");
        fs::copy(INSTALL_SH, &script).unwrap();
        ok(&s.install_with(&script, &env, &["--debug"]));
        let embedded = fs::read_to_string(s.systemd().join(unit_name)).unwrap();
        assert_eq!(embedded, from_repo, "{unit_name}");
    }
}

#[test]
fn uninstall_removes_everything_it_installed() {
    let s = Sandbox::new();
    ok(&s.install(
        &[("K3RS_TOKEN", "t"), ("INSTALL_K3RS_SYMLINK", "force")],
        &[],
    ));
    // State the server would have made.
    fs::create_dir_all(s.root.join("data/server/db")).unwrap();
    fs::create_dir_all(s.root.join("etc")).unwrap();
    fs::write(s.root.join("etc/k3rs.yaml"), "kubeconfig").unwrap();
    // The real killall would tear down this host's network: record the call instead.
    let marker = s.root.join("killall-ran");
    write_exec(
        &s.bin().join("k3rs-killall.sh"),
        &format!("#!/bin/sh\ntouch {}\n", marker.display()),
    );
    let out = Command::new("sh")
        .arg(s.bin().join("k3rs-uninstall.sh"))
        .env_clear()
        .env(
            "PATH",
            format!(
                "{}:/usr/sbin:/usr/bin:/sbin:/bin",
                s.root.join("fake").display()
            ),
        )
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(marker.exists(), "uninstall did not run killall");
    let left: Vec<_> = fs::read_dir(s.bin())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(left.is_empty(), "left in bin: {left:?}");
    let left: Vec<_> = fs::read_dir(s.systemd())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(left.is_empty(), "left in systemd dir: {left:?}");
    assert!(!s.root.join("data").exists());
    assert!(!s.root.join("etc").exists());
    let log = s.systemctl_log();
    assert!(log.contains(&"disable k3rs".to_string()), "{log:?}");
}

#[test]
fn uninstalling_the_agent_keeps_k3rs_while_the_server_remains() {
    let s = Sandbox::new();
    ok(&s.install(&[("K3RS_TOKEN", "t")], &[]));
    ok(&s.install(&[("K3RS_URL", "https://a:6443"), ("K3RS_TOKEN", "t")], &[]));
    write_exec(&s.bin().join("k3rs-killall.sh"), "#!/bin/sh\n");
    let out = Command::new("sh")
        .arg(s.bin().join("k3rs-agent-uninstall.sh"))
        .env_clear()
        .env(
            "PATH",
            format!(
                "{}:/usr/sbin:/usr/bin:/sbin:/bin",
                s.root.join("fake").display()
            ),
        )
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(!s.systemd().join("k3rs-agent.service").exists());
    assert!(!s.bin().join("k3rs-agent-uninstall.sh").exists());
    assert!(s.systemd().join("k3rs.service").exists());
    assert!(s.bin().join("k3rs").exists());
    assert!(s.bin().join("k3rs-uninstall.sh").exists());
}

#[test]
fn killall_script_covers_services_mounts_interfaces_and_firewall_rules() {
    let s = Sandbox::new();
    ok(&s.install(&[("K3RS_TOKEN", "t")], &[]));
    let killall = fs::read_to_string(s.bin().join("k3rs-killall.sh")).unwrap();
    for needle in [
        "systemctl stop",
        "kill -9",
        "do_unmount_and_remove /run/k3rs",
        "do_unmount_and_remove \"${DATA_DIR}\"",
        "do_unmount_and_remove /run/netns/k3rs-",
        "ip link delete cni0",
        "grep -v -E 'K3RS|CNI-'",
        "nft delete table",
        &format!("DATA_DIR='{}'", s.root.join("data").display()),
    ] {
        assert!(killall.contains(needle), "{needle} not in killall script");
    }
    let syntax = Command::new("sh")
        .arg("-n")
        .arg(s.bin().join("k3rs-killall.sh"))
        .status()
        .unwrap();
    assert!(syntax.success());
}

#[test]
fn install_and_generated_scripts_are_shellcheck_clean() {
    let s = Sandbox::new();
    ok(&s.install(&[("K3RS_TOKEN", "t")], &[]));
    let out = Command::new("shellcheck")
        .arg(INSTALL_SH)
        .arg(s.bin().join("k3rs-killall.sh"))
        .arg(s.bin().join("k3rs-uninstall.sh"))
        .output()
        .expect("shellcheck is required (tests/run.sh installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn without_systemd_or_openrc_no_service_is_made_and_the_start_command_is_printed() {
    let s = Sandbox::new();
    // A PATH holding only the tools install.sh needs: no systemctl anywhere on it.
    let tools = s.root.join("tools");
    fs::create_dir(&tools).unwrap();
    for tool in [
        "sh",
        "id",
        "dirname",
        "sed",
        "mkdir",
        "mktemp",
        "chmod",
        "mv",
        "cmp",
        "rm",
        "sha256sum",
        "awk",
        "cp",
        "grep",
        "env",
        "sort",
        "cat",
        "ln",
    ] {
        let found = ["/usr/bin", "/bin", "/usr/sbin", "/sbin"]
            .iter()
            .map(|d| Path::new(d).join(tool))
            .find(|p| p.exists())
            .unwrap_or_else(|| panic!("{tool} not found"));
        std::os::unix::fs::symlink(found, tools.join(tool)).unwrap();
    }
    let r = |p: &str| s.root.join(p);
    let out = Command::new(tools.join("sh"))
        .arg(INSTALL_SH)
        .args(["--tls-san", "a.example"])
        .env_clear()
        .env("PATH", &tools)
        .env("INSTALL_K3RS_BIN", r("k3rs-src"))
        .env("INSTALL_K3RS_BIN_DIR", r("bin"))
        .env("INSTALL_K3RS_SYSTEMD_DIR", r("systemd"))
        .env("INSTALL_K3RS_SKIP_DEPS", "true")
        .output()
        .unwrap();
    let stdout = ok(&out);
    if Path::new("/sbin/openrc-run").exists() {
        return; // this host has openrc: the openrc path is taken instead
    }
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("neither systemd nor openrc"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let start = format!(
        "{} server \"--tls-san\" \"a.example\"",
        r("bin/k3rs").display()
    );
    assert!(stdout.contains(&start), "{stdout}");
    assert!(r("bin/k3rs").exists());
    assert!(r("bin/k3rs-uninstall.sh").exists());
    assert!(!r("systemd").exists());
}

#[test]
fn install_name_gives_the_service_and_its_uninstall_script_their_own_names() {
    let s = Sandbox::new();
    ok(&s.install(&[("INSTALL_K3RS_NAME", "edge"), ("K3RS_TOKEN", "t")], &[]));
    assert!(s.systemd().join("k3rs-edge.service").exists());
    assert_eq!(mode(&s.systemd().join("k3rs-edge.service.env")), 0o600);
    assert!(s.bin().join("k3rs-edge-uninstall.sh").exists());
    assert!(
        s.systemctl_log()
            .contains(&"restart k3rs-edge.service".to_string())
    );
    let bad = s.install(&[("INSTALL_K3RS_NAME", "a b")], &[]);
    assert!(!bad.status.success());
}

/// Runs the generated killall script for real, inside private network, mount and pid
/// namespaces (with a tmpfs over /run), so nothing on this host is touched.
#[test]
fn killall_in_private_namespaces_removes_bridge_veths_rules_mounts_netns_and_processes() {
    let uid = Command::new("id").arg("-u").output().unwrap();
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        eprintln!("skipped: needs root for namespaces");
        return;
    }
    let s = Sandbox::new();
    ok(&s.install(&[("K3RS_TOKEN", "t")], &[]));
    let data = s.root.join("data");
    let script = format!(
        r#"
set -e
mount -t tmpfs tmpfs /run
ip link set lo up
ip link add cni0 type bridge
ip link add veth-k3rs1 type veth peer name peer-k3rs1
ip link set veth-k3rs1 master cni0
iptables -N CNI-TEST
iptables -A FORWARD -j CNI-TEST
iptables -t nat -N K3RS-SERVICES
iptables -t nat -A PREROUTING -j K3RS-SERVICES
iptables -N KEEP-ME
iptables -A INPUT -j KEEP-ME
nft add table inet k3rs_proxy
mkdir -p {data}/agent/run /run/k3rs/containerd
mount -t tmpfs tmpfs {data}/agent/run
mount -t tmpfs tmpfs /run/k3rs/containerd
ip netns add k3rs-pod1
mkdir -p {data}/bin
cp "$(command -v sleep)" {data}/bin/containerd-shim-runc-v2
{data}/bin/containerd-shim-runc-v2 300 &
victim=$!
sleep 301 &
bystander=$!
set +e
sh {killall} >/dev/null 2>&1
echo "killall-exit=$?"
ip link show cni0 >/dev/null 2>&1 && echo LEFT-cni0
ip link show veth-k3rs1 >/dev/null 2>&1 && echo LEFT-veth
iptables-save | grep -E 'CNI-|K3RS' && echo LEFT-rules
iptables-save | grep -q KEEP-ME || echo LOST-unrelated-rule
nft list tables | grep -q k3rs && echo LEFT-nft
# (mounts inherited from the host are listed too: look only at the ones made here)
grep -E '{data}|/run/k3rs/containerd|/run/netns/k3rs-pod1' /proc/self/mounts && echo LEFT-mounts
[ -e /run/netns/k3rs-pod1 ] && echo LEFT-netns
[ -e /run/k3rs ] && echo LEFT-run-k3rs
sleep 0.2
kill -0 $victim 2>/dev/null && echo LEFT-process
kill -0 $bystander 2>/dev/null || echo LOST-unrelated-process
echo done
"#,
        data = data.display(),
        killall = s.bin().join("k3rs-killall.sh").display()
    );
    let out = Command::new("unshare")
        .args([
            "--net",
            "--mount",
            "--pid",
            "--fork",
            "--mount-proc",
            "sh",
            "-c",
        ])
        .arg(&script)
        .env(
            "PATH",
            format!(
                "{}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                s.root.join("fake").display()
            ),
        )
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !stdout.contains("killall-exit=") {
        // The namespace setup itself failed (no unshare/iptables/nft support here).
        eprintln!("skipped: cannot build the sandbox: {stderr}");
        assert!(
            !stderr.contains("k3rs-killall"),
            "killall failed to run: {stderr}"
        );
        return;
    }
    assert!(stdout.contains("done"), "{stdout}\n{stderr}");
    let problems: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("LEFT") || l.starts_with("LOST"))
        .collect();
    assert!(problems.is_empty(), "{problems:?}\n{stdout}\n{stderr}");
}
