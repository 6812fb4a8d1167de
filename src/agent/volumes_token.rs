//! Bound service-account tokens for `serviceAccountToken` projections, like the kubelet's
//! token manager: a token is requested through the TokenRequest API bound to the pod
//! (`boundObjectRef` kind Pod, name, uid), cached, and requested again once 80 % of its
//! lifetime has passed or it is older than 24 h, so the periodic volume resync of the pod
//! worker rewrites the file before the token expires.
//!
//! Owns: the token cache. May call: the API server (`serviceaccounts/{name}/token`).

use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

/// The TokenRequest API refuses shorter lifetimes.
const MIN_TTL: i64 = 600;
/// A token older than this is refreshed whatever its lifetime (the kubelet's `maxTTL`).
const MAX_AGE: Duration = Duration::from_secs(24 * 3600);

/// What one projection asks for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TokenSpec {
    pub namespace: String,
    pub service_account: String,
    pub pod_name: String,
    pub pod_uid: String,
    /// Empty: the API server's own audience.
    pub audience: String,
    pub expiration_seconds: i64,
}

impl TokenSpec {
    /// The TokenRequest body for this spec.
    pub fn request(&self) -> TokenRequest {
        TokenRequest {
            spec: TokenRequestSpec {
                audiences: if self.audience.is_empty() {
                    vec![]
                } else {
                    vec![self.audience.clone()]
                },
                expiration_seconds: Some(self.expiration_seconds.max(MIN_TTL)),
                bound_object_ref: Some(BoundObjectReference {
                    api_version: Some("v1".into()),
                    kind: Some("Pod".into()),
                    name: Some(self.pod_name.clone()),
                    uid: Some(self.pod_uid.clone()),
                }),
            },
            ..Default::default()
        }
    }
}

#[derive(Debug, Clone)]
struct Cached {
    token: String,
    issued: SystemTime,
    ttl: Duration,
}

impl Cached {
    fn expired(&self, now: SystemTime) -> bool {
        now >= self.issued + self.ttl
    }
}

/// True once 80 % of the token's lifetime has passed, or it is older than 24 h.
pub fn needs_refresh(now: SystemTime, issued: SystemTime, ttl: Duration) -> bool {
    let age = now.duration_since(issued).unwrap_or_default();
    age >= MAX_AGE || age >= ttl.mul_f64(0.8)
}

/// Tokens by projection, shared by all pod workers of the agent.
#[derive(Debug, Default)]
pub struct TokenCache {
    tokens: Mutex<HashMap<TokenSpec, Cached>>,
}

impl TokenCache {
    fn fresh(&self, spec: &TokenSpec, now: SystemTime) -> Option<String> {
        let mut map = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        // Tokens of pods that are gone expire and are dropped here.
        map.retain(|_, c| !c.expired(now));
        map.get(spec)
            .filter(|c| !needs_refresh(now, c.issued, c.ttl))
            .map(|c| c.token.clone())
    }

    fn stale(&self, spec: &TokenSpec, now: SystemTime) -> Option<String> {
        let map = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        map.get(spec)
            .filter(|c| !c.expired(now))
            .map(|c| c.token.clone())
    }

    fn store(&self, spec: &TokenSpec, token: String, issued: SystemTime, ttl: Duration) {
        let mut map = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        map.insert(spec.clone(), Cached { token, issued, ttl });
    }

    /// The token for `spec`: the cached one while it is fresh, else a new one from the
    /// API. If the API fails while the cached token is still valid, that one is kept (the
    /// next resync tries again), as the kubelet does.
    ///
    /// # Errors
    /// When no valid token is cached and the API cannot issue one.
    pub async fn token(&self, client: &kube::Client, spec: &TokenSpec) -> Result<String, String> {
        let now = SystemTime::now();
        if let Some(t) = self.fresh(spec, now) {
            return Ok(t);
        }
        let api: kube::Api<ServiceAccount> = kube::Api::namespaced(client.clone(), &spec.namespace);
        let issued = SystemTime::now();
        match api
            .create_token_request(
                &spec.service_account,
                &kube::api::PostParams::default(),
                &spec.request(),
            )
            .await
        {
            Ok(tr) => {
                let status = tr.status.ok_or("token request returned no status")?;
                let ttl = tr
                    .spec
                    .expiration_seconds
                    .unwrap_or(spec.expiration_seconds)
                    .max(1);
                self.store(
                    spec,
                    status.token.clone(),
                    issued,
                    Duration::from_secs(ttl as u64),
                );
                Ok(status.token)
            }
            Err(e) => {
                let why = format!(
                    "failed to fetch token for service account {}/{}: {e}",
                    spec.namespace, spec.service_account
                );
                match self.stale(spec, now) {
                    Some(t) => {
                        tracing::warn!(error = %why, "keeping the current token");
                        Ok(t)
                    }
                    None => Err(why),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_refreshed_at_eighty_percent_or_after_a_day() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let hour = Duration::from_secs(3600);
        assert!(!needs_refresh(t0 + Duration::from_secs(2879), t0, hour));
        assert!(needs_refresh(t0 + Duration::from_secs(2880), t0, hour));
        let week = Duration::from_secs(7 * 24 * 3600);
        assert!(!needs_refresh(
            t0 + Duration::from_secs(23 * 3600),
            t0,
            week
        ));
        assert!(needs_refresh(t0 + MAX_AGE, t0, week));
    }

    #[test]
    fn the_request_is_bound_to_the_pod_with_the_projection_audience() {
        let spec = TokenSpec {
            namespace: "ns".into(),
            service_account: "default".into(),
            pod_name: "p".into(),
            pod_uid: "u-1".into(),
            audience: "vault".into(),
            expiration_seconds: 3607,
        };
        let r = serde_json::to_value(spec.request()).unwrap();
        assert_eq!(r["spec"]["audiences"], serde_json::json!(["vault"]));
        assert_eq!(r["spec"]["expirationSeconds"], 3607);
        assert_eq!(
            r["spec"]["boundObjectRef"],
            serde_json::json!({"apiVersion": "v1", "kind": "Pod", "name": "p", "uid": "u-1"})
        );
    }

    #[test]
    fn cached_tokens_are_served_until_due_and_expired_ones_are_dropped() {
        let cache = TokenCache::default();
        let spec = TokenSpec {
            namespace: "ns".into(),
            service_account: "sa".into(),
            pod_name: "p".into(),
            pod_uid: "u".into(),
            audience: String::new(),
            expiration_seconds: 3600,
        };
        let t0 = SystemTime::now();
        cache.store(&spec, "tok".into(), t0, Duration::from_secs(3600));
        assert_eq!(
            cache.fresh(&spec, t0 + Duration::from_secs(60)).as_deref(),
            Some("tok")
        );
        let due = t0 + Duration::from_secs(3000);
        assert!(cache.fresh(&spec, due).is_none());
        assert_eq!(cache.stale(&spec, due).as_deref(), Some("tok"));
        assert!(cache.fresh(&spec, t0 + Duration::from_secs(4000)).is_none());
        assert!(
            cache.stale(&spec, t0).is_none(),
            "expired entry was dropped"
        );
    }
}
