//! A minimal protobuf `/openapi/v2` (gnostic `openapi.v2.Document`) for kubectl 1.27 and
//! 1.28, which fetch v2 as protobuf only, before any write with `--validate=strict`. It
//! carries the paths and PATCH operations (GVK extension and query parameters), which is
//! all their field-validation probe reads; definitions are left out, so kubectl falls back
//! to its compiled-in types for patch metadata (and old `kubectl explain` cannot work).
//! kubectl 1.29+ reads `/openapi/v3` first and never asks for this.

use super::KindRef;
use super::paths::{Flavor, add_kind_paths};
use super::schemas::catalog;
use prost::Message;
use serde_json::Value;

/// The `Content-Type` to answer with. kubectl asks with
/// `Accept: application/com.github.proto-openapi.spec.v2@v1.0+protobuf`, but Go's mime
/// parser rejects the `@` in a response header ("unexpected content after media
/// subtype"), so the reply uses the dotted form (checked with kubectl 1.27 and 1.28).
pub const V2_PROTOBUF_CONTENT_TYPE: &str =
    "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";

#[derive(Clone, PartialEq, Message)]
pub(crate) struct Document {
    #[prost(string, tag = "1")]
    pub swagger: String,
    #[prost(message, optional, tag = "2")]
    pub info: Option<Info>,
    #[prost(message, optional, tag = "8")]
    pub paths: Option<Paths>,
}

#[derive(Clone, PartialEq, Message)]
pub(crate) struct Info {
    #[prost(string, tag = "1")]
    pub title: String,
    #[prost(string, tag = "2")]
    pub version: String,
}

#[derive(Clone, PartialEq, Message)]
pub(crate) struct Paths {
    #[prost(message, repeated, tag = "2")]
    pub path: Vec<NamedPathItem>,
}

#[derive(Clone, PartialEq, Message)]
pub(crate) struct NamedPathItem {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(message, optional, tag = "2")]
    pub value: Option<PathItem>,
}

#[derive(Clone, PartialEq, Message)]
pub(crate) struct PathItem {
    #[prost(message, optional, tag = "2")]
    pub get: Option<Operation>,
    #[prost(message, optional, tag = "3")]
    pub put: Option<Operation>,
    #[prost(message, optional, tag = "4")]
    pub post: Option<Operation>,
    #[prost(message, optional, tag = "5")]
    pub delete: Option<Operation>,
    #[prost(message, optional, tag = "8")]
    pub patch: Option<Operation>,
}

#[derive(Clone, PartialEq, Message)]
pub(crate) struct Operation {
    #[prost(string, repeated, tag = "1")]
    pub tags: Vec<String>,
    #[prost(string, tag = "3")]
    pub description: String,
    #[prost(string, tag = "5")]
    pub operation_id: String,
    #[prost(string, repeated, tag = "7")]
    pub consumes: Vec<String>,
    #[prost(message, repeated, tag = "8")]
    pub parameters: Vec<ParametersItem>,
    #[prost(message, optional, tag = "9")]
    pub responses: Option<Responses>,
    #[prost(message, repeated, tag = "13")]
    pub vendor_extension: Vec<NamedAny>,
}

#[derive(Clone, PartialEq, Message)]
pub(crate) struct ParametersItem {
    #[prost(message, optional, tag = "1")]
    pub parameter: Option<Parameter>,
}

#[derive(Clone, PartialEq, Message)]
pub(crate) struct Parameter {
    #[prost(message, optional, tag = "2")]
    pub non_body_parameter: Option<NonBodyParameter>,
}

#[derive(Clone, PartialEq, Message)]
pub(crate) struct NonBodyParameter {
    #[prost(message, optional, tag = "3")]
    pub query_parameter_sub_schema: Option<QueryParameterSubSchema>,
}

#[derive(Clone, PartialEq, Message)]
pub(crate) struct QueryParameterSubSchema {
    #[prost(string, tag = "2")]
    pub r#in: String,
    #[prost(string, tag = "3")]
    pub description: String,
    #[prost(string, tag = "4")]
    pub name: String,
    #[prost(string, tag = "6")]
    pub r#type: String,
    #[prost(bool, tag = "20")]
    pub unique_items: bool,
}

