//! Relays `caas.moderation` to this node's connections: the connections here of an ended session (or
//! of every session of a banned user) get a `session.revoked` frame and are closed. Read from the topic's end outside any group, as with
//! conversation changes: only the connections open right now matter, and a banned user who connects
//! later is refused at the handshake.

use crate::hub::Hub;
use caas_shared::bus::Bus;
use caas_shared::cache;
use caas_shared::events::{topics, SessionRevocation};
use caas_shared::protocol;
use caas_shared::Result;
use std::sync::Arc;
use std::time::Duration;

pub async fn start(bus: &dyn Bus, hub: Arc<Hub>) -> Result<()> {
    let mut events = bus.tail(topics::MODERATION).await?;
    tokio::spawn(async move {
        loop {
            match events.next().await {
                Ok(record) => match serde_json::from_slice::<SessionRevocation>(&record.payload) {
                    Ok(revocation) => {
                        let closed = hub.end_sessions(
                            &cache::user_channel(&revocation.app_id, &revocation.user_id),
                            revocation.session_id.as_deref(),
                            protocol::session_revoked(&revocation.reason).into(),
                        );
                        tracing::info!(app_id = %revocation.app_id, user_id = %revocation.user_id, session_id = ?revocation.session_id, correlation_id = %revocation.correlation_id, closed, "sessions revoked");
                    }
                    Err(e) => tracing::warn!(error = %e, "malformed moderation event skipped"),
                },
                Err(e) => {
                    tracing::error!(error = %e, "reading moderation events failed");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    });
    Ok(())
}
