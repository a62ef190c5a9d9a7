//! The durable store port, with its MongoDB driver and an in-memory reference driver that behave alike
//! (the [`conformance`] suite runs the same checks on both).
//!
//! Every query is filtered by `app_id`, so one tenant can never read or write another's data even with a
//! guessed id.

pub mod conformance;
mod memory;
mod mongo;

pub use memory::MemoryStore;
pub use mongo::MongoStore;

use crate::audit::{AuditQuery, AuditRecord};
use crate::model::{
    App, AppSettings, Attachment, Conversation, ConversationSummary, LegalHold, Member, Message, Reaction,
    ReactionCount, Restriction, Session, User,
};
use crate::Result;
use async_trait::async_trait;
use std::collections::HashMap;

/// Result of an idempotent bulk insert.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InsertOutcome {
    pub inserted: usize,
    /// Records that were already stored (a redelivery); not an error.
    pub duplicates: usize,
}

/// Which messages of a conversation to read, always returned in ascending `seq` order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SeqRange {
    /// Only messages with `seq > after_seq`; the page starts right after it.
    pub after_seq: Option<i64>,
    /// Only messages with `seq < before_seq`; without `after_seq` the page ends right before it.
    pub before_seq: Option<i64>,
    pub limit: usize,
}

impl SeqRange {
    /// The page starts at the low end (right after `after_seq`) unless only `before_seq` was given.
    pub fn reads_forward(&self) -> bool {
        self.after_seq.is_some()
    }

    pub fn contains(&self, seq: i64) -> bool {
        self.after_seq.is_none_or(|after| seq > after) && self.before_seq.is_none_or(|before| seq < before)
    }
}

#[async_trait]
pub trait Store: Send + Sync {
    async fn insert_app(&self, app: &App) -> Result<()>;
    async fn find_app(&self, app_id: &str) -> Result<Option<App>>;
    /// Replaces the app's settings; `NotFound` for an unknown app.
    async fn update_app_settings(&self, app_id: &str, settings: &AppSettings) -> Result<App>;
    /// Replaces the app's secret hash (a rotation); `NotFound` for an unknown app.
    async fn replace_app_secret(&self, app_id: &str, secret_hash: &str) -> Result<App>;
    async fn insert_attachment(&self, attachment: &Attachment) -> Result<()>;
    /// The attachments among `ids` that exist in this app.
    async fn find_attachments(&self, app_id: &str, ids: &[String]) -> Result<Vec<Attachment>>;
    /// Marks an attachment complete with its thumbnail key, if any; completing it again changes nothing
    /// and returns the stored attachment. `NotFound` for an unknown one.
    async fn complete_attachment(
        &self,
        app_id: &str,
        attachment_id: &str,
        completed_at: i64,
        thumbnail_key: Option<&str>,
    ) -> Result<Attachment>;
    /// Records which message carries each of these messages' attachments (the first link stays);
    /// safe to repeat. Returns how many attachments were newly linked.
    async fn link_attachments(&self, messages: &[Message]) -> Result<usize>;
    /// Creates the user on first sight, updates the display name when one is given.
    async fn upsert_user(&self, user: &User) -> Result<User>;
    /// The users among `ids` that exist in this app.
    async fn find_users(&self, app_id: &str, ids: &[String]) -> Result<Vec<User>>;
    /// Stores a conversation and its members; if a conversation with that id already exists (a direct
    /// conversation created twice), returns the stored one unchanged.
    async fn create_conversation(&self, conversation: &Conversation, members: &[Member]) -> Result<Conversation>;
    async fn find_conversation(&self, app_id: &str, conversation_id: &str) -> Result<Option<Conversation>>;
    /// Inserts messages, skipping those already stored; safe to call again with the same batch.
    async fn insert_messages(&self, messages: &[Message]) -> Result<InsertOutcome>;
    /// Stores each message's new state (an edit or a deletion) unless a state with an equal or higher
    /// `version` is already stored; a revision that arrives before its message stores it whole. Returns
    /// how many were applied.
    async fn apply_message_revisions(&self, revisions: &[Message]) -> Result<usize>;
    async fn find_message(&self, app_id: &str, conversation_id: &str, message_id: &str) -> Result<Option<Message>>;
    /// Direct replies per parent among `parent_ids`.
    async fn reply_counts(
        &self,
        app_id: &str,
        conversation_id: &str,
        parent_ids: &[String],
    ) -> Result<HashMap<String, usize>>;
    /// Replies to one message, oldest first.
    async fn list_replies(
        &self,
        app_id: &str,
        conversation_id: &str,
        parent_id: &str,
        limit: usize,
    ) -> Result<Vec<Message>>;
    /// Stores each reaction state unless one with an equal or higher `version` is stored. Returns how
    /// many were applied.
    async fn apply_reactions(&self, reactions: &[Reaction]) -> Result<usize>;
    /// Active reactions per message among `message_ids`, counted per emoji, with `mine` for `viewer_id`.
    async fn reaction_counts(
        &self,
        app_id: &str,
        conversation_id: &str,
        message_ids: &[String],
        viewer_id: &str,
    ) -> Result<HashMap<String, Vec<ReactionCount>>>;
    async fn find_member(&self, app_id: &str, conversation_id: &str, user_id: &str) -> Result<Option<Member>>;
    async fn list_members(&self, app_id: &str, conversation_id: &str) -> Result<Vec<Member>>;
    /// Adds members (existing ones keep their role) and returns the conversation as it is now.
    async fn add_members(&self, app_id: &str, conversation_id: &str, members: &[Member]) -> Result<Conversation>;
    /// Removes a member (leaving or being removed) and returns the conversation as it is now.
    async fn remove_member(&self, app_id: &str, conversation_id: &str, user_id: &str) -> Result<Conversation>;
    async fn rename_conversation(&self, app_id: &str, conversation_id: &str, name: &str) -> Result<Conversation>;
    /// The user's conversations, most recently created first.
    async fn list_conversations(&self, app_id: &str, user_id: &str, limit: usize) -> Result<Vec<Conversation>>;
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
    async fn summaries(
        &self,
        app_id: &str,
        conversation_ids: &[String],
    ) -> Result<HashMap<String, ConversationSummary>>;
    /// A page of a conversation's stored messages; see [`SeqRange`].
    async fn list_messages(&self, app_id: &str, conversation_id: &str, range: SeqRange) -> Result<Vec<Message>>;
    /// Highest stored `seq` of a conversation (0 when empty).
    async fn max_seq(&self, app_id: &str, conversation_id: &str) -> Result<i64>;

