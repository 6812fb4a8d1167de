//! A `slog` drain that forwards raft-rs's log records to `tracing`.
//!
//! Owns nothing; raft-rs logs through slog, k3rs through tracing. raft-rs is chatty at info
//! (every election step), so its info records become tracing `debug` and its debug records
//! `trace`, keeping k3rs quiet at info; warnings and errors keep their level.

use std::fmt::Write as _;

use slog::{Drain, KV, OwnedKVList, Record};

/// The drain; build a logger with [`logger`].
pub struct TracingDrain;

struct KvString(String);

impl slog::Serializer for KvString {
    fn emit_arguments(&mut self, key: slog::Key, val: &std::fmt::Arguments<'_>) -> slog::Result {
        let _ = write!(self.0, " {key}={val}");
        Ok(())
    }
}

impl Drain for TracingDrain {
    type Ok = ();
    type Err = slog::Never;

    fn log(&self, record: &Record<'_>, values: &OwnedKVList) -> Result<(), slog::Never> {
        // raft-rs logs a lot at debug; skip the formatting when nobody listens.
        let enabled = match record.level() {
            slog::Level::Critical | slog::Level::Error => {
                tracing::enabled!(target: "raft", tracing::Level::ERROR)
            }
            slog::Level::Warning => tracing::enabled!(target: "raft", tracing::Level::WARN),
            slog::Level::Info => tracing::enabled!(target: "raft", tracing::Level::DEBUG),
            slog::Level::Debug | slog::Level::Trace => {
                tracing::enabled!(target: "raft", tracing::Level::TRACE)
            }
        };
        if !enabled {
            return Ok(());
        }
        let mut kv = KvString(String::new());
        let _ = record.kv().serialize(record, &mut kv);
        let _ = values.serialize(record, &mut kv);
        let msg = record.msg();
        let kv = kv.0;
        match record.level() {
            slog::Level::Critical | slog::Level::Error => {
                tracing::error!(target: "raft", "{msg}{kv}")
            }
            slog::Level::Warning => tracing::warn!(target: "raft", "{msg}{kv}"),
            slog::Level::Info => tracing::debug!(target: "raft", "{msg}{kv}"),
            slog::Level::Debug | slog::Level::Trace => {
                tracing::trace!(target: "raft", "{msg}{kv}")
            }
        }
        Ok(())
    }
}

/// A slog logger for raft-rs, tagged with this member's name.
pub fn logger(name: &str) -> slog::Logger {
    slog::Logger::root(TracingDrain.fuse(), slog::o!("member" => name.to_string()))
}
