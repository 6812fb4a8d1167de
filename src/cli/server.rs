//! `k3rs server`: starts the components in order and stops them on SIGTERM.

use super::args::ServerArgs;
use anyhow::Context;
use std::sync::Arc;

/// Run the server until a shutdown signal.
pub async fn run(args: ServerArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(args.data_dir.join("server"))
        .with_context(|| format!("cannot create data dir {}", args.data_dir.display()))?;
    tracing::info!(data_dir = %args.data_dir.display(), "k3rs server starting");

    let hostname = args.node_name.clone().unwrap_or_else(|| {
        nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_else(|| "localhost".into())
    });
    let mut extra_sans = args.tls_san.clone();
    if !args.bind_address.is_unspecified() {
        extra_sans.push(args.bind_address.to_string());
    }
    if let Some(a) = args.advertise_address {
        extra_sans.push(a.to_string());
    }
    let sans = crate::pki::serving_sans(&hostname, args.node_ip, &extra_sans);
    let pki = crate::pki::ensure_server_pki(&args.data_dir.join("server").join("tls"), &sans)
        .context("cannot create or load certificates")?;

    // TODO(store): replace with the replicated store once it is on main.
    tracing::warn!("using the in-memory store: cluster data is NOT persisted across restarts");
    let backend: Arc<dyn crate::apiserver::storage::Backend> =
        Arc::new(crate::apiserver::storage::memory::MemoryBackend::new());
    let api = crate::apiserver::new_api(backend)
        .await
        .map_err(|e| anyhow::anyhow!("cannot initialise the API: {e}"))?;

    let shutdown = tokio_util::sync::CancellationToken::new();

    // --- embedded store (sled + raft) and the etcd v3 API on --etcd-listen-address ---
    // The API server still uses its own in-memory backend until it is moved onto `store`.
    let (store, raft_node) = open_store(&args, &hostname).await?;
    let etcd_listener = tokio::net::TcpListener::bind(args.etcd_listen_address)
        .await
        .with_context(|| format!("cannot listen on {} (etcd api)", args.etcd_listen_address))?;
    let etcd_api = tokio::spawn(crate::store::etcd::serve_listener(
        Arc::new(store.clone()),
        etcd_listener,
        shutdown.clone(),
    ));
    // --- end embedded store ---
    let listen = std::net::SocketAddr::new(args.bind_address, args.https_listen_port);
    let server = crate::apiserver::start(
        api,
        crate::apiserver::ApiServerConfig {
            listen,
            pki: pki.clone(),
        },
        shutdown.clone(),
    )
    .await?;

    let host = if args.bind_address.is_unspecified() {
        "127.0.0.1".to_string()
    } else {
        match args.bind_address {
            std::net::IpAddr::V6(a) => format!("[{a}]"),
            a => a.to_string(),
        }
    };
    let url = format!("https://{host}:{}", args.https_listen_port);
    crate::pki::write_kubeconfig(
        &args.write_kubeconfig,
        &args.write_kubeconfig_mode,
        &url,
        &pki,
    )
    .context("cannot write the admin kubeconfig")?;
    tracing::info!(path = %args.write_kubeconfig.display(), "wrote kubeconfig");

    super::shutdown_signal().await;
    shutdown.cancel();
    let _ = server.await;
    if let Ok(Err(e)) = etcd_api.await {
        tracing::warn!(error = %e, "etcd api stopped with an error");
    }
    raft_node.shutdown().await;
    tracing::info!("k3rs server stopped");
    Ok(())
}

/// Opens the replicated store under `<data-dir>/server/db`: a new one-member raft group
/// (first start, or `--cluster-init`), or a join through the raft port of `--server`'s host.
async fn open_store(
    args: &ServerArgs,
    name: &str,
) -> anyhow::Result<(crate::store::Store, crate::store::raft::RaftNode)> {
    use crate::store::raft::Bootstrap;
    let ip = args.advertise_address.unwrap_or(match args.bind_address {
        a if a.is_unspecified() => std::net::IpAddr::from([127, 0, 0, 1]),
        a => a,
    });
    let peer = std::net::SocketAddr::new(ip, args.raft_listen_port);
    let bootstrap = match &args.server {
        Some(url) if !args.cluster_init => {
            let host = url
                .trim_start_matches("https://")
                .trim_start_matches("http://")
                .rsplit_once(':')
                .map_or(url.as_str(), |(h, _)| h);
            Bootstrap::Join {
                peer_addr: format!("{host}:{}", args.raft_listen_port),
                token: args.token.clone().unwrap_or_default(),
            }
        }
        _ => Bootstrap::ClusterInit,
    };
    let mut config = crate::store::StoreConfig::new(
        args.data_dir.join("server").join("db"),
        name,
        &std::net::SocketAddr::new(args.bind_address, args.raft_listen_port).to_string(),
        &format!("http://{peer}"),
        bootstrap,
    );
    config.raft.client_urls = vec![format!("http://{}", args.etcd_listen_address)];
    config.raft.token = args.token.clone().unwrap_or_default();
    crate::store::open(config)
        .await
        .map_err(|e| anyhow::anyhow!("cannot open the store: {e}"))
}
