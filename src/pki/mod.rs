//! Certificate authorities, certificates, kubeconfigs and join tokens.
//!
//! Owns: everything under `<data-dir>/server/tls`. May call: nothing but the filesystem.

pub mod token;
