//! Events expiry: events not written for longer than the TTL (1 h by default, upstream's
//! `--event-ttl`) are deleted. `events.k8s.io/v1` Events are a view of the same stored
//! objects, so one sweep of `core/v1` Events covers both.
//!
//! Upstream attaches every event to an etcd lease. We sweep periodically from the controllers
//! instead: the store's leases are not reachable through the API server (the only component
//! that may touch the store), a lease per event would mean a lease record and a revocation
//! per event, and a sweep also honours a TTL changed after the events were written. The cost
//! is a list of events per sweep, which happens a few times per TTL at most once a minute.
//!
//! Owns: deleting expired events. May call: the API server.

use super::ControllersConfig;
use kube::Client;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, ListParams, Preconditions};
use serde_json::Value;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The sweep period for a TTL: a third of it, between 500 ms and one minute.
pub fn period(ttl: Duration) -> Duration {
    (ttl / 3).clamp(Duration::from_millis(500), Duration::from_secs(60))
}

/// When an event was last written: the latest of its timestamps (a repeated event is updated
/// in place, which upstream counts as a write renewing its lease).
pub fn last_write(ev: &Value) -> Option<jiff::Timestamp> {
    [
        "/metadata/creationTimestamp",
        "/lastTimestamp",
        "/eventTime",
        "/series/lastObservedTime",
    ]
    .iter()
    .filter_map(|p| ev.pointer(p).and_then(Value::as_str))
    .filter_map(|s| s.parse::<jiff::Timestamp>().ok())
    .max()
}

/// Whether `ev` has outlived `ttl` at `now`.
pub fn expired(ev: &Value, ttl: Duration, now: jiff::Timestamp) -> bool {
    let Ok(ttl) = jiff::SignedDuration::try_from(ttl) else {
        return false;
    };
    last_write(ev).is_some_and(|t| t + ttl < now)
}

async fn sweep(client: &Client, ttl: Duration) -> Result<usize, kube::Error> {
    let kinds = [ApiResource::erase::<k8s_openapi::api::core::v1::Event>(&())];
    let now = jiff::Timestamp::now();
    let mut deleted = 0;
    for ar in &kinds {
        let all: Api<DynamicObject> = Api::all_with(client.clone(), ar);
        for ev in all.list(&ListParams::default()).await?.items {
            let Ok(v) = serde_json::to_value(&ev) else {
                continue;
            };
            if !expired(&v, ttl, now) {
                continue;
            }
            let (Some(ns), Some(name)) = (ev.metadata.namespace.as_deref(), &ev.metadata.name)
            else {
                continue;
            };
            let dp = DeleteParams {
                // Not one that was rewritten (renewed) since the list.
                preconditions: Some(Preconditions {
                    uid: ev.metadata.uid.clone(),
                    resource_version: ev.metadata.resource_version.clone(),
                }),
                ..Default::default()
            };
            match Api::<DynamicObject>::namespaced_with(client.clone(), ns, ar)
                .delete(name, &dp)
                .await
            {
                Ok(_) => deleted += 1,
                Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(deleted)
}

/// Sweep expired events until `shutdown`.
pub async fn run(client: Client, config: ControllersConfig, shutdown: CancellationToken) {
    let every = period(config.event_ttl);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        match sweep(&client, config.event_ttl).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(deleted = n, "expired events deleted"),
            Err(e) => tracing::debug!(error = %e, "events sweep failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_event_expires_ttl_after_its_latest_write() {
        let ttl = Duration::from_secs(3600);
        let ev = json!({
            "metadata": {"creationTimestamp": "2026-01-01T00:00:00Z"},
            "lastTimestamp": "2026-01-01T00:50:00Z",
        });
        let at = |s: &str| s.parse::<jiff::Timestamp>().unwrap();
        assert!(!expired(&ev, ttl, at("2026-01-01T01:30:00Z")));
        assert!(expired(&ev, ttl, at("2026-01-01T01:50:01Z")));
        let new_style = json!({"metadata": {}, "eventTime": "2026-01-01T00:00:00.000000Z"});
        assert!(expired(&new_style, ttl, at("2026-01-01T01:00:01Z")));
        assert!(!expired(
            &json!({"metadata": {}}),
            ttl,
            at("2030-01-01T00:00:00Z")
        ));
    }

    #[test]
    fn the_sweep_period_follows_the_ttl_within_bounds() {
        assert_eq!(period(Duration::from_secs(3600)), Duration::from_secs(60));
        assert_eq!(period(Duration::from_secs(3)), Duration::from_secs(1));
        assert_eq!(
            period(Duration::from_millis(300)),
            Duration::from_millis(500)
        );
    }
}
