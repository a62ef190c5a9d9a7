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
            // Connections that never finish their handshake are bounded per client address and in all
            // (each also by the handshake timeout): newcomers evict the oldest, so a flood cannot lock
            // real clients out. Behind a trusted proxy the client's address is known from the request.
            let address = (!self.node.is_trusted_proxy(peer.ip())).then_some(peer.ip());
            let ticket = self.node.handshakes.admit(address);
            let _ = stream.set_nodelay(true);
            let node = Arc::clone(&self.node);
            let shutdown = node.shutdown_listener();
            tokio::spawn(async move {
                tracing::debug!(%peer, "accepted");
                crate::connection::serve(node, stream, peer.ip(), ticket, shutdown).await;
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
