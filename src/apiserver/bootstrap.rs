//! Objects every cluster has from its first start: the four system namespaces and the
//! `kubernetes` Service in `default` (the first address of `--service-cidr`).

use super::handlers::{Api, Query, Req, handle};
use super::status::ApiError;
use serde_json::{Value, json};

async fn create_if_missing(
    api: &Api,
    plural: &str,
    ns: Option<&str>,
    obj: Value,
) -> Result<(), ApiError> {
    let Some(kind) = api.registry.find("", "v1", plural) else {
        return Ok(());
    };
    let req = Req {
        kind,
        namespace: ns.map(String::from),
        name: None,
        sub: None,
        query: Query::default(),
        accept: "application/json".into(),
        content_type: "application/json".into(),
        body: bytes::Bytes::from(obj.to_string()),
        user_agent: "k3rs-bootstrap".into(),
        user: None,
    };
    match handle(api, &http::Method::POST, req).await {
        Ok(_) => Ok(()),
        Err(e) if e.code == 409 => Ok(()),
        Err(e) => Err(e),
    }
}

/// Create the built-in objects that do not exist yet.
///
/// # Errors
/// When the backend fails.
pub async fn ensure_defaults(api: &Api) -> Result<(), ApiError> {
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        create_if_missing(
            api,
            "namespaces",
            None,
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
        )
        .await?;
        // The ServiceAccount controller creates these too; having them from the start lets
        // the first pods pass ServiceAccount admission before the controllers lead.
        create_if_missing(
            api,
            "serviceaccounts",
            Some(ns),
            json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default"}}),
        )
        .await?;
    }
    create_if_missing(
        api,
        "services",
        Some("default"),
        json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "kubernetes", "labels": {"component": "apiserver", "provider": "kubernetes"}},
            "spec": {
                "clusterIP": api.service_range.first().to_string(),
                "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}],
                "sessionAffinity": "None",
                "type": "ClusterIP"
            }
        }),
    )
    .await
}
