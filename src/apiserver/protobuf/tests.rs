//! Fixtures encoded with k8s-pb's prost types (what Go's generated marshallers emit), decoded
//! and compared with the JSON the Go API server would produce.

use super::*;
use k8s_pb::api::apps::v1 as apps;
use k8s_pb::api::core::v1 as core;
use k8s_pb::apimachinery::pkg::api::resource::Quantity;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_pb::apimachinery::pkg::runtime::{TypeMeta, Unknown};
use k8s_pb::apimachinery::pkg::util::intstr::IntOrString;
use prost::Message as _;
use serde_json::json;
use std::collections::BTreeMap;

fn envelope(api_version: &str, kind: &str, raw: Vec<u8>) -> Vec<u8> {
    let u = Unknown {
        type_meta: Some(TypeMeta {
            api_version: Some(api_version.into()),
            kind: Some(kind.into()),
        }),
        raw: Some(raw),
        content_encoding: Some(String::new()),
        content_type: Some(String::new()),
    };
    let mut out = MAGIC.to_vec();
    out.extend(u.encode_to_vec());
    out
}

fn s(v: &str) -> Option<String> {
    Some(v.to_string())
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Metadata as Go writes it for a new object: non-pointer strings and the zero
/// creationTimestamp are always on the wire, empty.
fn new_meta(name: &str, app: &str) -> meta::ObjectMeta {
    meta::ObjectMeta {
        name: s(name),
        generate_name: s(""),
        namespace: s(""),
        uid: s(""),
        resource_version: s(""),
        generation: Some(0),
        creation_timestamp: Some(meta::Time::default()),
        labels: labels(&[("app", app)]),
        ..Default::default()
    }
}

fn nginx() -> core::Container {
    core::Container {
        name: s("nginx"),
        image: s("nginx"),
        termination_message_path: s(""),
        image_pull_policy: s(""),
        resources: Some(core::ResourceRequirements::default()),
        stdin: Some(false),
        tty: Some(false),
        ..Default::default()
    }
}

#[test]
fn deployment_decodes_to_the_json_kubectl_would_send() {
    let d = apps::Deployment {
        metadata: Some(new_meta("web", "web")),
        spec: Some(apps::DeploymentSpec {
            replicas: Some(3),
            selector: Some(meta::LabelSelector {
                match_labels: labels(&[("app", "web")]),
                ..Default::default()
            }),
            template: Some(core::PodTemplateSpec {
                metadata: Some(new_meta("", "web")),
                spec: Some(core::PodSpec {
                    containers: vec![nginx()],
                    restart_policy: s(""),
                    node_name: s(""),
                    host_network: Some(false),
                    ..Default::default()
                }),
            }),
            strategy: Some(apps::DeploymentStrategy::default()),
            min_ready_seconds: Some(0),
            paused: Some(false),
            ..Default::default()
        }),
        status: Some(apps::DeploymentStatus {
            replicas: Some(0),
            ..Default::default()
        }),
    };
    let got = decode_request(&envelope("apps/v1", "Deployment", d.encode_to_vec())).unwrap();
    assert_eq!(
        got,
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {
                "replicas": 3,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "nginx", "image": "nginx", "resources": {}}]}
                },
                "strategy": {}
            },
            "status": {}
        })
    );
}

#[test]
fn explicit_zero_replicas_survive() {
    let d = apps::Deployment {
        metadata: Some(new_meta("zero", "zero")),
        spec: Some(apps::DeploymentSpec {
            replicas: Some(0),
            ..Default::default()
        }),
        status: None,
    };
    let got = decode_request(&envelope("apps/v1", "Deployment", d.encode_to_vec())).unwrap();
    assert_eq!(got["spec"]["replicas"], json!(0));
}

#[test]
fn secret_bytes_become_base64_and_string_data_stays_text() {
    let secret = core::Secret {
        metadata: Some(new_meta("db", "db")),
        immutable: None,
        data: [("password".to_string(), b"s3cr3t\x00\xff".to_vec())].into(),
        string_data: labels(&[("user", "admin")]),
        r#type: s("Opaque"),
    };
    let got = decode_request(&envelope("v1", "Secret", secret.encode_to_vec())).unwrap();
    assert_eq!(got["data"], json!({"password": "czNjcjN0AP8="}));
    assert_eq!(got["stringData"], json!({"user": "admin"}));
    assert_eq!(got["type"], json!("Opaque"));
}

