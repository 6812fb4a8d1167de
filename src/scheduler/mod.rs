//! The scheduler: binds pending pods to nodes through `pods/binding`.
//!
//! Owns: filtering and scoring. May call: the API server as a client; never the store.
