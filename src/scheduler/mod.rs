//! The scheduler: binds pending pods to nodes through `pods/binding`.
//!
//! Owns: filtering ([`filters`]) and scoring ([`score`]) as pure functions, and the driver
//! ([`driver`]) that feeds pending pods through them one at a time. May call: the API server as
//! a client (through the shared controller runtime); never the store.

mod cache;
mod driver;
pub mod filters;
pub mod resources;
pub mod score;
#[cfg(test)]
mod tests;
mod volumes;

pub use driver::unschedulable_message;

use crate::controllers::runtime::{LEASE_NAME, LeaseTimings, lead};
use tokio_util::sync::CancellationToken;

/// The scheduler name this scheduler serves.
pub const SCHEDULER_NAME: &str = "default-scheduler";

/// Scheduler configuration.
#[derive(Clone, Debug)]
pub struct SchedulerConfig {
    /// Leader-election identity (shared with the controllers of the same process).
    pub identity: String,
    /// Leader-lease timings.
    pub lease: LeaseTimings,
}

/// Run the scheduler while this process holds the leader lease, until `shutdown`.
pub async fn run(client: kube::Client, config: SchedulerConfig, shutdown: CancellationToken) {
    lead(
        client.clone(),
        LEASE_NAME,
        config.identity.clone(),
        config.lease.clone(),
        shutdown,
        move |term| driver::run(client.clone(), term),
    )
    .await;
}
