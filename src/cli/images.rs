//! `k3rs images import FILE…` and `k3rs images list`: the agent's containerd (namespace
//! `k8s.io`) from the command line, through the agent's own importer.

use anyhow::Context;
use clap::{Args, Subcommand};
use std::path::{Path, PathBuf};

/// `k3rs images`.
#[derive(Debug, Args)]
pub struct ImagesArgs {
    /// Directory for all state (the agent's containerd socket is under `agent/containerd`).
    #[arg(
        short = 'd',
        long,
        env = "K3RS_DATA_DIR",
        default_value = "/var/lib/k3rs",
        global = true
    )]
    pub data_dir: PathBuf,
    /// containerd socket (default: the supervised one under the data dir).
    #[arg(long, env = "K3RS_CONTAINER_RUNTIME_ENDPOINT", global = true)]
    pub container_runtime_endpoint: Option<PathBuf>,
    #[command(subcommand)]
    pub command: ImagesCommand,
}

#[derive(Debug, Subcommand)]
pub enum ImagesCommand {
    /// Import image archives (`docker save` or OCI layout; .tar, .tar.gz, .tgz, .tar.zst).
    Import {
        /// Archives to import.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// List the images containerd holds for Kubernetes.
    #[command(visible_alias = "ls")]
    List,
}

async fn connect(args: &ImagesArgs) -> anyhow::Result<crate::agent::runtime::Containerd> {
    let socket = args.container_runtime_endpoint.clone().unwrap_or_else(|| {
        crate::agent::runtime::ContainerdPaths {
            dir: args.data_dir.join("agent").join("containerd"),
        }
        .socket()
    });
    let rt = crate::agent::runtime::Containerd::connect(
        &socket,
        crate::agent::runtime::ContainerdOptions {
            logger_binary: None,
            scratch_dir: args.data_dir.join("agent").join("scratch"),
        },
    )
    .await
    .with_context(|| {
        format!(
            "cannot reach containerd at {} (is the k3rs agent running?)",
            socket.display()
        )
    })?;
    // A stale socket file accepts nothing: fail here with the path, not on the first import.
    rt.server_version()
        .await
        .with_context(|| format!("containerd at {} does not answer", socket.display()))?;
    Ok(rt)
}

/// Human-readable size like `ctr` (`1.2 MiB`).
fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

async fn import(rt: &crate::agent::runtime::Containerd, files: &[PathBuf]) -> anyhow::Result<()> {
    let mut failed = Vec::new();
    for file in files {
        println!("importing {}", file.display());
        match import_one(rt, file).await {
            Ok(()) => {}
            Err(e) => {
                eprintln!("k3rs: {}: {e:#}", file.display());
                failed.push(file.display().to_string());
            }
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        anyhow::bail!(
            "{} of {} file(s) failed: {}",
            failed.len(),
            files.len(),
            failed.join(", ")
        )
    }
}

async fn import_one(rt: &crate::agent::runtime::Containerd, file: &Path) -> anyhow::Result<()> {
    if !file.is_file() {
        anyhow::bail!("not a file");
    }
    let images = rt.import_tarball(file).await?;
    if images.is_empty() {
        println!(
            "  no named image in {} (nothing registered)",
            file.display()
        );
    }
    for img in images {
        println!("  {} {}", img.name, img.manifest_digest);
    }
    Ok(())
}

/// Print a table of the images.
fn print_table(images: &[crate::agent::runtime::ListedImage]) {
    let rows: Vec<[String; 3]> = images
        .iter()
        .map(|i| [i.name.clone(), i.digest.clone(), human_size(i.size)])
        .collect();
    let w0 = rows.iter().map(|r| r[0].len()).max().unwrap_or(0).max(3);
    let w1 = rows.iter().map(|r| r[1].len()).max().unwrap_or(0).max(6);
    println!("{:<w0$}   {:<w1$}   SIZE", "REF", "DIGEST");
    for [a, b, c] in rows {
        println!("{a:<w0$}   {b:<w1$}   {c}");
    }
}

/// Run `k3rs images …`.
pub async fn run(args: ImagesArgs) -> anyhow::Result<()> {
    let rt = connect(&args).await?;
    match &args.command {
        ImagesCommand::Import { files } => import(&rt, files).await,
        ImagesCommand::List => {
            print_table(&rt.list_images().await?);
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_printed_in_binary_units() {
        assert_eq!(human_size(512), "512 B");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size(5 * 1024 * 1024), "5.0 MiB");
    }
}
