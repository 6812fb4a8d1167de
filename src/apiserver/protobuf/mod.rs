//! Kubernetes protobuf request bodies (`application/vnd.kubernetes.protobuf`) → JSON.
//!
//! kubectl ≥ 1.31 sends built-in kinds from its typed clients as protobuf; the API server
//! stores and speaks JSON, so bodies are decoded here once, at the edge. The wire format is
//! the 4-byte magic `k8s\0` followed by a `runtime.Unknown` {typeMeta = 1, raw = 2,
//! contentEncoding = 3, contentType = 4} whose `raw` is the object's message, e.g.
//! `k8s.io.api.apps.v1.Deployment`.
//!
//! Decoding is driven by a generated table (`schema_gen.rs`, from k8s-pb's field tags and
//! k8s-openapi's JSON names; regenerate with
//! `cargo run --example gen_protobuf_schema > src/apiserver/protobuf/schema_gen.rs`).
//! Responses stay JSON: clients (kubectl included) accept `application/json` as well.
//!
//! Owns: protobuf decoding. Calls nothing outside this module.

mod decode;
mod schema;
#[rustfmt::skip]
mod schema_gen;
mod wire;

use serde_json::{Map, Value};

/// The media type of Kubernetes protobuf.
pub const CONTENT_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// Prefix of every Kubernetes protobuf envelope.
const MAGIC: &[u8; 4] = b"k8s\0";

/// Why a protobuf body could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum ProtobufError {
    #[error("protobuf body does not start with the kubernetes magic prefix")]
    MissingMagic,
    #[error("protobuf message is truncated")]
    Truncated,
    #[error("malformed protobuf: {0}")]
    Malformed(&'static str),
    #[error("protobuf field {field} has the wrong wire type {wire}")]
    WireType { field: String, wire: &'static str },
    #[error("protobuf object is missing apiVersion or kind")]
    MissingTypeMeta,
    #[error("no protobuf schema for {api_version}, Kind={kind}")]
    UnknownType { api_version: String, kind: String },
    #[error("unsupported protobuf content encoding {0:?}")]
    ContentEncoding(String),
    #[error("embedded object is not valid json: {0}")]
    EmbeddedJson(String),
    #[error("protobuf object is nested too deeply")]
    TooDeep,
}

/// Decode a protobuf request body into the object's JSON form (with `apiVersion`/`kind`).
///
/// # Errors
/// When the body lacks the magic prefix, is truncated or malformed, or names a type with no
/// protobuf schema.
pub fn decode_request(body: &[u8]) -> Result<Value, ProtobufError> {
    let rest = body
        .strip_prefix(MAGIC)
        .ok_or(ProtobufError::MissingMagic)?;
    unknown(rest, 0)
}

/// A `runtime.Unknown` envelope → the object it carries.
fn unknown(buf: &[u8], depth: usize) -> Result<Value, ProtobufError> {
    let f = decode::fields(buf)?;
    let type_meta = decode::fields(f.bytes(1).unwrap_or_default())?;
    let (api_version, kind) = (type_meta.string(1)?, type_meta.string(2)?);
    let encoding = f.string(3)?;
    if !encoding.is_empty() {
        return Err(ProtobufError::ContentEncoding(encoding));
    }
    let raw = f.bytes(2).unwrap_or_default();
    let content_type = f.string(4)?;
    let media = content_type.split(';').next().unwrap_or("").trim();
    if media == "application/json" {
        return embedded(raw, depth);
    }
    if api_version.is_empty() || kind.is_empty() {
        return Err(ProtobufError::MissingTypeMeta);
    }
    let index =
        schema::for_type(&api_version, &kind).ok_or_else(|| ProtobufError::UnknownType {
            api_version: api_version.clone(),
            kind: kind.clone(),
        })?;
    let mut obj = Map::new();
    obj.insert("apiVersion".into(), Value::String(api_version));
    obj.insert("kind".into(), Value::String(kind));
    obj.extend(decode::message(index, raw, depth)?);
    Ok(Value::Object(obj))
}

/// Raw bytes holding an embedded value: protobuf (with magic) or JSON.
fn embedded(raw: &[u8], depth: usize) -> Result<Value, ProtobufError> {
    match raw.strip_prefix(MAGIC) {
        Some(rest) => unknown(rest, depth + 1),
        None => serde_json::from_slice(raw).map_err(|e| ProtobufError::EmbeddedJson(e.to_string())),
    }
}

#[cfg(test)]
mod tests;
