//! Service ClusterIP and NodePort allocation, as kube-apiserver's registry does it: addresses
//! come from `--service-cidr` (the first one belongs to the `kubernetes` Service), node ports
//! from 30000–32767, and every allocation is a reservation key created with a
//! compare-and-swap in the store, so two servers (or two concurrent creates) can never hand
//! out the same address or port. Deleting a Service releases its reservations.
//!
//! Owns: the reservation keys under `/registry/k3rs/ranges/`. May call: the storage backend.

use super::handlers::Api;
use super::status::{ApiError, Cause};
use crate::store::types::{
    Compare, CompareResult, CompareTarget, DeleteRangeRequest, PutRequest, RangeRequest, RequestOp,
    TxnRequest,
};
use serde_json::{Value, json};
use std::collections::HashSet;
use std::net::Ipv4Addr;

const IP_PREFIX: &str = "/registry/k3rs/ranges/serviceips/";
const PORT_PREFIX: &str = "/registry/k3rs/ranges/servicenodeports/";
/// Upstream's default `--service-node-port-range`.
pub const NODE_PORTS: std::ops::RangeInclusive<u32> = 30000..=32767;

/// An IPv4 service CIDR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServiceRange {
    base: u32,
    size: u32,
}

impl ServiceRange {
    /// Parses `10.43.0.0/16`; `None` for anything but an IPv4 prefix of /8–/30.
    pub fn parse(cidr: &str) -> Option<Self> {
        let (ip, len) = cidr.trim().split_once('/')?;
        let ip: Ipv4Addr = ip.parse().ok()?;
        let len: u32 = len.parse().ok()?;
        if !(8..=30).contains(&len) {
            return None;
        }
        let size = 1u32 << (32 - len);
        Some(ServiceRange {
            base: u32::from(ip) & !(size - 1),
            size,
        })
    }

    /// The `kubernetes` Service's address: the first of the range.
    pub fn first(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.base + 1)
    }

    fn contains(&self, ip: u32) -> bool {
        ip > self.base && ip < self.base + self.size - 1
    }
}

impl Default for ServiceRange {
    /// k3s's default, 10.43.0.0/16.
    fn default() -> Self {
        ServiceRange {
            base: u32::from(Ipv4Addr::new(10, 43, 0, 0)),
            size: 1 << 16,
        }
    }
}

fn invalid(name: &str, field: String, message: String) -> ApiError {
    ApiError::invalid(
        "",
        "Service",
        name,
        &[Cause {
            reason: "FieldValueInvalid".into(),
            message,
            field,
        }],
    )
}

/// Keys (without prefix) of existing reservations under `prefix`.
async fn reserved(api: &Api, prefix: &str) -> Result<HashSet<String>, ApiError> {
    let resp = api
        .backend
        .range(RangeRequest {
            key: prefix.as_bytes().to_vec(),
            range_end: super::storage::prefix_end(prefix.as_bytes()),
            keys_only: true,
            ..Default::default()
        })
        .await?;
    Ok(resp
        .kvs
        .iter()
        .filter_map(|kv| {
            std::str::from_utf8(&kv.key)
                .ok()?
                .strip_prefix(prefix)
                .map(String::from)
        })
        .collect())
}

/// Create `key` (owned by `owner`) unless it exists; `false` when someone holds it.
async fn reserve(api: &Api, key: String, owner: &str) -> Result<bool, ApiError> {
    let resp = api
        .backend
        .txn(TxnRequest {
            compare: vec![Compare {
                key: key.as_bytes().to_vec(),
                range_end: vec![],
                target: CompareTarget::CreateRevision(0),
                result: CompareResult::Equal,
            }],
            success: vec![RequestOp::Put(PutRequest {
                key: key.into_bytes(),
                value: owner.as_bytes().to_vec(),
                ..Default::default()
            })],
            failure: vec![],
        })
        .await?;
    Ok(resp.succeeded)
}

/// What a Service create reserved (released again if the create fails).
#[derive(Debug, Default)]
pub struct Reservations(Vec<String>);

impl Reservations {
    /// Give the reservations back (the object was not stored).
    pub async fn release(self, api: &Api) {
        for key in self.0 {
            let _ = delete_key(api, &key).await;
        }
    }
}

async fn delete_key(api: &Api, key: &str) -> Result<(), ApiError> {
    api.backend
        .txn(TxnRequest {
            compare: vec![],
            success: vec![RequestOp::DeleteRange(DeleteRangeRequest {
                key: key.as_bytes().to_vec(),
                range_end: vec![],
                prev_kv: false,
            })],
            failure: vec![],
        })
        .await?;
    Ok(())
}

/// Allocate the ClusterIP and node ports of a Service being created. `taken_ips` and
/// `taken_ports` are those of the stored Services (objects older than reservations count too).
pub async fn allocate_service(
    api: &Api,
    obj: &mut Value,
    taken_ips: &HashSet<u32>,
    taken_ports: &HashSet<u32>,
) -> Result<Reservations, ApiError> {
    let owner = format!(
        "{}/{}",
        obj.pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or(""),
        obj.pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
    );
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let mut held = Reservations::default();
    let r = allocate_inner(api, obj, taken_ips, taken_ports, &owner, &name, &mut held).await;
    match r {
        Ok(()) => Ok(held),
        Err(e) => {
            held.release(api).await;
            Err(e)
        }
    }
}

