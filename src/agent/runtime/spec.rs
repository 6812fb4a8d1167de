//! Builds the OCI runtime spec (config.json, as `serde_json::Value`) of one container of a
//! pod: process (command/args vs image Entrypoint/Cmd, env, cwd, user, capabilities),
//! root, mounts (/proc, /dev, /sys, hosts/hostname/resolv.conf, volumes), namespaces (the
//! pod's network, IPC and UTS namespaces by path), cgroup limits.
//!
//! Owns: the Kubernetes-to-OCI mapping. May call: nothing (pure).

use super::ImageInfo;
use super::error::RuntimeError;
use crate::agent::sources::ResolvedEnv;
use k8s_openapi::api::core::v1::{Container, Pod, SecurityContext};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

/// Pod-level facts the spec needs, produced by the pod sandbox setup.
#[derive(Debug, Clone, Default)]
pub struct SandboxInfo {
    /// `hostNetwork: true`: no network or UTS namespace of its own.
    pub host_network: bool,
    /// `/run/netns/k3rs-<uid>`.
    pub netns: PathBuf,
    /// Persistent IPC/UTS namespaces shared by the pod's containers.
    pub ipc_ns: Option<PathBuf>,
    pub uts_ns: Option<PathBuf>,
    pub hostname: String,
    pub pod_ip: String,
    pub host_ip: String,
    pub node_name: String,
    pub etc_hosts: PathBuf,
    pub etc_hostname: PathBuf,
    pub resolv_conf: PathBuf,
    /// cgroupfs parent of the pod's containers, e.g. `/k3rs/pod<uid>`.
    pub cgroup_parent: String,
    /// Host directory backing each pod volume, by volume name.
    pub volumes: HashMap<String, PathBuf>,
}

const DEFAULT_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

const ALL_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

const MASKED_PATHS: &[&str] = &[
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
];

const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

fn invalid(container: &str, reason: impl std::fmt::Display) -> RuntimeError {
    RuntimeError::Invalid(format!("container {container}: {reason}"))
}

/// Parses a Kubernetes quantity into milli-units (`"100m"` -> 100, `"1"` -> 1000) or,
/// with `bytes`, into plain units (`"128Mi"` -> 134217728).
pub fn parse_quantity(q: &str, milli: bool) -> Option<i64> {
    let v = crate::quantity::parse_quantity(q)? * if milli { 1000.0 } else { 1.0 };
    Some(v.ceil() as i64)
}

/// k8s command semantics: `command` replaces Entrypoint, `args` replaces Cmd.
pub fn resolve_args(c: &Container, image: &ImageInfo) -> Vec<String> {
    let args = c.args.clone();
    match (&c.command, args) {
        (Some(cmd), a) if !cmd.is_empty() => {
            let mut out = cmd.clone();
            out.extend(a.unwrap_or_default());
            out
        }
        (_, Some(a)) if !a.is_empty() => {
            let mut out = image.config.entrypoint.clone();
            out.extend(a);
            out
        }
        _ => {
            let mut out = image.config.entrypoint.clone();
            out.extend(image.config.cmd.clone());
            out
        }
    }
}

