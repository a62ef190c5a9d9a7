//! Offline notices for users whose node died. A clean disconnect announces itself; a crashed node
//! cannot, but its connections' presence lapses after [`cache::PRESENCE_TTL`]. Every node therefore
//! re-reads, every third of that TTL, the presence of the users its own connections watch, and tells
//! those watchers about any change it has not seen. Watchers may hear a state twice; `presence` events
//! carry the state, not a transition, so a repeat is harmless.

use crate::hub::Hub;
use crate::shutdown::Shutdown;
use caas_shared::domain::protocol;
use caas_shared::ports::cache::{self, Cache};
use serde_json::json;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

pub async fn presence_sweep(cache: Arc<dyn Cache>, hub: Arc<Hub>, mut shutdown: Shutdown) {
    let mut known: HashMap<String, bool> = HashMap::new();
    let mut every = tokio::time::interval(cache::PRESENCE_TTL / 3);
    loop {
        tokio::select! {
            _ = shutdown.recv() => return,
            _ = every.tick() => {}
        }
        let watched = hub.local_channels(cache::PRESENCE_CHANNEL_PREFIX);
        known.retain(|channel, _| watched.contains(channel));
        let mut by_app: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
        for channel in &watched {
            if let Some((app_id, user_id)) = cache::presence_channel_user(channel) {
                by_app
                    .entry(app_id.to_owned())
                    .or_default()
                    .push((user_id.to_owned(), channel.clone()));
            }
        }
        for (app_id, users) in by_app {
            let ids: Vec<String> = users.iter().map(|(user_id, _)| user_id.clone()).collect();
            let online = match cache.online(&app_id, &ids).await {
                Ok(online) => online,
                Err(e) => {
                    tracing::warn!(error = %e, "presence sweep failed");
                    continue;
                }
            };
            for ((user_id, channel), online) in users.into_iter().zip(online) {
                // A first look that finds the user offline is told too: the watcher may have been
                // told "online" when it subscribed, just before the user's node died.
                let previous = known.insert(channel.clone(), online);
                if previous == Some(!online) || (previous.is_none() && !online) {
                    let frame = protocol::event("presence", json!({"user_id": user_id, "online": online}));
                    hub.deliver_local(&channel, frame.into());
                }
            }
        }
    }
}
