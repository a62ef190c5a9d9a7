//! Compliance records: legal holds and restrictions (bans and mutes).

use super::messages::Message;
use serde::{Deserialize, Serialize};

/// Suspends retention and erasure for everything it covers until it is released.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct LegalHold {
    /// `hold_<uuid>`, assigned when the hold is placed.
    pub id: String,
    /// The app the hold belongs to.
    pub app_id: String,
    /// Whether [`target_id`](Self::target_id) names a user or a conversation.
    pub scope: HoldScope,
    /// The user or conversation id.
    pub target_id: String,
    /// Why the hold was placed, as the operator gave it (kept for the audit trail).
    pub reason: String,
    /// When the hold was placed, Unix ms.
    pub created_at: i64,
    /// When the hold was released, Unix ms; `None` while it is active.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub released_at: Option<i64>,
    /// The correlation id of the request that placed the hold.
    pub correlation_id: String,
}

/// What a legal hold covers; serialised in snake_case (`user`, `conversation`).
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum HoldScope {
    /// Every message the user sent, in any conversation; the user cannot be erased while the hold stands.
    User,
    /// Every message of the conversation, whoever sent it; none of its senders can be erased while the hold stands.
    Conversation,
}

impl LegalHold {
    /// Whether the hold keeps this message: it was sent by the held user or in the held conversation.
    pub fn covers(&self, message: &Message) -> bool {
        match self.scope {
            HoldScope::User => message.sender_id == self.target_id,
            HoldScope::Conversation => message.conversation_id == self.target_id,
        }
    }
}

/// A moderation measure against one user, app-wide or in one conversation.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Restriction {
    /// [`Restriction::id_for`]: one per kind, user and scope, so restricting again replaces it.
    pub id: String,
    /// The app the restriction belongs to.
    pub app_id: String,
    /// The platform user id of the restricted user.
    pub user_id: String,
    /// Ban or mute.
    pub kind: RestrictionKind,
    /// The conversation the restriction applies to; `None` for an app-wide restriction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation_id: Option<String>,
    /// Why the user was restricted, as the operator gave it; `None` when no reason was given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Unix ms; `None` lasts until lifted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
    /// When the restriction was placed, Unix ms.
    pub created_at: i64,
    /// The correlation id of the request that placed the restriction.
    pub correlation_id: String,
}

/// The kind of a [`Restriction`]; serialised in snake_case (`ban`, `mute`), as in [`RestrictionKind::as_str`].
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RestrictionKind {
    /// App-wide: no connection, no token, live connections closed. In a conversation: no sending,
    /// and the user is removed from it.
    Ban,
    /// No sending (app-wide or in the conversation); reading goes on.
    Mute,
}

impl RestrictionKind {
    /// The kind's wire name (`ban` or `mute`), also the first part of [`Restriction::id_for`].
    pub fn as_str(self) -> &'static str {
        match self {
            RestrictionKind::Ban => "ban",
            RestrictionKind::Mute => "mute",
        }
    }
}

impl Restriction {
    /// The restriction id for a kind, user and scope: `{kind}:{user_id}` app-wide, `{kind}:{user_id}:{conversation_id}`
    /// in one conversation. Deterministic, so restricting the same user again replaces the earlier restriction.
    pub fn id_for(kind: RestrictionKind, user_id: &str, conversation_id: Option<&str>) -> String {
        match conversation_id {
            Some(conversation_id) => format!("{}:{user_id}:{conversation_id}", kind.as_str()),
            None => format!("{}:{user_id}", kind.as_str()),
        }
    }

    /// Whether the restriction is in force at `now_ms` (Unix ms): it has no expiry or has not reached it yet.
    pub fn is_active(&self, now_ms: i64) -> bool {
        self.expires_at.is_none_or(|expires_at| expires_at > now_ms)
    }
}