fn env_list(
    pod: &Pod,
    c: &Container,
    image: &ImageInfo,
    sb: &SandboxInfo,
    resolved: &ResolvedEnv,
) -> Result<Vec<String>, RuntimeError> {
    // Later entries win; BTreeMap keeps insertion stable by key, so track order separately.
    let mut order: Vec<String> = Vec::new();
    let mut values: BTreeMap<String, String> = BTreeMap::new();
    let mut set = |k: &str, v: String| {
        if !values.contains_key(k) {
            order.push(k.to_string());
        }
        values.insert(k.to_string(), v);
    };
    set(
        "PATH",
        "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string(),
    );
    for kv in &image.config.env {
        if let Some((k, v)) = kv.split_once('=') {
            set(k, v.to_string());
        }
    }
    set("HOSTNAME", sb.hostname.clone());
    for (k, v) in &resolved.env_from {
        set(k, v.clone());
    }
    for e in c.env.iter().flatten() {
        let value = match (&e.value, &e.value_from) {
            (Some(v), _) => v.clone(),
            (None, Some(from))
                if from.config_map_key_ref.is_some() || from.secret_key_ref.is_some() =>
            {
                match resolved.refs.get(&e.name) {
                    Some(v) => v.clone(),
                    // An optional reference that did not resolve: no variable at all.
                    None => continue,
                }
            }
            (None, Some(from)) => {
                if let Some(f) = &from.field_ref {
                    let info = super::downward::PodRuntimeInfo {
                        node_name: &sb.node_name,
                        pod_ip: &sb.pod_ip,
                        host_ip: &sb.host_ip,
                    };
                    super::downward::field_ref(pod, &f.field_path, &info)
                        .map_err(|m| invalid(&c.name, format!("env {}: {m}", e.name)))?
                } else if let Some(r) = &from.resource_field_ref {
                    // The selector may name another container of the pod.
                    let target = match r.container_name.as_deref() {
                        Some(n) if !n.is_empty() && n != c.name => pod
                            .spec
                            .as_ref()
                            .and_then(|s| s.containers.iter().find(|x| x.name == n))
                            .ok_or_else(|| {
                                invalid(&c.name, format!("env {}: no container {n:?}", e.name))
                            })?,
                        _ => c,
                    };
                    let node = super::downward::NodeCapacity::host();
                    super::downward::resource_field_ref(target, r, &node)
                        .map_err(|m| invalid(&c.name, format!("env {}: {m}", e.name)))?
                } else {
                    return Err(invalid(
                        &c.name,
                        format!("env {}: valueFrom has no source", e.name),
                    ));
                }
            }
            (None, None) => String::new(),
        };
        set(&e.name, value);
    }
    Ok(order
        .into_iter()
        .map(|k| {
            let v = values.get(&k).cloned().unwrap_or_default();
            format!("{k}={v}")
        })
        .collect())
}

fn merged_security(pod: &Pod, c: &Container) -> (Option<i64>, Option<i64>, Vec<i64>) {
    let psc = pod.spec.as_ref().and_then(|s| s.security_context.as_ref());
    let csc = c.security_context.as_ref();
    let uid = csc
        .and_then(|s| s.run_as_user)
        .or_else(|| psc.and_then(|s| s.run_as_user));
    let gid = csc
        .and_then(|s| s.run_as_group)
        .or_else(|| psc.and_then(|s| s.run_as_group));
    let mut groups: Vec<i64> = psc
        .and_then(|s| s.supplemental_groups.clone())
        .unwrap_or_default();
    if let Some(fs) = psc.and_then(|s| s.fs_group) {
        groups.push(fs);
    }
    (uid, gid, groups)
}

fn capabilities(sc: Option<&SecurityContext>, privileged: bool) -> Vec<String> {
    if privileged {
        return ALL_CAPS.iter().map(|s| s.to_string()).collect();
    }
    let norm = |c: &str| {
        let up = c.to_ascii_uppercase();
        if up.starts_with("CAP_") {
            up
        } else {
            format!("CAP_{up}")
        }
    };
    let mut caps: Vec<String> = DEFAULT_CAPS.iter().map(|s| s.to_string()).collect();
    if let Some(c) = sc.and_then(|s| s.capabilities.as_ref()) {
        for add in c.add.iter().flatten() {
            if add.eq_ignore_ascii_case("ALL") {
                caps = ALL_CAPS.iter().map(|s| s.to_string()).collect();
            } else if !caps.contains(&norm(add)) {
                caps.push(norm(add));
            }
        }
        for drop in c.drop.iter().flatten() {
            if drop.eq_ignore_ascii_case("ALL") {
                caps.clear();
            } else {
                let d = norm(drop);
                caps.retain(|x| *x != d);
            }
        }
    }
    caps
}

fn bind(dest: &str, source: &std::path::Path, ro: bool) -> Value {
    let mut opts = vec!["rbind", "rprivate"];
    opts.push(if ro { "ro" } else { "rw" });
    json!({"destination": dest, "type": "bind", "source": source.display().to_string(), "options": opts})
}

