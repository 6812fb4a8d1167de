//! `k3rs agent`: verify the server's CA against the token, obtain a node client certificate
//! (`system:node:<name>`), write `<data-dir>/agent/kubelet.kubeconfig` and run the agent.

use super::args::AgentArgs;
use super::join;
use anyhow::Context;

/// Read `<data-dir>/agent/node-password`, creating it (0600) on first start.
fn node_password(agent_dir: &std::path::Path) -> anyhow::Result<String> {
    let path = agent_dir.join("node-password");
    match std::fs::read_to_string(&path) {
        Ok(p) if !p.trim().is_empty() => Ok(p.trim().to_string()),
        Ok(_) => anyhow::bail!("{} is empty", path.display()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let p = crate::pki::token::generate_secret();
            join::write_private(&path, &format!("{p}\n"))?;
            Ok(p)
        }
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// `--container-log-max-size` in bytes (a quantity such as `10Mi`).
pub fn log_size(s: &str) -> anyhow::Result<u64> {
    crate::quantity::parse_quantity(s)
        .filter(|v| *v >= 1.0)
        .map(|v| v as u64)
        .with_context(|| format!("invalid --container-log-max-size {s:?} (want a size like 10Mi)"))
}

/// Run the agent until a shutdown signal.
pub async fn run(args: AgentArgs) -> anyhow::Result<()> {
    let tok = crate::pki::token::parse(&args.token).context("invalid --token")?;
    let agent_dir = args.data_dir.join("agent");
    std::fs::create_dir_all(&agent_dir)
        .with_context(|| format!("cannot create {}", agent_dir.display()))?;
    let node_name = args.node_name.clone().unwrap_or_else(|| {
        nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_else(|| "localhost".into())
            .to_lowercase()
    });
    let url = args.server.trim_end_matches('/').to_string();
    let ca = join::fetch_verified_ca(&url, &tok).await?;
    let password = node_password(&agent_dir)?;
    let node_ip = args.node_ip.unwrap_or_else(crate::agent::detect_node_ip);
    let mut addresses = vec![node_ip.to_string()];
    if !args.agent_endpoint.ip().is_unspecified() {
        addresses.push(args.agent_endpoint.ip().to_string());
    }
    let pair = join::request_node_cert(&url, &ca, &tok, &node_name, &password, &addresses).await?;
    if pair.serving_cert.is_empty() {
        anyhow::bail!("the server issued no serving certificate for the agent endpoint");
    }
    let kubeconfig = agent_dir.join("kubelet.kubeconfig");
    join::write_private(
        &kubeconfig,
        &crate::pki::kubeconfig_yaml(&url, &pair.ca, &pair.cert, &pair.key),
    )?;
    tracing::info!(node = %node_name, path = %kubeconfig.display(), "joined: wrote the kubelet kubeconfig");

    let mut cfg =
        crate::agent::AgentConfig::new(args.data_dir.clone(), node_name, node_ip, kubeconfig);
    cfg.node_labels = args
        .node_labels
        .iter()
        .filter_map(|l| {
            l.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect();
    cfg.node_taints = args.node_taints.clone();
    cfg.container_runtime_endpoint = args.container_runtime_endpoint.clone();
    cfg.private_registry = args.private_registry.clone();
    cfg.endpoint = Some(args.agent_endpoint);
    cfg.endpoint_tls = Some(crate::agent::endpoint_tls::EndpointTls {
        ca_pem: pair.ca.clone(),
        cert_pem: pair.serving_cert.clone(),
        key_pem: pair.serving_key.clone(),
    });
    cfg.container_log_max_size = log_size(&args.container_log_max_size)?;
    cfg.container_log_max_files = args.container_log_max_files;
    cfg.eviction = args.kubelet.eviction_config()?;
    let shutdown = tokio_util::sync::CancellationToken::new();
    let mut agent = tokio::spawn(crate::agent::run(cfg, shutdown.clone()));
    tokio::select! {
        r = &mut agent => {
            r.context("the agent task panicked")?.context("the agent stopped")?;
        }
        () = super::shutdown_signal() => {
            shutdown.cancel();
            let _ = agent.await;
        }
    }
    tracing::info!("k3rs agent stopped");
    Ok(())
}
