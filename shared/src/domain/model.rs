//! Domain models. Ids are strings; timestamps are Unix milliseconds. Every document written because of
//! a request carries that request's `correlation_id`.

use serde::{Deserialize, Serialize};

/// A tenant: one customer application with its own users and conversations.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct App {
    pub id: String,
    pub name: String,
    /// argon2id hash of the app secret; the secret itself is shown once at creation.
    pub secret_hash: String,
    pub created_at: i64,
    pub correlation_id: String,
    #[serde(default)]
    pub settings: AppSettings,
}

/// What an app's operator can tune; every field has a sensible default.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AppSettings {
    #[serde(default)]
    pub media: MediaLimits,
    #[serde(default)]
    pub content: ContentPolicy,
    #[serde(default)]
    pub rate_limits: RateLimits,
    #[serde(default)]
    pub retention: RetentionPolicy,
}

/// Terms an app does not accept in messages, and what happens to a message that contains one.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ContentPolicy {
    /// Matched case-insensitively on whole words (a term may span several words).
    #[serde(default)]
    pub blocked_terms: Vec<String>,
    #[serde(default)]
    pub action: BlockedTermAction,
}

#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum BlockedTermAction {
    /// The send is refused with `content_blocked`; nothing is sequenced or stored.
    #[default]
    Reject,
    /// The message goes through and a `message.flagged` audit event asks for a review.
    Flag,
}

/// Sends allowed per second; 0 (the default) means unlimited. Off by default because what is normal
/// differs by app (a support chat versus a live-event room); the operator sets them per app.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RateLimits {
    #[serde(default)]
    pub user_messages_per_second: u32,
    #[serde(default)]
    pub app_messages_per_second: u32,
}

/// How long messages are kept; without `message_days` they are kept forever.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RetentionPolicy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_days: Option<u32>,
}

/// Suspends retention and erasure for everything it covers until it is released.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct LegalHold {
    pub id: String,
    pub app_id: String,
    pub scope: HoldScope,
    /// The user or conversation id.
    pub target_id: String,
    pub reason: String,
    pub created_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub released_at: Option<i64>,
    pub correlation_id: String,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum HoldScope {
    User,
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

/// One sign-in of a user: every SDK token carries its session id (`jti`), and refreshing keeps it, so
/// revoking the session (logout, a ban) ends every token and live connection of it at once.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Session {
    pub id: String,
    pub app_id: String,
    pub user_id: String,
    /// Unix ms.
    pub created_at: i64,
    /// Unix seconds, the `exp` of the session's newest token.
    pub expires_at: i64,
    /// Unix ms; a revoked session's tokens are refused everywhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<i64>,
    pub correlation_id: String,
}

impl Session {
    /// Not revoked, and its newest token not expired at `now_ms`.
    pub fn is_active(&self, now_ms: i64) -> bool {
        self.revoked_at.is_none() && self.expires_at * 1000 > now_ms
    }
}

/// A moderation measure against one user, app-wide or in one conversation.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Restriction {
    /// [`Restriction::id_for`]: one per kind, user and scope, so restricting again replaces it.
    pub id: String,
    pub app_id: String,
    pub user_id: String,
    pub kind: RestrictionKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Unix ms; `None` lasts until lifted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
    pub created_at: i64,
    pub correlation_id: String,
}

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
    pub fn as_str(self) -> &'static str {
        match self {
            RestrictionKind::Ban => "ban",
            RestrictionKind::Mute => "mute",
        }
    }
}

impl Restriction {
    pub fn id_for(kind: RestrictionKind, user_id: &str, conversation_id: Option<&str>) -> String {
        match conversation_id {
            Some(conversation_id) => format!("{}:{user_id}:{conversation_id}", kind.as_str()),
            None => format!("{}:{user_id}", kind.as_str()),
        }
    }

    pub fn is_active(&self, now_ms: i64) -> bool {
        self.expires_at.is_none_or(|expires_at| expires_at > now_ms)
    }
}

/// What members of an app may upload.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MediaLimits {
    pub max_upload_bytes: u64,
    /// Exact types (`application/pdf`) or families (`image/*`).
    pub allowed_content_types: Vec<String>,
}

impl Default for MediaLimits {
    fn default() -> Self {
        Self {
            max_upload_bytes: 100 * 1024 * 1024,
            allowed_content_types: ["image/*", "video/*", "audio/*", "application/pdf", "text/plain"]
                .map(str::to_owned)
                .to_vec(),
        }
    }
}

impl MediaLimits {
    pub fn allows(&self, content_type: &str) -> bool {
        let essence = content_type
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        self.allowed_content_types
            .iter()
            .any(|allowed| match allowed.strip_suffix("/*") {
                Some(family) => essence.split_once('/').is_some_and(|(f, _)| f == family),
                None => *allowed == essence,
            })
    }
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum AttachmentStatus {
    /// A presigned upload URL was handed out; nothing is known to be stored yet.
    Pending,
    /// The object was found in blob storage with the declared size and type.
    Complete,
}

/// An uploaded file: created pending by `POST /media/uploads`, completed once the object is verified,
/// linked to the message that carries it when that message is persisted.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Attachment {
    pub id: String,
    pub app_id: String,
    pub conversation_id: String,
    pub uploader_id: String,
    /// Blob key of the original: `<app>/<conversation>/<attachment>/original`.
    pub key: String,
    pub filename: String,
    pub content_type: String,
    pub size: u64,
    pub status: AttachmentStatus,
    pub created_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thumbnail_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    pub correlation_id: String,
}