/// The OCI spec of container `c` of `pod`.
pub fn build(
    pod: &Pod,
    c: &Container,
    image: &ImageInfo,
    sb: &SandboxInfo,
    env: &ResolvedEnv,
    container_id: &str,
) -> Result<Value, RuntimeError> {
    let args = resolve_args(c, image);
    if args.is_empty() {
        return Err(invalid(
            &c.name,
            "no command: neither the pod nor the image sets one",
        ));
    }
    let sc = c.security_context.as_ref();
    let privileged = sc.and_then(|s| s.privileged).unwrap_or(false);
    let (uid, gid, groups) = merged_security(pod, c);
    let (img_uid, img_gid) = {
        let mut parts = image.config.user.splitn(2, ':');
        let u = parts.next().and_then(|u| u.parse::<i64>().ok());
        let g = parts.next().and_then(|g| g.parse::<i64>().ok());
        (u, g)
    };
    if uid.is_none() && !image.config.user.is_empty() && img_uid.is_none() {
        return Err(invalid(
            &c.name,
            format!(
                "image user {:?} is not numeric; set securityContext.runAsUser",
                image.config.user
            ),
        ));
    }
    let uid = uid.or(img_uid).unwrap_or(0);
    let gid = gid.or(img_gid).unwrap_or(0);
    let caps = capabilities(sc, privileged);
    let cwd = c
        .working_dir
        .clone()
        .filter(|w| !w.is_empty())
        .or_else(|| Some(image.config.working_dir.clone()).filter(|w| !w.is_empty()))
        .unwrap_or_else(|| "/".to_string());
    let no_new_privs = sc.and_then(|s| s.allow_privilege_escalation) == Some(false);

    let mut mounts = vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]}),
        json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]}),
        json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", if privileged { "rw" } else { "ro" }]}),
        json!({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}),
    ];
    let user_mounts: Vec<&str> = c
        .volume_mounts
        .iter()
        .flatten()
        .map(|m| m.mount_path.as_str())
        .collect();
    for (dest, src) in [
        ("/etc/hosts", &sb.etc_hosts),
        ("/etc/hostname", &sb.etc_hostname),
        ("/etc/resolv.conf", &sb.resolv_conf),
    ] {
        if !src.as_os_str().is_empty() && !user_mounts.contains(&dest) {
            mounts.push(bind(dest, src, false));
        }
    }
    for m in c.volume_mounts.iter().flatten() {
        let base = sb
            .volumes
            .get(&m.name)
            .ok_or_else(|| invalid(&c.name, format!("volume {} is not available", m.name)))?;
        let source = match m.sub_path.as_deref().filter(|s| !s.is_empty()) {
            Some(sub) if sub.split('/').any(|p| p == "..") || sub.starts_with('/') => {
                return Err(invalid(
                    &c.name,
                    format!("subPath {sub:?} escapes the volume"),
                ));
            }
            Some(sub) => base.join(sub),
            None => base.clone(),
        };
        // A claim mounted `readOnly` in the pod's volume is read-only in every container.
        let claim_ro = pod
            .spec
            .iter()
            .flat_map(|s| s.volumes.iter().flatten())
            .any(|v| {
                v.name == m.name
                    && v.persistent_volume_claim
                        .as_ref()
                        .is_some_and(|c| c.read_only == Some(true))
            });
        mounts.push(bind(
            &m.mount_path,
            &source,
            m.read_only.unwrap_or(false) || claim_ro,
        ));
    }

    let mut namespaces = vec![json!({"type": "pid"}), json!({"type": "mount"})];
    if sb.host_network {
        // Stay in the host's network namespace.
    } else if sb.netns.as_os_str().is_empty() {
        namespaces.push(json!({"type": "network"}));
    } else {
        namespaces.push(json!({"type": "network", "path": sb.netns.display().to_string()}));
    }
    match &sb.ipc_ns {
        Some(p) => namespaces.push(json!({"type": "ipc", "path": p.display().to_string()})),
        None => namespaces.push(json!({"type": "ipc"})),
    }
    match &sb.uts_ns {
        Some(p) => namespaces.push(json!({"type": "uts", "path": p.display().to_string()})),
        None if sb.host_network => {}
        None => namespaces.push(json!({"type": "uts"})),
    }

    let mut resources = json!({"devices": [{"allow": privileged, "access": "rwm"}]});
    if let Some(r) = &c.resources {
        let limit = |k: &str| {
            r.limits
                .as_ref()
                .and_then(|l| l.get(k))
                .map(|q| q.0.clone())
        };
        let request = |k: &str| {
            r.requests
                .as_ref()
                .and_then(|l| l.get(k))
                .map(|q| q.0.clone())
        };
        let mut cpu = serde_json::Map::new();
        if let Some(m) = limit("cpu").and_then(|q| parse_quantity(&q, true)) {
            // CFS quota in µs per 100 ms period; at least 1 ms, as the kernel requires.
            cpu.insert("quota".into(), json!((m * 100).max(1000)));
            cpu.insert("period".into(), json!(100_000));
        }
        if let Some(m) = request("cpu")
            .or_else(|| limit("cpu"))
            .and_then(|q| parse_quantity(&q, true))
        {
            cpu.insert("shares".into(), json!((m * 1024 / 1000).max(2)));
        }
        if !cpu.is_empty() {
            resources["cpu"] = Value::Object(cpu);
        }
        if let Some(b) = limit("memory").and_then(|q| parse_quantity(&q, false)) {
            resources["memory"] = json!({"limit": b});
        }
    }

    let mut linux = json!({
        "cgroupsPath": format!("{}/{}", sb.cgroup_parent.trim_end_matches('/'), container_id),
        "resources": resources,
        "namespaces": namespaces,
    });
    if !privileged {
        linux["maskedPaths"] = json!(MASKED_PATHS);
        linux["readonlyPaths"] = json!(READONLY_PATHS);
    }

    let mut spec = json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": {"uid": uid, "gid": gid, "additionalGids": groups},
            "args": args,
            "env": env_list(pod, c, image, sb, env)?,
            "cwd": cwd,
            "capabilities": {
                "bounding": caps, "effective": caps, "permitted": caps,
                "inheritable": [], "ambient": [],
            },
            "noNewPrivileges": no_new_privs,
        },
        "root": {"path": "rootfs", "readonly": sc.and_then(|s| s.read_only_root_filesystem).unwrap_or(false)},
        "mounts": mounts,
        "linux": linux,
    });
    if sb.uts_ns.is_none() && !sb.host_network {
        spec["hostname"] = json!(sb.hostname);
    }
    super::stdio::mark_spec(&mut spec, c);
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::super::ImageConfig;
    use super::*;

    fn pod(containers: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default", "uid": "u1"},
            "spec": {"containers": containers, "securityContext": {"runAsUser": 1000, "supplementalGroups": [5]}}
        }))
        .unwrap()
    }

    fn image() -> ImageInfo {
        ImageInfo {
            name: "docker.io/library/busybox:latest".into(),
            config: ImageConfig {
                entrypoint: vec!["/bin/sh".into()],
                cmd: vec!["-c".into(), "echo hi".into()],
                env: vec!["PATH=/bin".into(), "FOO=image".into()],
                working_dir: "/srv".into(),
                user: String::new(),
            },
            ..Default::default()
        }
    }

    #[test]
    fn command_replaces_entrypoint_and_args_replace_cmd() {
        let p = pod(json!([{"name": "a", "image": "busybox", "args": ["-c", "true"]}]));
        let c = &p.spec.as_ref().unwrap().containers[0];
        assert_eq!(resolve_args(c, &image()), vec!["/bin/sh", "-c", "true"]);
        let p = pod(json!([{"name": "a", "image": "busybox", "command": ["httpd"]}]));
        let c = &p.spec.as_ref().unwrap().containers[0];
        assert_eq!(resolve_args(c, &image()), vec!["httpd"]);
        let p = pod(json!([{"name": "a", "image": "busybox"}]));
        let c = &p.spec.as_ref().unwrap().containers[0];
        assert_eq!(resolve_args(c, &image()), vec!["/bin/sh", "-c", "echo hi"]);
    }

    #[test]
    fn spec_carries_env_user_limits_namespaces_and_volumes() {
        let p = pod(json!([{
            "name": "a", "image": "busybox",
            "env": [{"name": "FOO", "value": "pod"}, {"name": "ME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
            "resources": {"limits": {"cpu": "500m", "memory": "64Mi"}},
            "securityContext": {"readOnlyRootFilesystem": true, "capabilities": {"drop": ["NET_RAW"], "add": ["NET_ADMIN"]}},
            "volumeMounts": [{"name": "data", "mountPath": "/data", "readOnly": true}]
        }]));
        let c = &p.spec.as_ref().unwrap().containers[0];
        let sb = SandboxInfo {
            netns: "/run/netns/k3rs-u1".into(),
            ipc_ns: Some("/run/k3rs/u1/ipc".into()),
            uts_ns: Some("/run/k3rs/u1/uts".into()),
            hostname: "web".into(),
            cgroup_parent: "/k3rs/podu1".into(),
            volumes: HashMap::from([("data".to_string(), PathBuf::from("/var/lib/k3rs/v"))]),
            ..Default::default()
        };
        let s = build(&p, c, &image(), &sb, &ResolvedEnv::default(), "cid").unwrap();
        let env: Vec<String> = serde_json::from_value(s["process"]["env"].clone()).unwrap();
        assert!(env.contains(&"FOO=pod".to_string()));
        assert!(env.contains(&"ME=web".to_string()));
        assert!(env.contains(&"PATH=/bin".to_string()));
        assert_eq!(s["process"]["user"]["uid"], 1000);
        assert_eq!(s["process"]["user"]["additionalGids"], json!([5]));
        assert_eq!(s["process"]["cwd"], "/srv");
        assert_eq!(s["root"]["readonly"], true);
        assert_eq!(s["linux"]["resources"]["cpu"]["quota"], 50_000);
        assert_eq!(s["linux"]["resources"]["memory"]["limit"], 64 * 1024 * 1024);
        assert_eq!(s["linux"]["cgroupsPath"], "/k3rs/podu1/cid");
        let caps: Vec<String> =
            serde_json::from_value(s["process"]["capabilities"]["bounding"].clone()).unwrap();
        assert!(caps.contains(&"CAP_NET_ADMIN".to_string()));
        assert!(!caps.contains(&"CAP_NET_RAW".to_string()));
        let ns = s["linux"]["namespaces"].as_array().unwrap();
        assert!(ns.contains(&json!({"type": "network", "path": "/run/netns/k3rs-u1"})));
        assert!(
            s.get("hostname").is_none(),
            "hostname is set in the shared uts namespace"
        );
        let mounts = s["mounts"].as_array().unwrap();
        let data = mounts.iter().find(|m| m["destination"] == "/data").unwrap();
        assert_eq!(data["source"], "/var/lib/k3rs/v");
        assert!(data["options"].as_array().unwrap().contains(&json!("ro")));
    }

    #[test]
    fn missing_volume_and_escaping_subpath_are_rejected() {
        let p = pod(
            json!([{"name": "a", "image": "busybox", "volumeMounts": [{"name": "x", "mountPath": "/x"}]}]),
        );
        let c = &p.spec.as_ref().unwrap().containers[0];
        assert!(
            build(
                &p,
                c,
                &image(),
                &SandboxInfo::default(),
                &ResolvedEnv::default(),
                "cid"
            )
            .is_err()
        );
        let p = pod(
            json!([{"name": "a", "image": "busybox", "volumeMounts": [{"name": "x", "mountPath": "/x", "subPath": "../etc"}]}]),
        );
        let c = &p.spec.as_ref().unwrap().containers[0];
        let sb = SandboxInfo {
            volumes: HashMap::from([("x".to_string(), PathBuf::from("/v"))]),
            ..Default::default()
        };
        assert!(build(&p, c, &image(), &sb, &ResolvedEnv::default(), "cid").is_err());
    }

    #[test]
    fn api_env_is_applied_env_from_first_then_env() {
        let p = pod(json!([{"name": "a", "image": "busybox",
            "envFrom": [{"configMapRef": {"name": "cfg"}}],
            "env": [{"name": "B", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
                    {"name": "GONE", "valueFrom": {"configMapKeyRef": {"name": "x", "key": "k", "optional": true}}}]}]));
        let c = &p.spec.as_ref().unwrap().containers[0];
        let env = ResolvedEnv {
            env_from: vec![("A".into(), "1".into()), ("B".into(), "from-cm".into())],
            refs: HashMap::from([("B".to_string(), "from-secret".to_string())]),
        };
        let s = build(&p, c, &image(), &SandboxInfo::default(), &env, "cid").unwrap();
        let vars: Vec<String> = serde_json::from_value(s["process"]["env"].clone()).unwrap();
        assert!(vars.contains(&"A=1".to_string()));
        assert!(vars.contains(&"B=from-secret".to_string()));
        assert!(!vars.iter().any(|v| v.starts_with("GONE=")));
    }

    #[test]
    fn quantities_parse_to_milli_and_bytes() {
        assert_eq!(parse_quantity("100m", true), Some(100));
        assert_eq!(parse_quantity("2", true), Some(2000));
        assert_eq!(parse_quantity("0.5", true), Some(500));
        assert_eq!(parse_quantity("128Mi", false), Some(134_217_728));
        assert_eq!(parse_quantity("1G", false), Some(1_000_000_000));
        assert_eq!(parse_quantity("bogus", false), None);
    }
}
