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

    let agent = if args.disable_agent {
        None
    } else {
        let node_ip = args.node_ip.unwrap_or_else(crate::agent::detect_node_ip);
        let mut cfg = crate::agent::AgentConfig::new(
            args.data_dir.clone(),
            hostname.clone(),
            node_ip,
            args.write_kubeconfig.clone(),
        );
        cfg.node_labels = args
            .node_labels
            .iter()
            .filter_map(|l| {
                l.split_once('=')
                    .map(|(k, v)| (k.to_string(), v.to_string()))
            })
            .collect();
        cfg.node_labels.insert(
            "node-role.kubernetes.io/control-plane".into(),
            "true".into(),
        );
        cfg.node_taints = args.node_taints.clone();
        cfg.container_runtime_endpoint = args.container_runtime_endpoint.clone();
        cfg.cluster_cidr = args.cluster_cidr.clone();
        cfg.cluster_dns = Some(args.cluster_dns);
        // The agent failing (no containerd, not root) must not take the API down.
        let token = shutdown.clone();
        Some(tokio::spawn(async move {
            if let Err(e) = crate::agent::run(cfg, token).await {
                tracing::error!(error = %e, "built-in agent stopped");
            }
        }))
    };

    // Scheduler and controllers: ordinary API clients of the server we just started.
    let client = {
        let kc = kube::config::Kubeconfig::read_from(&args.write_kubeconfig)
            .context("cannot read the admin kubeconfig")?;
        let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .context("cannot load the admin kubeconfig")?;
        kube::Client::try_from(cfg).context("cannot build the API client")?
    };
    let identity = format!("{hostname}_{}", uuid::Uuid::new_v4());
    let mut ctrl_cfg = crate::controllers::ControllersConfig::new(
        identity.clone(),
        args.cluster_cidr.clone(),
        pki.ca_cert_pem.clone(),
    );
    ctrl_cfg.node_monitor_grace = std::time::Duration::from_secs(args.node_monitor_grace_period);
    ctrl_cfg.default_eviction = std::time::Duration::from_secs(args.default_eviction_seconds);
    let controllers = tokio::spawn(crate::controllers::run(
        client.clone(),
        ctrl_cfg,
        shutdown.clone(),
    ));
    let scheduler = tokio::spawn(crate::scheduler::run(
        client,
        crate::scheduler::SchedulerConfig {
            identity,
            lease: Default::default(),
        },
        shutdown.clone(),
    ));

    super::shutdown_signal().await;
    shutdown.cancel();
    if let Some(a) = agent {
        let _ = a.await;
    }
    let _ = controllers.await;
    let _ = scheduler.await;
    let _ = server.await;
    tracing::info!("k3rs server stopped");
    Ok(())
}
