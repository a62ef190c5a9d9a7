//! The cache port: per-conversation sequence numbers, cross-node idempotency of sends and the
//! membership cache. Redis in production, an in-memory reference driver for the embedded mode; the
//! [`conformance`] suite runs the same checks on both.

pub mod conformance;
mod memory;
mod redis;

pub use self::memory::MemoryCache;
pub use self::redis::RedisCache;

use crate::moderation::{GateCheck, SendGate};
use crate::Result;
use async_trait::async_trait;
use std::time::Duration;

/// How long a `client_msg_id` is remembered: longer than any sane client retry window.
pub const IDEMPOTENCY_TTL: Duration = Duration::from_secs(24 * 3600);
/// Memberships cached from the store (the seed's one-hour TTL).
pub const MEMBERSHIP_TTL: Duration = Duration::from_secs(3600);
/// How many of a conversation's newest messages are kept for reconnecting clients, and for how long
/// after the last one. Older ones come from the store, where persistence has long caught up.
pub const RECENT_MESSAGES: usize = 1000;
pub const RECENT_TTL: Duration = Duration::from_secs(3600);
/// A connection counts as present this long after its node last vouched for it; nodes renew every
/// third of it, so a crashed node's users go offline within this time.
pub const PRESENCE_TTL: Duration = Duration::from_secs(30);

/// Where a send stands in its life; stored with the claim so a retry knows what to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClaimState {
    /// Sequenced, not yet confirmed by Kafka.
    Pending,
    /// Kafka has it.
    Published,
    /// Publishing failed; a retry republishes under the same id and seq.
    Failed,
}

