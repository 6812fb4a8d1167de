//! Create-only review kinds: access reviews (always allowed: there is no authorization yet),
//! `TokenReview` and `SelfSubjectReview`.

use super::{Api, Reply, Req};
use crate::apiserver::object::{check_type_meta, decode_body};
use crate::apiserver::status::ApiError;
use serde_json::{Value, json};

/// `POST` of a review kind: answer it, store nothing.
pub async fn handle(api: &Api, method: &http::Method, req: Req) -> Result<Reply, ApiError> {
    if method != http::Method::POST || req.name.is_some() {
        return Err(ApiError::method_not_allowed(format!(
            "the server does not allow this method on the requested resource ({method})"
        )));
    }
    let mut obj = decode_body(&req.body, &req.content_type)?;
    check_type_meta(&req.kind, &mut obj)?;
    let status = match req.kind.kind.as_str() {
        "SelfSubjectAccessReview" | "SubjectAccessReview" | "LocalSubjectAccessReview" => json!({
            "allowed": true,
            "reason": "k3rs has no authorization yet: every authenticated user is allowed",
        }),
        "SelfSubjectRulesReview" => json!({
            "resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}],
            "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}],
            "incomplete": false,
        }),
        "TokenReview" => {
            let token = obj
                .pointer("/spec/token")
                .and_then(Value::as_str)
                .unwrap_or("");
            match api.tokens.as_ref().and_then(|t| t.verify(token)) {
                Some(u) => json!({"authenticated": true, "user": u.to_json(),
                    "audiences": obj.pointer("/spec/audiences").cloned().unwrap_or(json!([]))}),
                None => json!({"authenticated": false, "error": "invalid bearer token"}),
            }
        }
        "SelfSubjectReview" => json!({
            "userInfo": req.user.as_ref().map(|u| u.to_json()).unwrap_or(json!({}))
        }),
        _ => return Err(ApiError::path_not_found()),
    };
    obj["status"] = status;
    if obj.get("metadata").is_none_or(|m| !m.is_object()) {
        obj["metadata"] = json!({});
    }
    Ok(Reply::code(201, obj))
}
