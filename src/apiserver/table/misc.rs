//! Printers for the remaining built-in groups: coordination, networking, discovery,
//! storage, RBAC, scheduling, node, apiextensions, apiregistration, admissionregistration.

use super::core::created_at_cells;
use super::format::{arr, i, opt, or_none, s, selector_string};
use super::{AGE, CREATED_AT, NAME, Printer, age, col, name, wide};
use serde_json::{Value, json};

pub(super) fn printer(group: &str, kind: &str) -> Option<Printer> {
    let p = match (group, kind) {
        ("coordination.k8s.io", "Lease") => Printer {
            columns: vec![
                NAME,
                col(
                    "Holder",
                    "string",
                    "holderIdentity contains the identity of the holder of a current lease.",
                ),
                AGE,
            ],
            cells: |o, now| vec![name(o), json!(s(o, "/spec/holderIdentity")), age(o, now)],
        },
        ("networking.k8s.io", "Ingress") => Printer {
            columns: vec![
                NAME,
                col(
                    "Class",
                    "string",
                    "The name of the IngressClass resource that should be used.",
                ),
                col(
                    "Hosts",
                    "string",
                    "Hosts that incoming requests are matched against before the ingress rule",
                ),
                col(
                    "Address",
                    "string",
                    "Address is a list containing ingress points for the load-balancer",
                ),
                col("Ports", "string", "Ports of TLS configurations that open"),
                AGE,
            ],
            cells: |o, now| {
                let rules = arr(o, "/spec/rules");
                let hosts: Vec<&str> = rules
                    .iter()
                    .map(|r| opt(r, "/host").unwrap_or("*"))
                    .collect();
                let hosts = if hosts.is_empty() {
                    "*".to_string()
                } else {
                    hosts.join(",")
                };
                let addrs: Vec<&str> = arr(o, "/status/loadBalancer/ingress")
                    .iter()
                    .filter_map(|i| opt(i, "/ip").or_else(|| opt(i, "/hostname")))
                    .collect();
                let ports = if arr(o, "/spec/tls").is_empty() {
                    "80"
                } else {
                    "80, 443"
                };
                vec![
                    name(o),
                    json!(opt(o, "/spec/ingressClassName").unwrap_or("<none>")),
                    json!(hosts),
                    json!(addrs.join(",")),
                    json!(ports),
                    age(o, now),
                ]
            },
        },
        ("networking.k8s.io", "IngressClass") => Printer {
            columns: vec![
                NAME,
                col(
                    "Controller",
                    "string",
                    "Controller that is responsible for handling this class",
                ),
                col(
                    "Parameters",
                    "string",
                    "A reference to a resource with additional parameters",
                ),
                AGE,
            ],
            cells: |o, now| {
                let params = match opt(o, "/spec/parameters/name") {
                    Some(n) => format!("{}/{n}", s(o, "/spec/parameters/kind")),
                    None => "<none>".into(),
                };
                vec![
                    name(o),
                    json!(s(o, "/spec/controller")),
                    json!(params),
                    age(o, now),
                ]
            },
        },
        ("networking.k8s.io", "NetworkPolicy") => Printer {
            columns: vec![
                NAME,
                col(
                    "Pod-Selector",
                    "string",
                    "Selects the pods to which this NetworkPolicy object applies.",
                ),
                AGE,
            ],
            cells: |o, now| {
                vec![
                    name(o),
                    json!(selector_string(o.pointer("/spec/podSelector"))),
                    age(o, now),
                ]
            },
        },
        ("discovery.k8s.io", "EndpointSlice") => Printer {
            columns: vec![
                NAME,
                col(
                    "AddressType",
                    "string",
                    "The type of addresses carried by this EndpointSlice.",
                ),
                col("Ports", "string", "Ports advertised by this EndpointSlice."),
                col(
                    "Endpoints",
                    "string",
                    "Endpoints represented by this EndpointSlice.",
                ),
                AGE,
            ],
            cells: |o, now| {
                let ports: Vec<String> = arr(o, "/ports")
                    .iter()
                    .map(|p| i(p, "/port").to_string())
                    .collect();
                let ports = if ports.is_empty() {
                    "<unset>".to_string()
                } else {
                    ports.join(",")
                };
                let addrs: Vec<&str> = arr(o, "/endpoints")
                    .iter()
                    .flat_map(|e| arr(e, "/addresses").iter().filter_map(Value::as_str))
                    .collect();
                let mut eps = addrs.iter().take(3).copied().collect::<Vec<_>>().join(",");
                if addrs.len() > 3 {
                    eps.push_str(&format!(" + {} more...", addrs.len() - 3));
                }
                vec![
                    name(o),
                    json!(s(o, "/addressType")),
                    json!(ports),
                    json!(if eps.is_empty() {
                        "<unset>".to_string()
                    } else {
                        eps
                    }),
                    age(o, now),
                ]
            },
        },
        ("storage.k8s.io", "StorageClass") => Printer {
            columns: vec![
                NAME,
                col(
                    "Provisioner",
                    "string",
                    "Indicates the type of the provisioner.",
                ),
                col(
                    "ReclaimPolicy",
                    "string",
                    "Dynamically provisioned PersistentVolumes of this storage class are created with this reclaimPolicy.",
                ),
                col(
                    "VolumeBindingMode",
                    "string",
                    "VolumeBindingMode indicates how PersistentVolumeClaims should be provisioned and bound.",
                ),
                col(
                    "AllowVolumeExpansion",
                    "string",
                    "AllowVolumeExpansion shows whether the storage class allow volume expand.",
                ),
                AGE,
            ],
            cells: |o, now| {
                let mut n = s(o, "/metadata/name").to_string();
                let ann = o.pointer("/metadata/annotations");
                let is_default = [
                    "storageclass.kubernetes.io/is-default-class",
                    "storageclass.beta.kubernetes.io/is-default-class",
                ]
                .iter()
                .any(|k| ann.and_then(|a| a.get(*k)).and_then(Value::as_str) == Some("true"));
                if is_default {
                    n.push_str(" (default)");
                }
                vec![
                    json!(n),
                    json!(s(o, "/provisioner")),
                    json!(opt(o, "/reclaimPolicy").unwrap_or("Delete")),
                    json!(opt(o, "/volumeBindingMode").unwrap_or("Immediate")),
                    json!(
                        o.get("allowVolumeExpansion")
                            .and_then(Value::as_bool)
                            .unwrap_or(false)
                    ),
                    age(o, now),
                ]
            },
        },
        ("rbac.authorization.k8s.io", "Role" | "ClusterRole")
        | ("apiextensions.k8s.io", "CustomResourceDefinition") => Printer {
            columns: vec![NAME, CREATED_AT],
            cells: created_at_cells,
        },
        ("rbac.authorization.k8s.io", "RoleBinding" | "ClusterRoleBinding") => Printer {
            columns: vec![
                NAME,
                col(
                    "Role",
                    "string",
                    "RoleRef can reference a Role in the current namespace or a ClusterRole in the global namespace.",
                ),
                AGE,
                wide("Users", "string", "Users in the roleBinding"),
                wide("Groups", "string", "Groups in the roleBinding"),
                wide(
                    "ServiceAccounts",
                    "string",
                    "ServiceAccounts in the roleBinding",
                ),
            ],
            cells: |o, now| {
                let subjects = arr(o, "/subjects");
                let of = |kind: &str| -> String {
                    subjects
                        .iter()
                        .filter(|s2| s(s2, "/kind") == kind)
                        .map(|s2| {
                            if kind == "ServiceAccount" {
                                format!("{}/{}", s(s2, "/namespace"), s(s2, "/name"))
                            } else {
                                s(s2, "/name").to_string()
                            }
                        })
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                vec![
                    name(o),
                    json!(format!(
                        "{}/{}",
                        s(o, "/roleRef/kind"),
                        s(o, "/roleRef/name")
                    )),
                    age(o, now),
                    json!(of("User")),
                    json!(of("Group")),
                    json!(of("ServiceAccount")),
                ]
            },
        },
        ("scheduling.k8s.io", "PriorityClass") => Printer {
            columns: vec![
                NAME,
                col("Value", "integer", "The value of this priority class."),
                col(
                    "Global-Default",
                    "boolean",
                    "globalDefault specifies whether this PriorityClass should be considered as the default priority.",
                ),
                AGE,
                wide(
                    "PreemptionPolicy",
                    "string",
                    "PreemptionPolicy is the Policy for preempting pods with lower priority.",
                ),
            ],
            cells: |o, now| {
                vec![
                    name(o),
                    json!(i(o, "/value")),
                    json!(
                        o.get("globalDefault")
                            .and_then(Value::as_bool)
                            .unwrap_or(false)
                    ),
                    age(o, now),
                    json!(opt(o, "/preemptionPolicy").unwrap_or("PreemptLowerPriority")),
                ]
            },
        },
        ("node.k8s.io", "RuntimeClass") => Printer {
            columns: vec![
                NAME,
                col(
                    "Handler",
                    "string",
                    "Handler specifies the underlying runtime and configuration that the CRI implementation will use.",
                ),
                AGE,
            ],
            cells: |o, now| vec![name(o), json!(s(o, "/handler")), age(o, now)],
        },
        ("apiregistration.k8s.io", "APIService") => Printer {
            columns: vec![
                NAME,
                col(
                    "Service",
                    "string",
                    "The reference to the service that hosts this API endpoint.",
                ),
                col("Available", "string", "Whether this service is available."),
                AGE,
            ],
            cells: |o, now| {
                let service = match opt(o, "/spec/service/name") {
                    Some(n) => format!("{}/{n}", s(o, "/spec/service/namespace")),
                    None => "Local".into(),
                };
                let available = arr(o, "/status/conditions")
                    .iter()
                    .find(|c| s(c, "/type") == "Available")
                    .map(|c| {
                        if s(c, "/status") == "True" {
                            "True".to_string()
                        } else {
                            format!("{} ({})", s(c, "/status"), s(c, "/reason"))
                        }
                    })
                    .unwrap_or_else(|| "Unknown".into());
                vec![name(o), json!(service), json!(available), age(o, now)]
            },
        },
        (
            "admissionregistration.k8s.io",
            "ValidatingWebhookConfiguration" | "MutatingWebhookConfiguration",
        ) => Printer {
            columns: vec![
                NAME,
                col(
                    "Webhooks",
                    "integer",
                    "Webhooks indicates the number of webhooks.",
                ),
                AGE,
            ],
            cells: |o, now| vec![name(o), json!(arr(o, "/webhooks").len()), age(o, now)],
        },
        ("certificates.k8s.io", "CertificateSigningRequest") => Printer {
            columns: vec![
                NAME,
                AGE,
                col("SignerName", "string", "Name of the signer"),
                col("Requestor", "string", "Request submitted by the user."),
                col(
                    "RequestedDuration",
                    "string",
                    "Requested duration of the certificate.",
                ),
                col(
                    "Condition",
                    "string",
                    "Current condition of the certificate request.",
                ),
            ],
            cells: |o, now| {
                let mut conds: Vec<&str> = arr(o, "/status/conditions")
                    .iter()
                    .map(|c| s(c, "/type"))
                    .collect();
                if !arr(o, "/status/certificate").is_empty()
                    || opt(o, "/status/certificate").is_some()
                {
                    conds.push("Issued");
                }
                let cond = if conds.is_empty() {
                    "Pending".to_string()
                } else {
                    conds.join(",")
                };
                let dur = match o.pointer("/spec/expirationSeconds").and_then(Value::as_i64) {
                    Some(secs) => super::format::human_duration(secs),
                    None => "<none>".into(),
                };
                vec![
                    name(o),
                    age(o, now),
                    json!(s(o, "/spec/signerName")),
                    json!(s(o, "/spec/username")),
                    json!(dur),
                    json!(or_none(cond)),
                ]
            },
        },
        _ => return None,
    };
    Some(p)
}
