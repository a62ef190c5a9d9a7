//! Keeps this node's connections present: every third of [`cache::PRESENCE_TTL`] the node vouches for
//! all of them in a few pipelined round trips. A node that dies stops vouching, and its users go
//! offline within the TTL (the presence sweep tells their watchers).

use crate::hub::Hub;
use crate::shutdown::Shutdown;
use caas_shared::ports::cache::{self, Cache};
use std::sync::Arc;

pub async fn presence_renewal(cache: Arc<dyn Cache>, hub: Arc<Hub>, mut shutdown: Shutdown) {
    let mut every = tokio::time::interval(cache::PRESENCE_TTL / 3);
    every.tick().await; // A connection records its presence when it opens.
    loop {
        tokio::select! {
            _ = shutdown.recv() => return,
            _ = every.tick() => {}
        }
        let _no_drop_meanwhile = hub.hold_presence().await;
        let live = hub.presence_holders();
        if let Err(e) = cache.presence_renew(&live).await {
            tracing::warn!(error = %e, connections = live.len(), "presence renewal failed");
        }
    }
}
