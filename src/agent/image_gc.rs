//! Image garbage collection, like the kubelet's image GC manager: when the image
//! filesystem's usage reaches `--image-gc-high-threshold` percent, delete images no
//! container uses, least recently used first (then oldest detected), until usage is back
//! under `--image-gc-low-threshold`; images first seen less than
//! `--minimum-image-ttl-duration` ago are kept. Freeing too little reports a
//! `FreeDiskSpaceFailed` warning on the node. The eviction manager also calls
//! [`ImageGc::delete_unused`] to reclaim disk before evicting pods.
//!
//! Owns: the first-seen/last-used bookkeeping of images. May call: an [`ImageStore`]
//! (containerd's `k8s.io` namespace).

use crate::agent::runtime::{Containerd, RuntimeError, RuntimeFuture};
use futures::FutureExt;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Image GC settings (kubelet names).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ImageGcPolicy {
    /// Usage percent at or above which GC runs; 100 disables it.
    pub high_threshold_percent: u8,
    /// Usage percent GC frees down to.
    pub low_threshold_percent: u8,
    /// Images seen for less than this are never deleted.
    pub min_age: Duration,
    /// How often the threshold is checked (the kubelet: 5 minutes).
    pub period: Duration,
}

impl Default for ImageGcPolicy {
    fn default() -> Self {
        ImageGcPolicy {
            high_threshold_percent: 85,
            low_threshold_percent: 80,
            min_age: Duration::from_secs(120),
            period: Duration::from_secs(300),
        }
    }
}

impl ImageGcPolicy {
    /// Upstream's checks: both thresholds within 0..=100, low below high.
    ///
    /// # Errors
    /// A threshold above 100 or a low threshold not below the high one.
    pub fn validate(&self) -> Result<(), String> {
        if self.high_threshold_percent > 100 {
            return Err(format!(
                "invalid image-gc-high-threshold {}, must be in range [0-100]",
                self.high_threshold_percent
            ));
        }
        if self.low_threshold_percent > 100 {
            return Err(format!(
                "invalid image-gc-low-threshold {}, must be in range [0-100]",
                self.low_threshold_percent
            ));
        }
        if self.low_threshold_percent >= self.high_threshold_percent {
            return Err(format!(
                "image-gc-low-threshold ({}) must be less than image-gc-high-threshold ({})",
                self.low_threshold_percent, self.high_threshold_percent
            ));
        }
        Ok(())
    }
}

/// One image record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredImage {
    pub name: String,
    /// Target digest: records sharing it are one image (several tags).
    pub digest: String,
    pub size: u64,
}

/// What image GC needs from the runtime.
pub trait ImageStore: Send + Sync {
    /// Every image record.
    fn images(&self) -> RuntimeFuture<'_, Vec<StoredImage>>;
    /// Image names of every container (running or not).
    fn in_use(&self) -> RuntimeFuture<'_, HashSet<String>>;
    /// Deletes one image record.
    fn remove<'a>(&'a self, name: &'a str) -> RuntimeFuture<'a, ()>;
}

impl ImageStore for Containerd {
    fn images(&self) -> RuntimeFuture<'_, Vec<StoredImage>> {
        async move {
            Ok(self
                .list_images()
                .await?
                .into_iter()
                .map(|i| StoredImage {
                    name: i.name,
                    digest: i.digest,
                    size: i.size,
                })
                .collect())
        }
        .boxed()
    }
    fn in_use(&self) -> RuntimeFuture<'_, HashSet<String>> {
        self.images_in_use().boxed()
    }
    fn remove<'a>(&'a self, name: &'a str) -> RuntimeFuture<'a, ()> {
        self.remove_image(name).boxed()
    }
}

/// An image (all records of one digest) as GC sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tracked {
    pub digest: String,
    pub names: Vec<String>,
    pub size: u64,
    pub in_use: bool,
    pub first_detected: Instant,
    /// Last time a container used it (first detection when never seen in use).
    pub last_used: Instant,
}

