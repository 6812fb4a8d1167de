//! Pod inputs that live in the API: ConfigMaps and Secrets for volumes, `env.valueFrom`
//! and `envFrom`, downwardAPI files, bound service-account tokens (projected
//! `serviceAccountToken`) and PersistentVolumeClaims. Volume files are written when the pod
//! sandbox is set up and rewritten atomically by the pod worker's periodic resync, which
//! also renews tokens (see [`crate::agent::volumes_token`]).
//!
//! Owns: turning those sources into files under the pod directory and env values.
//! May call: the API server through [`PodSources`] (a kube client, or a map in tests).

use crate::agent::volumes_token::{TokenCache, TokenSpec};
use futures::FutureExt;
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, KeyToPath, PersistentVolume, PersistentVolumeClaim, Pod, Secret, Volume,
};
use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Key -> bytes of a ConfigMap or Secret.
pub type Data = BTreeMap<String, Vec<u8>>;

/// Where ConfigMaps, Secrets, claims, volumes and tokens come from.
pub trait PodSources: Send + Sync {
    fn config_map<'a>(
        &'a self,
        ns: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<Data>, String>>;
    fn secret<'a>(
        &'a self,
        ns: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<Data>, String>>;
    /// A PersistentVolumeClaim.
    fn claim<'a>(
        &'a self,
        _ns: &'a str,
        _name: &'a str,
    ) -> BoxFuture<'a, Result<Option<PersistentVolumeClaim>, String>> {
        async { Err("persistentVolumeClaim volumes need API access".to_string()) }.boxed()
    }
    /// A PersistentVolume.
    fn persistent_volume<'a>(
        &'a self,
        _name: &'a str,
    ) -> BoxFuture<'a, Result<Option<PersistentVolume>, String>> {
        async { Err("persistentVolumeClaim volumes need API access".to_string()) }.boxed()
    }
    /// A bound service-account token (cached and renewed by the implementation).
    fn token<'a>(&'a self, _spec: &'a TokenSpec) -> BoxFuture<'a, Result<String, String>> {
        async { Err("serviceAccountToken volumes need API access".to_string()) }.boxed()
    }
}

/// Reads them from the API server.
pub struct ApiSources {
    client: kube::Client,
    tokens: TokenCache,
}

impl ApiSources {
    /// Sources read with `client`, with an empty token cache.
    pub fn new(client: kube::Client) -> Self {
        Self {
            client,
            tokens: TokenCache::default(),
        }
    }
}

impl PodSources for ApiSources {
    fn config_map<'a>(
        &'a self,
        ns: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<Data>, String>> {
        async move {
            let api: kube::Api<ConfigMap> = kube::Api::namespaced(self.client.clone(), ns);
            let cm = api.get_opt(name).await.map_err(|e| e.to_string())?;
            Ok(cm.map(|cm| {
                let mut d: Data = cm
                    .data
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k, v.into_bytes()))
                    .collect();
                for (k, v) in cm.binary_data.unwrap_or_default() {
                    d.insert(k, v.0);
                }
                d
            }))
        }
        .boxed()
    }

    fn secret<'a>(
        &'a self,
        ns: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<Data>, String>> {
        async move {
            let api: kube::Api<Secret> = kube::Api::namespaced(self.client.clone(), ns);
            let s = api.get_opt(name).await.map_err(|e| e.to_string())?;
            Ok(s.map(|s| {
                let mut d: Data = s
                    .data
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k, v.0))
                    .collect();
                for (k, v) in s.string_data.unwrap_or_default() {
                    d.insert(k, v.into_bytes());
                }
                d
            }))
        }
        .boxed()
    }

    fn claim<'a>(
        &'a self,
        ns: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<PersistentVolumeClaim>, String>> {
        async move {
            let api: kube::Api<PersistentVolumeClaim> =
                kube::Api::namespaced(self.client.clone(), ns);
            api.get_opt(name).await.map_err(|e| e.to_string())
        }
        .boxed()
    }

    fn persistent_volume<'a>(
        &'a self,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<PersistentVolume>, String>> {
        async move {
            let api: kube::Api<PersistentVolume> = kube::Api::all(self.client.clone());
            api.get_opt(name).await.map_err(|e| e.to_string())
        }
        .boxed()
    }

    fn token<'a>(&'a self, spec: &'a TokenSpec) -> BoxFuture<'a, Result<String, String>> {
        self.tokens.token(&self.client, spec).boxed()
    }
}

