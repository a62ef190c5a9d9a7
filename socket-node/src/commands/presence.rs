//! `presence.subscribe`: the current presence of some users of the caller's app, then `presence`
//! events as it changes.

use crate::session::Session;
use crate::Node;
use caas_shared::domain::protocol::PresenceSubscribe;
use caas_shared::ports::cache;
use caas_shared::services::conversations::require_id;
use caas_shared::{Error, Result};
use serde_json::{json, Value};

/// Most users one `presence.subscribe` may watch.
const MAX_PRESENCE_WATCH: usize = 500;

pub async fn subscribe(node: &Node, session: &Session, request: PresenceSubscribe) -> Result<Value> {
    if request.user_ids.is_empty() || request.user_ids.len() > MAX_PRESENCE_WATCH {
        return Err(Error::Validation(format!(
            "user_ids must list 1 to {MAX_PRESENCE_WATCH} users"
        )));
    }
    for user_id in &request.user_ids {
        require_id("user_ids[]", user_id)?;
        node.hub
            .subscribe(session.connection, &cache::presence_channel(session.app_id(), user_id))
            .await?;
    }
    // Read after subscribing, so a change in between arrives as an event rather than being lost.
    let online = node.cache.online(session.app_id(), &request.user_ids).await?;
    let presence: Vec<Value> = request
        .user_ids
        .iter()
        .zip(online)
        .map(|(user_id, online)| json!({"user_id": user_id, "online": online}))
        .collect();
    Ok(json!({"presence": presence}))
}
