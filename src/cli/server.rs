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
    if args.cluster_reset {
        return super::cluster_reset::run(
            &args,
            &hostname,
            peer_url(&args),
            etcd_client_url(&args),
        );
    }
    let service_range = crate::apiserver::allocator::ServiceRange::parse(&args.service_cidr)
        .ok_or_else(|| {
            anyhow::anyhow!(
                "--service-cidr {:?} is not an IPv4 CIDR between /8 and /30",
                args.service_cidr
            )
        })?;
    let mut extra_sans = args.tls_san.clone();
    // In-cluster clients reach the API through the `kubernetes` Service's address.
    extra_sans.push(service_range.first().to_string());
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
    // A server that lost its CA files gets them back from its datastore (sealed by the token).
    if join_peer.is_none() {
        super::ca_store::recover_from_store(&args, &tls_dir)?;
    }
    let renew_before =
        std::time::Duration::from_secs(args.cert_renew_before_days.saturating_mul(86_400));
    let (pki, renewed) = crate::pki::ensure_server_pki_renewing(&tls_dir, &sans, renew_before)
        .context("cannot create or load certificates")?;
    if !renewed.is_empty() {
        tracing::info!(certificates = ?renewed, "renewed expiring certificates");
    }
    let secret = super::join::ensure_token_file(
        &args.data_dir.join("server"),
        &pki.ca_cert_pem,
        args.token.as_deref(),
    )?;

    let snapshot_schedule = if args.etcd_disable_snapshots {
        None
    } else {
        Some(super::snapshot_schedule::parse(
            &args.etcd_snapshot_schedule_cron,
        )?)
    };
    let (store, raft_peer_url) = open_store(&args, &hostname, &secret, join_peer, &pki).await?;

    // --- etcd v3 API on --etcd-listen-address, over the same store ---
    let etcd_shutdown = tokio_util::sync::CancellationToken::new();
    let etcd_listener = tokio::net::TcpListener::bind(args.etcd_listen_address)
        .await
        .with_context(|| format!("cannot listen on {} (etcd api)", args.etcd_listen_address))?;
    let etcd_api = if super::etcd_snapshot::etcd_uses_tls(&args.etcd_listen_address) {
        // Off loopback the datastore is reachable from the network: mutual TLS only.
        let mut etcd_sans = sans.clone();
        if !args.etcd_listen_address.ip().is_unspecified() {
            etcd_sans.push(args.etcd_listen_address.ip().to_string());
        }
        let certs = crate::pki::ensure_etcd_certs(&pki, &tls_dir.join("etcd"), &etcd_sans)
            .context("cannot create the etcd api certificates")?;
        let tls = crate::store::etcd::tls::ServerTls::new(
            &certs.ca_cert_pem,
            &certs.server_cert_pem,
            &certs.server_key_pem,
            &[crate::pki::ETCD_CLIENT_CN],
        )?;
        tokio::spawn(crate::store::etcd::serve_tls_listener(
            Arc::new(store.clone()),
            etcd_listener,
            tls,
            etcd_shutdown.clone(),
        ))
    } else {
        tokio::spawn(crate::store::etcd::serve_listener(
            Arc::new(store.clone()),
            etcd_listener,
            etcd_shutdown.clone(),
        ))
    };
    // --- end etcd v3 API ---
    if let Some(schedule) = snapshot_schedule {
        let cfg = super::snapshot_schedule::SnapshotSchedule {
            schedule_expr: args.etcd_snapshot_schedule_cron.clone(),
            dir: super::etcd_snapshot::snapshot_dir(
                &args.data_dir,
                args.etcd_snapshot_dir.as_deref(),
            ),
            name: args.etcd_snapshot_name.clone(),
            node: hostname.clone(),
            retention: args.etcd_snapshot_retention,
        };
        tokio::spawn(super::snapshot_schedule::run(
            store.clone(),
            schedule,
            cfg,
            etcd_shutdown.clone(),
        ));
    }
    tokio::spawn(super::ca_store::publish(
        store.clone(),
        secret.clone(),
        pki.clone(),
    ));
    let backend: Arc<dyn crate::apiserver::storage::Backend> = Arc::new(store);
    let api = crate::apiserver::new_api(backend, Some(&pki.service_account_key_pem), service_range)
        .await
        .map_err(|e| anyhow::anyhow!("cannot initialise the API: {e}"))?;
    // pods/log, exec, attach reach node agents with the kubelet-client certificate.
    let dialer = crate::apiserver::kubelet_client::KubeletDialer::new(
        &pki.ca_cert_pem,
        &pki.kubelet_client_cert_pem,
        &pki.kubelet_client_key_pem,
        (!args.disable_agent).then(|| (hostname.clone(), args.agent_endpoint)),
    )?;
    let _ = api.kubelet.set(dialer);

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
        cfg.cluster_dns = Some(args.cluster_dns);
        cfg.endpoint = Some(args.agent_endpoint);
        cfg.private_registry = args.private_registry.clone();
        let mut addresses = vec![node_ip.to_string()];
        if !args.agent_endpoint.ip().is_unspecified() {
            addresses.push(args.agent_endpoint.ip().to_string());
        }
        let (cert_pem, key_pem) = pki
            .issue_kubelet_serving(&hostname, &addresses)
            .context("cannot issue the agent endpoint's serving certificate")?;
        cfg.endpoint_tls = Some(crate::agent::endpoint_tls::EndpointTls {
            ca_pem: pki.ca_cert_pem.clone(),
            cert_pem,
            key_pem,
        });
        cfg.container_log_max_size = super::agent::log_size(&args.container_log_max_size)?;
        cfg.container_log_max_files = args.container_log_max_files;
        cfg.eviction = args.kubelet.eviction_config()?;
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
    ctrl_cfg.event_ttl = std::time::Duration::from_secs(args.event_ttl_seconds);
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
    // Auto-deployed manifests: <data-dir>/server/manifests plus the built-ins.
    let deploy = tokio::spawn(crate::deploy::run(
        client.clone(),
        crate::deploy::DeployConfig::new(
            args.data_dir.join("server").join("manifests"),
            args.disable.clone(),
        ),
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
    let _ = deploy.await;
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
    let peer_url = peer_url(args);
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
    cfg.client_urls = vec![etcd_client_url(args)];
    let (store, _raft) = crate::store::open(store_cfg)
        .await
        .context("cannot open the datastore")?;
    Ok((store, peer_url))
}

/// The raft peer URL other servers dial: the advertised address (else node IP, else the bind
/// address, else loopback) and the raft port.
fn peer_url(args: &ServerArgs) -> String {
    let advertise = args.advertise_address.or(args.node_ip).unwrap_or_else(|| {
        if args.bind_address.is_unspecified() {
            std::net::IpAddr::from([127, 0, 0, 1])
        } else {
            args.bind_address
        }
    });
    let host = match advertise {
        std::net::IpAddr::V6(a) => format!("[{a}]"),
        a => a.to_string(),
    };
    format!("http://{host}:{}", args.raft_listen_port)
}

/// etcd's "client URL" of this member: where its etcd v3 API listens.
fn etcd_client_url(args: &ServerArgs) -> String {
    let scheme = if super::etcd_snapshot::etcd_uses_tls(&args.etcd_listen_address) {
        "https"
    } else {
        "http"
    };
    format!("{scheme}://{}", args.etcd_listen_address)
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
