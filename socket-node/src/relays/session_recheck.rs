//! Revocations that were stored but never announced: ending a session stores the revocation first and
//! announces it on `caas.moderation` after, and an announcement can be lost (the bus unreachable at
//! that moment), while a retried logout finds its token already refused. So every node also re-reads,
//! every `CAAS_SOCKET_SESSION_RECHECK_MS`, the sessions of the connections it holds — the store is the
//! truth — and closes those of revoked sessions the way an announcement would have. A lost announcement
//! then leaves a revoked socket open for one interval at most, not until its token expires.

use crate::hub::Hub;
use crate::shutdown::Shutdown;
use caas_shared::domain::protocol;
use caas_shared::ports::cache;
use caas_shared::ports::store::Store;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

/// Sessions looked up in one store read.
const BATCH: usize = 500;

pub async fn session_recheck(store: Arc<dyn Store>, hub: Arc<Hub>, every: Duration, mut shutdown: Shutdown) {
    let mut interval = tokio::time::interval(every);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    interval.tick().await;
    loop {
        tokio::select! {
            _ = shutdown.recv() => return,
            _ = interval.tick() => {}
        }
        // app → session → user: one session may hold several connections.
        let mut by_app: BTreeMap<String, HashMap<String, String>> = BTreeMap::new();
        for (app_id, user_id, session_id) in hub.sessions() {
            by_app.entry(app_id).or_default().insert(session_id, user_id);
        }
        for (app_id, sessions) in by_app {
            let ids: Vec<String> = sessions.keys().cloned().collect();
            for chunk in ids.chunks(BATCH) {
                let found = match store.find_sessions(&app_id, chunk).await {
                    Ok(found) => found,
                    Err(e) => {
                        tracing::warn!(error = %e, "session recheck failed; trying again next interval");
                        continue;
                    }
                };
                for session in found.into_iter().filter(|s| s.revoked_at.is_some()) {
                    let Some(user_id) = sessions.get(&session.id) else {
                        continue;
                    };
                    let frame = protocol::session_revoked("session revoked");
                    let closed =
                        hub.end_sessions(&cache::user_channel(&app_id, user_id), Some(&session.id), frame.into());
                    if closed > 0 {
                        tracing::warn!(%app_id, %user_id, session_id = %session.id, closed,
                            "connections of a revoked session found open (its announcement was lost); closed");
                    }
                }
            }
        }
    }
}
