//! The conversations part of the store port: conversations, their members, read horizons and summaries.

use crate::domain::model::{Conversation, ConversationSummary, Member};
use crate::Result;
use async_trait::async_trait;
use std::collections::{HashMap, HashSet};

/// Conversations, their members, the members' read horizons and each conversation's summary (its newest
/// message).
#[async_trait]
pub trait ConversationStore: Send + Sync {
    /// Stores a conversation and its members; if a conversation with that id already exists (a direct
    /// conversation created twice), returns the stored one unchanged.
    async fn create_conversation(&self, conversation: &Conversation, members: &[Member]) -> Result<Conversation>;
    /// The conversation; `None` when it does not exist in this app.
    async fn find_conversation(&self, app_id: &str, conversation_id: &str) -> Result<Option<Conversation>>;
    /// The user's membership record (with role); `None` when they are not a member.
    async fn find_member(&self, app_id: &str, conversation_id: &str, user_id: &str) -> Result<Option<Member>>;
    /// The conversation's member records, in the order they joined.
    async fn list_members(&self, app_id: &str, conversation_id: &str) -> Result<Vec<Member>>;
    /// Adds members (existing ones keep their role) and returns the conversation as it is now.
    async fn add_members(&self, app_id: &str, conversation_id: &str, members: &[Member]) -> Result<Conversation>;
    /// Removes a member (leaving or being removed) and returns the conversation as it is now.
    async fn remove_member(&self, app_id: &str, conversation_id: &str, user_id: &str) -> Result<Conversation>;
    /// Sets the conversation's name and returns it as it is now; `NotFound` for an unknown conversation.
    async fn rename_conversation(&self, app_id: &str, conversation_id: &str, name: &str) -> Result<Conversation>;
    /// The user's conversations, most recently created first.
    async fn list_conversations(&self, app_id: &str, user_id: &str, limit: usize) -> Result<Vec<Conversation>>;
    /// Those of `candidates` who share at least one conversation with `user_id` (the user among them when
    /// they are in any conversation): whose presence the user may watch.
    async fn contacts(&self, app_id: &str, user_id: &str, candidates: &[String]) -> Result<HashSet<String>>;
    /// Moves the user's read horizon forward to `seq` (never back) and returns the horizon now stored.
    async fn mark_read(&self, app_id: &str, conversation_id: &str, user_id: &str, seq: i64) -> Result<i64>;
    /// The user's read horizons (0 when never read) for `conversation_ids`.
    async fn read_horizons(
        &self,
        app_id: &str,
        user_id: &str,
        conversation_ids: &[String],
    ) -> Result<HashMap<String, i64>>;
    /// Records each conversation's newest message: replaces a summary with a lower `last_seq`, or
    /// updates the same message to a higher `version`; anything else is stale and ignored. Returns
    /// how many summaries changed.
    async fn apply_summaries(&self, summaries: &[ConversationSummary]) -> Result<usize>;
    /// The stored summaries of `conversation_ids`, by conversation id; conversations without one are left out.
    async fn summaries(
        &self,
        app_id: &str,
        conversation_ids: &[String],
    ) -> Result<HashMap<String, ConversationSummary>>;
}
