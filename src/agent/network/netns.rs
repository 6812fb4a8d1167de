//! Per-pod namespaces without a pause container: a network namespace at
//! `/run/netns/k3rs-<uid>` (so `ip netns exec` works) plus IPC and UTS namespaces (hostname
//! set once) kept alive by bind mounts under `<run-dir>/pods/<uid>/`. Every container of the
//! pod joins them by path, so they outlive any single container (init containers included).
//! A new network namespace gets `lo` up right here (one netlink message, instead of running
//! the CNI `loopback` plugin as a process per pod).
//!
//! Owns: creating and removing those bind mounts. May call: the kernel (unshare, mount,
//! rtnetlink).

use super::NetworkError;
use nix::mount::{MntFlags, MsFlags};
use nix::sched::CloneFlags;
use nix::sys::socket::{
    AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType, recv, sendto, socket,
};
use std::os::fd::AsRawFd;
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
        loopback_up()?;
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

/// `RTM_NEWLINK` setting `IFF_UP` on interface index 1, which is `lo` in every new network
/// namespace (it is registered first); asks for an ack.
fn loopback_up_request() -> Vec<u8> {
    const RTM_NEWLINK: u16 = 16;
    const NLM_F_REQUEST: u16 = 1;
    const NLM_F_ACK: u16 = 4;
    const IFF_UP: u32 = 1;
    const LEN: u32 = 16 + 16; // nlmsghdr + ifinfomsg
    let mut m = Vec::with_capacity(LEN as usize);
    m.extend_from_slice(&LEN.to_ne_bytes());
    m.extend_from_slice(&RTM_NEWLINK.to_ne_bytes());
    m.extend_from_slice(&(NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
    m.extend_from_slice(&1u32.to_ne_bytes()); // sequence number
    m.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel fills it in
    m.extend_from_slice(&[0, 0]); // family AF_UNSPEC, padding
    m.extend_from_slice(&0u16.to_ne_bytes()); // device type
    m.extend_from_slice(&1i32.to_ne_bytes()); // interface index of lo
    m.extend_from_slice(&IFF_UP.to_ne_bytes()); // flags
    m.extend_from_slice(&IFF_UP.to_ne_bytes()); // change mask
    m
}

/// The errno of a netlink ack (`NLMSG_ERROR`; 0 means success), `None` for anything else.
fn ack_errno(reply: &[u8]) -> Option<i32> {
    const NLMSG_ERROR: u16 = 2;
    let kind = u16::from_ne_bytes(reply.get(4..6)?.try_into().ok()?);
    if kind != NLMSG_ERROR {
        return None;
    }
    Some(-i32::from_ne_bytes(reply.get(16..20)?.try_into().ok()?))
}

/// Brings `lo` up in the calling thread's network namespace.
fn loopback_up() -> Result<(), NetworkError> {
    let err = |what: &str, e: nix::Error| NetworkError::Namespace(format!("lo up: {what}: {e}"));
    let fd = socket(
        AddressFamily::Netlink,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::NetlinkRoute,
    )
    .map_err(|e| err("socket", e))?;
    sendto(
        fd.as_raw_fd(),
        &loopback_up_request(),
        &NetlinkAddr::new(0, 0),
        MsgFlags::empty(),
    )
    .map_err(|e| err("send", e))?;
    let mut buf = [0u8; 512];
    let n = recv(fd.as_raw_fd(), &mut buf, MsgFlags::empty()).map_err(|e| err("recv", e))?;
    match ack_errno(&buf[..n]) {
        Some(0) => Ok(()),
        Some(errno) => Err(err("kernel", nix::Error::from_raw(errno))),
        None => Err(NetworkError::Namespace("lo up: no netlink ack".into())),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_request_is_a_well_formed_rtm_newlink_for_index_one() {
        let m = loopback_up_request();
        assert_eq!(m.len(), 32);
        assert_eq!(u32::from_ne_bytes(m[0..4].try_into().unwrap()), 32);
        assert_eq!(u16::from_ne_bytes(m[4..6].try_into().unwrap()), 16);
        assert_eq!(i32::from_ne_bytes(m[20..24].try_into().unwrap()), 1);
        assert_eq!(u32::from_ne_bytes(m[24..28].try_into().unwrap()), 1);
    }

    #[test]
    fn netlink_acks_are_decoded_and_other_messages_are_not_acks() {
        let mut ack = vec![0u8; 36];
        ack[4..6].copy_from_slice(&2u16.to_ne_bytes());
        assert_eq!(ack_errno(&ack), Some(0));
        ack[16..20].copy_from_slice(&(-1i32).to_ne_bytes());
        assert_eq!(ack_errno(&ack), Some(1));
        ack[4..6].copy_from_slice(&16u16.to_ne_bytes());
        assert_eq!(ack_errno(&ack), None);
        assert_eq!(ack_errno(&[0, 1]), None);
    }
}
