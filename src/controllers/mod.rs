//! Controllers that reconcile workloads (ReplicaSet, Deployment, …).
//!
//! Owns: one reconcile loop per kind. May call: the API server as a client; never the store.