impl ClaimState {
    fn as_str(self) -> &'static str {
        match self {
            ClaimState::Pending => "pending",
            ClaimState::Published => "published",
            ClaimState::Failed => "failed",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claim {
    pub message_id: String,
    pub seq: i64,
    pub state: ClaimState,
    /// False when an earlier send with the same `client_msg_id` made this claim.
    pub is_new: bool,
}

pub enum ClaimResult {
    Claimed(Claim),
    CounterMissing,
}

/// Identifies one send for idempotency: the same key is the same message on every node.
#[derive(Clone, Copy, Debug)]
pub struct SendKey<'a> {
    pub app_id: &'a str,
    pub conversation_id: &'a str,
    pub sender_id: &'a str,
    pub client_msg_id: &'a str,
}

#[async_trait]
pub trait Cache: Send + Sync {
    /// Creates the conversation's counter at `floor` unless it exists.
    async fn ensure_sequence(&self, app_id: &str, conversation_id: &str, floor: i64) -> Result<()>;
    async fn current_seq(&self, app_id: &str, conversation_id: &str) -> Result<Option<i64>>;
    /// Atomically returns the earlier claim of `(app, conversation, sender, client_msg_id)`, or takes the
    /// next seq and claims it for `message_id`. `CounterMissing` when the counter is gone (cache lost),
    /// so the caller re-seeds it from the store instead of restarting at 1.
    async fn claim_message(&self, key: SendKey<'_>, message_id: &str) -> Result<ClaimResult>;
    async fn set_claim_state(&self, key: SendKey<'_>, claim: &Claim, state: ClaimState) -> Result<()>;
    async fn cached_members(&self, app_id: &str, conversation_id: &str) -> Result<Option<Vec<String>>>;
    /// Whether `user_id` is among the cached members; `None` when the member list is not cached. One
    /// lookup, however large the conversation.
    async fn is_member(&self, app_id: &str, conversation_id: &str, user_id: &str) -> Result<Option<bool>>;
    /// The conversation as cached (JSON), if it is.
    async fn cached_conversation(&self, app_id: &str, conversation_id: &str) -> Result<Option<String>>;
    /// Caches (or replaces, after a change) a conversation's JSON for [`MEMBERSHIP_TTL`].
    async fn cache_conversation(&self, app_id: &str, conversation_id: &str, json: &str) -> Result<()>;
    /// Replaces the cached member list; an empty list drops it, so the next read asks the store.
    async fn cache_members(&self, app_id: &str, conversation_id: &str, members: &[String]) -> Result<()>;
    /// Keeps `payload` (the message as clients see it) as the conversation's message `seq` among its
    /// newest [`RECENT_MESSAGES`]: a reconnecting client may have missed messages that are accepted but
    /// not persisted yet. A later call for the same seq replaces the earlier payload.
    async fn remember_recent(&self, app_id: &str, conversation_id: &str, seq: i64, payload: &str) -> Result<()>;
    /// Remembered messages with `seq > after_seq`, ascending.
    async fn recent_after(&self, app_id: &str, conversation_id: &str, after_seq: i64) -> Result<Vec<(i64, String)>>;
    /// Records (or renews) one live connection of a user for [`PRESENCE_TTL`]; `holder` names the
    /// connection uniquely across nodes.
    async fn presence_touch(&self, app_id: &str, user_id: &str, holder: &str) -> Result<()>;
    /// Forgets one connection; returns whether the user still has another live one.
    async fn presence_drop(&self, app_id: &str, user_id: &str, holder: &str) -> Result<bool>;
    /// Which of `user_ids` have a live connection.
    async fn online(&self, app_id: &str, user_ids: &[String]) -> Result<Vec<bool>>;
    /// Mirrors the app's restrictions (field → expiry, 0 for none; see [`crate::moderation`]) for
    /// [`crate::moderation::RESTRICTIONS_TTL`] and marks the mirror loaded, even when empty. Fields
    /// already mirrored stay, so a restriction added meanwhile is not lost.
    async fn mirror_restrictions(&self, app_id: &str, entries: &[(String, i64)]) -> Result<()>;
    /// Adds (`Some(expiry)`) or removes (`None`) one mirrored restriction, if the app's mirror is loaded.
    async fn mirror_restriction(&self, app_id: &str, field: &str, expiry: Option<i64>) -> Result<()>;
    /// Answers a [`GateCheck`]: a restriction in force, else (for a send) the rate limits, which count
    /// the send when it is allowed. `Unloaded` when the app's restrictions are not mirrored.
    async fn gate(&self, check: &GateCheck<'_>) -> Result<SendGate>;
}

/// Channel that carries a conversation's live events to every node with a subscriber.
pub fn conversation_channel(app_id: &str, conversation_id: &str) -> String {
    format!("caas:fanout:{app_id}:{conversation_id}")
}

/// Channel that reaches every connection of one user on any node.
pub fn user_channel(app_id: &str, user_id: &str) -> String {
    format!("caas:user:{app_id}:{user_id}")
}

pub const PRESENCE_CHANNEL_PREFIX: &str = "caas:presence:";

/// Channel that carries one user's presence changes to whoever watches them.
pub fn presence_channel(app_id: &str, user_id: &str) -> String {
    format!("{PRESENCE_CHANNEL_PREFIX}{app_id}:{user_id}")
}

/// The `(app_id, user_id)` a presence channel is for.
pub fn presence_channel_user(channel: &str) -> Option<(&str, &str)> {
    channel.strip_prefix(PRESENCE_CHANNEL_PREFIX)?.split_once(':')
}

/// Opens the cache named by `url`: `redis://…` or `memory://` (private to this process).
pub async fn connect(url: &str) -> Result<std::sync::Arc<dyn Cache>> {
    if url.starts_with("memory://") {
        Ok(std::sync::Arc::new(MemoryCache::new()))
    } else if url.starts_with("redis://") || url.starts_with("rediss://") {
        Ok(std::sync::Arc::new(RedisCache::connect(url).await?))
    } else {
        Err(crate::Error::Config(format!(
            "the cache URL must be redis://… or memory://, got {url}"
        )))
    }
}
