//! `presence.subscribe`: the current presence of users who share a conversation with the caller, then
//! `presence` events as it changes.

use crate::session::Session;
use crate::Node;
use caas_shared::domain::protocol::PresenceSubscribe;
use caas_shared::ports::cache;
use caas_shared::services::conversations::require_id;
use caas_shared::{Error, Result};
use serde_json::{json, Value};

/// Most users one `presence.subscribe` may name.
const MAX_PRESENCE_REQUEST: usize = 500;
/// Most users one connection may watch in all; each is a fan-out subscription held by the node.
pub const MAX_WATCHED_PER_CONNECTION: usize = 1_000;

/// Watches the named users who share a conversation with the caller; the others are listed under
/// `not_visible` and not watched, so presence cannot be used to probe who is online in the app.
pub async fn subscribe(node: &Node, session: &Session, request: PresenceSubscribe) -> Result<Value> {
    if request.user_ids.is_empty() || request.user_ids.len() > MAX_PRESENCE_REQUEST {
        return Err(Error::Validation(format!(
            "user_ids must list 1 to {MAX_PRESENCE_REQUEST} users"
        )));
    }
    for user_id in &request.user_ids {
        require_id("user_ids[]", user_id)?;
    }
    let (app_id, caller) = (session.app_id(), session.user_id());
    let contacts = node.store.contacts(app_id, caller, &request.user_ids).await?;
    let (visible, not_visible): (Vec<&String>, Vec<&String>) = request
        .user_ids
        .iter()
        .partition(|user_id| *user_id == caller || contacts.contains(*user_id));
    let prefix = cache::presence_channel(app_id, "");
    let channels: Vec<String> = visible
        .iter()
        .map(|user_id| cache::presence_channel(app_id, user_id))
        .collect();
    let watched = node.hub.channels_of(session.connection, &prefix);
    let added = channels.iter().filter(|channel| !watched.contains(*channel)).count();
    if watched.len() + added > MAX_WATCHED_PER_CONNECTION {
        return Err(Error::Validation(format!(
            "a connection watches at most {MAX_WATCHED_PER_CONNECTION} users ({} now)",
            watched.len()
        )));
    }
    for channel in &channels {
        node.hub.subscribe(session.connection, channel).await?;
    }
    // Read after subscribing, so a change in between arrives as an event rather than being lost.
    let visible_ids: Vec<String> = visible.into_iter().cloned().collect();
    let online = node.cache.online(app_id, &visible_ids).await?;
    let presence: Vec<Value> = visible_ids
        .iter()
        .zip(online)
        .map(|(user_id, online)| json!({"user_id": user_id, "online": online}))
        .collect();
    Ok(json!({"presence": presence, "not_visible": not_visible}))
}
