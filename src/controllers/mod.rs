//! Controllers that reconcile workloads (ReplicaSet, Deployment, Job, CronJob, …) and cluster housekeeping
//! (garbage collection, namespaces, service accounts, endpoints, node lifecycle).
//!
//! Owns: one reconcile loop per kind, all driven by [`runtime`]. May call: the API server as a
//! client; never the store.

mod controller_revision;
mod cronjob;
mod cronjob_util;
mod daemonset;
mod deployment;
pub mod deployment_util;
mod discovery;
mod disruption;
mod endpoints;
mod events_ttl;
mod garbage_collector;
mod job;
mod job_orphans;
mod job_util;
pub mod labels;
mod namespace;
mod node_lifecycle;
mod pod_control;
mod pods;
mod replicaset;
mod resourcequota;
pub mod runtime;
mod serviceaccount;
mod statefulset;
mod ttl_after_finished;
mod volume_binding;

use runtime::{LEASE_NAME, LeaseTimings, lead};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Configuration of the controllers.
#[derive(Clone, Debug)]
pub struct ControllersConfig {
    /// Leader-election identity (shared with the scheduler of the same process).
    pub identity: String,
    /// Leader-lease timings.
    pub lease: LeaseTimings,
    /// Pod network; each node gets a /24 of it.
    pub cluster_cidr: String,
    /// The cluster CA (PEM), published as `kube-root-ca.crt` in every namespace.
    pub ca_pem: String,
    /// A node whose lease is not renewed for this long becomes `Ready=Unknown`.
    pub node_monitor_grace: Duration,
    /// Toleration seconds for `unreachable`/`not-ready` when a pod declares none.
    pub default_eviction: Duration,
    /// Events not written for this long are deleted (upstream's `--event-ttl`).
    pub event_ttl: Duration,
    /// Base of the Job pod-recreation backoff after failures (doubles per failure, 6 min cap).
    pub job_backoff_base: Duration,
}

impl ControllersConfig {
    /// Defaults matching upstream (40 s grace, 300 s eviction, 1 h event TTL).
    pub fn new(identity: String, cluster_cidr: String, ca_pem: String) -> Self {
        Self {
            identity,
            lease: LeaseTimings::default(),
            cluster_cidr,
            ca_pem,
            node_monitor_grace: Duration::from_secs(40),
            default_eviction: Duration::from_secs(300),
            event_ttl: Duration::from_secs(3600),
            job_backoff_base: Duration::from_secs(10),
        }
    }
}

/// Run every controller while this process holds the leader lease, until `shutdown`.
pub async fn run(client: kube::Client, config: ControllersConfig, shutdown: CancellationToken) {
    lead(
        client.clone(),
        LEASE_NAME,
        config.identity.clone(),
        config.lease.clone(),
        shutdown,
        move |term| run_all(client.clone(), config.clone(), term),
    )
    .await;
}

async fn run_all(client: kube::Client, config: ControllersConfig, term: CancellationToken) {
    futures::join!(
        replicaset::run(client.clone(), config.clone(), term.clone()),
        deployment::run(client.clone(), config.clone(), term.clone()),
        garbage_collector::run(client.clone(), term.clone()),
        namespace::run(client.clone(), config.clone(), term.clone()),
        serviceaccount::run(client.clone(), config.clone(), term.clone()),
        endpoints::run(client.clone(), config.clone(), term.clone()),
        node_lifecycle::run(client.clone(), config.clone(), term.clone()),
        daemonset::run(client.clone(), config.clone(), term.clone()),
        statefulset::run(client.clone(), config.clone(), term.clone()),
        disruption::run(client.clone(), config.clone(), term.clone()),
        resourcequota::run(client.clone(), config.clone(), term.clone()),
        events_ttl::run(client.clone(), config.clone(), term.clone()),
        job::run(client.clone(), config.clone(), term.clone()),
        cronjob::run(client.clone(), config.clone(), term.clone()),
        ttl_after_finished::run(client.clone(), term.clone()),
        volume_binding::run(client.clone(), config.clone(), term.clone()),
    );
}