    // Compliance: the audit chain, legal holds, restrictions, retention, export and erasure.

    /// The newest record of the app's audit chain.
    async fn last_audit_record(&self, app_id: &str) -> Result<Option<AuditRecord>>;
    /// Which of these event ids the app's chain already holds (a redelivered event).
    async fn stored_audit_ids(&self, app_id: &str, ids: &[String]) -> Result<Vec<String>>;
    /// Appends records, in order, that continue the chain; `Conflict` when a seq is taken (another
    /// writer got there first). Records before the conflicting one stay: they continue the chain.
    async fn append_audit_records(&self, records: &[AuditRecord]) -> Result<()>;
    /// Matching records in chain order, at most `query.limit`.
    async fn list_audit_records(&self, app_id: &str, query: &AuditQuery) -> Result<Vec<AuditRecord>>;
    async fn insert_hold(&self, hold: &LegalHold) -> Result<()>;
    /// Releases an active hold; `NotFound` for an unknown or already released one.
    async fn release_hold(&self, app_id: &str, hold_id: &str, released_at: i64) -> Result<LegalHold>;
    async fn active_holds(&self, app_id: &str) -> Result<Vec<LegalHold>>;
    /// Stores the restriction, replacing one with the same id.
    async fn put_restriction(&self, restriction: &Restriction) -> Result<()>;
    /// Removes a restriction and returns it; `None` when there was none.
    async fn remove_restriction(&self, app_id: &str, restriction_id: &str) -> Result<Option<Restriction>>;
    async fn list_restrictions(&self, app_id: &str) -> Result<Vec<Restriction>>;
    async fn find_restriction(&self, app_id: &str, restriction_id: &str) -> Result<Option<Restriction>>;
    /// Records a new session.
    async fn insert_session(&self, session: &Session) -> Result<()>;
    async fn find_session(&self, app_id: &str, session_id: &str) -> Result<Option<Session>>;
    /// Moves an unrevoked session's expiry (a refresh); `None` when it is missing or revoked, so a
    /// refresh racing a logout cannot bring the session back.
    async fn extend_session(&self, app_id: &str, session_id: &str, expires_at: i64) -> Result<Option<Session>>;
    /// Revokes the user's unrevoked sessions (only `session_id` when given) and returns them as they
    /// were before.
    async fn revoke_sessions(
        &self,
        app_id: &str,
        user_id: &str,
        session_id: Option<&str>,
        revoked_at: i64,
    ) -> Result<Vec<Session>>;
    /// The user's sessions, revoked and expired ones included, oldest first.
    async fn list_sessions(&self, app_id: &str, user_id: &str) -> Result<Vec<Session>>;
    async fn list_apps(&self) -> Result<Vec<App>>;
    /// Up to `limit` messages created before `before` (Unix ms), oldest first, leaving out the given
    /// conversations and senders (those under legal hold).
    async fn messages_created_before(
        &self,
        app_id: &str,
        before: i64,
        except: &RetentionExceptions,
        limit: usize,
    ) -> Result<Vec<Message>>;
    /// Deletes these messages and their reactions for good; returns how many messages went.
    async fn purge_messages(&self, app_id: &str, message_ids: &[String]) -> Result<usize>;
    /// The user's messages in id (time) order, after `after_id`.
    async fn messages_by_sender(
        &self,
        app_id: &str,
        sender_id: &str,
        after_id: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Message>>;
    async fn attachments_by_uploader(&self, app_id: &str, uploader_id: &str) -> Result<Vec<Attachment>>;
    async fn delete_attachments(&self, app_id: &str, attachment_ids: &[String]) -> Result<usize>;
    /// Replaces the user's external id by `pseudonym` and drops the display name.
    async fn pseudonymise_user(&self, app_id: &str, user_id: &str, pseudonym: &str) -> Result<User>;
}

/// What retention must keep: conversations and senders under legal hold.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RetentionExceptions {
    pub conversation_ids: Vec<String>,
    pub sender_ids: Vec<String>,
}

