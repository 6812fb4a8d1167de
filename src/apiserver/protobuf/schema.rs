//! The shape of the generated message table (`schema_gen.rs`) and look-ups into it.
//!
//! Owns: the `Kind`/`Card`/`Field`/`Message` types the generator emits and the mapping from an
//! object's `apiVersion`/`kind` to its protobuf message. Calls nothing.

use super::schema_gen::MESSAGES;

/// How a field's value is encoded and rendered as JSON.
// Some variants (Duration, Unknown, …) appear only in alpha/beta messages, which the table
// leaves out today; the decoder keeps handling them for when it does not.
#[allow(dead_code)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    Str,
    /// Base64 in JSON, like Go's `[]byte`.
    Bytes,
    Bool,
    I32,
    I64,
    F64,
    /// A nested message: index into [`MESSAGES`].
    Msg(u16),
    /// `meta.v1.Time`: RFC 3339, second precision.
    Time,
    /// `meta.v1.MicroTime`: RFC 3339, microsecond precision.
    MicroTime,
    /// `meta.v1.Duration`: Go's `time.Duration` string (`1h0m0s`).
    Duration,
    /// `resource.Quantity`: its canonical string.
    Quantity,
    /// `intstr.IntOrString`: a number or a string.
    IntOrString,
    /// `RawExtension`, `FieldsV1`, apiextensions `JSON`: raw bytes holding an embedded value.
    RawJson,
    /// `runtime.Unknown`: an embedded object with its own type meta.
    Unknown,
    /// `meta.v1.Verbs`, `ExtraValue`: a message wrapping `repeated string items` that JSON
    /// renders as a bare array.
    StrList,
    /// apiextensions `JSONSchemaPropsOrArray`: a schema or an array of schemas.
    OrArray,
    /// apiextensions `JSONSchemaPropsOrBool`: a schema or a bool.
    OrBool,
    /// apiextensions `JSONSchemaPropsOrStringArray`: a schema or an array of strings.
    OrStringArray,
    /// A type the generator could not resolve: the field is skipped.
    Skip,
}

/// A field's cardinality and JSON placement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Card {
    /// Optional: a zero scalar is dropped (see `decode::keep_zero`).
    Opt,
    /// Required by the OpenAPI schema: always rendered.
    Req,
    Rep,
    /// `map<string, kind>`: entries are messages {key = 1, value = 2}.
    Map,
    /// An embedded Go struct: its fields are flattened into the parent object.
    Inline,
}

/// `(tag, JSON name, kind, cardinality)`.
#[derive(Debug)]
pub(super) struct Field(pub u32, pub &'static str, pub Kind, pub Card);

/// `(protobuf full name, fields)`.
#[derive(Debug)]
pub(super) struct Message(pub &'static str, pub &'static [Field]);

pub(super) fn message(index: u16) -> Option<&'static Message> {
    MESSAGES.get(usize::from(index))
}

/// Index of a message by its protobuf full name (`k8s.io.api.apps.v1.Deployment`), ignoring
/// ASCII case like the table's order (k8s-pb spells some acronyms differently).
pub(super) fn find(name: &str) -> Option<u16> {
    let lower = |s: &'static str| s.bytes().map(|b| b.to_ascii_lowercase());
    let i = MESSAGES
        .binary_search_by(|m| lower(m.0).cmp(name.bytes().map(|b| b.to_ascii_lowercase())))
        .ok()?;
    u16::try_from(i).ok()
}

/// The protobuf package holding `apiVersion`'s types, e.g. `apps/v1` → `k8s.io.api.apps.v1`.
fn package(api_version: &str) -> String {
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let base = match group {
        "" => "k8s.io.api.core".to_string(),
        "internal.apiserver.k8s.io" => "k8s.io.api.apiserverinternal".to_string(),
        "apiextensions.k8s.io" => {
            "k8s.io.apiextensions_apiserver.pkg.apis.apiextensions".to_string()
        }
        "apiregistration.k8s.io" => "k8s.io.kube_aggregator.pkg.apis.apiregistration".to_string(),
        "meta.k8s.io" => "k8s.io.apimachinery.pkg.apis.meta".to_string(),
        // `rbac.authorization.k8s.io` → rbac, `networking.k8s.io` → networking, `apps` → apps.
        g => format!("k8s.io.api.{}", g.split('.').next().unwrap_or(g)),
    };
    format!("{base}.{version}")
}

/// The message for an object of `apiVersion`/`kind`. Option types (`DeleteOptions`, …) are
/// registered in every group version but live in `meta.v1`.
pub(super) fn for_type(api_version: &str, kind: &str) -> Option<u16> {
    find(&format!("{}.{kind}", package(api_version)))
        .or_else(|| find(&format!("k8s.io.apimachinery.pkg.apis.meta.v1.{kind}")))
}