#[derive(Clone, PartialEq, Message)]
pub(crate) struct Responses {
    #[prost(message, repeated, tag = "1")]
    pub response_code: Vec<NamedResponseValue>,
}

#[derive(Clone, PartialEq, Message)]
pub(crate) struct NamedResponseValue {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(message, optional, tag = "2")]
    pub value: Option<ResponseValue>,
}

#[derive(Clone, PartialEq, Message)]
pub(crate) struct ResponseValue {
    #[prost(message, optional, tag = "1")]
    pub response: Option<Response>,
}

#[derive(Clone, PartialEq, Message)]
pub(crate) struct Response {
    #[prost(string, tag = "1")]
    pub description: String,
}

#[derive(Clone, PartialEq, Message)]
pub(crate) struct NamedAny {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(message, optional, tag = "2")]
    pub value: Option<AnyValue>,
}

/// gnostic's `Any`: the YAML text of an extension's value.
#[derive(Clone, PartialEq, Message)]
pub(crate) struct AnyValue {
    #[prost(string, tag = "2")]
    pub yaml: String,
}

fn s(v: &Value, key: &str) -> String {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn operation(op: &Value) -> Operation {
    let parameters = op
        .get("parameters")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|p| p.get("in").and_then(Value::as_str) == Some("query"))
        .map(|p| ParametersItem {
            parameter: Some(Parameter {
                non_body_parameter: Some(NonBodyParameter {
                    query_parameter_sub_schema: Some(QueryParameterSubSchema {
                        r#in: "query".into(),
                        description: s(p, "description"),
                        name: s(p, "name"),
                        r#type: s(p, "type"),
                        unique_items: true,
                    }),
                }),
            }),
        })
        .collect();
    let vendor_extension = op
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(k, _)| k.starts_with("x-"))
        .map(|(k, v)| NamedAny {
            name: k.clone(),
            // JSON is valid YAML, which is all kubectl's yaml.Unmarshal needs.
            value: Some(AnyValue {
                yaml: v.to_string(),
            }),
        })
        .collect();
    let response_code = op
        .get("responses")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .map(|(code, r)| NamedResponseValue {
            name: code.clone(),
            value: Some(ResponseValue {
                response: Some(Response {
                    description: s(r, "description"),
                }),
            }),
        })
        .collect();
    Operation {
        tags: op
            .get("tags")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|t| t.as_str().map(str::to_string))
            .collect(),
        description: s(op, "description"),
        operation_id: s(op, "operationId"),
        consumes: op
            .get("consumes")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|t| t.as_str().map(str::to_string))
            .collect(),
        parameters,
        responses: Some(Responses { response_code }),
        vendor_extension,
    }
}

/// The protobuf-encoded v2 document (paths only) for `kinds`.
pub fn v2_protobuf(kinds: &[KindRef]) -> Vec<u8> {
    let cat = catalog();
    let mut paths = serde_json::Map::new();
    for k in kinds {
        let builtin = cat.find(&k.group, &k.version, &k.kind);
        let name = builtin.map_or_else(|| k.kind.clone(), |b| b.definition.clone());
        add_kind_paths(&mut paths, k, &name, builtin.is_some(), Flavor::V2);
    }
    let op = |item: &Value, verb: &str| item.get(verb).map(operation);
    let path = paths
        .iter()
        .map(|(name, item)| NamedPathItem {
            name: name.clone(),
            value: Some(PathItem {
                get: op(item, "get"),
                put: op(item, "put"),
                post: op(item, "post"),
                delete: op(item, "delete"),
                patch: op(item, "patch"),
            }),
        })
        .collect();
    Document {
        swagger: "2.0".into(),
        info: Some(Info {
            title: "Kubernetes".into(),
            version: super::INFO_VERSION.into(),
        }),
        paths: Some(Paths { path }),
    }
    .encode_to_vec()
}
