//! The Kubernetes API server: HTTPS, discovery, OpenAPI, resource registry, verbs, watch.
//!
//! Owns: everything under `/api` and `/apis`. May call: [`crate::store`] (the only component
//! that does) and [`crate::pki`].

pub mod defaults;
pub mod openapi;
pub mod patch;
pub mod table;
pub mod validation;
