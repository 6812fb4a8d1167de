//! Apply off the raft thread: a [`StateMachine`] wrapper that hands committed batches to an
//! applier thread, so the raft loop can persist (fdatasync) the next Ready while the previous
//! one is written to sled.
//!
//! Owns: the applier thread and the wrapped state machine. Called only by the raft loop.
//!
//! Order is kept: a small batch (at most [`INLINE_MAX`] entries, what a single client or a
//! quiet cluster produces) is applied inline on the raft thread when nothing is queued or
//! being applied (`pending == 0`; only the raft thread raises it, the applier lowers it after
//! applying); anything else is queued behind the others without touching the lock the
//! applier holds while it applies. A quiet store therefore pays no thread hop (a single client's
//! latency is unchanged); a busy one overlaps apply with the next fdatasync. Everything that
//! needs the state at raft's applied index (`sync`, `snapshot`, `restore`) first waits until
//! the queue is empty. Durability is unchanged: only entries already persisted and committed
//! reach `apply`, and a crash replays them from the WAL.
//!
//! Failure rule: after a failed apply nothing later is applied (queued batches are dropped)
//! and every later call returns the error, so the raft loop stops.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use crate::store::error::{Result, StoreError};
use crate::store::state_machine::{CommittedEntry, StateMachine};

/// Batches queued before the raft loop waits (back-pressure on proposals).
const QUEUE: usize = 64;
/// Larger batches go to the applier thread: applying them costs more than the thread hop.
const INLINE_MAX: usize = 4;

struct Owned {
    index: u64,
    term: u64,
    data: Vec<u8>,
}

struct Job {
    entries: Vec<Owned>,
    up_to: u64,
}

struct State {
    sm: Mutex<Box<dyn StateMachine>>,
    /// Batches queued or being applied by the applier thread.
    pending: AtomicUsize,
    /// Signalled when `pending` drops to zero.
    idle: Condvar,
    idle_lock: Mutex<()>,
    /// The first apply error (the state machine must not go past it).
    failed: Mutex<Option<String>>,
}

/// A state machine applied on its own thread when the raft loop is busy.
pub struct Pipelined {
    state: Arc<State>,
    tx: Option<SyncSender<Job>>,
    thread: Option<JoinHandle<()>>,
    /// The highest `up_to` handed over (applied or queued).
    handed: u64,
}

impl Pipelined {
    /// Wrap `sm` and start its applier thread.
    ///
    /// # Errors
    /// If the thread cannot be spawned.
    pub fn new(sm: Box<dyn StateMachine>, name: &str) -> Result<Self> {
        let handed = sm.applied_index();
        let state = Arc::new(State {
            sm: Mutex::new(sm),
            pending: AtomicUsize::new(0),
            idle: Condvar::new(),
            idle_lock: Mutex::new(()),
            failed: Mutex::new(None),
        });
        let (tx, rx) = sync_channel(QUEUE);
        let st = state.clone();
        let thread = std::thread::Builder::new()
            .name(format!("apply-{name}"))
            .spawn(move || applier(&st, &rx))
            .map_err(|e| StoreError::Raft(format!("spawn apply thread: {e}")))?;
        Ok(Pipelined {
            state,
            tx: Some(tx),
            thread: Some(thread),
            handed,
        })
    }

    fn check(&self) -> Result<()> {
        match lock(&self.state.failed).as_ref() {
            Some(e) => Err(StoreError::Raft(format!("applying committed entries: {e}"))),
            None => Ok(()),
        }
    }

    /// Waits until every queued batch is applied; returns the state machine, locked.
    fn drained(&self) -> Result<MutexGuard<'_, Box<dyn StateMachine>>> {
        let mut g = lock(&self.state.idle_lock);
        while self.state.pending.load(Ordering::Acquire) != 0 {
            g = self
                .state
                .idle
                .wait(g)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
        drop(g);
        self.check()?;
        Ok(lock(&self.state.sm))
    }
}

fn lock<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn applier(st: &State, rx: &Receiver<Job>) {
    while let Ok(job) = rx.recv() {
        let mut sm = lock(&st.sm);
        if lock(&st.failed).is_none() {
            let batch: Vec<CommittedEntry<'_>> = job
                .entries
                .iter()
                .map(|e| CommittedEntry {
                    index: e.index,
                    term: e.term,
                    data: &e.data,
                })
                .collect();
            if let Err(e) = sm.apply(&batch, job.up_to) {
                tracing::error!(error = %e, "raft: applying committed entries failed");
                *lock(&st.failed) = Some(e.to_string());
            }
        }
        // Under the state machine's lock, so the raft thread never sees 0 while a batch it
        // must follow is still being applied.
        if st.pending.fetch_sub(1, Ordering::AcqRel) == 1 {
            let _g = lock(&st.idle_lock);
            st.idle.notify_all();
        }
        drop(sm);
    }
}

