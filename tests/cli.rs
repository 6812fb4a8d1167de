//! The `k3rs` binary's operator commands: version, help, config file + env + flag
//! precedence (through the hidden `--print-config`), check-config, completion, kubectl
//! pass-through and token files.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const K3RS: &str = env!("CARGO_BIN_EXE_k3rs");

/// A clean environment: no stray `K3RS_*`, and a config file we control.
fn k3rs(config: &Path) -> Command {
    let mut c = Command::new(K3RS);
    c.env_clear()
        .env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        )
        .env("K3RS_CONFIG_FILE", config);
    c
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}
fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn empty_config(dir: &Path) -> PathBuf {
    let p = dir.join("empty.yaml");
    fs::write(&p, "").unwrap();
    p
}

/// The `key: value # source` line of `--print-config` output for `key`.
fn line<'a>(out: &'a str, key: &str) -> &'a str {
    out.lines()
        .find(|l| l.starts_with(&format!("{key}: ")))
        .unwrap_or_else(|| panic!("no {key} in\n{out}"))
}

#[test]
fn version_prints_the_crate_version() {
    let d = tempfile::tempdir().unwrap();
    let o = k3rs(&empty_config(d.path()))
        .arg("--version")
        .output()
        .unwrap();
    assert!(o.status.success());
    assert_eq!(
        stdout(&o).trim(),
        format!("k3rs {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn server_help_lists_the_flags_but_not_the_hidden_print_config() {
    let d = tempfile::tempdir().unwrap();
    let o = k3rs(&empty_config(d.path()))
        .args(["server", "--help"])
        .output()
        .unwrap();
    assert!(o.status.success());
    let help = stdout(&o);
    for flag in [
        "--data-dir",
        "--config",
        "--node-label",
        "--tls-san",
        "--write-kubeconfig-mode",
        "--cluster-init",
        "--token",
        "--https-listen-port",
    ] {
        assert!(help.contains(flag), "{flag} missing from\n{help}");
    }
    assert!(!help.contains("--print-config"));
}

#[test]
fn config_file_then_env_then_flags_take_precedence() {
    let d = tempfile::tempdir().unwrap();
    let cfg = d.path().join("config.yaml");
    fs::write(
        &cfg,
        "node-name: from-file\nnode-label:\n  - a=1\n  - b=2\ntls-san: [x.example]\n\
         cluster-init: true\nwrite-kubeconfig-mode: \"0644\"\nhttps-listen-port: 7443\n\
         data-dir: /file/data\n",
    )
    .unwrap();
    let o = k3rs(&cfg)
        .env("K3RS_NODE_NAME", "from-env")
        .env("K3RS_DATA_DIR", "/env/data")
        .args([
            "server",
            "--print-config",
            "--node-label",
            "c=3",
            "-d",
            "/flag/data",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains(&format!("config file: {}", cfg.display())),
        "{out}"
    );
    // env beats file
    assert_eq!(line(&out, "node-name"), "node-name: \"from-env\" # env");
    // flag beats env and file
    assert_eq!(line(&out, "data-dir"), "data-dir: \"/flag/data\" # flag");
    // a list flag replaces the file's list
    assert_eq!(line(&out, "node-label"), "node-label: [\"c=3\"] # flag");
    // file beats defaults
    assert_eq!(line(&out, "tls-san"), "tls-san: [\"x.example\"] # file");
    assert_eq!(line(&out, "cluster-init"), "cluster-init: true # file");
    assert_eq!(
        line(&out, "write-kubeconfig-mode"),
        "write-kubeconfig-mode: \"0644\" # file"
    );
    assert_eq!(
        line(&out, "https-listen-port"),
        "https-listen-port: \"7443\" # file"
    );
    assert_eq!(
        line(&out, "cluster-cidr"),
        "cluster-cidr: \"10.42.0.0/16\" # default"
    );
}

#[test]
fn config_flag_selects_the_file_and_secrets_are_masked() {
    let d = tempfile::tempdir().unwrap();
    let cfg = d.path().join("other.yaml");
    fs::write(&cfg, "token: very-secret\nnode-label: [z=9]\n").unwrap();
    let o = k3rs(&empty_config(d.path()))
        .args(["server", "--print-config", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert_eq!(line(&out, "node-label"), "node-label: [\"z=9\"] # file");
    assert!(!out.contains("very-secret"), "{out}");
    assert_eq!(line(&out, "token"), "token: \"********\" # file");
}

#[test]
fn agent_reads_the_shared_file_and_skips_server_only_keys() {
    let d = tempfile::tempdir().unwrap();
    let cfg = d.path().join("config.yaml");
    fs::write(
        &cfg,
        "server: https://10.0.0.1:6443\ntoken: t\ncluster-init: true\ntls-san: [a]\nnode-name: n2\n",
    )
    .unwrap();
    let o = k3rs(&cfg)
        .args(["agent", "--print-config"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert_eq!(
        line(&out, "server"),
        "server: \"https://10.0.0.1:6443\" # file"
    );
    assert_eq!(line(&out, "node-name"), "node-name: \"n2\" # file");
    assert!(!out.contains("cluster-init"));
}

#[test]
fn unknown_config_key_is_an_error_naming_key_and_file() {
    let d = tempfile::tempdir().unwrap();
    let cfg = d.path().join("config.yaml");
    fs::write(&cfg, "node-name: a\nnode-lable: [typo=1]\n").unwrap();
    let o = k3rs(&cfg)
        .args(["server", "--print-config"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains("\"node-lable\""), "{err}");
    assert!(err.contains(&cfg.display().to_string()), "{err}");
}

#[test]
fn missing_explicit_config_file_is_an_error() {
    let o = k3rs(Path::new("/nonexistent/k3rs/config.yaml"))
        .args(["server", "--print-config"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("/nonexistent/k3rs/config.yaml"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn check_config_prints_one_ok_or_missing_line_per_check() {
    let d = tempfile::tempdir().unwrap();
    let o = k3rs(&empty_config(d.path()))
        .arg("check-config")
        .output()
        .unwrap();
    let out = stdout(&o);
    let checks: Vec<&str> = out
        .lines()
        .filter(|l| !l.starts_with("all required"))
        .collect();
    for want in [
        "kernel",
        "cgroup",
        "overlayfs",
        "br_netfilter",
        "containerd",
        "runc",
        "cni plugin bridge",
        "port 6443",
    ] {
        assert!(
            checks.iter().any(|l| l.starts_with(want)),
            "{want} not in\n{out}"
        );
    }
    for l in &checks {
        assert!(
            l.contains(" ok") || l.contains(" missing"),
            "line without status: {l}"
        );
    }
    let required_missing = checks
        .iter()
        .any(|l| l.contains(" missing") && !l.ends_with("[optional]"));
    assert_eq!(
        o.status.success(),
        !required_missing,
        "{out}\n{}",
        stderr(&o)
    );
}

#[test]
fn check_config_fails_and_names_the_fix_when_tools_are_missing() {
    let d = tempfile::tempdir().unwrap();
    let empty = d.path().join("emptybin");
    fs::create_dir(&empty).unwrap();
    let o = k3rs(&empty_config(d.path()))
        .env("PATH", &empty)
        .arg("check-config")
        .output()
        .unwrap();
    assert!(!o.status.success());
    let out = stdout(&o);
    let runc = line_starting(&out, "runc");
    assert!(
        runc.contains("missing") && runc.contains("apt-get install containerd runc"),
        "{runc}"
    );
    assert!(line_starting(&out, "iptables").contains("missing"), "{out}");
    assert!(
        stderr(&o).contains("required check(s) missing"),
        "{}",
        stderr(&o)
    );
}

fn line_starting<'a>(out: &'a str, prefix: &str) -> &'a str {
    out.lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no {prefix} line in\n{out}"))
}

#[test]
fn completion_prints_scripts_for_bash_zsh_and_fish() {
    let d = tempfile::tempdir().unwrap();
    let cfg = empty_config(d.path());
    for (shell, marker) in [
        ("bash", "complete -F _k3rs"),
        ("zsh", "#compdef k3rs"),
        ("fish", "complete -c k3rs"),
    ] {
        let o = k3rs(&cfg).args(["completion", shell]).output().unwrap();
        assert!(o.status.success(), "{shell}: {}", stderr(&o));
        let script = stdout(&o);
        assert!(script.contains(marker), "{shell}");
        assert!(
            script.contains("check-config") && script.contains("node-label"),
            "{shell}"
        );
    }
    let o = k3rs(&cfg).args(["completion", "tcsh"]).output().unwrap();
    assert!(!o.status.success());
}

/// A fake kubectl that prints its environment and arguments and exits 7.
fn fake_kubectl(dir: &Path) -> PathBuf {
    let bin = dir.join("fakebin");
    fs::create_dir_all(&bin).unwrap();
    let k = bin.join("kubectl");
    fs::write(
        &k,
        "#!/bin/sh\necho \"KUBECONFIG=$KUBECONFIG\"\necho \"ARGS=$*\"\nexit 7\n",
    )
    .unwrap();
    fs::set_permissions(&k, fs::Permissions::from_mode(0o755)).unwrap();
    bin
}

#[test]
fn kubectl_runs_the_system_kubectl_with_the_k3rs_kubeconfig_and_its_exit_code() {
    let d = tempfile::tempdir().unwrap();
    let bin = fake_kubectl(d.path());
    let path = format!("{}:/usr/bin:/bin", bin.display());
    let o = k3rs(&empty_config(d.path()))
        .env("PATH", &path)
        .args(["kubectl", "get", "pods", "-n", "kube-system", "--help"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(7), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("KUBECONFIG=/etc/k3rs/k3rs.yaml"), "{out}");
    assert!(out.contains("ARGS=get pods -n kube-system --help"), "{out}");

    // The server's --write-kubeconfig from the config file, and a caller's KUBECONFIG wins.
    let cfg = d.path().join("config.yaml");
    fs::write(&cfg, "write-kubeconfig: /srv/k3rs/admin.yaml\n").unwrap();
    let o = k3rs(&cfg)
        .env("PATH", &path)
        .args(["kubectl", "version"])
        .output()
        .unwrap();
    assert!(
        stdout(&o).contains("KUBECONFIG=/srv/k3rs/admin.yaml"),
        "{}",
        stdout(&o)
    );
    let o = k3rs(&cfg)
        .env("PATH", &path)
        .env("KUBECONFIG", "/mine")
        .args(["kubectl", "version"])
        .output()
        .unwrap();
    assert!(stdout(&o).contains("KUBECONFIG=/mine"), "{}", stdout(&o));
}

#[test]
fn a_kubectl_symlink_to_k3rs_runs_the_real_kubectl_without_looping() {
    let d = tempfile::tempdir().unwrap();
    let real = fake_kubectl(d.path());
    let links = d.path().join("links");
    fs::create_dir(&links).unwrap();
    std::os::unix::fs::symlink(K3RS, links.join("kubectl")).unwrap();
    let o = Command::new(links.join("kubectl"))
        .env_clear()
        .env("PATH", format!("{}:{}", links.display(), real.display()))
        .env("K3RS_CONFIG_FILE", empty_config(d.path()))
        .args(["get", "nodes"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(7), "{}", stderr(&o));
    assert!(stdout(&o).contains("ARGS=get nodes"));

    // With no other kubectl, a clear error instead of exec'ing itself forever.
    let o = Command::new(links.join("kubectl"))
        .env_clear()
        .env("PATH", &links)
        .arg("version")
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(stderr(&o).contains("no kubectl found"), "{}", stderr(&o));
}

#[test]
fn token_commands_manage_files_under_the_data_dir() {
    use sha2::Digest;
    let d = tempfile::tempdir().unwrap();
    let cfg = empty_config(d.path());
    let data = d.path().join("data");
    let tls = data.join("server/tls");
    fs::create_dir_all(&tls).unwrap();
    let ca = b"-----BEGIN CERTIFICATE-----\nfake\n-----END CERTIFICATE-----\n";
    fs::write(tls.join("server-ca.crt"), ca).unwrap();
    let hash = hex::encode(sha2::Sha256::digest(ca));
    let run = |args: &[&str]| {
        k3rs(&cfg)
            .arg("token")
            .args(args)
            .arg("--data-dir")
            .arg(&data)
            .output()
            .unwrap()
    };

    let o = run(&["create", "--description", "ci"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let token = stdout(&o).trim().to_string();
    let prefix = format!("K10{hash}::");
    assert!(token.starts_with(&prefix), "{token}");
    let id = token[prefix.len()..].split('.').next().unwrap().to_string();
    assert_eq!(id.len(), 6);
    assert!(stderr(&o).contains("not implemented yet"));
    let mode = fs::metadata(data.join("server/bootstrap-tokens.json"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    let o = run(&["list"]);
    assert!(
        stdout(&o)
            .lines()
            .any(|l| l.starts_with(&id) && l.ends_with("ci")),
        "{}",
        stdout(&o)
    );
    assert!(
        !stdout(&o).contains(&token[prefix.len() + 7..]),
        "secret listed"
    );

    let o = run(&["delete", &id]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stdout(&run(&["list"])).contains(&id));
    assert!(!run(&["delete", &id]).status.success());

    let o = run(&["rotate", "--new-token", "s3cret"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let stored = fs::read_to_string(data.join("server/token")).unwrap();
    assert_eq!(stored.trim(), format!("K10{hash}::server:s3cret"));
    let mode = fs::metadata(data.join("server/token"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    // Rotating again with a wrong current token is refused.
    let o = run(&["rotate", "--token", "wrong"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("does not match"));
    let o = run(&["rotate", "--token", "s3cret"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_ne!(
        fs::read_to_string(data.join("server/token")).unwrap(),
        stored
    );
}
