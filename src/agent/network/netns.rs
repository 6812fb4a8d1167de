//! Per-pod namespaces without a pause container: a network namespace at
//! `/run/netns/k3rs-<uid>` (so `ip netns exec` works) plus IPC and UTS namespaces (hostname
//! set once) kept alive by bind mounts under `<run-dir>/pods/<uid>/`. Every container of the
//! pod joins them by path, so they outlive any single container (init containers included).
//!
//! Owns: creating and removing those bind mounts. May call: the kernel (unshare, mount).

use super::NetworkError;
use nix::mount::{MntFlags, MsFlags};
use nix::sched::CloneFlags;
use std::path::{Path, PathBuf};

/// Paths of a pod's persistent namespaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodNamespaces {
    pub net: PathBuf,
    pub ipc: PathBuf,
    pub uts: PathBuf,
}

/// Where the namespaces of pod `uid` live.
pub fn paths(run_dir: &Path, uid: &str) -> PodNamespaces {
    let dir = run_dir.join("pods").join(uid);
    PodNamespaces {
        net: PathBuf::from("/run/netns").join(format!("k3rs-{uid}")),
        ipc: dir.join("ipc"),
        uts: dir.join("uts"),
    }
}

fn ns_err(what: &str, path: &Path, e: impl std::fmt::Display) -> NetworkError {
    NetworkError::Namespace(format!("{what} {}: {e}", path.display()))
}

/// True when `path` is a mount point (our namespace bind mounts are).
pub fn is_mounted(path: &Path) -> bool {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let target = path.display().to_string();
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .any(|mp| mp == target)
}

/// Makes `/run/netns` a shared mount point of its own, as `ip netns add` does, so our
/// mounts there look the same whether or not `ip netns` ran before or after us.
fn ensure_netns_dir() -> Result<(), NetworkError> {
    let dir = Path::new("/run/netns");
    std::fs::create_dir_all(dir).map_err(|e| ns_err("mkdir", dir, e))?;
    if !is_mounted(dir) {
        nix::mount::mount(
            Some(dir),
            dir,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .map_err(|e| ns_err("bind mount", dir, e))?;
    }
    nix::mount::mount(
        None::<&str>,
        dir,
        None::<&str>,
        MsFlags::MS_SHARED | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(|e| ns_err("make shared", dir, e))
}

/// Creates the pod's namespaces (idempotent: existing ones are kept). The flag is true
/// when they were newly made (any earlier network attachment is then gone).
pub fn create(
    run_dir: &Path,
    uid: &str,
    hostname: &str,
) -> Result<(PodNamespaces, bool), NetworkError> {
    let ns = paths(run_dir, uid);
    if is_mounted(&ns.net) && is_mounted(&ns.ipc) && is_mounted(&ns.uts) {
        return Ok((ns, false));
    }
    // A half-made set (crash mid-way) is rebuilt from scratch.
    remove(run_dir, uid)?;
    ensure_netns_dir()?;
    for p in [&ns.net, &ns.ipc, &ns.uts] {
        if let Some(dir) = p.parent() {
            std::fs::create_dir_all(dir).map_err(|e| ns_err("mkdir", dir, e))?;
        }
        std::fs::write(p, b"").map_err(|e| ns_err("create", p, e))?;
    }
    let hostname = hostname.to_string();
    let targets = ns.clone();
    // unshare(2) affects only the calling thread: use a throwaway OS thread so no async
    // worker ends up inside the pod's namespaces.
    let handle = std::thread::spawn(move || -> Result<(), NetworkError> {
        nix::sched::unshare(
            CloneFlags::CLONE_NEWNET | CloneFlags::CLONE_NEWIPC | CloneFlags::CLONE_NEWUTS,
        )
        .map_err(|e| NetworkError::Namespace(format!("unshare: {e}")))?;
        nix::unistd::sethostname(&hostname)
            .map_err(|e| NetworkError::Namespace(format!("sethostname {hostname:?}: {e}")))?;
        for (kind, target) in [
            ("net", &targets.net),
            ("ipc", &targets.ipc),
            ("uts", &targets.uts),
        ] {
            let source = PathBuf::from(format!("/proc/thread-self/ns/{kind}"));
            nix::mount::mount(
                Some(&source),
                target,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .map_err(|e| ns_err("bind mount", target, e))?;
        }
        Ok(())
    });
    let result = handle
        .join()
        .unwrap_or_else(|_| Err(NetworkError::Namespace("namespace thread panicked".into())));
    if let Err(e) = result {
        let _ = remove(run_dir, uid);
        return Err(e);
    }
    Ok((ns, true))
}

/// Unmounts and deletes the pod's namespaces; missing ones are fine.
pub fn remove(run_dir: &Path, uid: &str) -> Result<(), NetworkError> {
    let ns = paths(run_dir, uid);
    for p in [&ns.net, &ns.ipc, &ns.uts] {
        // Shared propagation on /run/netns can stack the same mount twice.
        while is_mounted(p) {
            nix::mount::umount2(p, MntFlags::MNT_DETACH).map_err(|e| ns_err("umount", p, e))?;
        }
        match std::fs::remove_file(p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(ns_err("remove", p, e)),
        }
    }
    let dir = run_dir.join("pods").join(uid);
    let _ = std::fs::remove_dir(dir);
    Ok(())
}