impl StateMachine for Pipelined {
    fn apply(&mut self, entries: &[CommittedEntry<'_>], up_to: u64) -> Result<()> {
        self.check()?;
        // Only this thread raises `pending`, so a zero read here stays zero until we queue
        // something: nothing is ahead of this batch, and the applier is done with the state
        // machine (it lowers `pending` after applying). Deciding *before* taking the lock
        // matters: the applier holds it for a whole large batch, and waiting for it here
        // would stall the raft loop (no fdatasync overlapping the apply, proposals piling
        // up) — which is what the pipeline exists to avoid.
        if entries.len() <= INLINE_MAX && self.state.pending.load(Ordering::Acquire) == 0 {
            // Nothing ahead of this batch: apply it here, without a thread hop.
            let out = lock(&self.state.sm).apply(entries, up_to);
            if let Err(e) = &out {
                *lock(&self.state.failed) = Some(e.to_string());
            }
            self.handed = self.handed.max(up_to);
            return out;
        }
        self.state.pending.fetch_add(1, Ordering::AcqRel);
        let job = Job {
            entries: entries
                .iter()
                .map(|e| Owned {
                    index: e.index,
                    term: e.term,
                    data: e.data.to_vec(),
                })
                .collect(),
            up_to,
        };
        let sent = self.tx.as_ref().is_some_and(|tx| tx.send(job).is_ok());
        if !sent {
            self.state.pending.fetch_sub(1, Ordering::AcqRel);
            return Err(StoreError::Raft("the apply thread is gone".into()));
        }
        self.handed = self.handed.max(up_to);
        Ok(())
    }

    fn applied_index(&self) -> u64 {
        self.handed
    }

    fn snapshot(&self) -> Result<Vec<u8>> {
        self.drained()?.snapshot()
    }

    fn restore(&mut self, snapshot: &[u8], index: u64) -> Result<()> {
        let out = self.drained()?.restore(snapshot, index);
        if out.is_ok() {
            self.handed = index;
        }
        out
    }

    fn sync(&mut self) -> Result<()> {
        self.drained()?.sync()
    }
}

impl Drop for Pipelined {
    fn drop(&mut self) {
        // Let the applier finish what was committed, then stop it.
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Records applied batches; slow, so that batches queue up behind each other.
    struct Slow {
        log: Arc<Mutex<Vec<u64>>>,
        applied: u64,
        fail_at: Option<u64>,
    }

    impl StateMachine for Slow {
        fn apply(&mut self, entries: &[CommittedEntry<'_>], up_to: u64) -> Result<()> {
            std::thread::sleep(Duration::from_millis(2));
            for e in entries {
                if Some(e.index) == self.fail_at {
                    return Err(StoreError::Corrupt("boom".into()));
                }
                self.log.lock().unwrap().push(e.index);
            }
            self.applied = up_to;
            Ok(())
        }
        fn applied_index(&self) -> u64 {
            self.applied
        }
        fn snapshot(&self) -> Result<Vec<u8>> {
            Ok(self.applied.to_le_bytes().to_vec())
        }
        fn restore(&mut self, _: &[u8], index: u64) -> Result<()> {
            self.applied = index;
            Ok(())
        }
        fn sync(&mut self) -> Result<()> {
            Ok(())
        }
    }

    fn batch(p: &mut Pipelined, from: u64, to: u64) -> Result<()> {
        let data = vec![vec![1u8]; (to - from + 1) as usize];
        let entries: Vec<_> = (from..=to)
            .zip(&data)
            .map(|(index, d)| CommittedEntry {
                index,
                term: 1,
                data: d,
            })
            .collect();
        p.apply(&entries, to)
    }

    #[test]
    fn batches_apply_in_order_and_a_snapshot_sees_all_of_them() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let sm = Slow {
            log: log.clone(),
            applied: 0,
            fail_at: None,
        };
        let mut p = Pipelined::new(Box::new(sm), "t").unwrap();
        for i in 0..50 {
            batch(&mut p, i * 3 + 1, i * 3 + 3).unwrap();
        }
        assert_eq!(p.applied_index(), 150);
        let snap = p.snapshot().unwrap();
        assert_eq!(snap, 150u64.to_le_bytes().to_vec());
        assert_eq!(*log.lock().unwrap(), (1..=150).collect::<Vec<_>>());
    }

    #[test]
    fn nothing_is_applied_after_a_failed_batch_and_later_calls_fail() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let sm = Slow {
            log: log.clone(),
            applied: 0,
            fail_at: Some(10),
        };
        let mut p = Pipelined::new(Box::new(sm), "t").unwrap();
        let mut failed = false;
        for i in 0..20 {
            if batch(&mut p, i * 2 + 1, i * 2 + 2).is_err() {
                failed = true;
                break;
            }
        }
        // Either a later apply or the barrier reports the failure.
        assert!(failed || p.sync().is_err());
        assert!(p.sync().is_err());
        assert_eq!(*log.lock().unwrap(), (1..=9).collect::<Vec<_>>());
    }
}
