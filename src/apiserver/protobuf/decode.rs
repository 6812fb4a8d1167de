//! Table-driven protobuf → JSON: walks a message with the generated schema and renders each
//! field the way Kubernetes' Go JSON encoding would.
//!
//! Owns: field rendering, Kubernetes' special types (Time, Duration, Quantity, IntOrString,
//! embedded raw JSON, nested `runtime.Unknown`) and the zero-value rules. Calls [`super::wire`]
//! and [`super::schema`].

use super::ProtobufError;
use super::schema::{self, Card, Kind};
use super::wire::{Reader, Value as Wire};
use base64::Engine as _;
use serde_json::{Map, Number, Value};

/// Deepest nesting accepted (objects are far shallower; guards the stack).
const MAX_DEPTH: usize = 100;

/// JSON names of optional fields whose Go type is a pointer and whose zero value means
/// something different from "unset" (`replicas: 0`, `runAsUser: 0`, `storageClassName: ""`).
/// Every other optional field drops a zero value, like Go's `omitempty` on non-pointer fields:
/// Go's protobuf encoder always writes non-pointer scalars, so zeros on the wire are usually
/// "unset".
const KEEP_ZERO: &[&str] = &[
    "activeDeadlineSeconds",
    "allocateLoadBalancerNodePorts",
    "allowPrivilegeEscalation",
    "automountServiceAccountToken",
    "backoffLimit",
    "backoffLimitPerIndex",
    "blockOwnerDeletion",
    "completions",
    "controller",
    "defaultMode",
    "deletionGracePeriodSeconds",
    "enableServiceLinks",
    "expirationSeconds",
    "failedJobsHistoryLimit",
    "fsGroup",
    "gracePeriodSeconds",
    "hostUsers",
    "immutable",
    "manualSelector",
    "maxFailedIndexes",
    "maxSurge",
    "maxUnavailable",
    "minAvailable",
    "mode",
    "optional",
    "orphanDependents",
    "parallelism",
    "partition",
    "priority",
    "progressDeadlineSeconds",
    "readOnlyRootFilesystem",
    "ready",
    "replicas",
    "revisionHistoryLimit",
    "runAsGroup",
    "runAsNonRoot",
    "runAsUser",
    "serving",
    "setHostnameAsFQDN",
    "shareProcessNamespace",
    "startingDeadlineSeconds",
    "storageClassName",
    "successfulJobsHistoryLimit",
    "suspend",
    "terminating",
    "terminationGracePeriodSeconds",
    "ttlSecondsAfterFinished",
    "volumeAttributesClassName",
];

/// Status fields are written by controllers, not users: a zero there is just "not yet".
fn keep_zero(message: &str, json: &str) -> bool {
    !message.ends_with("Status") && KEEP_ZERO.contains(&json)
}

/// Kinds that Go encodes as plain values (not structs), so that `omitempty` applies.
fn scalar(kind: Kind) -> bool {
    matches!(
        kind,
        Kind::Str
            | Kind::Bytes
            | Kind::Bool
            | Kind::I32
            | Kind::I64
            | Kind::F64
            | Kind::Quantity
            | Kind::IntOrString
    )
}

fn is_zero(v: &Value) -> bool {
    match v {
        Value::String(s) => s.is_empty(),
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        _ => false,
    }
}

/// Decode message `index` from `buf` into a JSON object.
pub(super) fn message(
    index: u16,
    buf: &[u8],
    depth: usize,
) -> Result<Map<String, Value>, ProtobufError> {
    if depth > MAX_DEPTH {
        return Err(ProtobufError::TooDeep);
    }
    let msg = schema::message(index).ok_or(ProtobufError::Malformed("bad schema index"))?;
    let mut out = Map::new();
    let mut reader = Reader::new(buf);
    while let Some((tag, wire)) = reader.next_field()? {
        // Fields newer than the table are skipped, as protobuf intends.
        let Some(field) = msg.1.iter().find(|f| f.0 == tag) else {
            tracing::debug!(message = msg.0, tag, "skipping unknown protobuf field");
            continue;
        };
        let (json, kind, card) = (field.1, field.2, field.3);
        match card {
            Card::Inline => {
                if let (Kind::Msg(i), Wire::Bytes(b)) = (kind, wire) {
                    out.extend(message(i, b, depth + 1)?);
                }
            }
            Card::Map => {
                let Wire::Bytes(entry) = wire else {
                    return Err(wrong_wire(msg.0, json, &wire));
                };
                let (key, value) = map_entry(kind, entry, depth)?;
                let obj = out.entry(json).or_insert_with(|| Value::Object(Map::new()));
                if let Value::Object(o) = obj {
                    o.insert(key, value);
                }
            }
            Card::Rep => {
                let items = repeated(kind, wire, msg.0, json, depth)?;
                let arr = out.entry(json).or_insert_with(|| Value::Array(Vec::new()));
                if let Value::Array(a) = arr {
                    a.extend(items);
                }
            }
            Card::Opt | Card::Req => {
                let Some(v) = single(kind, wire, msg.0, json, depth)? else {
                    continue;
                };
                if card == Card::Opt && scalar(kind) && is_zero(&v) && !keep_zero(msg.0, json) {
                    out.remove(json);
                    continue;
                }
                out.insert(json.to_string(), v);
            }
        }
    }
    Ok(out)
}

