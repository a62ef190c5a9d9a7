//! Per-conversation sequence numbers and the cross-node idempotency of sends.

use crate::domain::moderation::{GateCheck, SendGate};
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

/// A new message's recent-window entry before its seq is known: the message as clients see it, encoded
/// around the seq the claim decides (`head`, the seq's digits, `tail`).
#[derive(Clone, Copy, Debug)]
pub struct EntryAroundSeq<'a> {
    /// Everything before the seq's digits.
    pub head: &'a str,
    /// Everything after them.
    pub tail: &'a str,
}

impl EntryAroundSeq<'_> {
    /// The entry with its seq filled in.
    pub fn with_seq(&self, seq: i64) -> String {
        format!("{}{seq}{}", self.head, self.tail)
    }
}

/// One new message's claim, asked of [`SequenceCache::claim_send`].
#[derive(Clone, Copy, Debug)]
pub struct SendRequest<'a> {
    /// Which send this is.
    pub key: SendKey<'a>,
    /// The id a new claim gives the message.
    pub message_id: &'a str,
    /// Refuse unless the sender is in the conversation's cached member set (when the caller has not
    /// checked membership itself).
    pub check_member: bool,
    /// Written to the recent window by a new claim whose seq the reservation covers.
    pub entry: EntryAroundSeq<'a>,
    /// Asked first, when set: a send the gate refuses (or cannot answer) claims nothing. On a single
    /// Redis it runs in the send's script, one round trip fewer per send.
    pub gate: Option<&'a GateCheck<'a>>,
}

/// The outcome of [`SequenceCache::claim_send`].
#[derive(Debug)]
pub enum SendClaim {
    /// The send's claim, as [`ClaimResult::Claimed`]; `remembered` when the claim also put the message
    /// in the recent window (a new claim covered by the reservation), so the sender need not.
    Claimed {
        /// The new or earlier claim.
        claim: Claim,
        /// Whether the recent window already holds the entry.
        remembered: bool,
    },
    /// As [`ClaimResult::CounterMissing`].
    CounterMissing,
    /// `check_member` and the sender is not in the cached member set: nothing was claimed.
    NotMember,
    /// `check_member` and the member set is not cached: load it (the store is the truth) and claim again.
    MembersNotCached,
    /// The request's gate did not allow the send (or its restrictions are not mirrored): nothing was
    /// claimed or counted.
    Gated(SendGate),
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
    /// A new message's whole cache work in one step where the driver can (one script on Redis): the
    /// gate (`gate`, in the same script on a single server), the membership check (`check_member`),
    /// [`Self::claim_message`], and for a new claim covered by the reservation the recent-window entry,
    /// written before anyone can learn the seq.
    async fn claim_send(&self, request: SendRequest<'_>) -> Result<SendClaim>;
    /// Raises the cache's mirror of the conversation's seq reservation to `through` (never lowers it).
    async fn mirror_reservation(&self, app_id: &str, conversation_id: &str, through: i64) -> Result<()>;
    /// Records how far the claimed send got (published, or failed so a retry republishes it), keeping the claim for
    /// another [`IDEMPOTENCY_TTL`].
    async fn set_claim_state(&self, key: SendKey<'_>, claim: &Claim, state: ClaimState) -> Result<()>;
}
