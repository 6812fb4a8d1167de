//! CNI: runs the standard plugins (`bridge` + `host-local` IPAM, and `portmap` for pods with
//! host ports) from `/usr/lib/cni` or `/opt/cni/bin`, with a conflist k3rs writes from the
//! node's pod CIDR. The ADD result is cached per pod so DEL (after an agent restart too)
//! can hand it back as `prevResult` and release the IP.
//!
//! Pod start cost matters (each plugin is a process, each iptables call another one that
//! takes the xtables lock): `lo` is brought up by [`super::netns`] when the namespace is
//! made (no `loopback` plugin), `portmap` only runs for pods that map ports, and outbound
//! masquerading is one node-wide rule ([`Cni::ensure_masquerade`]) instead of the bridge
//! plugin's per-pod `ipMasq` chain.
//!
//! Owns: the conflist, plugin invocation, result parsing and the masquerade rule. May
//! call: CNI plugin binaries, `iptables`.

use super::NetworkError;
use serde_json::{Value, json};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::io::AsyncWriteExt;
use tokio::sync::OnceCell;

const CNI_VERSION: &str = "1.0.0";

/// Configuration of the pod network on this node.
#[derive(Debug, Clone)]
pub struct CniConfig {
    /// Directories searched for plugin binaries.
    pub bin_dirs: Vec<PathBuf>,
    /// Linux bridge name (`cni0`).
    pub bridge: String,
    /// This node's pod subnet, e.g. `10.42.0.0/24`.
    pub subnet: String,
    /// `<data-dir>/agent/cni`: conflist, IPAM state, cached results.
    pub data_dir: PathBuf,
    /// CNI network name (also the host-local state subdirectory).
    pub network_name: String,
}

impl CniConfig {
    /// k3s-like defaults for `data_dir` and `subnet`.
    pub fn new(data_dir: PathBuf, subnet: &str) -> Self {
        CniConfig {
            bin_dirs: vec!["/usr/lib/cni".into(), "/opt/cni/bin".into()],
            bridge: "cni0".into(),
            subnet: subnet.into(),
            data_dir,
            network_name: "k3rs".into(),
        }
    }
}

/// A `hostPort` mapping for the portmap plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortMapping {
    pub host_port: i32,
    pub container_port: i32,
    pub protocol: String,
    pub host_ip: String,
}

/// The CNI runner of one node.
#[derive(Debug, Clone)]
pub struct Cni {
    config: CniConfig,
    conflist: Value,
    /// Set once the node-wide masquerade rule was installed (or found impossible).
    masquerade: Arc<OnceCell<()>>,
}