#[test]
fn service_target_ports_are_numbers_or_names() {
    let port = |name: &str, port: i32, target: IntOrString| core::ServicePort {
        name: s(name),
        protocol: s("TCP"),
        port: Some(port),
        target_port: Some(target),
        node_port: Some(0),
        ..Default::default()
    };
    let svc = core::Service {
        metadata: Some(new_meta("web", "web")),
        spec: Some(core::ServiceSpec {
            ports: vec![
                port(
                    "http",
                    80,
                    IntOrString {
                        r#type: Some(0),
                        int_val: Some(8080),
                        str_val: s(""),
                    },
                ),
                port(
                    "https",
                    443,
                    IntOrString {
                        r#type: Some(1),
                        int_val: Some(0),
                        str_val: s("https"),
                    },
                ),
            ],
            selector: labels(&[("app", "web")]),
            cluster_ip: s(""),
            r#type: s("ClusterIP"),
            ..Default::default()
        }),
        status: Some(core::ServiceStatus::default()),
    };
    let got = decode_request(&envelope("v1", "Service", svc.encode_to_vec())).unwrap();
    assert_eq!(
        got["spec"],
        json!({
            "ports": [
                {"name": "http", "protocol": "TCP", "port": 80, "targetPort": 8080},
                {"name": "https", "protocol": "TCP", "port": 443, "targetPort": "https"}
            ],
            "selector": {"app": "web"},
            "type": "ClusterIP"
        })
    );
}

