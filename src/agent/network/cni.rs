//! CNI: runs the standard plugins (`bridge` + `host-local` IPAM, `portmap`, and `loopback`
//! for `lo`) from `/usr/lib/cni` or `/opt/cni/bin`, with a conflist k3rs writes from the
//! node's pod CIDR. The ADD result is cached per pod so DEL (after an agent restart too)
//! can hand it back as `prevResult` and release the IP.
//!
//! Owns: the conflist, plugin invocation and result parsing. May call: CNI plugin binaries.

use super::NetworkError;
use serde_json::{Value, json};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use tokio::io::AsyncWriteExt;

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
                    "ipMasq": true,
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
        Ok(Cni { config, conflist })
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
        let lo = json!({"cniVersion": CNI_VERSION, "name": "cni-loopback", "type": "loopback"});
        self.invoke("ADD", id, netns, "lo", &args, &lo).await?;
        let mut prev: Option<Value> = None;
        let plugins = self.conflist["plugins"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for plugin in &plugins {
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
        let cached = json!({"result": result, "ports": ports.iter().map(|p| json!([p.host_port, p.container_port, p.protocol, p.host_ip])).collect::<Vec<_>>()});
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
        let mut first_err = None;
        for plugin in plugins.iter().rev() {
            let conf = self.plugin_conf(plugin, prev.as_ref(), &ports);
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