/// In-memory sources for tests: `(namespace, name) -> data`.
#[derive(Debug, Default)]
pub struct StaticSources {
    pub config_maps: HashMap<(String, String), Data>,
    pub secrets: HashMap<(String, String), Data>,
    pub claims: HashMap<(String, String), PersistentVolumeClaim>,
    pub volumes: HashMap<String, PersistentVolume>,
    /// Token by service account name.
    pub tokens: HashMap<String, String>,
}

impl PodSources for StaticSources {
    fn config_map<'a>(
        &'a self,
        ns: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<Data>, String>> {
        let d = self
            .config_maps
            .get(&(ns.to_string(), name.to_string()))
            .cloned();
        async move { Ok(d) }.boxed()
    }
    fn secret<'a>(
        &'a self,
        ns: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<Data>, String>> {
        let d = self
            .secrets
            .get(&(ns.to_string(), name.to_string()))
            .cloned();
        async move { Ok(d) }.boxed()
    }
    fn claim<'a>(
        &'a self,
        ns: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<PersistentVolumeClaim>, String>> {
        let c = self
            .claims
            .get(&(ns.to_string(), name.to_string()))
            .cloned();
        async move { Ok(c) }.boxed()
    }
    fn persistent_volume<'a>(
        &'a self,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<PersistentVolume>, String>> {
        let v = self.volumes.get(name).cloned();
        async move { Ok(v) }.boxed()
    }
    fn token<'a>(&'a self, spec: &'a TokenSpec) -> BoxFuture<'a, Result<String, String>> {
        let t = self
            .tokens
            .get(&spec.service_account)
            .cloned()
            .ok_or_else(|| format!("no token for {}", spec.service_account));
        async move { t }.boxed()
    }
}

/// Env values from the API for one container: `envFrom` pairs (in order) and the values of
/// `env[].valueFrom.{configMapKeyRef,secretKeyRef}` by variable name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResolvedEnv {
    pub env_from: Vec<(String, String)>,
    pub refs: HashMap<String, String>,
}

fn ns_of(pod: &Pod) -> &str {
    pod.metadata.namespace.as_deref().unwrap_or("default")
}

async fn fetch(
    sources: Option<&dyn PodSources>,
    secret: bool,
    ns: &str,
    name: &str,
    optional: bool,
) -> Result<Option<Data>, String> {
    let kind = if secret { "secret" } else { "configmap" };
    let Some(s) = sources else {
        return Err(format!("{kind} {ns}/{name}: no API access on this agent"));
    };
    let d = if secret {
        s.secret(ns, name).await?
    } else {
        s.config_map(ns, name).await?
    };
    match d {
        None if !optional => Err(format!("{kind} \"{name}\" not found")),
        d => Ok(d),
    }
}

