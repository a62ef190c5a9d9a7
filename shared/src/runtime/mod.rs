//! What an entry point needs around the use cases: telemetry, the HTTP plumbing shared by
//! every HTTP function, Kafka-event decoding, and the shutdown signal.

pub mod http;
pub mod kafka_function;
pub mod lambda;
pub mod telemetry;

/// Resolves on Ctrl-C or SIGTERM: every long-running entry point stops on either.
pub async fn shutdown_signal() {
    let mut terminate =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("installing SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
}
