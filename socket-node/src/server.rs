//! Accepts connections, caps them, and shuts down gracefully: stop accepting, tell every connection and
//! relay to stop, wait for the connections (bounded by the grace period), then for the relays.

use crate::Node;
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;

pub struct Listener {
    pub node: Arc<Node>,
    pub listener: TcpListener,
}

impl Listener {
    /// Serves until `shutdown` completes, then drains connections.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let limit = Arc::clone(&self.node.connection_slots);
        tokio::pin!(shutdown);
        loop {
            let permit = tokio::select! {
                _ = &mut shutdown => break,
                permit = Arc::clone(&limit).acquire_owned() => permit.expect("semaphore is never closed"),
            };
            let (stream, peer) = tokio::select! {
                _ = &mut shutdown => break,
                accepted = self.listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            // A flood of connections that never finish their handshake is capped per address (and each
            // is bounded in time by the handshake timeout), so it cannot take every slot.
            let handshakes = &self.node.handshakes;
            let Some(handshake_place) = handshakes.enter(peer.ip(), self.node.settings.max_handshakes_per_ip) else {
                tracing::debug!(%peer, "too many handshakes from this address; closed");
                continue;
            };
            let _ = stream.set_nodelay(true);
            let node = Arc::clone(&self.node);
            let shutdown = node.shutdown_listener();
            tokio::spawn(async move {
                tracing::debug!(%peer, "accepted");
                crate::connection::serve(node, stream, handshake_place, shutdown).await;
                drop(permit);
            });
        }
        tracing::info!(connections = self.node.hub.connection_count(), "shutting down");
        self.node.begin_shutdown();
        // Every connection (and every long-polling session) holds one of the slots until it has finished.
        let all_slots = u32::try_from(self.node.settings.max_connections).unwrap_or(u32::MAX);
        if tokio::time::timeout(self.node.settings.shutdown_grace, limit.acquire_many(all_slots))
            .await
            .is_err()
        {
            tracing::warn!("some connections did not close within the grace period");
        }
        self.node.stop_relays().await;
    }
}