/// Images to delete to free `amount` bytes at `now`: unused, old enough, least recently
/// used first then first detected first; stops once enough is planned.
pub fn plan(images: &[Tracked], amount: u64, now: Instant, min_age: Duration) -> Vec<Tracked> {
    let mut candidates: Vec<&Tracked> = images
        .iter()
        .filter(|i| !i.in_use && now.saturating_duration_since(i.first_detected) >= min_age)
        .collect();
    candidates.sort_by(|a, b| {
        a.last_used
            .cmp(&b.last_used)
            .then(a.first_detected.cmp(&b.first_detected))
    });
    let mut out = Vec::new();
    let mut planned = 0u64;
    for c in candidates {
        if planned >= amount {
            break;
        }
        planned += c.size;
        out.push(c.clone());
    }
    out
}

/// Bytes to free so usage of a filesystem (`available` of `capacity` free) drops to
/// `low` percent; 0 below `high` percent.
pub fn amount_to_free(available: u64, capacity: u64, high: u8, low: u8) -> u64 {
    if capacity == 0 || high >= 100 {
        return 0;
    }
    let used = capacity.saturating_sub(available);
    let usage_percent = used as f64 * 100.0 / capacity as f64;
    if usage_percent < f64::from(high) {
        return 0;
    }
    let target_free = (capacity as f64 * f64::from(100 - low) / 100.0) as u64;
    target_free.saturating_sub(available)
}

/// Why a GC pass could not free what it had to.
#[derive(Debug, thiserror::Error)]
pub enum ImageGcError {
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// Upstream's wording (it becomes the `FreeDiskSpaceFailed` event message).
    #[error(
        "Failed to garbage collect required amount of images. Attempted to free {wanted} bytes, but only found {freed} bytes eligible to free."
    )]
    NotEnough { wanted: u64, freed: u64 },
}

/// The image GC manager of one node.
pub struct ImageGc {
    store: Arc<dyn ImageStore>,
    policy: ImageGcPolicy,
    /// (first detected, last used) by digest.
    seen: Mutex<HashMap<String, (Instant, Instant)>>,
}

