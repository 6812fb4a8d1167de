//! Decoding of Kubernetes' protobuf encoding (`application/vnd.kubernetes.protobuf`) into the
//! JSON form the handlers work on. kubectl's typed clients (`kubectl create namespace|
//! configmap|secret|deployment…`, `kubectl run`) send request bodies this way.
//!
//! The wire schema (message names, field numbers, names and types) is `schema.txt`, derived
//! from the upstream `generated.proto` files by `gen_schema.py`; it is parsed once, lazily.
//! Responses are always JSON (every client accepts it).

use base64::Engine;
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::sync::OnceLock;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Label {
    Optional,
    Repeated,
    Map,
}

#[derive(Debug)]
struct Field {
    name: String,
    label: Label,
    /// Fully qualified message name, or a scalar type name.
    ty: String,
    /// Map value type (for `Label::Map`).
    val_ty: String,
}

type Schema = HashMap<String, HashMap<u32, Field>>;

const SCHEMA_TEXT: &str = include_str!("schema.txt");
const MAGIC: &[u8] = b"k8s\0";

fn qualify(pkg: &str, ty: &str) -> String {
    if let Some(t) = ty.strip_prefix('.') {
        t.to_string()
    } else if is_scalar(ty) {
        ty.to_string()
    } else {
        format!("{pkg}.{ty}")
    }
}

fn is_scalar(ty: &str) -> bool {
    matches!(
        ty,
        "string" | "bytes" | "bool" | "int32" | "int64" | "uint32" | "uint64" | "double" | "float"
    )
}

fn schema() -> &'static Schema {
    static S: OnceLock<Schema> = OnceLock::new();
    S.get_or_init(|| {
        let mut out: Schema = HashMap::new();
        let (mut pkg, mut msg) = (String::new(), String::new());
        for line in SCHEMA_TEXT.lines() {
            let parts: Vec<&str> = line.split_whitespace().collect();
            match parts.as_slice() {
                ["P", p] => pkg = p.to_string(),
                ["M", m] => {
                    msg = format!("{pkg}.{m}");
                    out.entry(msg.clone()).or_default();
                }
                [num, name, label, ty, rest @ ..] => {
                    let Ok(num) = num.parse::<u32>() else {
                        continue;
                    };
                    let label = match *label {
                        "r" => Label::Repeated,
                        "m" => Label::Map,
                        _ => Label::Optional,
                    };
                    let (ty, val_ty) = if label == Label::Map {
                        (
                            qualify(&pkg, ty),
                            qualify(&pkg, rest.first().unwrap_or(&"string")),
                        )
                    } else {
                        (qualify(&pkg, ty), String::new())
                    };
                    out.entry(msg.clone()).or_default().insert(
                        num,
                        Field {
                            name: name.to_string(),
                            label,
                            ty,
                            val_ty,
                        },
                    );
                }
                _ => {}
            }
        }
        out
    })
}

/// A protobuf decoding failure.
#[derive(Debug, thiserror::Error)]
#[error("protobuf: {0}")]
pub struct ProtoError(String);

