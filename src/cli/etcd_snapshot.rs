//! `k3rs etcd-snapshot save|ls|delete|prune`: datastore snapshots of this server, as k3s
//! names and lists them, plus the server's scheduled snapshots.
//!
//! Owns: the command's flags and output. May call: [`crate::store::backup`] (files),
//! [`crate::store::etcd::client`] (fetching a snapshot), the PKI files on disk, `crate::cron`.
//!
//! `save` asks the running server for a snapshot through its etcd API (`Maintenance.Snapshot`,
//! the same stream `etcdctl snapshot save` reads) at `--etcd-listen-address`: the server keeps
//! sled open, so nothing else may read its files, and the etcd API is the interface the
//! server already serves and secures. Plain gRPC on loopback; for any other listen address
//! mutual TLS with `<data-dir>/server/tls/etcd/{server-ca.crt,client.crt,client.key}`. The file
//! is verified completely before it is written (atomically) into the snapshot directory.
//! The command reads the server's config file, so `data-dir`, `etcd-listen-address`,
//! `etcd-snapshot-dir` and `node-name` set there apply here too.

use crate::store::backup::{self, SnapshotFile};
use anyhow::Context;
use clap::{Args, Subcommand};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Arguments of `k3rs etcd-snapshot`.
#[derive(Debug, Clone, Args)]
pub struct EtcdSnapshotArgs {
    /// Directory for all state.
    #[arg(
        short = 'd',
        long,
        env = "K3RS_DATA_DIR",
        default_value = "/var/lib/k3rs",
        global = true
    )]
    pub data_dir: PathBuf,
    /// Config file (keys are flag names; the server's file works).
    #[arg(
        short = 'c',
        long,
        env = "K3RS_CONFIG_FILE",
        default_value = "/etc/k3rs/config.yaml",
        global = true
    )]
    pub config: PathBuf,
    /// Directory of snapshots (default: <data-dir>/server/db/snapshots).
    #[arg(
        long = "etcd-snapshot-dir",
        visible_alias = "dir",
        env = "K3RS_ETCD_SNAPSHOT_DIR",
        global = true
    )]
    pub dir: Option<PathBuf>,
    /// Node name used in snapshot names (default: hostname).
    #[arg(long, env = "K3RS_NODE_NAME", global = true)]
    pub node_name: Option<String>,
    /// The server's etcd API address (its --etcd-listen-address).
    #[arg(
        long,
        env = "K3RS_ETCD_LISTEN_ADDRESS",
        default_value = "127.0.0.1:2379",
        global = true
    )]
    pub etcd_listen_address: SocketAddr,
    /// What to do.
    #[command(subcommand)]
    pub command: SnapshotCommand,
}

/// `k3rs etcd-snapshot` subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum SnapshotCommand {
    /// Take a snapshot from the running server now.
    Save {
        /// Name prefix (<name>-<node>-<unix-seconds>).
        #[arg(long, default_value = "on-demand")]
        name: String,
    },
    /// List snapshots (Name, Location, Size, Created).
    #[command(visible_alias = "list")]
    Ls,
    /// Delete snapshots by name.
    #[command(visible_alias = "rm")]
    Delete {
        /// Snapshot names as `ls` prints them.
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Keep only the newest snapshots of one name prefix.
    Prune {
        /// Name prefix of the snapshots to prune.
        #[arg(long, default_value = "on-demand")]
        name: String,
        /// Number of snapshots to keep.
        #[arg(
            long = "snapshot-retention",
            visible_alias = "etcd-snapshot-retention",
            default_value_t = 5
        )]
        retention: usize,
    },
}

/// The snapshot directory for a data dir: `--etcd-snapshot-dir` or the k3s default.
pub fn snapshot_dir(data_dir: &Path, dir: Option<&Path>) -> PathBuf {
    dir.map(Path::to_path_buf)
        .unwrap_or_else(|| data_dir.join("server").join("db").join("snapshots"))
}

/// `--node-name` or the hostname.
pub fn node_name(given: Option<&str>) -> String {
    given.map(str::to_string).unwrap_or_else(|| {
        nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_else(|| "localhost".into())
    })
}

/// Whether the etcd API on `addr` is served over TLS (everything but loopback).
pub fn etcd_uses_tls(addr: &SocketAddr) -> bool {
    !addr.ip().is_loopback()
}

