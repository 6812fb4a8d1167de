//! k3rs: a lightweight Kubernetes distribution in one binary.
//!
//! Components, one module each (see each module's doc for what it owns and may call):
//! - [`cli`]: the command line, config file + env + flags merged in one place.
//! - [`store`]: the etcd replacement: MVCC on sled, replicated by raft-rs, watch, leases,
//!   and the etcd v3 gRPC facade.
//! - [`apiserver`]: the Kubernetes API over HTTPS; the only component that touches the store.
//! - [`controllers`], [`scheduler`]: ordinary API clients of the API server.
//! - [`agent`]: our kubelet, driving containerd; an API client like any remote agent.
//! - [`pki`]: certificate authorities, serving/client certificates, kubeconfigs, join tokens.
#![deny(unsafe_code)]

pub mod agent;
pub mod apiserver;
pub mod cli;
pub mod controllers;
pub mod cron;
pub mod deploy;
pub mod pki;
pub mod quantity;
pub mod quota;
pub mod scheduler;
pub mod store;
