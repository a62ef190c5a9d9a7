//! Conversations, their members and the per-conversation summary lists show.

use super::messages::Message;
use serde::{Deserialize, Serialize};

/// Whether a conversation is one-to-one or a group; serialised in snake_case (`direct`, `group`).
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ConversationKind {
    /// Exactly two members, no roles beyond member, and a fixed membership and name; its id is derived from the pair
    /// ([`Conversation::direct_id`]), so there is one per pair of users.
    Direct,
    /// An owner, admins and members (at most [`limits::MAX_GROUP_MEMBERS`](super::limits::MAX_GROUP_MEMBERS) in all); a random UUID v7 id.
    Group,
}

/// A member's role in a conversation; serialised in snake_case (`owner`, `admin`, `member`).
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The group's creator: exactly one per group; may add admins, cannot be removed, and leaves only as the last
    /// member.
    Owner,
    /// May add and remove members, rename the group and delete others' messages.
    Admin,
    /// May read, send and leave; every member of a direct conversation has this role.
    Member,
}

/// A direct conversation or a group of one app, with its current member list.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Conversation {
    /// The conversation id: derived from the pair for a direct conversation, a UUID v7 for a group.
    pub id: String,
    /// The app the conversation belongs to.
    pub app_id: String,
    /// Direct or group; never changes.
    pub kind: ConversationKind,
    /// Optional name, trimmed (at most [`limits::MAX_NAME_CHARS`](super::limits::MAX_NAME_CHARS) characters); only a group's owner or admins can
    /// change it. `None` when none was given.
    #[serde(default)]
    pub name: Option<String>,
    /// The platform user id of the creator (a group's owner).
    pub created_by: String,
    /// The platform user ids of the current members, the creator first; kept in step with the [`Member`] records.
    pub member_ids: Vec<String>,
    /// Changes when the sequence can no longer be proven continuous; clients holding an older epoch
    /// must reload history instead of resuming from `since_seq`.
    pub epoch: String,
    /// When the conversation was created, Unix ms.
    pub created_at: i64,
    /// The correlation id of the request that created the conversation.
    pub correlation_id: String,
}

impl Conversation {
    /// Direct conversations are unique per pair of users, so their id is derived from the pair.
    pub fn direct_id(app_id: &str, a: &str, b: &str) -> String {
        let (low, high) = if a <= b { (a, b) } else { (b, a) };
        let name = format!("{app_id}\u{0}{low}\u{0}{high}");
        uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, name.as_bytes()).to_string()
    }

    /// Whether `user_id` (a platform user id) is currently a member.
    pub fn has_member(&self, user_id: &str) -> bool {
        self.member_ids.iter().any(|m| m == user_id)
    }
}

/// One user's membership of one conversation, with their role.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Member {
    /// `{conversation_id}:{user_id}`: one record per user and conversation.
    pub id: String,
    /// The app the conversation belongs to.
    pub app_id: String,
    /// The conversation's id.
    pub conversation_id: String,
    /// The member's platform user id.
    pub user_id: String,
    /// What the member may do in the conversation.
    pub role: Role,
    /// When the user joined, Unix ms: the conversation's creation for its first members.
    pub joined_at: i64,
    /// The correlation id of the request that added the member.
    pub correlation_id: String,
}

impl Member {
    /// The membership of `user_id` in `conversation` with `role`, dated and traced like the conversation's creation;
    /// callers adding members later override `joined_at` and `correlation_id`.
    pub fn new(conversation: &Conversation, user_id: &str, role: Role) -> Self {
        Self {
            id: format!("{}:{}", conversation.id, user_id),
            app_id: conversation.app_id.clone(),
            conversation_id: conversation.id.clone(),
            user_id: user_id.to_owned(),
            role,
            joined_at: conversation.created_at,
            correlation_id: conversation.correlation_id.clone(),
        }
    }
}

/// What conversation lists show without reading messages: the newest message and its seq. Kept by the
/// persist-conversations function; a higher seq replaces it, an edit or deletion of that same message
/// (higher `version`) updates it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ConversationSummary {
    /// The conversation id.
    pub id: String,
    /// The app the conversation belongs to.
    pub app_id: String,
    /// The seq of the newest message (equal to `last_message.seq`).
    pub last_seq: i64,
    /// The newest message, in its latest known state (edited, or a tombstone).
    pub last_message: Message,
}
