//! Patch semantics of the Kubernetes API: JSON patch (RFC 6902), JSON merge patch
//! (RFC 7386), strategic merge patch and server-side apply with `managedFields`.
//!
//! Owns: pure functions from (current object, patch bytes) to the patched object. No I/O;
//! the HTTP handlers (other files of [`crate::apiserver`]) decode requests, call these
//! functions and map the typed errors to `Status` responses (each variant says which code).

mod fieldset;
mod json_patch;
mod merge;
mod ssa;
mod strategic;
mod strategy;

pub use fieldset::FieldSet;
pub use ssa::{ApplyError, Conflict, parse_apply_body, server_side_apply, update_managed_fields};
pub use strategy::is_builtin_group;

use serde_json::Value;

/// The patch formats an API server accepts, chosen by the request `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    /// `application/json-patch+json` (RFC 6902).
    Json,
    /// `application/merge-patch+json` (RFC 7386).
    Merge,
    /// `application/strategic-merge-patch+json` (built-in kinds only).
    StrategicMerge,
    /// `application/apply-patch+yaml` (server-side apply; YAML or JSON body).
    Apply,
}

impl PatchType {
    /// Maps a `Content-Type` (parameters such as `; charset=utf-8` ignored) to a patch type.
    /// `application/apply-patch+cbor` and anything else give `None` (415 upstream).
    pub fn from_content_type(content_type: &str) -> Option<PatchType> {
        let media = content_type
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        match media.as_str() {
            "application/json-patch+json" => Some(PatchType::Json),
            "application/merge-patch+json" => Some(PatchType::Merge),
            "application/strategic-merge-patch+json" => Some(PatchType::StrategicMerge),
            "application/apply-patch+yaml" => Some(PatchType::Apply),
            _ => None,
        }
    }

    /// The canonical media type, as listed in a PATCH operation's `consumes`.
    pub fn content_type(self) -> &'static str {
        match self {
            PatchType::Json => "application/json-patch+json",
            PatchType::Merge => "application/merge-patch+json",
            PatchType::StrategicMerge => "application/strategic-merge-patch+json",
            PatchType::Apply => "application/apply-patch+yaml",
        }
    }
}

/// Group, version and kind of the object being patched; selects merge keys.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KindPath {
    /// API group, `""` for the core group.
    pub group: String,
    /// API version, e.g. `v1`.
    pub version: String,
    /// Kind, e.g. `Deployment`.
    pub kind: String,
}

impl KindPath {
    /// Convenience constructor.
    pub fn new(group: &str, version: &str, kind: &str) -> KindPath {
        KindPath {
            group: group.to_string(),
            version: version.to_string(),
            kind: kind.to_string(),
        }
    }

    /// `apps/v1` or `v1` for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
}

/// Why a PATCH could not be applied.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PatchError {
    /// The body is not valid JSON (or YAML) of the expected shape. HTTP 400 `BadRequest`.
    #[error("{0}")]
    Malformed(String),
    /// A JSON patch operation failed (missing path, failed `test`, bad index).
    /// HTTP 422 `Invalid` (upstream answers 422 with the jsonpatch message).
    #[error("{0}")]
    JsonPatchFailed(String),
    /// A strategic merge patch directive or list element is invalid. HTTP 422 `Invalid`.
    #[error("{0}")]
    InvalidStrategicPatch(String),
    /// Strategic merge patch sent for a kind without patch metadata (custom resources).
    /// HTTP 415 `UnsupportedMediaType`, message as upstream.
    #[error(
        "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"
    )]
    StrategicMergeUnsupported,
    /// `PatchType::Apply` must go through [`server_side_apply`]. HTTP 500 (programming error).
    #[error("apply patches are handled by server_side_apply")]
    ApplyNotHandledHere,
}

impl PatchError {
    /// The HTTP status code of the `Status` this error becomes.
    pub fn code(&self) -> u16 {
        match self {
            PatchError::Malformed(_) => 400,
            PatchError::JsonPatchFailed(_) | PatchError::InvalidStrategicPatch(_) => 422,
            PatchError::StrategicMergeUnsupported => 415,
            PatchError::ApplyNotHandledHere => 500,
        }
    }

    /// The `Status.reason` matching [`PatchError::code`].
    pub fn reason(&self) -> &'static str {
        match self.code() {
            400 => "BadRequest",
            415 => "UnsupportedMediaType",
            422 => "Invalid",
            _ => "InternalError",
        }
    }
}

/// Applies `patch` of `patch_type` to `current` and returns the new object.
pub fn apply(
    kind: &KindPath,
    patch_type: PatchType,
    current: &Value,
    patch: &[u8],
) -> Result<Value, PatchError> {
    match patch_type {
        PatchType::Json => {
            let ops: Value = parse_json(patch)?;
            json_patch::apply(current, &ops)
        }
        PatchType::Merge => {
            let p: Value = parse_json(patch)?;
            Ok(merge::merge_patch(current, &p))
        }
        PatchType::StrategicMerge => {
            if !strategy::is_builtin_group(&kind.group) {
                return Err(PatchError::StrategicMergeUnsupported);
            }
            let p: Value = parse_json(patch)?;
            if !p.is_object() {
                return Err(PatchError::Malformed(
                    "strategic merge patch must be a JSON object".into(),
                ));
            }
            strategic::apply(kind, current, &p)
        }
        PatchType::Apply => Err(PatchError::ApplyNotHandledHere),
    }
}

fn parse_json(patch: &[u8]) -> Result<Value, PatchError> {
    serde_json::from_slice(patch).map_err(|e| PatchError::Malformed(format!("invalid json: {e}")))
}

#[cfg(test)]
mod tests;