/// Resolves the API-backed env of container `c`.
pub async fn resolve_env(
    sources: Option<&dyn PodSources>,
    pod: &Pod,
    c: &Container,
) -> Result<ResolvedEnv, String> {
    let ns = ns_of(pod);
    let mut out = ResolvedEnv::default();
    for from in c.env_from.iter().flatten() {
        let prefix = from.prefix.clone().unwrap_or_default();
        let (secret, name, optional) = match (&from.config_map_ref, &from.secret_ref) {
            (Some(r), _) => (false, r.name.clone(), r.optional.unwrap_or(false)),
            (None, Some(r)) => (true, r.name.clone(), r.optional.unwrap_or(false)),
            (None, None) => continue,
        };
        if let Some(d) = fetch(sources, secret, ns, &name, optional).await? {
            for (k, v) in d {
                out.env_from.push((
                    format!("{prefix}{k}"),
                    String::from_utf8_lossy(&v).into_owned(),
                ));
            }
        }
    }
    for e in c.env.iter().flatten() {
        let Some(from) = &e.value_from else { continue };
        let (secret, name, key, optional) = match (&from.config_map_key_ref, &from.secret_key_ref) {
            (Some(r), _) => (
                false,
                r.name.clone(),
                r.key.clone(),
                r.optional.unwrap_or(false),
            ),
            (None, Some(r)) => (
                true,
                r.name.clone(),
                r.key.clone(),
                r.optional.unwrap_or(false),
            ),
            (None, None) => continue,
        };
        if let Some(d) = fetch(sources, secret, ns, &name, optional).await? {
            match d.get(&key) {
                Some(v) => {
                    out.refs
                        .insert(e.name.clone(), String::from_utf8_lossy(v).into_owned());
                }
                None if optional => {}
                None => return Err(format!("couldn't find key {key} in {name}")),
            }
        }
    }
    Ok(out)
}

/// A relative path inside a volume: no `..`, not absolute.
fn safe_rel(path: &str) -> Result<&str, String> {
    if path.is_empty() || path.starts_with('/') || path.split('/').any(|p| p == "..") {
        return Err(format!("invalid volume path {path:?}"));
    }
    Ok(path)
}

fn write_file(dir: &Path, rel: &str, bytes: &[u8], mode: i32) -> Result<(), String> {
    let path = dir.join(safe_rel(rel)?);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    }
    std::fs::write(&path, bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    std::fs::set_permissions(
        &path,
        std::fs::Permissions::from_mode((mode & 0o777) as u32),
    )
    .map_err(|e| format!("{}: {e}", path.display()))
}

/// Writes a volume's files the kubelet's way, so a running container sees an update at
/// once and never half of it: the files live in a fresh `..<nanos>` directory, `..data`
/// is a symlink to it swapped by `rename`, and each top-level name is a symlink into
/// `..data`. The directory itself is never replaced (it is bind-mounted into containers).
/// Unchanged content is left alone.
pub fn write_atomic(dir: &Path, files: &[(String, Vec<u8>, i32)]) -> Result<(), String> {
    let err = |p: &Path, e: std::io::Error| format!("{}: {e}", p.display());
    std::fs::create_dir_all(dir).map_err(|e| err(dir, e))?;
    let data = dir.join("..data");
    let manifest: String = files
        .iter()
        .map(|(rel, _, mode)| format!("{rel}\t{mode:o}\n"))
        .collect();
    let unchanged = std::fs::read_to_string(data.join("..files")).ok() == Some(manifest.clone())
        && files.iter().all(|(rel, bytes, _)| {
            safe_rel(rel).is_ok_and(|r| std::fs::read(data.join(r)).ok().as_ref() == Some(bytes))
        });
    if unchanged {
        return Ok(());
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let version = format!("..{nanos}");
    let vdir = dir.join(&version);
    std::fs::create_dir_all(&vdir).map_err(|e| err(&vdir, e))?;
    for (rel, bytes, mode) in files {
        write_file(&vdir, rel, bytes, *mode)?;
    }
    std::fs::write(vdir.join("..files"), &manifest).map_err(|e| err(&vdir, e))?;
    let tmp = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(&version, &tmp).map_err(|e| err(&tmp, e))?;
    std::fs::rename(&tmp, &data).map_err(|e| err(&data, e))?;
    let mut tops: Vec<String> = Vec::new();
    for (rel, _, _) in files {
        let top = Path::new(safe_rel(rel)?)
            .components()
            .next()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .unwrap_or_default();
        if !top.is_empty() && !tops.contains(&top) {
            tops.push(top);
        }
    }
    for top in &tops {
        let link = dir.join(top);
        if std::fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(format!("..data/{top}"), &link)
                .map_err(|e| err(&link, e))?;
        }
    }
    // Old versions and names that are gone.
    for entry in std::fs::read_dir(dir).map_err(|e| err(dir, e))?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if name == "..data" || name == version {
            continue;
        }
        if name.starts_with("..") {
            let _ = std::fs::remove_dir_all(&path).or_else(|_| std::fs::remove_file(&path));
        } else if !tops.contains(&name) {
            let _ = std::fs::remove_file(&path).or_else(|_| std::fs::remove_dir_all(&path));
        }
    }
    Ok(())
}

