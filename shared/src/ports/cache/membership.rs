//! The membership cache: conversations and their member lists as the store last gave them.

use crate::Result;
use async_trait::async_trait;
use std::time::Duration;

/// Memberships cached from the store (the seed's one-hour TTL).
pub const MEMBERSHIP_TTL: Duration = Duration::from_secs(3600);

/// Conversations and their members, cached so a send need not ask the store who may post.
#[async_trait]
pub trait MembershipCache: Send + Sync {
    /// The cached member ids (platform user ids); `None` when the list is not cached (the caller asks the store).
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
    /// Drops the cached conversation and member list, so the next read asks the store: what every
    /// change to a conversation does, since two concurrent changes writing their own results could
    /// leave the older one cached.
    async fn forget_conversation(&self, app_id: &str, conversation_id: &str) -> Result<()>;
}
