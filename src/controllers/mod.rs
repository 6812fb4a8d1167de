//! Controllers that reconcile workloads (ReplicaSet, Deployment, …).
//!
//! Owns: one reconcile loop per kind, all driven by [`runtime`]. May call: the API server as a
//! client; never the store.

pub mod labels;
pub mod runtime;
