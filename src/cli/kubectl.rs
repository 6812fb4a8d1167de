//! `k3rs kubectl …` (and `kubectl …` when k3rs is invoked through a `kubectl` symlink).
//!
//! Owns: finding the system `kubectl` and running it against this node's admin
//! kubeconfig. May call: the config file reader ([`super::config`]).
//!
//! k3rs does not embed kubectl (k3s does): it runs the first `kubectl` on `PATH` that is
//! not k3rs itself, with `KUBECONFIG` set to the server's `--write-kubeconfig` file
//! when the caller has not set it. The process is replaced (`exec`), so the exit code
//! and signals are kubectl's own.

use anyhow::bail;
use clap::Args;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// Default admin kubeconfig written by the server.
pub const DEFAULT_KUBECONFIG: &str = "/etc/k3rs/k3rs.yaml";

/// Arguments of `k3rs kubectl`: everything is passed to kubectl unchanged.
#[derive(Debug, Clone, Args)]
pub struct KubectlArgs {
    /// Arguments for kubectl.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, num_args = 0..)]
    pub args: Vec<OsString>,
}

/// Run kubectl with `args`; returns only on failure to start it.
///
/// # Errors
/// No kubectl on `PATH`, or it cannot be executed.
pub fn run(args: KubectlArgs) -> anyhow::Result<()> {
    exec(args.args)
}

/// When the binary was invoked as `kubectl` (a symlink made by install.sh), behave as
/// `k3rs kubectl`. Returns `None` for any other name.
pub fn multicall() -> Option<anyhow::Error> {
    let mut argv = std::env::args_os();
    let argv0 = argv.next()?;
    let name = Path::new(&argv0).file_name()?;
    if name != "kubectl" {
        return None;
    }
    exec(argv.collect()).err()
}

fn exec(args: Vec<OsString>) -> anyhow::Result<()> {
    use std::os::unix::process::CommandExt;
    let Some(kubectl) = find_kubectl() else {
        bail!(
            "no kubectl found on PATH (k3rs does not embed kubectl): install it, e.g. the \
             kubectl package from https://pkgs.k8s.io"
        );
    };
    let mut cmd = std::process::Command::new(&kubectl);
    cmd.args(&args);
    if std::env::var_os("KUBECONFIG").is_none() {
        cmd.env("KUBECONFIG", default_kubeconfig());
    }
    let err = cmd.exec();
    bail!("cannot run {}: {err}", kubectl.display())
}

/// `K3RS_KUBECONFIG_OUTPUT`, else the config file's `write-kubeconfig`, else the default.
fn default_kubeconfig() -> PathBuf {
    std::env::var_os("K3RS_KUBECONFIG_OUTPUT")
        .map(PathBuf::from)
        .or_else(|| super::config::server_file_value("write-kubeconfig").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_KUBECONFIG))
}

/// The first executable `kubectl` on PATH that is not this binary (so a `kubectl ->
/// k3rs` symlink cannot loop).
fn find_kubectl() -> Option<PathBuf> {
    let me = std::env::current_exe()
        .ok()
        .and_then(|p| p.canonicalize().ok());
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("kubectl"))
        .find(|c| is_executable(c) && c.canonicalize().ok() != me)
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}