/// Files of a ConfigMap/Secret: all keys, or just `items` (key -> path, mode).
fn project(
    out: &mut Vec<(String, Vec<u8>, i32)>,
    data: &Data,
    items: Option<&Vec<KeyToPath>>,
    mode: i32,
    what: &str,
) -> Result<(), String> {
    match items {
        None => {
            for (k, v) in data {
                out.push((k.clone(), v.clone(), mode));
            }
        }
        Some(items) => {
            for i in items {
                let v = data
                    .get(&i.key)
                    .ok_or_else(|| format!("{what}: key {} not found", i.key))?;
                out.push((i.path.clone(), v.clone(), i.mode.unwrap_or(mode)));
            }
        }
    }
    Ok(())
}

fn field(pod: &Pod, path: &str) -> Result<String, String> {
    let m = &pod.metadata;
    let kv = |map: Option<&BTreeMap<String, String>>| {
        map.map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={v:?}\n"))
                .collect::<String>()
        })
        .unwrap_or_default()
    };
    Ok(match path {
        "metadata.name" => m.name.clone().unwrap_or_default(),
        "metadata.namespace" => m.namespace.clone().unwrap_or_default(),
        "metadata.uid" => m.uid.clone().unwrap_or_default(),
        "metadata.labels" => kv(m.labels.as_ref()),
        "metadata.annotations" => kv(m.annotations.as_ref()),
        other => return Err(format!("downwardAPI field {other} is not supported")),
    })
}

/// True for the volume kinds this module materialises (or, for claims, resolves).
pub fn handles(v: &Volume) -> bool {
    v.config_map.is_some()
        || v.secret.is_some()
        || v.downward_api.is_some()
        || v.projected.is_some()
        || v.persistent_volume_claim.is_some()
}

