//! Creating and deleting an owner's pods, as upstream's pod control does for the ReplicaSet,
//! DaemonSet and Job controllers: creations in slow-start batches (1, 2, 4, … so a template
//! the API server rejects costs one failed request, not hundreds), one `SuccessfulCreate` /
//! `SuccessfulDelete` event per pod (with the pod as related object) and a `FailedCreate`
//! event when a creation fails.
//!
//! Owns: nothing. May call: the API server (pods, events).

use super::runtime::{Ctx, NORMAL, WARNING};
use futures::{StreamExt, stream};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, PostParams};
use kube::{Resource, ResourceExt};

/// Parallel deletions per call (deletions are not slow-started, as upstream).
const DELETE_BURST: usize = 32;

/// Batch sizes of a slow start over `n` items: 1, 2, 4, … until `n` is covered.
fn slow_start_batches(n: usize) -> Vec<usize> {
    let mut out = Vec::new();
    let (mut left, mut size) = (n, 1usize);
    while left > 0 {
        let take = size.min(left);
        out.push(take);
        left -= take;
        size = size.saturating_mul(2);
    }
    out
}

/// Create `pods` (already carrying the owner reference) in slow-start batches. Stops after the
/// first batch with a failure and returns its first error; every success gets its event.
pub async fn create_pods<K, C>(
    ctx: &Ctx<C>,
    owner: &K,
    api: &Api<Pod>,
    pods: Vec<Pod>,
) -> Result<usize, kube::Error>
where
    K: Resource<DynamicType = ()>,
{
    let mut pods = pods.into_iter();
    let mut created = 0;
    for size in slow_start_batches(pods.len()) {
        let batch: Vec<Pod> = pods.by_ref().take(size).collect();
        let results: Vec<Result<Pod, kube::Error>> = stream::iter(batch)
            .map(|pod| {
                let api = api.clone();
                async move { api.create(&PostParams::default(), &pod).await }
            })
            .buffer_unordered(size)
            .collect()
            .await;
        let mut first_error = None;
        for r in results {
            match r {
                Ok(p) => {
                    created += 1;
                    let note = format!("Created pod: {}", p.name_any());
                    ctx.event_related(owner, &p, NORMAL, "SuccessfulCreate", note)
                        .await;
                }
                Err(e) => {
                    let note = format!("Error creating: {e}");
                    ctx.event(owner, WARNING, "FailedCreate", note).await;
                    first_error.get_or_insert(e);
                }
            }
        }
        if let Some(e) = first_error {
            return Err(e);
        }
    }
    Ok(created)
}

/// Delete `victims` (a pod already gone counts as deleted), one `SuccessfulDelete` event each.
pub async fn delete_pods<K, C>(
    ctx: &Ctx<C>,
    owner: &K,
    api: &Api<Pod>,
    victims: Vec<Pod>,
) -> Result<(), kube::Error>
where
    K: Resource<DynamicType = ()>,
{
    let results: Vec<(Pod, Result<(), kube::Error>)> = stream::iter(victims)
        .map(|p| {
            let api = api.clone();
            async move {
                let r = match api.delete(&p.name_any(), &DeleteParams::default()).await {
                    Ok(_) => Ok(()),
                    Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
                    Err(e) => Err(e),
                };
                (p, r)
            }
        })
        .buffer_unordered(DELETE_BURST)
        .collect()
        .await;
    let mut first_error = None;
    for (p, r) in results {
        match r {
            Ok(()) => {
                let note = format!("Deleted pod: {}", p.name_any());
                ctx.event_related(owner, &p, NORMAL, "SuccessfulDelete", note)
                    .await;
            }
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    first_error.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use super::slow_start_batches;

    #[test]
    fn slow_start_doubles_until_every_item_is_covered() {
        assert_eq!(slow_start_batches(0), Vec::<usize>::new());
        assert_eq!(slow_start_batches(1), vec![1]);
        assert_eq!(slow_start_batches(10), vec![1, 2, 4, 3]);
        assert_eq!(slow_start_batches(100).iter().sum::<usize>(), 100);
        assert_eq!(slow_start_batches(100).len(), 7);
    }
}
