//! Lease expiry: an in-memory clock of lease deadlines, fed by applied lease changes, and the
//! leader-only task that proposes revokes for expired leases.
//!
//! Lease *state* (id, granted TTL, attached keys) is persisted by the state machine
//! (`mvcc`); deadlines are not, as in etcd: every member keeps deadlines from the time it
//! applied the grant or the last keep-alive, and a member that becomes leader restarts every
//! lease with its full TTL (etcd's `Promote`), so a leader change never expires leases early.
//! Only the leader acts on expiry, by proposing `LeaseRevoke` through raft: the deletes of the
//! attached keys then appear on every member as ordinary delete events in one revision.
//!
//! Keep-alives also go through raft (a small `LeaseKeepAlive` entry) instead of etcd's
//! leader-local renewal with forwarding: then a keep-alive received by a follower needs no
//! extra forwarding RPC, every member's clock stays close to the leader's (useful for
//! `time_to_live` answered locally and for the next leader), and a keep-alive is acknowledged
//! only once a quorum has recorded it. The cost is one tiny log entry per keep-alive, which is
//! fine for Kubernetes (the API server keeps leases alive rarely; node heartbeats are `Lease`
//! objects, i.e. puts).
//!
//! May call: the store's own proposal path (through a `Weak` handle) and
//! `Replicator::status`.

use std::collections::HashMap;
use std::sync::{Mutex, Weak};
use std::time::Duration;

use tokio::time::Instant;

use super::mvcc::LeaseChange;

#[derive(Clone, Copy, Debug)]
struct Deadline {
    at: Instant,
    ttl: i64,
    /// When a revoke was last proposed (to avoid proposing it on every tick).
    revoke_proposed: Option<Instant>,
}

/// Deadlines of every known lease.
#[derive(Default)]
pub(crate) struct LeaseClock {
    inner: Mutex<HashMap<i64, Deadline>>,
}

/// etcd's `MaxLeaseTTL`.
pub(crate) const MAX_TTL: i64 = 9_000_000_000;

/// `now + ttl` seconds, saturating far in the future instead of overflowing `Instant`.
fn deadline_after(now: Instant, ttl: i64) -> Instant {
    let secs = u64::try_from(ttl.clamp(1, MAX_TTL)).unwrap_or(1);
    now.checked_add(Duration::from_secs(secs))
        .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 86_400))
}

impl LeaseClock {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i64, Deadline>> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Replaces every deadline with a full TTL from now (open, restore).
    pub(crate) fn load(&self, leases: &[(i64, i64)]) {
        let now = Instant::now();
        let mut m = self.lock();
        m.clear();
        for &(id, ttl) in leases {
            m.insert(
                id,
                Deadline {
                    at: deadline_after(now, ttl),
                    ttl,
                    revoke_proposed: None,
                },
            );
        }
    }

    /// Applies committed lease changes.
    pub(crate) fn on_changes(&self, changes: &[LeaseChange]) {
        if changes.is_empty() {
            return;
        }
        let now = Instant::now();
        let mut m = self.lock();
        for c in changes {
            match *c {
                LeaseChange::Granted { id, ttl } | LeaseChange::Renewed { id, ttl } => {
                    m.insert(
                        id,
                        Deadline {
                            at: deadline_after(now, ttl),
                            ttl,
                            revoke_proposed: None,
                        },
                    );
                }
                LeaseChange::Revoked { id } => {
                    m.remove(&id);
                }
            }
        }
    }

    /// Restarts every lease with its full TTL (this member just became leader).
    pub(crate) fn promote(&self) {
        let now = Instant::now();
        for d in self.lock().values_mut() {
            d.at = deadline_after(now, d.ttl);
            d.revoke_proposed = None;
        }
    }

    /// Leases past their deadline whose revoke was not proposed within `retry`; marks them.
    pub(crate) fn take_expired(&self, retry: Duration) -> Vec<i64> {
        let now = Instant::now();
        let mut out = Vec::new();
        for (id, d) in self.lock().iter_mut() {
            let due = d.revoke_proposed.is_none_or(|t| now >= t + retry);
            if d.at <= now && due {
                d.revoke_proposed = Some(now);
                out.push(*id);
            }
        }
        out.sort_unstable();
        out
    }

    /// Remaining whole seconds (rounded up) of lease `id`, if this member knows it.
    pub(crate) fn remaining(&self, id: i64) -> Option<i64> {
        let d = *self.lock().get(&id)?;
        let left = d.at.saturating_duration_since(Instant::now());
        Some(i64::try_from(left.as_millis().div_ceil(1000)).unwrap_or(i64::MAX))
    }
}

/// What the expiry loop needs from the store (implemented by the store's inner handle).
pub(crate) trait ExpiryHost: Send + Sync + 'static {
    fn clock(&self) -> &LeaseClock;
    /// Whether this member leads right now.
    fn is_leader(&self) -> bool;
    /// Proposes a revoke and waits for its outcome (errors are logged by the caller).
    fn revoke(&self, id: i64) -> super::state_machine::BoxFuture<'static, ()>;
}

/// Runs until the host is dropped: every `tick`, on the leader, proposes revokes for expired
/// leases; when this member becomes leader, restarts every lease's TTL first.
pub(crate) async fn expiry_loop<H: ExpiryHost>(host: Weak<H>, tick: Duration) {
    let mut was_leader = false;
    let tick = tick.max(Duration::from_millis(1));
    let mut interval = tokio::time::interval(tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let Some(h) = host.upgrade() else { return };
        let leader = h.is_leader();
        if leader && !was_leader {
            tracing::debug!("became leader: restarting lease ttls");
            h.clock().promote();
        }
        was_leader = leader;
        if !leader {
            continue;
        }
        // A revoke that did not apply (lost proposal, leader change) is retried.
        for id in h.clock().take_expired(tick.max(Duration::from_secs(2))) {
            tracing::debug!(lease = id, "lease expired: proposing revoke");
            tokio::spawn(h.revoke(id));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn expired_leases_are_reported_once_until_the_retry_delay() {
        let clock = LeaseClock::default();
        clock.on_changes(&[LeaseChange::Granted { id: 1, ttl: 1 }]);
        clock.on_changes(&[LeaseChange::Granted { id: 2, ttl: 100 }]);
        assert!(clock.take_expired(Duration::from_secs(60)).is_empty());
        assert_eq!(clock.remaining(2), Some(100));
        tokio::time::sleep(Duration::from_millis(1050)).await;
        assert_eq!(clock.take_expired(Duration::from_secs(60)), vec![1]);
        assert!(clock.take_expired(Duration::from_secs(60)).is_empty());
        // Becoming leader restarts the full TTL.
        clock.promote();
        assert!(clock.take_expired(Duration::ZERO).is_empty());
        assert_eq!(clock.remaining(1), Some(1));
        clock.on_changes(&[LeaseChange::Revoked { id: 1 }]);
        assert_eq!(clock.remaining(1), None);
        // Absurd TTLs (from a peer) must not overflow the clock.
        clock.on_changes(&[LeaseChange::Granted {
            id: 3,
            ttl: i64::MAX,
        }]);
        assert_eq!(clock.remaining(3), Some(MAX_TTL));
    }
}
