//! Domain core of the CaaS backend.
//!
//! Every entry point (HTTP functions, Kafka-triggered functions, socket nodes, the local tools) is a thin
//! shell over this crate. It is layered so that each layer uses only the ones above it in this list:
//!
//! - [`domain`]: the models, the wire protocol, Kafka envelopes and pure rules (no I/O);
//! - [`ports`]: the store, cache, bus, fan-out, blob and search ports, each with a real driver and an
//!   in-memory reference driver chosen by URL;
//! - [`services`]: the use cases (conversations, messages, sessions, moderation, history) written
//!   against the ports;
//! - [`runtime`]: what an entry point needs to run them (telemetry, HTTP plumbing, the Kafka-function
//!   runner, shutdown).
//!
//! Beside the layers, [`error`] (the one error type) and [`config`] (the `CAAS_*` environment) are used by
//! all of them.

#![warn(missing_docs)]

pub mod config;
pub mod domain;
pub mod error;
pub mod ports;
pub mod runtime;
pub mod services;

pub use error::{Error, Result};

/// Milliseconds since the Unix epoch; every timestamp the platform stores or sends uses this unit.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}
