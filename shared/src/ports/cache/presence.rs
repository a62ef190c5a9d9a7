//! Presence: which users have a live connection on some node.

use crate::Result;
use async_trait::async_trait;
use std::time::Duration;

/// A connection counts as present this long after its node last vouched for it; nodes renew every
/// third of it, so a crashed node's users go offline within this time.
pub const PRESENCE_TTL: Duration = Duration::from_secs(30);

/// One live connection, as [`PresenceCache::presence_renew`] vouches for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PresenceHolder {
    /// The app of the user.
    pub app_id: String,
    /// The connected user.
    pub user_id: String,
    /// Names the connection uniquely across nodes.
    pub holder: String,
}

/// Live connections per user, each vouched for by its node until it lapses.
#[async_trait]
pub trait PresenceCache: Send + Sync {
    /// Records (or renews) one live connection of a user for [`PRESENCE_TTL`]; `holder` names the
    /// connection uniquely across nodes.
    async fn presence_touch(&self, app_id: &str, user_id: &str, holder: &str) -> Result<()>;
    /// [`Self::presence_touch`] for many connections at once: a node renews all of its connections in a
    /// few round trips rather than each connection on a timer of its own.
    async fn presence_renew(&self, live: &[PresenceHolder]) -> Result<()>;
    /// Forgets one connection; returns whether the user still has another live one.
    async fn presence_drop(&self, app_id: &str, user_id: &str, holder: &str) -> Result<bool>;
    /// Which of `user_ids` have a live connection.
    async fn online(&self, app_id: &str, user_ids: &[String]) -> Result<Vec<bool>>;
}
