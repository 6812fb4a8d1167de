//! Periodic compaction of the store's history, as kube-apiserver does: every interval, compact
//! to the revision seen one interval earlier, so watchers and paged lists have at least one
//! interval of history while the database does not grow without bound.

use super::storage::Backend;
use crate::store::types::RangeRequest;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often history is compacted (upstream's default).
pub const INTERVAL: Duration = Duration::from_secs(300);

async fn current_revision(backend: &dyn Backend) -> Option<i64> {
    backend
        .range(RangeRequest {
            key: b"/registry/".to_vec(),
            count_only: true,
            serializable: true,
            ..Default::default()
        })
        .await
        .ok()
        .map(|r| r.header.revision)
}

/// Run until `shutdown`.
pub async fn run(backend: Arc<dyn Backend>, interval: Duration, shutdown: CancellationToken) {
    let mut previous: Option<i64> = None;
    let mut ticker = tokio::time::interval(interval);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        if let Some(rev) = previous {
            match backend.compact(rev).await {
                Ok(()) => tracing::debug!(revision = rev, "compacted store history"),
                Err(e) => tracing::warn!(revision = rev, error = %e, "compaction failed"),
            }
        }
        previous = current_revision(backend.as_ref()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::storage::memory::MemoryBackend;
    use crate::store::types::*;

    #[tokio::test]
    async fn history_older_than_one_interval_is_compacted() {
        let mem = MemoryBackend::new();
        let put = |v: &str| TxnRequest {
            compare: vec![],
            success: vec![RequestOp::Put(PutRequest {
                key: b"/registry/k".to_vec(),
                value: v.as_bytes().to_vec(),
                ..Default::default()
            })],
            failure: vec![],
        };
        let first = mem.txn(put("1")).await.unwrap().header.revision;
        mem.txn(put("2")).await.unwrap();
        let stop = CancellationToken::new();
        let task = tokio::spawn(run(
            Arc::new(mem.clone()),
            Duration::from_millis(20),
            stop.clone(),
        ));
        let old_read = || {
            mem.range(RangeRequest {
                key: b"/registry/k".to_vec(),
                revision: first,
                ..Default::default()
            })
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while old_read().await.is_ok() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "history was never compacted"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // The newest value stays readable.
        let now = mem
            .range(RangeRequest {
                key: b"/registry/k".to_vec(),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(now.kvs[0].value, b"2");
        stop.cancel();
        task.await.unwrap();
    }
}