impl RetentionExceptions {
    pub fn from_holds(holds: &[LegalHold]) -> Self {
        let mut except = Self::default();
        for hold in holds {
            match hold.scope {
                crate::model::HoldScope::User => except.sender_ids.push(hold.target_id.clone()),
                crate::model::HoldScope::Conversation => except.conversation_ids.push(hold.target_id.clone()),
            }
        }
        except
    }

    pub fn keeps(&self, message: &Message) -> bool {
        self.conversation_ids.contains(&message.conversation_id) || self.sender_ids.contains(&message.sender_id)
    }
}

/// Counts active reactions into per-message, per-emoji totals (emoji in first-seen order).
pub(crate) fn count_reactions<'a>(
    reactions: impl IntoIterator<Item = &'a Reaction>,
    viewer_id: &str,
) -> HashMap<String, Vec<ReactionCount>> {
    let mut counts: HashMap<String, Vec<ReactionCount>> = HashMap::new();
    for reaction in reactions.into_iter().filter(|r| r.active) {
        let per_message = counts.entry(reaction.message_id.clone()).or_default();
        let index = match per_message.iter().position(|c| c.emoji == reaction.emoji) {
            Some(index) => index,
            None => {
                per_message.push(ReactionCount {
                    emoji: reaction.emoji.clone(),
                    count: 0,
                    mine: false,
                });
                per_message.len() - 1
            }
        };
        per_message[index].count += 1;
        per_message[index].mine |= reaction.user_id == viewer_id;
    }
    counts
}

/// Opens the store named by `url`: `mongodb://…` (database `database`), `memory://` (lost on exit) or
/// `file:///dir` (in memory, snapshotted to `dir` so restarts keep the data; for the embedded dev mode).
pub async fn connect(url: &str, database: &str) -> Result<std::sync::Arc<dyn Store>> {
    if url.starts_with("memory://") {
        Ok(std::sync::Arc::new(MemoryStore::new()))
    } else if let Some(dir) = url.strip_prefix("file://") {
        Ok(std::sync::Arc::new(MemoryStore::open(std::path::Path::new(dir))?))
    } else if url.starts_with("mongodb://") || url.starts_with("mongodb+srv://") {
        Ok(std::sync::Arc::new(MongoStore::connect(url, database).await?))
    } else {
        Err(crate::Error::Config(format!(
            "CAAS_STORE_URL must be mongodb://…, memory:// or file:///dir, got {url}"
        )))
    }
}
