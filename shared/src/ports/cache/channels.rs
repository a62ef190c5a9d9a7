//! Names of the pub/sub channels that carry live events between nodes.

/// Channel that carries a conversation's live events to every node with a subscriber.
pub fn conversation_channel(app_id: &str, conversation_id: &str) -> String {
    format!("caas:fanout:{app_id}:{conversation_id}")
}

/// Channel that reaches every connection of one user on any node.
pub fn user_channel(app_id: &str, user_id: &str) -> String {
    format!("caas:user:{app_id}:{user_id}")
}

/// The prefix every presence channel starts with, so a node can pick out the presence channels it watches.
pub const PRESENCE_CHANNEL_PREFIX: &str = "caas:presence:";

/// Channel that carries one user's presence changes to whoever watches them.
pub fn presence_channel(app_id: &str, user_id: &str) -> String {
    format!("{PRESENCE_CHANNEL_PREFIX}{app_id}:{user_id}")
}

/// The `(app_id, user_id)` a presence channel is for.
pub fn presence_channel_user(channel: &str) -> Option<(&str, &str)> {
    channel.strip_prefix(PRESENCE_CHANNEL_PREFIX)?.split_once(':')
}
