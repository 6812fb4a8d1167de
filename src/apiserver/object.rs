//! Helpers on objects as JSON: decoding request bodies, metadata access, names, timestamps.

use super::registry::ResourceKind;
use super::status::{ApiError, Cause};
use serde_json::{Value, json};

/// Decode a request body (JSON or YAML) into an object.
///
/// # Errors
/// 415 for unsupported media types, 400 for malformed input.
pub fn decode_body(body: &[u8], content_type: &str) -> Result<Value, ApiError> {
    let ct = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let v: Value = match ct.as_str() {
        "" | "application/json" | "*/*" => serde_json::from_slice(body).map_err(|e| {
            ApiError::bad_request(format!("couldn't get version/kind; json parse error: {e}"))
        })?,
        "application/yaml" | "application/x-yaml" | "text/yaml" => serde_yaml::from_slice(body)
            .map_err(|e| {
                ApiError::bad_request(format!("error converting YAML to JSON: yaml: {e}"))
            })?,
        super::protobuf::CONTENT_TYPE => super::protobuf::decode_request(body)
            .map_err(|e| ApiError::bad_request(format!("failed to decode protobuf body: {e}")))?,
        _ => return Err(ApiError::unsupported_media_type(content_type)),
    };
    if !v.is_object() {
        return Err(ApiError::bad_request(
            "couldn't get version/kind; json parse error: expected an object",
        ));
    }
    Ok(v)
}

pub fn meta_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    obj.get("metadata")?.get(field)?.as_str()
}

/// `metadata`, created when missing (`None` when `obj` is not an object).
pub fn meta_mut(obj: &mut Value) -> Option<&mut serde_json::Map<String, Value>> {
    let o = obj.as_object_mut()?;
    let m = o.entry("metadata").or_insert_with(|| json!({}));
    if !m.is_object() {
        *m = json!({});
    }
    m.as_object_mut()
}

pub fn set_resource_version(obj: &mut Value, rev: i64) {
    if let Some(m) = meta_mut(obj) {
        m.insert("resourceVersion".into(), json!(rev.to_string()));
    }
}

/// RFC 3339 UTC with second precision, like upstream `metav1.Time`.
pub fn now_rfc3339() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// The object of `kind` stored at a key, in `kind`'s version, with `resourceVersion` = its
/// mod revision.
pub fn from_kv(kind: &ResourceKind, kv: &crate::store::KeyValue) -> Result<Value, ApiError> {
    let v: Value = serde_json::from_slice(&kv.value)
        .map_err(|e| ApiError::internal(format!("stored object is corrupt: {e}")))?;
    let mut v = kind.from_storage(v);
    set_resource_version(&mut v, kv.mod_revision);
    Ok(v)
}

/// Serialize an object of `kind` for storage, in its stored version (resourceVersion is not
/// stored; it is the mod revision).
pub fn to_stored(kind: &ResourceKind, obj: &Value) -> Vec<u8> {
    let mut o = kind.to_storage(obj.clone());
    if let Some(m) = o.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("resourceVersion");
        m.remove("selfLink");
    }
    serde_json::to_vec(&o).unwrap_or_default()
}

/// Check or fill `apiVersion`/`kind` of a request body against the endpoint's kind.
///
/// # Errors
/// 400 when the body names another kind or version.
pub fn check_type_meta(kind: &ResourceKind, obj: &mut Value) -> Result<(), ApiError> {
    let want_av = kind.api_version();
    match obj.get("apiVersion").and_then(Value::as_str) {
        None | Some("") => obj["apiVersion"] = json!(want_av),
        Some(av) if av == want_av => {}
        Some(av) => {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({av}) does not match the expected API version ({want_av})"
            )));
        }
    }
    match obj.get("kind").and_then(Value::as_str) {
        None | Some("") => obj["kind"] = json!(kind.kind),
        Some(k) if k == kind.kind => {}
        Some(k) => {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({k}) does not match the expected kind ({})",
                kind.kind
            )));
        }
    }
    Ok(())
}

const SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const DNS1035_MSG: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";

fn is_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn is_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_label)
}

/// Which name rule a kind follows.
fn name_rule(kind: &ResourceKind) -> u8 {
    match (kind.group.as_str(), kind.plural.as_str()) {
        ("", "namespaces") => 1,
        ("", "services") => 2,
        ("rbac.authorization.k8s.io", _) => 3,
        _ => 0,
    }
}

/// Validate `metadata.name` (and its generateName origin) the way upstream does.
pub fn validate_name(kind: &ResourceKind, name: &str) -> Vec<Cause> {
    let invalid = |msg: &str| Cause {
        reason: "FieldValueInvalid".into(),
        message: format!("Invalid value: {name:?}: {msg}"),
        field: "metadata.name".into(),
    };
    if name.is_empty() {
        return vec![Cause {
            reason: "FieldValueRequired".into(),
            message: "Required value: name or generateName is required".into(),
            field: "metadata.name".into(),
        }];
    }
    match name_rule(kind) {
        1 if !is_label(name) => vec![invalid(LABEL_MSG)],
        2 if !(is_label(name) && name.starts_with(|c: char| c.is_ascii_lowercase())) => {
            vec![invalid(DNS1035_MSG)]
        }
        // RBAC names are path segments: anything but `.`, `..`, `/` and `%`.
        3 if name == "." || name == ".." || name.contains('/') || name.contains('%') => {
            vec![invalid("may not contain '/' or '%'")]
        }
        3 => vec![],
        0 if !is_subdomain(name) => vec![invalid(SUBDOMAIN_MSG)],
        _ => vec![],
    }
}

/// `generateName` + 5 random characters from upstream's alphabet.
pub fn generate_name(prefix: &str) -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    let base = if prefix.len() > 58 {
        &prefix[..58]
    } else {
        prefix
    };
    let suffix: String = (0..5)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect();
    format!("{base}{suffix}")
}

/// Top-level fields that are not spec/status/metadata and count as "spec" for generation.
pub fn spec_view(obj: &Value) -> Value {
    let mut o = obj.clone();
    if let Some(m) = o.as_object_mut() {
        m.remove("metadata");
        m.remove("status");
        m.remove("apiVersion");
        m.remove("kind");
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_and_json_bodies_decode_and_garbage_is_a_bad_request() {
        assert!(decode_body(b"a: 1", "application/yaml").is_ok());
        assert!(decode_body(b"{\"a\":1}", "application/json").is_ok());
        assert_eq!(decode_body(b"{", "application/json").unwrap_err().code, 400);
        assert_eq!(
            decode_body(b"[1]", "application/json").unwrap_err().code,
            400
        );
        assert_eq!(decode_body(b"x", "text/plain").unwrap_err().code, 415);
    }

    #[test]
    fn names_follow_the_upstream_rules() {
        let reg = super::super::registry::Registry::new();
        let cm = reg.find("", "v1", "configmaps").unwrap();
        let ns = reg.find("", "v1", "namespaces").unwrap();
        assert!(validate_name(&cm, "a.b-c").is_empty());
        assert!(!validate_name(&cm, "Bad_Name").is_empty());
        assert!(!validate_name(&ns, "a.b").is_empty());
        assert_eq!(generate_name("web-").len(), 9);
    }
}
