//! The messages part of the store port: messages, their revisions, replies and reactions, and the
//! queries retention and export run on them.

use super::{RetentionExceptions, SeqRange};
use crate::domain::model::{Message, Reaction, ReactionCount, SeqReservation, SeqSpan};
use crate::Result;
use async_trait::async_trait;
use std::collections::HashMap;

/// What [`MessageStore::insert_messages`] did with a batch.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MessageInsert {
    /// Messages newly written.
    pub inserted: usize,
    /// Messages already stored, the same id under the same seq (a redelivery); not an error.
    pub duplicates: usize,
    /// Messages whose seq a different stored message holds: a sequencing fault (a seq handed out
    /// twice). Not stored, so never to be acknowledged as persisted.
    pub conflicts: Vec<Message>,
}

/// Messages with their revisions, replies and reactions, and the queries retention and export run on them.
#[async_trait]
pub trait MessageStore: Send + Sync {
    /// Inserts messages, skipping those already stored; safe to call again with the same batch. A
    /// message whose seq is taken by a *different* stored message is no duplicate: it comes back in
    /// [`MessageInsert::conflicts`], not stored.
    async fn insert_messages(&self, messages: &[Message]) -> Result<MessageInsert>;
    /// Keeps messages that could not be stored under their seq (see [`MessageInsert::conflicts`]) for an
    /// operator, once each (by message id); returns how many were new.
    async fn keep_seq_conflicts(&self, conflicts: &[Message]) -> Result<usize>;
    /// The app's kept seq conflicts, oldest first.
    async fn seq_conflicts(&self, app_id: &str, limit: usize) -> Result<Vec<Message>>;
    /// How many messages of the conversation past `after_seq` a member sees as unread: sent by someone
    /// else, not deleted. Counts at most `cap`.
    async fn count_unread(
        &self,
        app_id: &str,
        conversation_id: &str,
        user_id: &str,
        after_seq: i64,
        cap: usize,
    ) -> Result<usize>;
    /// Stores each message's new state (an edit or a deletion) unless a state with an equal or higher
    /// `version` is already stored; a revision that arrives before its message stores it whole. Returns
    /// how many were applied.
    async fn apply_message_revisions(&self, revisions: &[Message]) -> Result<usize>;
    /// The stored message (its latest persisted state); `None` when it is not stored in this conversation of this
    /// app (it may still be too new: see the recent window).
    async fn find_message(&self, app_id: &str, conversation_id: &str, message_id: &str) -> Result<Option<Message>>;
    /// Direct replies per parent among `parent_ids`.
    async fn reply_counts(
        &self,
        app_id: &str,
        conversation_id: &str,
        parent_ids: &[String],
    ) -> Result<HashMap<String, usize>>;
    /// Replies to one message with a seq above `after_seq`, oldest first.
    async fn list_replies(
        &self,
        app_id: &str,
        conversation_id: &str,
        parent_id: &str,
        after_seq: i64,
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
    /// A page of a conversation's stored messages; see [`SeqRange`].
    async fn list_messages(&self, app_id: &str, conversation_id: &str, range: SeqRange) -> Result<Vec<Message>>;
    /// Highest stored `seq` of a conversation (0 when empty).
    async fn max_seq(&self, app_id: &str, conversation_id: &str) -> Result<i64>;
    /// Raises the conversation's seq reservation to at least `through`; returns the reservation now
    /// stored (never lower than before).
    async fn reserve_seqs(&self, app_id: &str, conversation_id: &str, through: i64) -> Result<i64>;
    /// The conversation's seq reservation; all zero for a conversation that never reserved.
    async fn seq_reservation(&self, app_id: &str, conversation_id: &str) -> Result<SeqReservation>;
    /// Records seqs that may never carry a message (a re-created counter skipped them); idempotent.
    async fn mark_uncertain(&self, app_id: &str, conversation_id: &str, span: SeqSpan) -> Result<()>;
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
}
