//! `k3rs server`: starts the components in order and stops them on SIGTERM.

use super::args::ServerArgs;
use anyhow::Context;

/// Run the server until a shutdown signal.
pub async fn run(args: ServerArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(args.data_dir.join("server"))
        .with_context(|| format!("cannot create data dir {}", args.data_dir.display()))?;
    tracing::info!(data_dir = %args.data_dir.display(), "k3rs server starting");
    super::shutdown_signal().await;
    tracing::info!("k3rs server stopped");
    Ok(())
}