async fn allocate_inner(
    api: &Api,
    obj: &mut Value,
    taken_ips: &HashSet<u32>,
    taken_ports: &HashSet<u32>,
    owner: &str,
    name: &str,
    held: &mut Reservations,
) -> Result<(), ApiError> {
    let range = api.service_range;
    let svc_type = obj
        .pointer("/spec/type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP")
        .to_string();
    let wanted = obj
        .pointer("/spec/clusterIP")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if svc_type != "ExternalName" && wanted != "None" {
        let reservations = reserved(api, IP_PREFIX).await?;
        let ip = if !wanted.is_empty() {
            let n = wanted.parse::<Ipv4Addr>().map(u32::from).map_err(|_| {
                invalid(
                    name,
                    "spec.clusterIPs".into(),
                    format!("Invalid value: []string{{{wanted:?}}}: must be a valid IP address"),
                )
            })?;
            let in_range = range.contains(n) || n == u32::from(range.first());
            if !in_range {
                return Err(invalid(
                    name,
                    "spec.clusterIPs".into(),
                    format!(
                        "Invalid value: []string{{{wanted:?}}}: failed to allocate IP {wanted}: the provided IP ({wanted}) is not in the valid range. The range of valid IPs is {}/{}",
                        Ipv4Addr::from(range.base),
                        32 - range.size.trailing_zeros()
                    ),
                ));
            }
            let busy = taken_ips.contains(&n)
                || !reserve(api, IP_PREFIX.to_string() + &wanted, owner).await?;
            if busy {
                return Err(invalid(
                    name,
                    "spec.clusterIPs".into(),
                    format!(
                        "Invalid value: []string{{{wanted:?}}}: failed to allocate IP {wanted}: provided IP is already allocated"
                    ),
                ));
            }
            held.0.push(IP_PREFIX.to_string() + &wanted);
            wanted
        } else {
            // Lowest free address above .10 (the first is `kubernetes`, .10 cluster DNS).
            let mut chosen = None;
            for off in 11..range.size.saturating_sub(1) {
                let n = range.base + off;
                let text = Ipv4Addr::from(n).to_string();
                if taken_ips.contains(&n) || reservations.contains(&text) {
                    continue;
                }
                if reserve(api, IP_PREFIX.to_string() + &text, owner).await? {
                    held.0.push(IP_PREFIX.to_string() + &text);
                    chosen = Some(text);
                    break;
                }
            }
            chosen.ok_or_else(|| {
                ApiError::internal("failed to allocate a serviceIP: range is full")
            })?
        };
        obj["spec"]["clusterIP"] = json!(ip);
        obj["spec"]["clusterIPs"] = json!([ip]);
    }
    if matches!(svc_type.as_str(), "NodePort" | "LoadBalancer") {
        let reservations = reserved(api, PORT_PREFIX).await?;
        let count = obj
            .pointer("/spec/ports")
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        for i in 0..count {
            let field = format!("spec.ports[{i}].nodePort");
            let pointer = format!("/spec/ports/{i}/nodePort");
            match obj.pointer(&pointer).and_then(Value::as_u64) {
                Some(p) if p != 0 => {
                    let p = p as u32;
                    if !NODE_PORTS.contains(&p) {
                        return Err(invalid(
                            name,
                            field,
                            format!(
                                "Invalid value: {p}: provided port is not in the valid range. The range of valid ports is 30000-32767"
                            ),
                        ));
                    }
                    if taken_ports.contains(&p)
                        || !reserve(api, format!("{PORT_PREFIX}{p}"), owner).await?
                    {
                        return Err(invalid(
                            name,
                            field,
                            format!("Invalid value: {p}: provided port is already allocated"),
                        ));
                    }
                    held.0.push(format!("{PORT_PREFIX}{p}"));
                }
                _ => {
                    let mut chosen = None;
                    for p in NODE_PORTS {
                        if taken_ports.contains(&p) || reservations.contains(&p.to_string()) {
                            continue;
                        }
                        if held.0.contains(&format!("{PORT_PREFIX}{p}")) {
                            continue;
                        }
                        if reserve(api, format!("{PORT_PREFIX}{p}"), owner).await? {
                            held.0.push(format!("{PORT_PREFIX}{p}"));
                            chosen = Some(p);
                            break;
                        }
                    }
                    let p = chosen.ok_or_else(|| {
                        ApiError::internal("failed to allocate a nodePort: range is full")
                    })?;
                    if let Some(port) = obj.pointer_mut(&format!("/spec/ports/{i}")) {
                        port["nodePort"] = json!(p);
                    }
                }
            }
        }
    }
    Ok(())
}

/// Release every reservation held by the Service `namespace/name` (after its deletion).
pub async fn release_service(api: &Api, namespace: &str, name: &str) -> Result<(), ApiError> {
    let owner = format!("{namespace}/{name}");
    for prefix in [IP_PREFIX, PORT_PREFIX] {
        let resp = api
            .backend
            .range(RangeRequest {
                key: prefix.as_bytes().to_vec(),
                range_end: super::storage::prefix_end(prefix.as_bytes()),
                ..Default::default()
            })
            .await?;
        for kv in resp.kvs.iter().filter(|kv| kv.value == owner.as_bytes()) {
            if let Ok(key) = std::str::from_utf8(&kv.key) {
                delete_key(api, key).await?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_ranges_parse_and_name_their_first_address() {
        let r = ServiceRange::parse("10.96.0.0/12").unwrap();
        assert_eq!(r.first(), Ipv4Addr::new(10, 96, 0, 1));
        assert!(r.contains(u32::from(Ipv4Addr::new(10, 111, 255, 254))));
        assert!(!r.contains(u32::from(Ipv4Addr::new(10, 112, 0, 1))));
        assert!(!r.contains(u32::from(Ipv4Addr::new(10, 96, 0, 0))));
        assert_eq!(
            ServiceRange::parse("10.43.0.0/16"),
            Some(ServiceRange::default())
        );
        assert!(ServiceRange::parse("10.43.0.0/31").is_none());
        assert!(ServiceRange::parse("fd00::/108").is_none());
        assert!(ServiceRange::parse("nonsense").is_none());
    }
}