fn wrong_wire(message: &str, field: &str, wire: &Wire<'_>) -> ProtobufError {
    ProtobufError::WireType {
        field: format!("{message}.{field}"),
        wire: wire.name(),
    }
}

/// Elements of a repeated field: scalars may arrive packed or one per occurrence.
fn repeated(
    kind: Kind,
    wire: Wire<'_>,
    msg: &str,
    json: &str,
    depth: usize,
) -> Result<Vec<Value>, ProtobufError> {
    match (kind, wire) {
        (Kind::I32 | Kind::I64 | Kind::Bool, Wire::Bytes(b)) => Reader::packed_varints(b)?
            .into_iter()
            .map(|v| varint_value(kind, v).ok_or(ProtobufError::Malformed("bad packed value")))
            .collect(),
        _ => Ok(single(kind, wire, msg, json, depth)?.into_iter().collect()),
    }
}

fn varint_value(kind: Kind, v: u64) -> Option<Value> {
    // Negative int32/int64 are sign-extended to 64 bits on the wire: reinterpret, then narrow.
    match kind {
        Kind::I32 => Some(Value::from(v as i64 as i32)),
        Kind::I64 => Some(Value::from(v as i64)),
        Kind::Bool => Some(Value::Bool(v != 0)),
        _ => None,
    }
}

/// A map entry message {key = 1, value = 2}; a missing value is the kind's zero.
fn map_entry(kind: Kind, entry: &[u8], depth: usize) -> Result<(String, Value), ProtobufError> {
    let mut key = String::new();
    let mut value = None;
    let mut r = Reader::new(entry);
    while let Some((tag, wire)) = r.next_field()? {
        match (tag, wire) {
            (1, Wire::Bytes(b)) => key = utf8(b)?,
            (2, w) => value = single(kind, w, "map entry", "value", depth)?,
            _ => {}
        }
    }
    let value = match value {
        Some(v) => v,
        None => match kind {
            Kind::Msg(_) => Value::Object(Map::new()),
            Kind::I32 | Kind::I64 => Value::from(0),
            Kind::Bool => Value::Bool(false),
            Kind::StrList => Value::Array(Vec::new()),
            _ => Value::String(String::new()),
        },
    };
    Ok((key, value))
}

fn utf8(b: &[u8]) -> Result<String, ProtobufError> {
    String::from_utf8(b.to_vec()).map_err(|_| ProtobufError::Malformed("string is not utf-8"))
}

/// One value of `kind`; `None` when Go's JSON would leave the field out (zero `Time`, empty
/// raw extension, unresolved type).
fn single<'a>(
    kind: Kind,
    wire: Wire<'a>,
    msg: &str,
    json: &str,
    depth: usize,
) -> Result<Option<Value>, ProtobufError> {
    let bytes = |w: Wire<'a>| match w {
        Wire::Bytes(b) => Ok(b),
        other => Err(wrong_wire(msg, json, &other)),
    };
    let v = match kind {
        Kind::Skip => None,
        Kind::Str => Some(Value::String(utf8(bytes(wire)?)?)),
        Kind::Bytes => Some(Value::String(
            base64::engine::general_purpose::STANDARD.encode(bytes(wire)?),
        )),
        Kind::I32 | Kind::I64 | Kind::Bool => match wire {
            Wire::Varint(v) => varint_value(kind, v),
            other => return Err(wrong_wire(msg, json, &other)),
        },
        Kind::F64 => match wire {
            Wire::Fixed64(v) => Number::from_f64(f64::from_bits(v)).map(Value::Number),
            other => return Err(wrong_wire(msg, json, &other)),
        },
        Kind::Msg(i) => Some(Value::Object(message(i, bytes(wire)?, depth + 1)?)),
        Kind::Time | Kind::MicroTime => timestamp(bytes(wire)?, kind == Kind::MicroTime)?,
        Kind::Duration => {
            let f = fields(bytes(wire)?)?;
            Some(Value::String(go_duration(f.varint(1) as i64)))
        }
        Kind::Quantity => Some(Value::String(fields(bytes(wire)?)?.string(1)?)),
        Kind::IntOrString => {
            let f = fields(bytes(wire)?)?;
            if f.varint(1) == 1 {
                Some(Value::String(f.string(3)?))
            } else {
                Some(Value::from(f.varint(2) as i64 as i32))
            }
        }
        Kind::RawJson => match fields(bytes(wire)?)?.bytes(1) {
            Some(raw) if !raw.is_empty() => Some(super::embedded(raw, depth + 1)?),
            _ => None,
        },
        Kind::Unknown => Some(super::unknown(bytes(wire)?, depth + 1)?),
        Kind::StrList => {
            let f = fields(bytes(wire)?)?;
            let items: Result<Vec<Value>, _> =
                f.all_bytes(1).map(|b| utf8(b).map(Value::String)).collect();
            Some(Value::Array(items?))
        }
        Kind::OrArray | Kind::OrBool | Kind::OrStringArray => schema_or(kind, bytes(wire)?, depth)?,
    };
    Ok(v)
}