/// Writes the ConfigMap/Secret/downwardAPI/projected volumes of `pod` under `base` and
/// resolves its persistentVolumeClaim volumes to their host paths; returns volume name ->
/// directory. Claims come last so that a claim gone bad cannot stop the resync of the
/// files (and tokens) of the other volumes.
pub async fn materialize_volumes(
    sources: Option<&dyn PodSources>,
    pod: &Pod,
    base: &Path,
) -> Result<HashMap<String, PathBuf>, String> {
    let ns = ns_of(pod);
    let mut dirs = HashMap::new();
    let volumes = || pod.spec.iter().flat_map(|s| s.volumes.iter().flatten());
    for v in volumes() {
        if !handles(v) || v.persistent_volume_claim.is_some() {
            continue;
        }
        let mut files: Vec<(String, Vec<u8>, i32)> = Vec::new();
        if let Some(cm) = &v.config_map {
            let mode = cm.default_mode.unwrap_or(0o644);
            if let Some(d) =
                fetch(sources, false, ns, &cm.name, cm.optional.unwrap_or(false)).await?
            {
                project(&mut files, &d, cm.items.as_ref(), mode, &cm.name)?;
            }
        }
        if let Some(s) = &v.secret {
            let mode = s.default_mode.unwrap_or(0o644);
            let name = s.secret_name.clone().unwrap_or_default();
            if let Some(d) = fetch(sources, true, ns, &name, s.optional.unwrap_or(false)).await? {
                project(&mut files, &d, s.items.as_ref(), mode, &name)?;
            }
        }
        if let Some(d) = &v.downward_api {
            let mode = d.default_mode.unwrap_or(0o644);
            for f in d.items.iter().flatten() {
                let Some(r) = &f.field_ref else {
                    return Err(format!(
                        "volume {}: resourceFieldRef is not supported yet",
                        v.name
                    ));
                };
                files.push((
                    f.path.clone(),
                    field(pod, &r.field_path)?.into_bytes(),
                    f.mode.unwrap_or(mode),
                ));
            }
        }
        if let Some(p) = &v.projected {
            let mode = p.default_mode.unwrap_or(0o644);
            for src in p.sources.iter().flatten() {
                if let Some(cm) = &src.config_map {
                    if let Some(d) =
                        fetch(sources, false, ns, &cm.name, cm.optional.unwrap_or(false)).await?
                    {
                        project(&mut files, &d, cm.items.as_ref(), mode, &cm.name)?;
                    }
                }
                if let Some(s) = &src.secret {
                    if let Some(d) =
                        fetch(sources, true, ns, &s.name, s.optional.unwrap_or(false)).await?
                    {
                        project(&mut files, &d, s.items.as_ref(), mode, &s.name)?;
                    }
                }
                if let Some(d) = &src.downward_api {
                    for f in d.items.iter().flatten() {
                        if let Some(r) = &f.field_ref {
                            files.push((
                                f.path.clone(),
                                field(pod, &r.field_path)?.into_bytes(),
                                f.mode.unwrap_or(mode),
                            ));
                        }
                    }
                }
                if let Some(t) = &src.service_account_token {
                    let spec = token_spec(pod, t.audience.as_deref(), t.expiration_seconds);
                    let Some(s) = sources else {
                        return Err(format!(
                            "volume {}: serviceAccountToken: no API access on this agent",
                            v.name
                        ));
                    };
                    let token = s.token(&spec).await?;
                    // The kubelet uses the volume's defaultMode too (0600 only when it also
                    // chowns the file for an fsGroup, which this agent does not).
                    files.push((t.path.clone(), token.into_bytes(), mode));
                }
            }
        }
        let kind = if v.secret.is_some() {
            "secret"
        } else {
            "configmap"
        };
        let dir = base.join(kind).join(&v.name);
        write_atomic(&dir, &files)?;
        dirs.insert(v.name.clone(), dir);
    }
    for v in volumes() {
        if let Some(c) = &v.persistent_volume_claim {
            let path = crate::agent::volumes_claim::claim_path(sources, ns, &c.claim_name)
                .await
                .map_err(|e| format!("volume {}: {e}", v.name))?;
            dirs.insert(v.name.clone(), path);
        }
    }
    Ok(dirs)
}