#[test]
fn pod_quantities_times_and_embedded_structs_render_like_go() {
    let quantity = |q: &str| Quantity { string: s(q) };
    let mut c = nginx();
    c.resources = Some(core::ResourceRequirements {
        requests: [
            ("cpu".to_string(), quantity("100m")),
            ("memory".to_string(), quantity("64Mi")),
        ]
        .into(),
        ..Default::default()
    });
    c.liveness_probe = Some(core::Probe {
        handler: Some(core::ProbeHandler {
            http_get: Some(core::HttpGetAction {
                path: s("/healthz"),
                port: Some(IntOrString {
                    r#type: Some(0),
                    int_val: Some(80),
                    str_val: s(""),
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        period_seconds: Some(5),
        ..Default::default()
    });
    let mut metadata = new_meta("p", "p");
    metadata.creation_timestamp = Some(meta::Time {
        seconds: Some(1_795_626_000),
        nanos: Some(0),
    });
    let pod = core::Pod {
        metadata: Some(metadata),
        spec: Some(core::PodSpec {
            containers: vec![c],
            volumes: vec![core::Volume {
                name: s("scratch"),
                volume_source: Some(core::VolumeSource {
                    empty_dir: Some(core::EmptyDirVolumeSource::default()),
                    ..Default::default()
                }),
            }],
            security_context: Some(core::PodSecurityContext {
                run_as_user: Some(0),
                ..Default::default()
            }),
            priority: Some(-5),
            ..Default::default()
        }),
        status: None,
    };
    let got = decode_request(&envelope("v1", "Pod", pod.encode_to_vec())).unwrap();
    assert_eq!(
        got["metadata"]["creationTimestamp"],
        json!("2026-11-25T17:00:00Z")
    );
    let c = &got["spec"]["containers"][0];
    assert_eq!(
        c["resources"],
        json!({"requests": {"cpu": "100m", "memory": "64Mi"}})
    );
    assert_eq!(
        c["livenessProbe"],
        json!({"httpGet": {"path": "/healthz", "port": 80}, "periodSeconds": 5})
    );
    assert_eq!(
        got["spec"]["volumes"],
        json!([{"name": "scratch", "emptyDir": {}}])
    );
    assert_eq!(got["spec"]["securityContext"], json!({"runAsUser": 0}));
    assert_eq!(got["spec"]["priority"], json!(-5));
}

#[test]
fn micro_time_keeps_microseconds() {
    use k8s_pb::api::coordination::v1 as coordination;
    let lease = coordination::Lease {
        metadata: Some(new_meta("l", "l")),
        spec: Some(coordination::LeaseSpec {
            holder_identity: s("node-1"),
            renew_time: Some(meta::MicroTime {
                seconds: Some(1_795_626_000),
                nanos: Some(123_456_789),
            }),
            ..Default::default()
        }),
    };
    let got = decode_request(&envelope(
        "coordination.k8s.io/v1",
        "Lease",
        lease.encode_to_vec(),
    ))
    .unwrap();
    assert_eq!(
        got["spec"]["renewTime"],
        json!("2026-11-25T17:00:00.123456Z")
    );
}

#[test]
fn crd_schemas_decode_despite_prost_renaming_json_schema_props() {
    use k8s_pb::apiextensions_apiserver::pkg::apis::apiextensions::v1 as ext;
    let props = |ty: &str| ext::JsonSchemaProps {
        r#type: s(ty),
        ..Default::default()
    };
    let mut spec = props("object");
    spec.x_kubernetes_preserve_unknown_fields = Some(true);
    let mut root = props("object");
    root.properties = [("spec".to_string(), spec)].into();
    root.additional_properties = Some(Box::new(ext::JsonSchemaPropsOrBool {
        allows: Some(false),
        schema: None,
    }));
    root.items = Some(Box::new(ext::JsonSchemaPropsOrArray {
        schema: Some(Box::new(props("string"))),
        j_son_schemas: vec![],
    }));
    let crd = ext::CustomResourceDefinition {
        metadata: Some(new_meta("widgets.example.com", "w")),
        spec: Some(ext::CustomResourceDefinitionSpec {
            group: s("example.com"),
            versions: vec![ext::CustomResourceDefinitionVersion {
                name: s("v1"),
                served: Some(true),
                storage: Some(true),
                schema: Some(ext::CustomResourceValidation {
                    open_apiv3_schema: Some(root),
                }),
                ..Default::default()
            }],
            ..Default::default()
        }),
        status: None,
    };
    let got = decode_request(&envelope(
        "apiextensions.k8s.io/v1",
        "CustomResourceDefinition",
        crd.encode_to_vec(),
    ))
    .unwrap();
    assert_eq!(
        got["spec"]["versions"][0]["schema"]["openAPIV3Schema"],
        json!({
            "type": "object",
            "properties": {"spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}},
            "additionalProperties": false,
            "items": {"type": "string"}
        })
    );
}

#[test]
fn delete_options_in_a_group_version_decode_as_meta_v1() {
    let opts = meta::DeleteOptions {
        grace_period_seconds: Some(0),
        propagation_policy: s("Foreground"),
        ..Default::default()
    };
    let got = decode_request(&envelope("apps/v1", "DeleteOptions", opts.encode_to_vec())).unwrap();
    assert_eq!(
        got,
        json!({"apiVersion": "apps/v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0, "propagationPolicy": "Foreground"})
    );
}

#[test]
fn raw_extension_embeds_its_json() {
    let rev = apps::ControllerRevision {
        metadata: Some(new_meta("rev", "rev")),
        data: Some(k8s_pb::apimachinery::pkg::runtime::RawExtension {
            raw: Some(br#"{"spec":{"template":{"x":1}}}"#.to_vec()),
        }),
        revision: Some(2),
    };
    let got = decode_request(&envelope(
        "apps/v1",
        "ControllerRevision",
        rev.encode_to_vec(),
    ))
    .unwrap();
    assert_eq!(got["data"], json!({"spec": {"template": {"x": 1}}}));
    assert_eq!(got["revision"], json!(2));
}

#[test]
fn json_content_inside_the_envelope_is_passed_through() {
    let u = Unknown {
        type_meta: None,
        raw: Some(br#"{"apiVersion":"v1","kind":"ConfigMap"}"#.to_vec()),
        content_encoding: None,
        content_type: s("application/json"),
    };
    let mut body = MAGIC.to_vec();
    body.extend(u.encode_to_vec());
    assert_eq!(
        decode_request(&body).unwrap(),
        json!({"apiVersion": "v1", "kind": "ConfigMap"})
    );
}

#[test]
fn go_durations_match_time_duration_string() {
    use super::decode::go_duration;
    assert_eq!(go_duration(0), "0s");
    assert_eq!(go_duration(1_500_000_000), "1.5s");
    assert_eq!(go_duration(3_600_000_000_000), "1h0m0s");
    assert_eq!(go_duration(300_000_000), "300ms");
    assert_eq!(go_duration(1_500), "1.5µs");
    assert_eq!(go_duration(-123_000_000_000), "-2m3s");
}

#[test]
fn a_body_without_the_magic_prefix_is_an_error() {
    assert!(matches!(
        decode_request(b"{\"kind\":\"Pod\"}"),
        Err(ProtobufError::MissingMagic)
    ));
}

#[test]
fn truncated_bodies_are_errors() {
    let cm = core::ConfigMap {
        metadata: Some(new_meta("c", "c")),
        data: labels(&[("k", "v")]),
        ..Default::default()
    };
    let raw = cm.encode_to_vec();
    let body = envelope("v1", "ConfigMap", raw.clone());
    assert!(decode_request(&body).is_ok());
    // The envelope ends with the object, then two empty strings (contentEncoding,
    // contentType: 2 bytes each); any cut inside the object truncates it.
    let object_end = body.len() - 4;
    for cut in object_end - raw.len()..object_end {
        assert!(
            decode_request(&body[..cut]).is_err(),
            "prefix of {cut} bytes decoded"
        );
    }
    assert!(matches!(
        decode_request(&body[..body.len() - 5]),
        Err(ProtobufError::Truncated)
    ));
}

#[test]
fn unknown_kinds_are_errors() {
    let body = envelope("example.com/v1", "Widget", vec![]);
    assert!(matches!(
        decode_request(&body),
        Err(ProtobufError::UnknownType { .. })
    ));
}

#[test]
fn wrong_wire_types_are_errors_not_panics() {
    // Deployment.spec (tag 2) sent as a varint.
    let body = envelope("apps/v1", "Deployment", vec![0x10, 0x01]);
    assert!(matches!(
        decode_request(&body),
        Err(ProtobufError::WireType { .. })
    ));
}

#[test]
fn deeply_nested_input_is_refused() {
    // JSONSchemaProps.not (tag 28) nested far beyond any real schema.
    let mut raw = Vec::new();
    for _ in 0..200 {
        let mut next = vec![0xe2, 0x01];
        let mut len = raw.len();
        loop {
            let b = (len & 0x7f) as u8;
            len >>= 7;
            if len == 0 {
                next.push(b);
                break;
            }
            next.push(b | 0x80);
        }
        next.extend(raw);
        raw = next;
    }
    let props =
        schema::find("k8s.io.apiextensions_apiserver.pkg.apis.apiextensions.v1.JSONSchemaProps")
            .unwrap();
    assert!(matches!(
        decode::message(props, &raw, 0),
        Err(ProtobufError::TooDeep)
    ));
}

mod fuzz {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn garbage_never_panics(tail in proptest::collection::vec(any::<u8>(), 0..256)) {
            let mut body = MAGIC.to_vec();
            body.extend(tail);
            let _ = decode_request(&body);
        }

        #[test]
        fn corrupted_deployments_never_panic(flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8)) {
            let d = apps::Deployment {
                metadata: Some(new_meta("web", "web")),
                spec: Some(apps::DeploymentSpec { replicas: Some(2), ..Default::default() }),
                status: None,
            };
            let mut body = envelope("apps/v1", "Deployment", d.encode_to_vec());
            for (at, b) in flips {
                let n = body.len();
                body[4 + at % (n - 4)] = b;
            }
            let _ = decode_request(&body);
        }
    }
}

#[test]
fn the_table_is_sorted_for_binary_search_and_its_references_resolve() {
    use super::schema_gen::MESSAGES;
    let lower: Vec<String> = MESSAGES.iter().map(|m| m.0.to_ascii_lowercase()).collect();
    assert!(lower.windows(2).all(|w| w[0] < w[1]), "table not sorted");
    for m in &MESSAGES {
        assert_eq!(
            schema::find(m.0).and_then(schema::message).map(|x| x.0),
            Some(m.0)
        );
        for f in m.1 {
            if let schema::Kind::Msg(i) = f.2 {
                assert!(schema::message(i).is_some(), "{}.{} → {i}", m.0, f.1);
            }
            assert!(
                f.3 == schema::Card::Inline || !f.1.is_empty(),
                "{}: empty name",
                m.0
            );
        }
    }
}

#[test]
fn every_built_in_kind_the_registry_serves_has_a_protobuf_message() {
    let registry = crate::apiserver::Registry::new();
    let mut missing = Vec::new();
    for k in registry.all() {
        if k.crd.is_none() && schema::for_type(&k.api_version(), &k.kind).is_none() {
            missing.push(format!("{} {}", k.api_version(), k.kind));
        }
    }
    assert!(missing.is_empty(), "no protobuf message for {missing:?}");
}

#[test]
fn evictions_from_kubectl_drain_carry_their_delete_options() {
    use k8s_pb::api::policy::v1 as policy;
    let eviction = policy::Eviction {
        metadata: Some(meta::ObjectMeta {
            name: s("web-1"),
            namespace: s("default"),
            ..Default::default()
        }),
        delete_options: Some(meta::DeleteOptions {
            grace_period_seconds: Some(0),
            ..Default::default()
        }),
    };
    let got = decode_request(&envelope("policy/v1", "Eviction", eviction.encode_to_vec())).unwrap();
    assert_eq!(
        got,
        json!({
            "apiVersion": "policy/v1",
            "kind": "Eviction",
            "metadata": {"name": "web-1", "namespace": "default"},
            "deleteOptions": {"gracePeriodSeconds": 0}
        })
    );
}