/// apiextensions' "schema or …" unions: the schema wins when present.
fn schema_or(kind: Kind, buf: &[u8], depth: usize) -> Result<Option<Value>, ProtobufError> {
    let props =
        schema::find("k8s.io.apiextensions_apiserver.pkg.apis.apiextensions.v1.JSONSchemaProps")
            .ok_or(ProtobufError::Malformed(
                "no JSONSchemaProps in the schema table",
            ))?;
    let f = fields(buf)?;
    let schema_tag = if kind == Kind::OrBool { 2 } else { 1 };
    if let Some(b) = f.bytes(schema_tag) {
        return Ok(Some(Value::Object(message(props, b, depth + 1)?)));
    }
    Ok(Some(match kind {
        Kind::OrBool => Value::Bool(f.varint(1) != 0),
        Kind::OrArray => Value::Array(
            f.all_bytes(2)
                .map(|b| message(props, b, depth + 1).map(Value::Object))
                .collect::<Result<_, _>>()?,
        ),
        _ => Value::Array(
            f.all_bytes(2)
                .map(|b| utf8(b).map(Value::String))
                .collect::<Result<_, _>>()?,
        ),
    }))
}

/// `meta.v1.Time`/`MicroTime` {seconds = 1, nanos = 2}. An empty message is Go's zero time,
/// which JSON renders as null: the field is left out.
fn timestamp(buf: &[u8], micro: bool) -> Result<Option<Value>, ProtobufError> {
    if buf.is_empty() {
        return Ok(None);
    }
    let f = fields(buf)?;
    let ts = jiff::Timestamp::new(f.varint(1) as i64, f.varint(2) as i64 as i32)
        .map_err(|_| ProtobufError::Malformed("timestamp out of range"))?;
    let fmt = if micro {
        "%Y-%m-%dT%H:%M:%S.%6fZ"
    } else {
        "%Y-%m-%dT%H:%M:%SZ"
    };
    Ok(Some(Value::String(ts.strftime(fmt).to_string())))
}

/// Go's `time.Duration.String()`: `0s`, `1.5s`, `1h0m0s`, `300ms`, `-2m3s`.
pub(super) fn go_duration(nanos: i64) -> String {
    if nanos == 0 {
        return "0s".into();
    }
    let sign = if nanos < 0 { "-" } else { "" };
    let u = nanos.unsigned_abs();
    let body = if u < 1_000_000_000 {
        let (unit, div) = match u {
            0..1_000 => ("ns", 1),
            1_000..1_000_000 => ("µs", 1_000),
            _ => ("ms", 1_000_000),
        };
        format!("{}{unit}", decimal(u, div))
    } else {
        let secs = u / 1_000_000_000;
        let (h, m, s) = (secs / 3600, (secs / 60) % 60, secs % 60);
        let mut out = String::new();
        if h > 0 {
            out.push_str(&format!("{h}h"));
        }
        if h > 0 || m > 0 {
            out.push_str(&format!("{m}m"));
        }
        out.push_str(&format!(
            "{}s",
            decimal(s * 1_000_000_000 + u % 1_000_000_000, 1_000_000_000)
        ));
        out
    };
    format!("{sign}{body}")
}

/// `v / div` with the fraction's trailing zeros trimmed (`decimal(1500, 1000)` = `1.5`).
fn decimal(v: u64, div: u64) -> String {
    let (whole, frac) = (v / div, v % div);
    if frac == 0 {
        return whole.to_string();
    }
    let width = div.ilog10() as usize;
    let digits = format!("{frac:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

/// The raw fields of a small special message, for by-tag access.
pub(super) struct Fields<'a>(Vec<(u32, Wire<'a>)>);

pub(super) fn fields(buf: &[u8]) -> Result<Fields<'_>, ProtobufError> {
    let mut r = Reader::new(buf);
    let mut out = Vec::new();
    while let Some(f) = r.next_field()? {
        out.push(f);
    }
    Ok(Fields(out))
}

impl<'a> Fields<'a> {
    /// The last varint under `tag`, 0 when absent.
    pub(super) fn varint(&self, tag: u32) -> u64 {
        self.0
            .iter()
            .rev()
            .find_map(|(t, w)| match w {
                Wire::Varint(v) if *t == tag => Some(*v),
                _ => None,
            })
            .unwrap_or(0)
    }

    pub(super) fn bytes(&self, tag: u32) -> Option<&'a [u8]> {
        self.all_bytes(tag).last()
    }

    pub(super) fn all_bytes(&self, tag: u32) -> impl Iterator<Item = &'a [u8]> + '_ {
        self.0.iter().filter_map(move |(t, w)| match w {
            Wire::Bytes(b) if *t == tag => Some(*b),
            _ => None,
        })
    }

    pub(super) fn string(&self, tag: u32) -> Result<String, ProtobufError> {
        self.bytes(tag).map_or(Ok(String::new()), utf8)
    }
}
