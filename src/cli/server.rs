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
    let tls_dir = args.data_dir.join("server").join("tls");
    // A joining server takes the cluster CA and signing keys before the PKI would make its own.
    let join_peer = super::join_server::adopt_cluster_pki(&args, &tls_dir).await?;
    let pki = crate::pki::ensure_server_pki(&tls_dir, &sans)
        .context("cannot create or load certificates")?;
    let secret = super::join::ensure_token_file(
        &args.data_dir.join("server"),
        &pki.ca_cert_pem,
        args.token.as_deref(),
    )?;

    let (store, raft_peer_url) = open_store(&args, &hostname, &secret, join_peer, &pki).await?;

    // --- etcd v3 API on --etcd-listen-address, over the same store ---
    let etcd_shutdown = tokio_util::sync::CancellationToken::new();
    let etcd_listener = tokio::net::TcpListener::bind(args.etcd_listen_address)
        .await
        .with_context(|| format!("cannot listen on {} (etcd api)", args.etcd_listen_address))?;
    let etcd_api = tokio::spawn(crate::store::etcd::serve_listener(
        Arc::new(store.clone()),
        etcd_listener,
        etcd_shutdown.clone(),
    ));
    // --- end etcd v3 API ---
    let backend: Arc<dyn crate::apiserver::storage::Backend> = Arc::new(store);
    let api = crate::apiserver::new_api(backend, Some(&pki.service_account_key_pem))
        .await
        .map_err(|e| anyhow::anyhow!("cannot initialise the API: {e}"))?;

    let shutdown = tokio_util::sync::CancellationToken::new();
    let listen = std::net::SocketAddr::new(args.bind_address, args.https_listen_port);
    let server = crate::apiserver::start(
        api,
        crate::apiserver::ApiServerConfig {
            listen,
            pki: pki.clone(),
            join: Some(crate::apiserver::bootstrap_endpoints::JoinConfig {
                secret: secret.clone(),
                pki: pki.clone(),
                raft_peer_url,
            }),
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
        cfg.endpoint = Some(args.agent_endpoint);
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
    ctrl_cfg.job_backoff_base = std::time::Duration::from_millis(args.job_backoff_base_ms);
    let controllers = tokio::spawn(crate::controllers::run(
        client.clone(),
        ctrl_cfg,
        shutdown.clone(),
    ));
    // systemd (Type=notify): READY=1 once the API serves and, with the built-in agent, this
    // node is registered; without the agent, as soon as the API serves.
    tokio::spawn(notify_ready_when_registered(
        client.clone(),
        (!args.disable_agent).then(|| hostname.clone()),
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
    etcd_shutdown.cancel();
    if let Ok(Err(e)) = etcd_api.await {
        tracing::warn!(error = %e, "etcd api stopped with an error");
    }
    tracing::info!("k3rs server stopped");
    Ok(())
}

/// Open the replicated store under `<data-dir>/server/db` and start its raft member: a new
/// one-member group, a join of `--server`'s group, or (on an existing data dir) the saved
/// membership.
async fn open_store(
    args: &ServerArgs,
    node_name: &str,
    secret: &str,
    join_peer: Option<String>,
    pki: &crate::pki::ServerPki,
) -> anyhow::Result<(crate::store::Store, String)> {
    use crate::store::raft::Bootstrap;
    let db = args.data_dir.join("server").join("db");
    let advertise = args.advertise_address.or(args.node_ip).unwrap_or_else(|| {
        if args.bind_address.is_unspecified() {
            std::net::IpAddr::from([127, 0, 0, 1])
        } else {
            args.bind_address
        }
    });
    let host = |ip: std::net::IpAddr| match ip {
        std::net::IpAddr::V6(a) => format!("[{a}]"),
        a => a.to_string(),
    };
    let bootstrap = match &args.server {
        Some(url) => {
            let authority = url
                .trim_start_matches("https://")
                .trim_start_matches("http://")
                .split('/')
                .next()
                .unwrap_or_default();
            let peer_host = authority.rsplit_once(':').map_or(authority, |(h, _)| h);
            // The peer URL the server announced at bootstrap; else assume our raft port.
            let peer_addr = join_peer
                .as_deref()
                .map(|u| {
                    u.trim_start_matches("https://")
                        .trim_start_matches("http://")
                        .trim_end_matches('/')
                        .to_string()
                })
                .unwrap_or_else(|| format!("{peer_host}:{}", args.raft_listen_port));
            Bootstrap::Join {
                peer_addr,
                token: secret.to_string(),
            }
        }
        None => Bootstrap::ClusterInit,
    };
    let peer_url = format!("http://{}:{}", host(advertise), args.raft_listen_port);
    let mut store_cfg = crate::store::StoreConfig::new(
        &db,
        node_name,
        &format!("{}:{}", host(args.bind_address), args.raft_listen_port),
        &peer_url,
        bootstrap,
    );
    let cfg = &mut store_cfg.raft;
    cfg.token = secret.to_string();
    // Peers talk mutual TLS with certificates of the cluster CA.
    let (peer_cert, peer_key) = pki
        .issue_peer()
        .context("cannot issue the raft peer certificate")?;
    let peer_tls = crate::store::raft::tls::PeerTls::new(
        &pki.ca_cert_pem,
        &peer_cert,
        &peer_key,
        crate::pki::PEER_SAN,
        crate::pki::PEER_CN,
    )?;
    cfg.connector = Arc::new(crate::store::raft::tls::TlsConnector(peer_tls.clone()));
    cfg.acceptor = Arc::new(crate::store::raft::tls::TlsAcceptor(peer_tls));
    // etcd's "client URLs": where the etcd v3 API of this member listens.
    cfg.client_urls = vec![format!("http://{}", args.etcd_listen_address)];
    let (store, _raft) = crate::store::open(store_cfg)
        .await
        .context("cannot open the datastore")?;
    Ok((store, peer_url))
}

/// Tell systemd we are ready once `node` (if any) is registered; gives up on shutdown.
async fn notify_ready_when_registered(
    client: kube::Client,
    node: Option<String>,
    shutdown: tokio_util::sync::CancellationToken,
) {
    if let Some(name) = node {
        let nodes: kube::Api<k8s_openapi::api::core::v1::Node> = kube::Api::all(client);
        loop {
            if matches!(nodes.get_opt(&name).await, Ok(Some(_))) {
                break;
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(std::time::Duration::from_millis(250)) => {}
            }
        }
    }
    match super::sd_notify::notify_ready() {
        Ok(true) => tracing::info!("notified systemd: ready"),
        Ok(false) => {}
        Err(e) => tracing::warn!(error = %e, "cannot notify systemd"),
    }
}