/// Run `k3rs etcd-snapshot`.
pub async fn run(args: EtcdSnapshotArgs) -> anyhow::Result<()> {
    let dir = snapshot_dir(&args.data_dir, args.dir.as_deref());
    let node = node_name(args.node_name.as_deref());
    match &args.command {
        SnapshotCommand::Save { name } => save(&args, &dir, name, &node).await,
        SnapshotCommand::Ls => {
            print!("{}", table(&backup::list(&dir)?));
            Ok(())
        }
        SnapshotCommand::Delete { names } => {
            for p in backup::delete(&dir, names)? {
                println!("Removed {}", p.display());
            }
            Ok(())
        }
        SnapshotCommand::Prune { name, retention } => {
            let prefix = format!("{name}-{node}");
            for f in backup::prune(&dir, &prefix, *retention)? {
                println!("Removed {}", f.path.display());
            }
            Ok(())
        }
    }
}

async fn save(args: &EtcdSnapshotArgs, dir: &Path, name: &str, node: &str) -> anyhow::Result<()> {
    let listen = args.etcd_listen_address;
    // A server bound to all addresses is reached on loopback.
    let addr = match listen.ip() {
        IpAddr::V4(a) if a.is_unspecified() => {
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), listen.port())
        }
        IpAddr::V6(a) if a.is_unspecified() => {
            SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), listen.port())
        }
        _ => listen,
    };
    let tls = if etcd_uses_tls(&listen) {
        let etcd = args.data_dir.join("server").join("tls").join("etcd");
        let read = |f: &str| {
            let p = etcd.join(f);
            std::fs::read_to_string(&p).with_context(|| {
                format!("cannot read {} (the etcd client certificate)", p.display())
            })
        };
        Some(crate::store::etcd::tls::ClientTls::new(
            &read("server-ca.crt")?,
            &read("client.crt")?,
            &read("client.key")?,
        )?)
    } else {
        None
    };
    let data = crate::store::etcd::client::fetch_snapshot(addr, tls, Duration::from_secs(10))
        .await
        .context("is the server running? (--etcd-listen-address must match the server's)")?;
    let (_, summary) = backup::verify_snapshot_bytes(Path::new("received snapshot"), &data)?;
    let file = backup::write_snapshot(dir, name, node, jiff::Timestamp::now().as_second(), &data)?;
    println!(
        "Snapshot {} saved to {} ({} bytes, revision {})",
        file.name,
        file.path.display(),
        file.size,
        summary.revision
    );
    Ok(())
}

/// `ls` output: aligned columns like k3s (Name, Location, Size, Created).
fn table(files: &[SnapshotFile]) -> String {
    let rows: Vec<[String; 4]> = files
        .iter()
        .map(|f| {
            [
                f.name.clone(),
                format!("file://{}", f.path.display()),
                f.size.to_string(),
                jiff::Timestamp::from_second(f.created)
                    .map(|t| t.to_string())
                    .unwrap_or_default(),
            ]
        })
        .collect();
    let header = ["Name", "Location", "Size", "Created"].map(String::from);
    let mut width = [0usize; 4];
    for r in std::iter::once(&header).chain(&rows) {
        for (w, c) in width.iter_mut().zip(r) {
            *w = (*w).max(c.len());
        }
    }
    let mut out = String::new();
    for r in std::iter::once(&header).chain(&rows) {
        let line: Vec<String> = r
            .iter()
            .zip(width)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(line.join(" ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ls_prints_k3s_columns_aligned() {
        let files = vec![SnapshotFile {
            name: "on-demand-n1-1700000000".into(),
            path: "/d/on-demand-n1-1700000000".into(),
            size: 4128,
            created: 1_700_000_000,
        }];
        let t = table(&files);
        let mut lines = t.lines();
        let head: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
        assert_eq!(head, ["Name", "Location", "Size", "Created"]);
        let row: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
        assert_eq!(
            row,
            [
                "on-demand-n1-1700000000",
                "file:///d/on-demand-n1-1700000000",
                "4128",
                "2023-11-14T22:13:20Z"
            ]
        );
    }

    #[test]
    fn only_loopback_listeners_are_plain() {
        assert!(!etcd_uses_tls(&"127.0.0.1:2379".parse().unwrap()));
        assert!(!etcd_uses_tls(&"[::1]:2379".parse().unwrap()));
        assert!(etcd_uses_tls(&"0.0.0.0:2379".parse().unwrap()));
        assert!(etcd_uses_tls(&"10.1.2.3:2379".parse().unwrap()));
    }
}
