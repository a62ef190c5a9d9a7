//! Per-conversation sequence numbers and the cross-node idempotency of sends.

use crate::Result;
use async_trait::async_trait;
use std::time::Duration;

/// How long a `client_msg_id` is remembered: longer than any sane client retry window.
pub const IDEMPOTENCY_TTL: Duration = Duration::from_secs(24 * 3600);

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
    pub(super) fn as_str(self) -> &'static str {
        match self {
            ClaimState::Pending => "pending",
            ClaimState::Published => "published",
            ClaimState::Failed => "failed",
        }
    }
}

/// The message id and seq a send was given, and how far that send got.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claim {
    /// The message id claimed with the seq; a retried send publishes under this id again.
    pub message_id: String,
    /// The seq taken from the conversation's counter for this send.
    pub seq: i64,
    /// Pending, published or failed, as last recorded with [`SequenceCache::set_claim_state`].
    pub state: ClaimState,
    /// False when an earlier send with the same `client_msg_id` made this claim.
    pub is_new: bool,
    /// Whether the seq is covered by the conversation's durable reservation (as mirrored in the cache,
    /// see [`SequenceCache::mirror_reservation`]); when not, the sender reserves it in the store first,
    /// so that no message ever carries a seq a re-created counter could hand out again.
    pub reserved: bool,
}

/// The outcome of [`SequenceCache::claim_message`].
pub enum ClaimResult {
    /// The send's claim: a new one, or the earlier one of the same `client_msg_id` (`is_new` false).
    Claimed(Claim),
    /// The conversation has no counter (the cache lost it): re-seed it with [`SequenceCache::ensure_sequence`]
    /// above every seq the store's reservation covers, and claim again.
    CounterMissing,
}

/// Identifies one send for idempotency: the same key is the same message on every node.
#[derive(Clone, Copy, Debug)]
pub struct SendKey<'a> {
    /// The app of the conversation.
    pub app_id: &'a str,
    /// The conversation sent to.
    pub conversation_id: &'a str,
    /// The platform user id of the sender; two senders' `client_msg_id`s never collide.
    pub sender_id: &'a str,
    /// The sender's idempotency key for the message.
    pub client_msg_id: &'a str,
}

/// A conversation's sequence counter and the claims that give each send its seq exactly once.
#[async_trait]
pub trait SequenceCache: Send + Sync {
    /// Creates the conversation's counter at `floor` unless it exists.
    async fn ensure_sequence(&self, app_id: &str, conversation_id: &str, floor: i64) -> Result<()>;
    /// The last seq the conversation's counter handed out; `None` when there is no counter.
    async fn current_seq(&self, app_id: &str, conversation_id: &str) -> Result<Option<i64>>;
    /// Atomically returns the earlier claim of `(app, conversation, sender, client_msg_id)`, or takes the
    /// next seq and claims it for `message_id`. `CounterMissing` when the counter is gone (cache lost),
    /// so the caller re-seeds it from the store instead of restarting at 1.
    async fn claim_message(&self, key: SendKey<'_>, message_id: &str) -> Result<ClaimResult>;
    /// Raises the cache's mirror of the conversation's seq reservation to `through` (never lowers it).
    async fn mirror_reservation(&self, app_id: &str, conversation_id: &str, through: i64) -> Result<()>;
    /// Records how far the claimed send got (published, or failed so a retry republishes it), keeping the claim for
    /// another [`IDEMPOTENCY_TTL`].
    async fn set_claim_state(&self, key: SendKey<'_>, claim: &Claim, state: ClaimState) -> Result<()>;
}
