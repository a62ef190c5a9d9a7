//! Listens for the node's shutdown (mini-redis's `Shutdown`): every connection and background relay
//! holds one and stops when it fires.

use tokio::sync::broadcast;

pub struct Shutdown {
    /// Set once the signal has been seen, so later calls return at once.
    is_shutdown: bool,
    notify: broadcast::Receiver<()>,
}

impl Shutdown {
    pub fn new(notify: broadcast::Receiver<()>) -> Self {
        Self {
            is_shutdown: false,
            notify,
        }
    }

    /// Resolves once the node shuts down (the signal was sent, or its sender is gone).
    pub async fn recv(&mut self) {
        if self.is_shutdown {
            return;
        }
        let _ = self.notify.recv().await;
        self.is_shutdown = true;
    }
}