impl Attachment {
    /// What a message carries about this attachment.
    pub fn reference(&self) -> MessageAttachment {
        MessageAttachment {
            id: self.id.clone(),
            filename: self.filename.clone(),
            content_type: self.content_type.clone(),
            size: self.size,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct User {
    pub id: String,
    pub app_id: String,
    /// The id the app's own backend uses for this user; unique within the app.
    pub external_id: String,
    #[serde(default)]
    pub display_name: Option<String>,
    pub created_at: i64,
    pub correlation_id: String,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ConversationKind {
    Direct,
    Group,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Owner,
    Admin,
    Member,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Conversation {
    pub id: String,
    pub app_id: String,
    pub kind: ConversationKind,
    #[serde(default)]
    pub name: Option<String>,
    pub created_by: String,
    pub member_ids: Vec<String>,
    /// Changes when the sequence can no longer be proven continuous; clients holding an older epoch
    /// must reload history instead of resuming from `since_seq`.
    pub epoch: String,
    pub created_at: i64,
    pub correlation_id: String,
}

impl Conversation {
    /// Direct conversations are unique per pair of users, so their id is derived from the pair.
    pub fn direct_id(app_id: &str, a: &str, b: &str) -> String {
        let (low, high) = if a <= b { (a, b) } else { (b, a) };
        let name = format!("{app_id}\u{0}{low}\u{0}{high}");
        uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, name.as_bytes()).to_string()
    }

    pub fn has_member(&self, user_id: &str) -> bool {
        self.member_ids.iter().any(|m| m == user_id)
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Member {
    pub id: String,
    pub app_id: String,
    pub conversation_id: String,
    pub user_id: String,
    pub role: Role,
    pub joined_at: i64,
    pub correlation_id: String,
}

impl Member {
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

/// A chat message. `id` is its MongoDB `_id`, and `(app_id, conversation_id, seq)` is unique, which
/// makes persisting it idempotent. Edits and deletions publish the whole new state with a higher
/// `version`; persistence keeps the highest version it has seen, so any delivery order converges.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Message {
    pub id: String,
    pub app_id: String,
    pub conversation_id: String,
    pub seq: i64,
    pub sender_id: String,
    pub client_msg_id: String,
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
    pub created_at: i64,
    pub correlation_id: String,
    /// 0 as sent; each edit or deletion takes a higher value from [`crate::domain::clock::next_version`].
    #[serde(default)]
    pub version: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edited_at: Option<i64>,
    /// Set by a (soft) deletion, which also empties `text`: the tombstone keeps the thread coherent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forwarded_from: Option<ForwardedFrom>,
    /// Files uploaded through the media function and attached when the message was sent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<MessageAttachment>,
}

impl Message {
    /// The message with its content gone (text and files), under a new version, traced by
    /// `correlation_id`; an earlier `deleted_at` stays, else it is `now`. Deletion, retention and
    /// erasure all publish this shape, so every reader drops the same content.
    pub fn into_tombstone(self, now: i64, correlation_id: &str) -> Message {
        Message {
            text: String::new(),
            attachments: Vec::new(),
            version: crate::domain::clock::next_version(),
            deleted_at: Some(self.deleted_at.unwrap_or(now)),
            correlation_id: correlation_id.to_owned(),
            ..self
        }
    }

    pub fn is_deleted(&self) -> bool {
        self.deleted_at.is_some()
    }
}

/// What a message says about one of its attachments; the bytes stay in blob storage and are fetched
/// through the media function, which checks membership on every download.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct MessageAttachment {
    pub id: String,
    pub filename: String,
    pub content_type: String,
    pub size: u64,
}

/// Where a forwarded message came from.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ForwardedFrom {
    pub conversation_id: String,
    pub message_id: String,
}

/// One user's reaction with one emoji on one message. Removing it keeps the record with
/// `active: false` and a higher `version`, so an add and a remove converge whatever order they land in.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Reaction {
    /// `{message_id}:{user_id}:{emoji}`: one per user per emoji.
    pub id: String,
    pub app_id: String,
    pub conversation_id: String,
    pub message_id: String,
    pub user_id: String,
    pub emoji: String,
    pub active: bool,
    pub version: i64,
    pub correlation_id: String,
}

impl Reaction {
    pub fn id_for(message_id: &str, user_id: &str, emoji: &str) -> String {
        format!("{message_id}:{user_id}:{emoji}")
    }
}

/// What conversation lists show without reading messages: the newest message and its seq. Kept by the
/// persist-conversations function; a higher seq replaces it, an edit or deletion of that same message
/// (higher `version`) updates it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ConversationSummary {
    /// The conversation id.
    pub id: String,
    pub app_id: String,
    pub last_seq: i64,
    pub last_message: Message,
}

/// How many users reacted to a message with an emoji, and whether the viewer is one of them.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ReactionCount {
    pub emoji: String,
    pub count: usize,
    pub mine: bool,
}

/// Limits on user-supplied content, enforced before anything is sequenced or published.
pub mod limits {
    pub const MAX_TEXT_BYTES: usize = 16 * 1024;
    /// Any client-supplied id (conversation, message, user, `client_msg_id`, …).
    pub const MAX_ID_BYTES: usize = 128;
    pub const MAX_GROUP_MEMBERS: usize = 1_000;
    pub const MAX_NAME_CHARS: usize = 200;
    pub const MAX_EXTERNAL_ID_BYTES: usize = 256;
    pub const MAX_EMOJI_BYTES: usize = 32;
}
