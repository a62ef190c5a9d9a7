//! Local development tools: the gateway that serves every HTTP function on one port, and the bridge
//! that feeds Kafka records to Kafka-triggered functions the way AWS's event source mapping does.

pub mod bridge;

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let mut terminate =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("installing SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
}
