//! Domain core of the CaaS backend.
//!
//! Every entry point (HTTP functions, Kafka-triggered functions, socket nodes, the local tools) is a thin
//! shell over this crate: it owns the models, the wire protocol, authentication, correlation ids,
//! configuration, the error type and the drivers for MongoDB, Redis and Kafka.

pub mod audit;
pub mod auth;
pub mod blob;
pub mod bus;
pub mod cache;
pub mod clock;
pub mod config;
pub mod conversations;
pub mod correlation;
pub mod error;
pub mod events;
pub mod fanout;
pub mod history;
pub mod http;
pub mod lambda;
pub mod model;
pub mod moderation;
pub mod protocol;
pub mod revisions;
#[cfg(feature = "search")]
pub mod search;
pub mod sessions;
pub mod store;
pub mod telemetry;

pub use error::{Error, Result};

/// Milliseconds since the Unix epoch; every timestamp the platform stores or sends uses this unit.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

/// Resolves on Ctrl-C or SIGTERM: every long-running entry point stops on either.
pub async fn shutdown_signal() {
    let mut terminate =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("installing SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
}