fn err(s: impl Into<String>) -> ProtoError {
    ProtoError(s.into())
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Result<u64, ProtoError> {
        let mut v: u64 = 0;
        for shift in (0..70).step_by(7) {
            let b = *self
                .buf
                .get(self.pos)
                .ok_or_else(|| err("truncated varint"))?;
            self.pos += 1;
            v |= u64::from(b & 0x7f) << shift.min(63);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(err("varint too long"))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], ProtoError> {
        let end = self
            .pos
            .checked_add(n)
            .ok_or_else(|| err("length overflow"))?;
        let s = self
            .buf
            .get(self.pos..end)
            .ok_or_else(|| err("truncated field"))?;
        self.pos = end;
        Ok(s)
    }

    fn done(&self) -> bool {
        self.pos >= self.buf.len()
    }
}

/// One raw field value.
enum Raw<'a> {
    Varint(u64),
    Fixed64(u64),
    Fixed32(u32),
    Bytes(&'a [u8]),
}

fn fields(buf: &[u8]) -> Result<Vec<(u32, Raw<'_>)>, ProtoError> {
    let mut r = Reader { buf, pos: 0 };
    let mut out = Vec::new();
    while !r.done() {
        let key = r.varint()?;
        let num = u32::try_from(key >> 3).map_err(|_| err("field number too large"))?;
        let raw = match key & 7 {
            0 => Raw::Varint(r.varint()?),
            1 => {
                let b = r.take(8)?;
                Raw::Fixed64(u64::from_le_bytes(
                    b.try_into().map_err(|_| err("fixed64"))?,
                ))
            }
            2 => {
                let n = usize::try_from(r.varint()?).map_err(|_| err("length too large"))?;
                Raw::Bytes(r.take(n)?)
            }
            5 => {
                let b = r.take(4)?;
                Raw::Fixed32(u32::from_le_bytes(
                    b.try_into().map_err(|_| err("fixed32"))?,
                ))
            }
            w => return Err(err(format!("unsupported wire type {w}"))),
        };
        out.push((num, raw));
    }
    Ok(out)
}

fn scalar(ty: &str, raw: &Raw<'_>) -> Result<Value, ProtoError> {
    Ok(match (ty, raw) {
        ("string", Raw::Bytes(b)) => {
            Value::String(String::from_utf8(b.to_vec()).map_err(|_| err("invalid utf-8 string"))?)
        }
        ("bytes", Raw::Bytes(b)) => {
            Value::String(base64::engine::general_purpose::STANDARD.encode(b))
        }
        ("bool", Raw::Varint(v)) => Value::Bool(*v != 0),
        ("int32", Raw::Varint(v)) => json!(*v as i64 as i32),
        ("int64", Raw::Varint(v)) => json!(*v as i64),
        ("uint32" | "uint64", Raw::Varint(v)) => json!(*v),
        ("double", Raw::Fixed64(v)) => json!(f64::from_bits(*v)),
        ("float", Raw::Fixed32(v)) => json!(f32::from_bits(*v)),
        _ => return Err(err(format!("wire type does not match {ty}"))),
    })
}

/// Expand a packed repeated scalar field.
fn packed(ty: &str, b: &[u8]) -> Result<Vec<Value>, ProtoError> {
    let mut r = Reader { buf: b, pos: 0 };
    let mut out = Vec::new();
    while !r.done() {
        let raw = match ty {
            "double" => Raw::Fixed64(u64::from_le_bytes(
                r.take(8)?.try_into().map_err(|_| err("fixed64"))?,
            )),
            "float" => Raw::Fixed32(u32::from_le_bytes(
                r.take(4)?.try_into().map_err(|_| err("fixed32"))?,
            )),
            _ => Raw::Varint(r.varint()?),
        };
        out.push(scalar(ty, &raw)?);
    }
    Ok(out)
}

fn rfc3339(seconds: i64, nanos: i64, micro: bool) -> Value {
    let Ok(ts) = jiff::Timestamp::new(seconds, (nanos as i32).clamp(0, 999_999_999)) else {
        return Value::Null;
    };
    let fmt = if micro {
        "%Y-%m-%dT%H:%M:%S%.6fZ"
    } else {
        "%Y-%m-%dT%H:%M:%SZ"
    };
    Value::String(ts.strftime(fmt).to_string())
}

/// Messages whose JSON form is not an object.
fn special(name: &str, buf: &[u8]) -> Result<Option<Value>, ProtoError> {
    let ints = |buf: &[u8]| -> Result<HashMap<u32, i64>, ProtoError> {
        Ok(fields(buf)?
            .into_iter()
            .filter_map(|(n, r)| match r {
                Raw::Varint(v) => Some((n, v as i64)),
                _ => None,
            })
            .collect())
    };
    let first_bytes = |buf: &[u8]| -> Result<Option<Vec<u8>>, ProtoError> {
        Ok(fields(buf)?.into_iter().find_map(|(n, r)| match (n, r) {
            (1, Raw::Bytes(b)) => Some(b.to_vec()),
            _ => None,
        }))
    };
    Ok(Some(match name {
        "k8s.io.apimachinery.pkg.apis.meta.v1.Time"
        | "k8s.io.apimachinery.pkg.apis.meta.v1.MicroTime" => {
            let f = ints(buf)?;
            let (s, n) = (
                f.get(&1).copied().unwrap_or(0),
                f.get(&2).copied().unwrap_or(0),
            );
            if s == 0 && n == 0 {
                Value::Null
            } else {
                rfc3339(s, n, name.ends_with("MicroTime"))
            }
        }
        "k8s.io.apimachinery.pkg.apis.meta.v1.Duration" => {
            let ns = ints(buf)?.get(&1).copied().unwrap_or(0);
            Value::String(format!("{}s", ns as f64 / 1e9))
        }
        "k8s.io.apimachinery.pkg.api.resource.Quantity" => match first_bytes(buf)? {
            Some(b) if !b.is_empty() => Value::String(String::from_utf8_lossy(&b).into_owned()),
            _ => Value::Null,
        },
        "k8s.io.apimachinery.pkg.util.intstr.IntOrString" => {
            let mut ty = 0;
            let mut int = 0;
            let mut s = String::new();
            for (n, r) in fields(buf)? {
                match (n, r) {
                    (1, Raw::Varint(v)) => ty = v,
                    (2, Raw::Varint(v)) => int = v as i64 as i32,
                    (3, Raw::Bytes(b)) => s = String::from_utf8_lossy(b).into_owned(),
                    _ => {}
                }
            }
            match ty {
                1 => Value::String(s),
                _ if int == 0 => Value::Null,
                _ => json!(int),
            }
        }
        "k8s.io.apimachinery.pkg.runtime.RawExtension"
        | "k8s.io.apimachinery.pkg.apis.meta.v1.FieldsV1" => match first_bytes(buf)? {
            Some(b) if !b.is_empty() => {
                serde_json::from_slice(&b).map_err(|e| err(format!("embedded json: {e}")))?
            }
            _ => Value::Null,
        },
        _ => return Ok(None),
    }))
}

fn value_of(ty: &str, raw: &Raw<'_>, depth: usize) -> Result<Value, ProtoError> {
    if is_scalar(ty) {
        return scalar(ty, raw);
    }
    match raw {
        Raw::Bytes(b) => message(ty, b, depth + 1),
        _ => Err(err(format!("wire type does not match message {ty}"))),
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        _ => false,
    }
}

/// Decode one message of type `name` into JSON.
fn message(name: &str, buf: &[u8], depth: usize) -> Result<Value, ProtoError> {
    if depth > 64 {
        return Err(err("message nesting too deep"));
    }
    if let Some(v) = special(name, buf)? {
        return Ok(v);
    }
    let desc = schema()
        .get(name)
        .ok_or_else(|| err(format!("unknown message type {name}")))?;
    let mut obj = Map::new();
    for (num, raw) in fields(buf)? {
        let Some(f) = desc.get(&num) else { continue };
        match f.label {
            Label::Optional => {
                let v = value_of(&f.ty, &raw, depth)?;
                // Go's encoder writes zero values of non-pointer fields; JSON omits them.
                if !is_empty(&v) {
                    obj.insert(f.name.clone(), v);
                }
            }
            Label::Repeated => {
                let items = match (
                    &raw,
                    is_scalar(&f.ty) && f.ty != "string" && f.ty != "bytes",
                ) {
                    (Raw::Bytes(b), true) => packed(&f.ty, b)?,
                    _ => vec![value_of(&f.ty, &raw, depth)?],
                };
                let arr = obj.entry(f.name.clone()).or_insert_with(|| json!([]));
                if let Value::Array(a) = arr {
                    a.extend(items);
                }
            }
            Label::Map => {
                let Raw::Bytes(entry) = raw else {
                    return Err(err("map entry is not length-delimited"));
                };
                let (mut k, mut v) = (Value::String(String::new()), Value::Null);
                for (n, r) in fields(entry)? {
                    match n {
                        1 => k = value_of(&f.ty, &r, depth)?,
                        2 => v = value_of(&f.val_ty, &r, depth)?,
                        _ => {}
                    }
                }
                if v.is_null() && f.val_ty == "string" {
                    v = Value::String(String::new());
                }
                let key = match k {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                let m = obj.entry(f.name.clone()).or_insert_with(|| json!({}));
                if let Value::Object(m) = m {
                    m.insert(key, v);
                }
            }
        }
    }
    // Go slice types encoded as a message with one repeated `items` field are arrays in JSON.
    if desc.len() == 1
        && desc
            .get(&1)
            .is_some_and(|f| f.name == "items" && f.label == Label::Repeated)
    {
        return Ok(obj.remove("items").unwrap_or(json!([])));
    }
    Ok(Value::Object(obj))
}

/// The protobuf package of an apiVersion (`apps/v1` → `k8s.io.api.apps.v1`).
fn package_of(api_version: &str) -> String {
    match api_version.split_once('/') {
        None => format!("k8s.io.api.core.{api_version}"),
        Some((group, version)) => {
            let short = group.split('.').next().unwrap_or(group);
            format!("k8s.io.api.{short}.{version}")
        }
    }
}

/// Decode a request body in the Kubernetes protobuf envelope into a JSON object.
///
/// # Errors
/// On a missing envelope, an unknown kind, or malformed protobuf.
pub fn decode(body: &[u8]) -> Result<Value, ProtoError> {
    let inner = body
        .strip_prefix(MAGIC)
        .ok_or_else(|| err("missing k8s protobuf envelope"))?;
    let unknown = message("k8s.io.apimachinery.pkg.runtime.Unknown", inner, 0)?;
    let api_version = unknown
        .pointer("/typeMeta/apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("");
    let kind = unknown
        .pointer("/typeMeta/kind")
        .and_then(Value::as_str)
        .unwrap_or("");
    if kind.is_empty() || api_version.is_empty() {
        return Err(err("envelope has no apiVersion/kind"));
    }
    // `raw` came out base64-encoded (bytes); take it from the envelope directly instead.
    let raw = fields(inner)?
        .into_iter()
        .find_map(|(n, r)| match (n, r) {
            (2, Raw::Bytes(b)) => Some(b),
            _ => None,
        })
        .unwrap_or(&[]);
    let name = format!("{}.{kind}", package_of(api_version));
    let mut obj = message(&name, raw, 0)?;
    if let Value::Object(m) = &mut obj {
        m.insert("apiVersion".into(), json!(api_version));
        m.insert("kind".into(), json!(kind));
    }
    Ok(obj)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn varint(mut v: u64, out: &mut Vec<u8>) {
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(b);
                return;
            }
            out.push(b | 0x80);
        }
    }

    fn bytes_field(num: u32, data: &[u8], out: &mut Vec<u8>) {
        varint(u64::from(num) << 3 | 2, out);
        varint(data.len() as u64, out);
        out.extend_from_slice(data);
    }

    #[test]
    fn a_configmap_in_the_envelope_decodes_to_json() {
        let mut meta = Vec::new();
        bytes_field(1, b"settings", &mut meta);
        bytes_field(2, b"", &mut meta); // empty generateName, as Go writes it
        let mut entry = Vec::new();
        bytes_field(1, b"k", &mut entry);
        bytes_field(2, b"v", &mut entry);
        let mut cm = Vec::new();
        bytes_field(1, &meta, &mut cm);
        bytes_field(2, &entry, &mut cm);
        let mut tm = Vec::new();
        bytes_field(1, b"v1", &mut tm);
        bytes_field(2, b"ConfigMap", &mut tm);
        let mut unknown = Vec::new();
        bytes_field(1, &tm, &mut unknown);
        bytes_field(2, &cm, &mut unknown);
        let mut body = MAGIC.to_vec();
        body.extend(unknown);
        let v = decode(&body).unwrap();
        assert_eq!(
            v,
            json!({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"settings"},"data":{"k":"v"}})
        );
        assert!(decode(b"nope").is_err());
    }

    #[test]
    fn the_schema_knows_the_common_kinds() {
        for k in [
            "k8s.io.api.apps.v1.Deployment",
            "k8s.io.api.core.v1.Secret",
            "k8s.io.api.authentication.v1.TokenRequest",
        ] {
            assert!(schema().contains_key(k), "{k}");
        }
    }
}
