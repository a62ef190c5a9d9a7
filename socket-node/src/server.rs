//! Accepts connections, caps them, and shuts down gracefully: stop accepting, tell every connection to
//! close with a close frame, wait for them (bounded by the grace period).

use crate::Node;
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::{broadcast, mpsc, Semaphore};

pub struct Listener {
    pub node: Arc<Node>,
    pub listener: TcpListener,
}

impl Listener {
    /// Serves until `shutdown` completes, then drains connections.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let limit = Arc::new(Semaphore::new(self.node.settings.max_connections));
        let (notify_shutdown, _) = broadcast::channel::<()>(1);
        // Every connection task holds a clone; recv() returns None once all have finished.
        let (done_tx, mut done_rx) = mpsc::channel::<()>(1);
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
            let _ = stream.set_nodelay(true);
            let node = Arc::clone(&self.node);
            let shutdown_rx = notify_shutdown.subscribe();
            let done = done_tx.clone();
            tokio::spawn(async move {
                tracing::debug!(%peer, "accepted");
                crate::connection::serve(node, stream, shutdown_rx).await;
                drop(permit);
                drop(done);
            });
        }
        tracing::info!(connections = self.node.hub.connection_count(), "shutting down");
        drop(notify_shutdown);
        drop(done_tx);
        if tokio::time::timeout(self.node.settings.shutdown_grace, done_rx.recv())
            .await
            .is_err()
        {
            tracing::warn!("some connections did not close within the grace period");
        }
    }
}
