//! The durable store port, with its MongoDB driver and an in-memory reference driver that behave alike
//! (the `conformance` suite, built for tests and with the `conformance` feature, runs the same checks on
//! both).
//!
//! The port is one trait per aggregate ([`AppStore`], [`UserStore`], [`ConversationStore`],
//! [`MessageStore`], [`ComplianceStore`], [`AttachmentStore`], [`KeyStore`], [`WebhookStore`], [`WebhookDeliveryStore`],
//! [`WebhookEventStore`]); [`Store`] is all of them
//! together.
//!
//! Every query is filtered by `app_id`, so one tenant can never read or write another's data even with a
//! guessed id. The platform's own jobs are the exception, and only read across apps: the retention job
//! lists the apps, and the webhook worker claims every app's due deliveries and purges every app's old events.

mod apps;
mod attachments;
mod compliance;
#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
#[cfg(any(test, feature = "conformance"))]
mod conformance_keys;
#[cfg(any(test, feature = "conformance"))]
mod conformance_webhooks;
mod conversations;
mod keys;
mod memory;
mod messages;
mod mongo;
mod users;
mod webhooks;

pub use apps::AppStore;
pub use attachments::AttachmentStore;
pub use compliance::ComplianceStore;
pub use conversations::ConversationStore;
use keys::batch_of_one_device;
pub use keys::{KeyStore, Registration, CLAIMED_KEY_MEMORY};
pub use memory::MemoryStore;
pub use messages::{MessageInsert, MessageStore};
pub use mongo::MongoStore;
pub use users::UserStore;
pub use webhooks::{ClaimLimit, HealthChange, InFlight, WebhookDeliveryStore, WebhookEventStore, WebhookStore};

use crate::domain::model::{LegalHold, Message, Reaction, ReactionCount};
use crate::Result;
use std::collections::HashMap;

/// Result of an idempotent bulk insert.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InsertOutcome {
    /// Records that were newly written.
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
    /// Most messages in the page.
    pub limit: usize,
}

impl SeqRange {
    /// The page starts at the low end (right after `after_seq`) unless only `before_seq` was given.
    pub fn reads_forward(&self) -> bool {
        self.after_seq.is_some()
    }

    /// Whether `seq` lies inside the bounds that are set (both exclusive).
    pub fn contains(&self, seq: i64) -> bool {
        self.after_seq.is_none_or(|after| seq > after) && self.before_seq.is_none_or(|before| seq < before)
    }
}

/// The whole store port: every aggregate's trait. Callers hold an `Arc<dyn Store>` and call the parts'
/// methods on it without importing them; a driver implements the parts and is a `Store` by that alone.
pub trait Store:
    AppStore
    + UserStore
    + ConversationStore
    + MessageStore
    + ComplianceStore
    + AttachmentStore
    + KeyStore
    + WebhookStore
    + WebhookDeliveryStore
    + WebhookEventStore
{
}

impl<T> Store for T where
    T: AppStore
        + UserStore
        + ConversationStore
        + MessageStore
        + ComplianceStore
        + AttachmentStore
        + KeyStore
        + WebhookStore
        + WebhookDeliveryStore
        + WebhookEventStore
{
}

/// What retention must keep: conversations and senders under legal hold.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RetentionExceptions {
    /// Conversations under a conversation hold: none of their messages is purged.
    pub conversation_ids: Vec<String>,
    /// Users under a user hold: none of the messages they sent is purged, in any conversation.
    pub sender_ids: Vec<String>,
}

impl RetentionExceptions {
    /// The exceptions of the app's active holds.
    pub fn from_holds(holds: &[LegalHold]) -> Self {
        let mut except = Self::default();
        for hold in holds {
            match hold.scope {
                crate::domain::model::HoldScope::User => except.sender_ids.push(hold.target_id.clone()),
                crate::domain::model::HoldScope::Conversation => except.conversation_ids.push(hold.target_id.clone()),
            }
        }
        except
    }

    /// Whether retention must keep `message`: it is in a held conversation or was sent by a held user.
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
