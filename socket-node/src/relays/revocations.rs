//! `caas.moderation` to this node's connections: the connections here of an ended session (or of every
//! session of a banned user, or of every user of an app whose sessions all ended) get a `session.revoked` frame and are closed. A banned user who connects
//! later is refused at the handshake.

use super::tail;
use crate::hub::Hub;
use crate::shutdown::Shutdown;
use caas_shared::domain::events::{topics, SessionRevocation};
use caas_shared::domain::protocol;
use caas_shared::ports::bus::Bus;
use caas_shared::ports::cache;
use caas_shared::Result;
use std::future::Future;
use std::sync::Arc;

pub async fn revocations(bus: &dyn Bus, hub: Arc<Hub>, shutdown: Shutdown) -> Result<impl Future<Output = ()>> {
    tail(bus, topics::MODERATION, shutdown, move |revocation: SessionRevocation| {
        let frame = protocol::session_revoked(&revocation.reason);
        let closed = match &revocation.user_id {
            Some(user_id) => hub.end_sessions(
                &cache::user_channel(&revocation.app_id, user_id),
                revocation.session_id.as_deref(),
                frame.into(),
            ),
            // Every session of the app ended: each of its users' connections here closes.
            None => hub
                .local_channels(&cache::user_channel(&revocation.app_id, ""))
                .iter()
                .map(|user_channel| hub.end_sessions(user_channel, None, frame.clone().into()))
                .sum::<usize>(),
        };
        tracing::info!(app_id = %revocation.app_id, user_id = ?revocation.user_id, session_id = ?revocation.session_id, correlation_id = %revocation.correlation_id, closed, "sessions revoked");
    })
    .await
}