impl ImageGc {
    pub fn new(store: Arc<dyn ImageStore>, policy: ImageGcPolicy) -> Self {
        ImageGc {
            store,
            policy,
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// The policy in force.
    pub fn policy(&self) -> ImageGcPolicy {
        self.policy
    }

    /// Lists images, records first detection and use, and forgets deleted ones.
    ///
    /// # Errors
    /// When the runtime cannot list images or containers.
    pub async fn detect(&self, now: Instant) -> Result<Vec<Tracked>, RuntimeError> {
        let records = self.store.images().await?;
        let used = self.store.in_use().await?;
        let mut groups: HashMap<String, Tracked> = HashMap::new();
        for r in records {
            let g = groups.entry(r.digest.clone()).or_insert_with(|| Tracked {
                digest: r.digest.clone(),
                names: Vec::new(),
                size: r.size,
                in_use: false,
                first_detected: now,
                last_used: now,
            });
            g.in_use |= used.contains(&r.name);
            g.names.push(r.name);
        }
        let Ok(mut seen) = self.seen.lock() else {
            return Ok(groups.into_values().collect());
        };
        seen.retain(|d, _| groups.contains_key(d));
        for g in groups.values_mut() {
            let entry = seen.entry(g.digest.clone()).or_insert((now, now));
            if g.in_use {
                entry.1 = now;
            }
            g.first_detected = entry.0;
            g.last_used = entry.1;
        }
        Ok(groups.into_values().collect())
    }

    /// Deletes the planned images; the bytes freed.
    async fn free(&self, amount: u64, now: Instant) -> Result<u64, RuntimeError> {
        let images = self.detect(now).await?;
        let mut freed = 0;
        for img in plan(&images, amount, now, self.policy.min_age) {
            let mut ok = true;
            for name in &img.names {
                if let Err(e) = self.store.remove(name).await {
                    tracing::warn!(image = %name, error = %e, "image garbage collection");
                    ok = false;
                }
            }
            if ok {
                tracing::info!(images = ?img.names, size = img.size, "removed unused image");
                freed += img.size;
            }
        }
        Ok(freed)
    }

    /// One threshold-driven pass for an image filesystem with `available` of `capacity`
    /// bytes free; the bytes freed.
    ///
    /// # Errors
    /// Runtime failures, or [`ImageGcError::NotEnough`] when unused images did not add up.
    pub async fn garbage_collect(
        &self,
        available: u64,
        capacity: u64,
    ) -> Result<u64, ImageGcError> {
        let p = self.policy;
        let amount = amount_to_free(
            available,
            capacity,
            p.high_threshold_percent,
            p.low_threshold_percent,
        );
        if amount == 0 {
            // Still track first-seen and last-used times between passes.
            self.detect(Instant::now()).await?;
            return Ok(0);
        }
        let freed = self.free(amount, Instant::now()).await?;
        if freed < amount {
            return Err(ImageGcError::NotEnough {
                wanted: amount,
                freed,
            });
        }
        Ok(freed)
    }

    /// Deletes every unused image old enough (the eviction manager's disk reclaim); the
    /// bytes freed.
    ///
    /// # Errors
    /// When the runtime cannot list images or containers.
    pub async fn delete_unused(&self) -> Result<u64, RuntimeError> {
        self.free(u64::MAX, Instant::now()).await
    }
}

/// Publishes an event about the node (`FreeDiskSpaceFailed`, `NodeHasDiskPressure`…), as
/// the kubelet does.
pub(crate) async fn node_event(
    client: &kube::Client,
    node: &str,
    warning: bool,
    reason: &str,
    message: String,
) {
    use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
    let now = Time(jiff::Timestamp::now());
    let event = Event {
        metadata: ObjectMeta {
            name: Some(format!(
                "{node}.{:x}",
                jiff::Timestamp::now().as_nanosecond()
            )),
            namespace: Some("default".into()),
            ..Default::default()
        },
        involved_object: ObjectReference {
            kind: Some("Node".into()),
            name: Some(node.into()),
            // The kubelet's node reference uses the node name as UID.
            uid: Some(node.into()),
            ..Default::default()
        },
        reason: Some(reason.into()),
        message: Some(message),
        type_: Some(if warning { "Warning" } else { "Normal" }.into()),
        source: Some(EventSource {
            component: Some("kubelet".into()),
            host: Some(node.into()),
        }),
        first_timestamp: Some(now.clone()),
        last_timestamp: Some(now),
        count: Some(1),
        reporting_component: Some("kubelet".into()),
        reporting_instance: Some(node.into()),
        ..Default::default()
    };
    let api: kube::Api<Event> = kube::Api::namespaced(client.clone(), "default");
    if let Err(e) = api.create(&kube::api::PostParams::default(), &event).await {
        tracing::debug!(error = %e, "cannot publish node event");
    }
}

/// Runs threshold-driven GC every `policy.period` until `shutdown`; `imagefs` is read for
/// the filesystem's free and total bytes. High threshold 100 disables it.
pub async fn run(
    gc: Arc<ImageGc>,
    imagefs: Arc<dyn Fn() -> Option<(u64, u64)> + Send + Sync>,
    client: kube::Client,
    node: String,
    shutdown: tokio_util::sync::CancellationToken,
) {
    let policy = gc.policy();
    if policy.high_threshold_percent >= 100 {
        tracing::info!("image-gc-high-threshold is 100: image garbage collection disabled");
        return;
    }
    let mut tick = tokio::time::interval(policy.period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.cancelled() => return,
        }
        let Some((available, capacity)) = imagefs() else {
            continue;
        };
        match gc.garbage_collect(available, capacity).await {
            Ok(0) => {}
            Ok(freed) => tracing::info!(freed, "image garbage collection"),
            Err(e @ ImageGcError::NotEnough { .. }) => {
                tracing::warn!(error = %e, "image garbage collection");
                node_event(&client, &node, true, "FreeDiskSpaceFailed", e.to_string()).await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "image garbage collection failed");
                node_event(&client, &node, true, "ImageGCFailed", e.to_string()).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn img(d: &str, size: u64, in_use: bool, first: Instant, last: Instant) -> Tracked {
        Tracked {
            digest: d.into(),
            names: vec![format!("{d}:latest")],
            size,
            in_use,
            first_detected: first,
            last_used: last,
        }
    }

    #[test]
    fn plan_takes_unused_images_least_recently_used_first_until_enough() {
        let t0 = Instant::now();
        let now = t0 + Duration::from_secs(600);
        let s = Duration::from_secs(1);
        let images = vec![
            img("used", 100, true, t0, t0),
            img("recent", 100, false, t0, t0 + 300 * s),
            img("old", 100, false, t0, t0 + 10 * s),
            img("older", 100, false, t0, t0 + 5 * s),
        ];
        let p = plan(&images, 150, now, Duration::from_secs(120));
        let d: Vec<&str> = p.iter().map(|i| i.digest.as_str()).collect();
        assert_eq!(d, ["older", "old"]);
    }

    #[test]
    fn plan_keeps_images_younger_than_the_minimum_age() {
        let t0 = Instant::now();
        let images = vec![img("new", 100, false, t0, t0)];
        assert!(
            plan(
                &images,
                100,
                t0 + Duration::from_secs(60),
                Duration::from_secs(120)
            )
            .is_empty()
        );
        assert_eq!(
            plan(
                &images,
                100,
                t0 + Duration::from_secs(121),
                Duration::from_secs(120)
            )
            .len(),
            1
        );
    }

    #[test]
    fn amount_to_free_brings_usage_to_the_low_threshold() {
        // 90% used, high 85, low 80: free 10% of capacity.
        assert_eq!(amount_to_free(100, 1000, 85, 80), 100);
        // 84% used: below the high threshold, nothing.
        assert_eq!(amount_to_free(160, 1000, 85, 80), 0);
        // 100 disables GC.
        assert_eq!(amount_to_free(0, 1000, 100, 80), 0);
    }

    #[test]
    fn policy_validation_follows_the_kubelet() {
        assert!(ImageGcPolicy::default().validate().is_ok());
        let mut p = ImageGcPolicy {
            low_threshold_percent: 90,
            ..Default::default()
        };
        assert!(p.validate().is_err());
        p.high_threshold_percent = 101;
        assert!(p.validate().is_err());
        p.high_threshold_percent = 1;
        p.low_threshold_percent = 0;
        assert!(p.validate().is_ok());
    }

    struct FakeStore {
        images: Vec<StoredImage>,
        used: HashSet<String>,
        removed: Mutex<Vec<String>>,
    }

    impl ImageStore for FakeStore {
        fn images(&self) -> RuntimeFuture<'_, Vec<StoredImage>> {
            let removed = self.removed.lock().unwrap().clone();
            let v = self
                .images
                .iter()
                .filter(|i| !removed.contains(&i.name))
                .cloned()
                .collect();
            async move { Ok(v) }.boxed()
        }
        fn in_use(&self) -> RuntimeFuture<'_, HashSet<String>> {
            let u = self.used.clone();
            async move { Ok(u) }.boxed()
        }
        fn remove<'a>(&'a self, name: &'a str) -> RuntimeFuture<'a, ()> {
            self.removed.lock().unwrap().push(name.to_string());
            async { Ok(()) }.boxed()
        }
    }

    #[tokio::test]
    async fn delete_unused_removes_every_tag_of_unused_images_and_keeps_used_ones() {
        let si = |n: &str, d: &str| StoredImage {
            name: n.into(),
            digest: d.into(),
            size: 10,
        };
        let store = Arc::new(FakeStore {
            images: vec![si("a:1", "da"), si("a:latest", "da"), si("b:1", "db")],
            used: ["b:1".to_string()].into(),
            removed: Mutex::default(),
        });
        let gc = ImageGc::new(
            store.clone(),
            ImageGcPolicy {
                min_age: Duration::ZERO,
                ..Default::default()
            },
        );
        assert_eq!(gc.delete_unused().await.unwrap(), 10);
        let mut r = store.removed.lock().unwrap().clone();
        r.sort();
        assert_eq!(r, ["a:1", "a:latest"]);
    }

    #[tokio::test]
    async fn freeing_too_little_is_reported_with_upstream_wording() {
        let store = Arc::new(FakeStore {
            images: vec![StoredImage {
                name: "a:1".into(),
                digest: "da".into(),
                size: 10,
            }],
            used: HashSet::new(),
            removed: Mutex::default(),
        });
        let gc = ImageGc::new(
            store,
            ImageGcPolicy {
                min_age: Duration::ZERO,
                ..Default::default()
            },
        );
        let e = gc.garbage_collect(0, 1000).await.unwrap_err();
        assert_eq!(
            e.to_string(),
            "Failed to garbage collect required amount of images. Attempted to free 200 bytes, but only found 10 bytes eligible to free."
        );
    }
}
