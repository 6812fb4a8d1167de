//! Watchers: replay of history from a start revision, then live events, with no gap and no
//! duplicate, and never an unbounded buffer.
//!
//! The applier publishes each committed batch's events (with `prev_kv`) on a bounded
//! `broadcast` channel *after* the batch is committed, so a published revision is always
//! readable from sled. A watcher subscribes before it looks at the current revision, then:
//!
//! - **History** mode: reads whole revisions from sled (`Mvcc::history`) from `next_rev` up
//!   to the current revision, in chunks; then switches to live.
//! - **Live** mode: takes batches from the channel, skipping revisions below `next_rev`
//!   (already replayed). Every revision committed after the subscription is on the channel,
//!   and every earlier one was in sled when history was read, so nothing is missed.
//!
//! A watcher too slow for the channel gets `Lagged` and goes back to history mode: the live
//! feed never blocks writers and never grows. If history below `next_rev` was compacted in
//! the meantime, the watcher ends with `Compacted` (etcd does the same). A snapshot restore
//! sends `Reset`, which also sends live watchers back to history.
//!
//! May call: `Mvcc` reads, `Replicator::status` (response headers).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::sync::{Notify, broadcast};

use super::error::{Result, StoreError};
use super::mvcc::{KeyRange, RevisionEvents};
use super::setup::{Feed, Shared};
use super::state_machine::Replicator;
use super::types::{Event, EventType, ResponseHeader, Revision, WatchRequest, WatchResponse};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Reading revisions `next_rev..=current` from sled.
    History,
    /// Taking applied batches from the broadcast channel.
    Live,
}

/// Asks a watcher for a progress notification; cheap to clone, usable from any task.
#[derive(Clone, Default)]
pub struct ProgressRequester {
    inner: Arc<ProgressFlag>,
}

#[derive(Default)]
struct ProgressFlag {
    requested: AtomicBool,
    notify: Notify,
}

impl ProgressRequester {
    /// The watcher's next `recv` yields a progress notification once it has caught up.
    pub fn request(&self) {
        self.inner.requested.store(true, Ordering::Release);
        self.inner.notify.notify_one();
    }

    fn take(&self) -> bool {
        self.inner.requested.swap(false, Ordering::AcqRel)
    }
}

enum Wake {
    Feed(std::result::Result<Arc<Feed>, broadcast::error::RecvError>),
    Progress,
    Tick,
}

/// One watch. Dropping it cancels the watch.
pub struct Watcher {
    shared: Arc<Shared>,
    /// Weak: a forgotten watcher must not keep the raft node alive.
    replicator: Weak<dyn Replicator>,
    req: WatchRequest,
    range: KeyRange,
    /// The first revision not yet delivered (every change below it was delivered).
    next_rev: Revision,
    mode: Mode,
    rx: broadcast::Receiver<Arc<Feed>>,
    progress: ProgressRequester,
    ticker: Option<tokio::time::Interval>,
    /// Something was sent since the last progress tick.
    active: bool,
    done: bool,
}

impl Watcher {
    /// Starts a watch (see `Store::watch`).
    pub(crate) fn new(
        shared: Arc<Shared>,
        replicator: Arc<dyn Replicator>,
        req: WatchRequest,
    ) -> Result<Self> {
        // Subscribe first: every revision committed after this point reaches `rx`.
        let rx = shared.feed.subscribe();
        let current = shared.mvcc.current_revision();
        let compact = shared.mvcc.compact_revision();
        if req.start_revision > 0 && req.start_revision < compact {
            return Err(StoreError::Compacted {
                compact_revision: compact,
            });
        }
        let (next_rev, mode) = if req.start_revision <= 0 {
            (current + 1, Mode::Live)
        } else if req.start_revision > current {
            (req.start_revision, Mode::Live)
        } else {
            (req.start_revision, Mode::History)
        };
        let ticker = req.progress_notify.then(|| {
            let period = shared.opts.progress_interval.max(Duration::from_millis(1));
            let mut t = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
            t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            t
        });
        Ok(Watcher {
            range: KeyRange::new(&req.key, &req.range_end),
            shared,
            replicator: Arc::downgrade(&replicator),
            req,
            next_rev,
            mode,
            rx,
            progress: ProgressRequester::default(),
            ticker,
            active: false,
            done: false,
        })
    }

    /// Asks for a progress notification (an empty response whose header revision says every
    /// change up to it was delivered).
    pub fn request_progress(&self) {
        self.progress.request();
    }

    /// A handle to request progress from another task.
    pub fn progress_requester(&self) -> ProgressRequester {
        self.progress.clone()
    }

