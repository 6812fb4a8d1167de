//! The built-in agent (our kubelet): registers the node, runs pods in containerd.
//!
//! Owns: node registration and heartbeat, pod workers, the containerd runtime, CNI, volumes,
//! probes, logs/exec. May call: the API server (as a client) and containerd; never the store.

pub mod runtime;