/// The token a `serviceAccountToken` projection of `pod` asks for.
fn token_spec(pod: &Pod, audience: Option<&str>, expiration: Option<i64>) -> TokenSpec {
    TokenSpec {
        namespace: ns_of(pod).to_string(),
        service_account: pod
            .spec
            .as_ref()
            .and_then(|s| s.service_account_name.clone())
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "default".into()),
        pod_name: pod.metadata.name.clone().unwrap_or_default(),
        pod_uid: pod.metadata.uid.clone().unwrap_or_default(),
        audience: audience.unwrap_or_default().to_string(),
        expiration_seconds: expiration.unwrap_or(3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sources() -> StaticSources {
        let mut s = StaticSources::default();
        s.config_maps.insert(
            ("ns".into(), "cfg".into()),
            BTreeMap::from([
                ("a.conf".to_string(), b"A=1".to_vec()),
                ("b".to_string(), b"two".to_vec()),
            ]),
        );
        s.secrets.insert(
            ("ns".into(), "sec".into()),
            BTreeMap::from([("pw".to_string(), b"hunter2".to_vec())]),
        );
        s
    }

    fn pod() -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "ns", "uid": "u", "labels": {"app": "x"}},
            "spec": {
                "containers": [{"name": "c", "image": "i",
                    "envFrom": [{"configMapRef": {"name": "cfg"}, "prefix": "CFG_"}],
                    "env": [{"name": "PW", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "pw"}}},
                            {"name": "OPT", "valueFrom": {"configMapKeyRef": {"name": "nope", "key": "k", "optional": true}}}]}],
                "volumes": [
                    {"name": "conf", "configMap": {"name": "cfg", "items": [{"key": "a.conf", "path": "sub/a.conf"}]}},
                    {"name": "creds", "secret": {"secretName": "sec", "defaultMode": 0o400}},
                    {"name": "info", "downwardAPI": {"items": [{"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]}}
                ]
            }
        }))
        .unwrap()
    }

    #[test]
    fn atomic_writes_swap_data_and_drop_removed_keys() {
        let dir = tempfile::tempdir().unwrap();
        let v = dir.path().join("vol");
        write_atomic(
            &v,
            &[
                ("a".into(), b"1".to_vec(), 0o644),
                ("b".into(), b"2".to_vec(), 0o644),
            ],
        )
        .unwrap();
        assert_eq!(std::fs::read_to_string(v.join("a")).unwrap(), "1");
        let first = std::fs::read_link(v.join("..data")).unwrap();
        // Same content: nothing is rewritten.
        write_atomic(
            &v,
            &[
                ("a".into(), b"1".to_vec(), 0o644),
                ("b".into(), b"2".to_vec(), 0o644),
            ],
        )
        .unwrap();
        assert_eq!(std::fs::read_link(v.join("..data")).unwrap(), first);
        write_atomic(&v, &[("a".into(), b"one".to_vec(), 0o644)]).unwrap();
        assert_eq!(std::fs::read_to_string(v.join("a")).unwrap(), "one");
        assert!(std::fs::symlink_metadata(v.join("b")).is_err());
        assert!(!v.join(&first).exists(), "old version removed");
    }

    #[tokio::test]
    async fn env_comes_from_config_maps_and_secrets() {
        let s = sources();
        let p = pod();
        let c = &p.spec.as_ref().unwrap().containers[0];
        let env = resolve_env(Some(&s), &p, c).await.unwrap();
        assert!(
            env.env_from
                .contains(&("CFG_b".to_string(), "two".to_string()))
        );
        assert_eq!(env.refs["PW"], "hunter2");
        assert!(!env.refs.contains_key("OPT"));
        let missing: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "ns"},
            "spec": {"containers": [{"name": "c", "env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "gone", "key": "k"}}}]}]}
        }))
        .unwrap();
        let c = &missing.spec.as_ref().unwrap().containers[0];
        assert!(
            resolve_env(Some(&s), &missing, c)
                .await
                .unwrap_err()
                .contains("not found")
        );
    }

    #[tokio::test]
    async fn volumes_are_written_with_items_and_modes() {
        let dir = tempfile::tempdir().unwrap();
        let dirs = materialize_volumes(Some(&sources()), &pod(), dir.path())
            .await
            .unwrap();
        assert_eq!(
            std::fs::read_to_string(dirs["conf"].join("sub/a.conf")).unwrap(),
            "A=1"
        );
        assert!(!dirs["conf"].join("b").exists());
        let pw = dirs["creds"].join("pw");
        assert_eq!(std::fs::read_to_string(&pw).unwrap(), "hunter2");
        assert_eq!(
            std::fs::metadata(&pw).unwrap().permissions().mode() & 0o777,
            0o400
        );
        assert_eq!(
            std::fs::read_to_string(dirs["info"].join("labels")).unwrap(),
            "app=\"x\"\n"
        );
    }

    #[test]
    fn volume_paths_cannot_escape() {
        assert!(safe_rel("../x").is_err());
        assert!(safe_rel("/etc/x").is_err());
        assert!(safe_rel("a/b").is_ok());
    }
}