    /// The next batch of events (whole revisions, ascending) or progress notification;
    /// `Some(Err(Compacted))` once if the history this watcher still needs was compacted
    /// (then `None`); `None` once the state machine was dropped (raft stopped). Cancel-safe.
    pub async fn recv(&mut self) -> Option<Result<WatchResponse>> {
        if self.done {
            return None;
        }
        loop {
            if self.shared.stopped.load(Ordering::Acquire) {
                self.done = true;
                return None;
            }
            match self.mode {
                Mode::History => {
                    if let Some(out) = self.step_history() {
                        return Some(out);
                    }
                    // Long replays without matches must not hog the worker (and stay
                    // cancellable by timeouts).
                    tokio::task::yield_now().await;
                }
                Mode::Live => {
                    // Answer progress only when caught up with the feed, so that the
                    // revision it reports is as fresh as this member's.
                    if self.rx.is_empty() && self.progress.take() {
                        return Some(Ok(self.response(Vec::new())));
                    }
                    if let Some(out) = self.step_live().await {
                        return out;
                    }
                }
            }
        }
    }

    /// Reads one chunk of history; `None` = nothing to send yet, keep going.
    fn step_history(&mut self) -> Option<Result<WatchResponse>> {
        let current = self.shared.mvcc.current_revision();
        if self.next_rev > current {
            self.mode = Mode::Live;
            return None;
        }
        let range = &self.range;
        let chunk = self
            .shared
            .mvcc
            .history(self.next_rev, self.shared.opts.history_chunk, &|k| {
                range.contains(k)
            });
        match chunk {
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
            Ok(chunk) => {
                self.next_rev = self.next_rev.max(chunk.scanned_to + 1);
                let events = self.filter(chunk.revisions.iter());
                (!events.is_empty()).then(|| Ok(self.response(events)))
            }
        }
    }

    /// Waits for the live feed, a progress request or tick. `None` = keep looping;
    /// `Some(None)` = the store is gone.
    async fn step_live(&mut self) -> Option<Option<Result<WatchResponse>>> {
        let progress = self.progress.inner.clone();
        let wake = {
            let ticker = self.ticker.as_mut();
            let tick = async {
                match ticker {
                    Some(t) => {
                        t.tick().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                biased;
                msg = self.rx.recv() => Wake::Feed(msg),
                _ = progress.notify.notified() => Wake::Progress,
                _ = tick => Wake::Tick,
            }
        };
        match wake {
            Wake::Feed(Ok(feed)) => match &*feed {
                Feed::Reset => {
                    self.mode = Mode::History;
                    None
                }
                Feed::Closed => {
                    self.done = true;
                    Some(None)
                }
                Feed::Revisions(revs) => {
                    let fresh = revs.iter().filter(|r| r.revision >= self.next_rev);
                    let events = Self::filter_with(&self.req, &self.range, fresh);
                    if let Some(last) = revs.last() {
                        self.next_rev = self.next_rev.max(last.revision + 1);
                    }
                    (!events.is_empty()).then(|| Some(Ok(self.response(events))))
                }
            },
            Wake::Feed(Err(broadcast::error::RecvError::Lagged(n))) => {
                tracing::debug!(
                    missed = n,
                    next = self.next_rev,
                    "watcher lagged; re-reading history"
                );
                self.mode = Mode::History;
                None
            }
            Wake::Feed(Err(broadcast::error::RecvError::Closed)) => {
                self.done = true;
                Some(None)
            }
            // The flag is checked at the top of `recv`.
            Wake::Progress => None,
            Wake::Tick => {
                let idle = !std::mem::replace(&mut self.active, false);
                idle.then(|| Some(Ok(self.response(Vec::new()))))
            }
        }
    }

    fn filter<'a>(&self, revs: impl Iterator<Item = &'a RevisionEvents>) -> Vec<Event> {
        Self::filter_with(&self.req, &self.range, revs)
    }

    fn filter_with<'a>(
        req: &WatchRequest,
        range: &KeyRange,
        revs: impl Iterator<Item = &'a RevisionEvents>,
    ) -> Vec<Event> {
        let mut out = Vec::new();
        for r in revs {
            for e in &r.events {
                let dropped = match e.kind {
                    EventType::Put => req.filter_puts,
                    EventType::Delete => req.filter_deletes,
                };
                if dropped || !range.contains(&e.kv.key) {
                    continue;
                }
                out.push(Event {
                    kind: e.kind,
                    kv: e.kv.clone(),
                    prev_kv: if req.prev_kv { e.prev_kv.clone() } else { None },
                });
            }
        }
        out
    }

    fn response(&mut self, events: Vec<Event>) -> WatchResponse {
        if !events.is_empty() {
            self.active = true;
        }
        let st = self
            .replicator
            .upgrade()
            .map(|r| r.status())
            .unwrap_or_default();
        WatchResponse {
            header: ResponseHeader {
                cluster_id: st.cluster_id,
                member_id: st.id,
                // Capped: a watch from a future revision has seen nothing beyond the present.
                revision: (self.next_rev - 1).min(self.shared.mvcc.current_revision()),
                raft_term: st.term,
            },
            events,
        }
    }
}

#[cfg(test)]
#[path = "watch_tests.rs"]
mod tests;