impl Cni {
    /// Builds the conflist and writes it to `<data_dir>/net.d/10-k3rs.conflist` for people.
    pub fn new(config: CniConfig) -> Result<Cni, NetworkError> {
        let conflist = json!({
            "cniVersion": CNI_VERSION,
            "name": config.network_name,
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": config.bridge,
                    "isGateway": true,
                    // One node-wide rule instead (see ensure_masquerade).
                    "ipMasq": false,
                    "hairpinMode": true,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": config.subnet}]],
                        "routes": [{"dst": "0.0.0.0/0"}],
                        "dataDir": config.data_dir.join("ipam").display().to_string(),
                    }
                },
                {"type": "portmap", "capabilities": {"portMappings": true}}
            ]
        });
        let dir = config.data_dir.join("net.d");
        std::fs::create_dir_all(&dir).map_err(|e| NetworkError::io(&dir, e))?;
        let file = dir.join("10-k3rs.conflist");
        let text = serde_json::to_string_pretty(&conflist).map_err(NetworkError::Json)?;
        std::fs::write(&file, text).map_err(|e| NetworkError::io(&file, e))?;
        let results = config.data_dir.join("results");
        std::fs::create_dir_all(&results).map_err(|e| NetworkError::io(&results, e))?;
        Ok(Cni {
            config,
            conflist,
            masquerade: Arc::new(OnceCell::new()),
        })
    }

    /// Installs, once per agent, the masquerade rule for traffic from the pod subnet to
    /// anywhere but the pod subnet and multicast (what the bridge plugin's `ipMasq` does
    /// with one chain per pod, at several iptables calls per pod start and stop). Without
    /// `iptables` pods still run, only without outbound NAT (logged).
    pub async fn ensure_masquerade(&self) {
        self.masquerade
            .get_or_init(|| async {
                if let Err(e) = self.install_masquerade().await {
                    tracing::warn!(error = %e, "pod masquerade rule not installed; pods have no outbound NAT");
                }
            })
            .await;
    }

    async fn install_masquerade(&self) -> Result<(), NetworkError> {
        let subnet = self.config.subnet.as_str();
        // One chain per subnet: agents of other nodes on this host (tests) keep their own.
        let chain = masquerade_chain(subnet);
        let chain = chain.as_str();
        // An existing chain is fine (agent restart): it is flushed and refilled below.
        let _ = iptables(&["-t", "nat", "-N", chain]).await;
        iptables(&["-t", "nat", "-F", chain]).await?;
        for dst in [subnet, "224.0.0.0/4"] {
            iptables(&["-t", "nat", "-A", chain, "-d", dst, "-j", "RETURN"]).await?;
        }
        iptables(&["-t", "nat", "-A", chain, "-j", "MASQUERADE"]).await?;
        let jump = [
            "POSTROUTING",
            "-s",
            subnet,
            "-m",
            "comment",
            "--comment",
            "k3rs pod masquerade",
            "-j",
            chain,
        ];
        let check: Vec<&str> = ["-t", "nat", "-C"].iter().chain(&jump).copied().collect();
        if iptables(&check).await.is_err() {
            let add: Vec<&str> = ["-t", "nat", "-A"].iter().chain(&jump).copied().collect();
            iptables(&add).await?;
        }
        Ok(())
    }

    pub fn config(&self) -> &CniConfig {
        &self.config
    }

    fn result_path(&self, id: &str) -> PathBuf {
        self.config
            .data_dir
            .join("results")
            .join(format!("{id}.json"))
    }

    /// The IP of a pod set up earlier (from the cached ADD result).
    pub fn cached_ip(&self, id: &str) -> Option<IpAddr> {
        let bytes = std::fs::read(self.result_path(id)).ok()?;
        let v: Value = serde_json::from_slice(&bytes).ok()?;
        first_ip(v.get("result")?)
    }

    fn find_plugin(&self, kind: &str) -> Result<PathBuf, NetworkError> {
        self.config
            .bin_dirs
            .iter()
            .map(|d| d.join(kind))
            .find(|p| p.is_file())
            .ok_or_else(|| NetworkError::PluginMissing {
                plugin: kind.into(),
                dirs: self.config.bin_dirs.clone(),
            })
    }

    async fn invoke(
        &self,
        command: &str,
        id: &str,
        netns: &Path,
        ifname: &str,
        args: &str,
        conf: &Value,
    ) -> Result<Value, NetworkError> {
        let kind = conf.get("type").and_then(Value::as_str).unwrap_or_default();
        let begun = std::time::Instant::now();
        let bin = self.find_plugin(kind)?;
        let path = std::env::join_paths(&self.config.bin_dirs)
            .map_err(|e| NetworkError::Namespace(format!("CNI_PATH: {e}")))?;
        let mut child = tokio::process::Command::new(&bin)
            .env("CNI_COMMAND", command)
            .env("CNI_CONTAINERID", id)
            .env("CNI_NETNS", netns)
            .env("CNI_IFNAME", ifname)
            .env("CNI_ARGS", args)
            .env("CNI_PATH", path)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| NetworkError::io(&bin, e))?;
        let input = serde_json::to_vec(conf).map_err(NetworkError::Json)?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(&input)
                .await
                .map_err(|e| NetworkError::io(&bin, e))?;
        }
        let out = child
            .wait_with_output()
            .await
            .map_err(|e| NetworkError::io(&bin, e))?;
        tracing::debug!(
            plugin = kind,
            command,
            id,
            took_ms = begun.elapsed().as_millis() as u64,
            "cni plugin ran"
        );
        if !out.status.success() {
            let err: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
            let msg = err
                .get("msg")
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| String::from_utf8_lossy(&out.stderr).trim().to_string());
            let details = err.get("details").and_then(Value::as_str).unwrap_or("");
            return Err(NetworkError::Plugin {
                plugin: kind.into(),
                command: command.into(),
                message: format!("{msg} {details}").trim().to_string(),
            });
        }
        if out.stdout.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&out.stdout).map_err(NetworkError::Json)
    }

    fn plugin_conf(&self, plugin: &Value, prev: Option<&Value>, ports: &[PortMapping]) -> Value {
        let mut conf = plugin.clone();
        conf["name"] = self.conflist["name"].clone();
        conf["cniVersion"] = json!(CNI_VERSION);
        if let Some(prev) = prev.filter(|p| !p.is_null()) {
            conf["prevResult"] = prev.clone();
        }
        if plugin
            .pointer("/capabilities/portMappings")
            .and_then(Value::as_bool)
            == Some(true)
        {
            let mappings: Vec<Value> = ports
                .iter()
                .map(|p| {
                    json!({"hostPort": p.host_port, "containerPort": p.container_port,
                           "protocol": p.protocol.to_ascii_lowercase(), "hostIP": p.host_ip})
                })
                .collect();
            conf["runtimeConfig"] = json!({"portMappings": mappings});
        }
        conf
    }

    /// CNI ADD for pod `id` in `netns`: `lo` up, then `eth0` through the chain. Returns
    /// the pod IP.
    pub async fn add(
        &self,
        id: &str,
        netns: &Path,
        pod_namespace: &str,
        pod_name: &str,
        ports: &[PortMapping],
    ) -> Result<IpAddr, NetworkError> {
        let args = format!(
            "IgnoreUnknown=1;K8S_POD_NAMESPACE={pod_namespace};K8S_POD_NAME={pod_name};K8S_POD_INFRA_CONTAINER_ID={id}"
        );
        self.ensure_masquerade().await;
        let mut prev: Option<Value> = None;
        let plugins = self.conflist["plugins"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for plugin in plugins
            .iter()
            .filter(|p| !ports.is_empty() || !is_portmap(p))
        {
            let conf = self.plugin_conf(plugin, prev.as_ref(), ports);
            let result = self.invoke("ADD", id, netns, "eth0", &args, &conf).await?;
            if !result.is_null() {
                prev = Some(result);
            }
        }
        let result = prev.unwrap_or(Value::Null);
        let ip = first_ip(&result).ok_or_else(|| NetworkError::Plugin {
            plugin: "bridge".into(),
            command: "ADD".into(),
            message: format!("result has no IP: {result}"),
        })?;
        let path = self.result_path(id);
        // nodeMasq: this pod has no per-pod masquerade chain for DEL to remove.
        let cached = json!({"result": result, "nodeMasq": true, "ports": ports.iter().map(|p| json!([p.host_port, p.container_port, p.protocol, p.host_ip])).collect::<Vec<_>>()});
        std::fs::write(&path, cached.to_string()).map_err(|e| NetworkError::io(&path, e))?;
        Ok(ip)
    }

    /// CNI DEL in reverse order (releases the IP, removes iptables rules). Missing netns
    /// is fine (DEL must still release IPAM). Idempotent.
    pub async fn del(
        &self,
        id: &str,
        netns: &Path,
        pod_namespace: &str,
        pod_name: &str,
    ) -> Result<(), NetworkError> {
        let path = self.result_path(id);
        let cached: Value = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or(Value::Null);
        let prev = cached.get("result").cloned();
        let ports: Vec<PortMapping> = cached
            .get("ports")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|p| {
                        Some(PortMapping {
                            host_port: p.get(0)?.as_i64()? as i32,
                            container_port: p.get(1)?.as_i64()? as i32,
                            protocol: p.get(2)?.as_str()?.to_string(),
                            host_ip: p.get(3)?.as_str()?.to_string(),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        let netns_arg = if netns.exists() {
            netns.to_path_buf()
        } else {
            PathBuf::new()
        };
        let args = format!(
            "IgnoreUnknown=1;K8S_POD_NAMESPACE={pod_namespace};K8S_POD_NAME={pod_name};K8S_POD_INFRA_CONTAINER_ID={id}"
        );
        let plugins = self.conflist["plugins"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        // Without a cached result (or from an older agent) DEL runs every plugin with
        // per-pod masquerading on, so whatever an ADD may have made is removed.
        let known = cached.get("nodeMasq").and_then(Value::as_bool) == Some(true);
        let mut first_err = None;
        for plugin in plugins
            .iter()
            .rev()
            .filter(|p| !known || !ports.is_empty() || !is_portmap(p))
        {
            let mut conf = self.plugin_conf(plugin, prev.as_ref(), &ports);
            if !known && conf.get("ipMasq").is_some() {
                conf["ipMasq"] = json!(true);
            }
            if let Err(e) = self
                .invoke("DEL", id, &netns_arg, "eth0", &args, &conf)
                .await
            {
                tracing::warn!(pod = id, error = %e, "cni del");
                first_err.get_or_insert(e);
            }
        }
        if let Some(e) = first_err {
            return Err(e);
        }
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(NetworkError::io(&path, e)),
        }
    }
}

/// `K3RS-MASQ-<8 hex of sha256(subnet)>` (iptables chain names have at most 28 chars).
fn masquerade_chain(subnet: &str) -> String {
    use sha2::Digest;
    let hash = hex::encode(sha2::Sha256::digest(subnet.as_bytes()));
    format!("K3RS-MASQ-{}", &hash[..8])
}

fn is_portmap(plugin: &Value) -> bool {
    plugin.get("type").and_then(Value::as_str) == Some("portmap")
}

/// Runs `iptables -w <args>` (waiting for the xtables lock).
async fn iptables(args: &[&str]) -> Result<(), NetworkError> {
    let out = tokio::process::Command::new("iptables")
        .arg("-w")
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .map_err(|e| NetworkError::io("iptables", e))?;
    if out.status.success() {
        return Ok(());
    }
    Err(NetworkError::Plugin {
        plugin: "iptables".into(),
        command: args.join(" "),
        message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
    })
}

/// The first address in a CNI result (`ips[].address`, e.g. `10.42.0.5/24`).
pub fn first_ip(result: &Value) -> Option<IpAddr> {
    result
        .get("ips")?
        .as_array()?
        .iter()
        .filter_map(|ip| ip.get("address")?.as_str())
        .filter_map(|a| a.split('/').next()?.parse().ok())
        .next()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_ip_is_parsed_from_a_cni_result() {
        let r = json!({"cniVersion": "1.0.0", "ips": [{"address": "10.42.0.7/24", "gateway": "10.42.0.1", "interface": 2}]});
        assert_eq!(first_ip(&r), Some("10.42.0.7".parse().unwrap()));
        assert_eq!(first_ip(&json!({})), None);
    }

    #[test]
    fn portmap_gets_runtime_config_and_chained_plugins_get_prev_result() {
        let dir = tempfile::tempdir().unwrap();
        let cni = Cni::new(CniConfig::new(dir.path().to_path_buf(), "10.99.0.0/24")).unwrap();
        let plugins = cni.conflist["plugins"].as_array().unwrap().clone();
        let prev = json!({"ips": []});
        let ports = vec![PortMapping {
            host_port: 8080,
            container_port: 80,
            protocol: "TCP".into(),
            host_ip: String::new(),
        }];
        let conf = cni.plugin_conf(&plugins[1], Some(&prev), &ports);
        assert_eq!(conf["type"], "portmap");
        assert_eq!(conf["prevResult"], prev);
        assert_eq!(conf["runtimeConfig"]["portMappings"][0]["hostPort"], 8080);
        assert_eq!(conf["runtimeConfig"]["portMappings"][0]["protocol"], "tcp");
        let bridge = cni.plugin_conf(&plugins[0], None, &ports);
        assert!(bridge.get("runtimeConfig").is_none());
        assert_eq!(bridge["ipam"]["ranges"][0][0]["subnet"], "10.99.0.0/24");
        assert!(dir.path().join("net.d/10-k3rs.conflist").is_file());
    }
}
