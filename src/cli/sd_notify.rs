//! systemd readiness notification (`Type=notify` units).
//!
//! Owns: sending `READY=1` to `$NOTIFY_SOCKET`. May call: nothing but a unix socket.
//! A few lines instead of a crate: the protocol is one datagram with `KEY=VALUE` lines to
//! the socket named in `$NOTIFY_SOCKET` (a path, or `@name` for an abstract socket).

use std::io;
use std::os::unix::net::{SocketAddr, UnixDatagram};

/// Tell systemd the service is ready. Does nothing (returns `Ok(false)`) when not run by
/// systemd with `Type=notify` (no `$NOTIFY_SOCKET`).
///
/// # Errors
/// The socket cannot be created or the datagram cannot be sent.
pub fn notify_ready() -> io::Result<bool> {
    notify("READY=1\n")
}

/// Send one notification `state` (e.g. `READY=1\nSTATUS=…`) to `$NOTIFY_SOCKET`.
///
/// # Errors
/// The socket cannot be created or the datagram cannot be sent.
pub fn notify(state: &str) -> io::Result<bool> {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return Ok(false);
    };
    let Some(path) = path.to_str() else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "NOTIFY_SOCKET is not valid utf-8",
        ));
    };
    send_to(path, state)?;
    Ok(true)
}

fn send_to(path: &str, state: &str) -> io::Result<()> {
    let addr = socket_addr(path)?;
    let sock = UnixDatagram::unbound()?;
    sock.send_to_addr(state.as_bytes(), &addr)?;
    Ok(())
}

fn socket_addr(path: &str) -> io::Result<SocketAddr> {
    if let Some(name) = path.strip_prefix('@') {
        abstract_addr(name.as_bytes())
    } else if path.starts_with('/') {
        SocketAddr::from_pathname(path)
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("NOTIFY_SOCKET must be an absolute path or @abstract name, got {path:?}"),
        ))
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn abstract_addr(name: &[u8]) -> io::Result<SocketAddr> {
    #[cfg(target_os = "android")]
    use std::os::android::net::SocketAddrExt;
    #[cfg(target_os = "linux")]
    use std::os::linux::net::SocketAddrExt;
    SocketAddr::from_abstract_name(name)
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn abstract_addr(_name: &[u8]) -> io::Result<SocketAddr> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "abstract unix sockets exist only on linux",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_is_sent_to_a_path_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let server = UnixDatagram::bind(&path).unwrap();
        send_to(path.to_str().unwrap(), "READY=1\n").unwrap();
        let mut buf = [0u8; 64];
        let n = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1\n");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn ready_is_sent_to_an_abstract_socket() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("k3rs-test-notify-{}", std::process::id());
        let server =
            UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes()).unwrap())
                .unwrap();
        send_to(&format!("@{name}"), "READY=1\n").unwrap();
        let mut buf = [0u8; 64];
        let n = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1\n");
    }

    #[test]
    fn relative_socket_path_is_refused() {
        assert!(socket_addr("relative.sock").is_err());
    }
}
