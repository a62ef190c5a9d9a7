//! Domain models. Ids are strings; timestamps are Unix milliseconds. Every document written because of
//! a request carries that request's `correlation_id`.

use serde::{Deserialize, Serialize};

/// A tenant: one customer application with its own users and conversations.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct App {
    /// `app_<uuid>`, assigned at creation; the `app_id` every other record of this tenant is scoped by.
    pub id: String,
    /// Display name given at creation, trimmed (at most [`limits::MAX_NAME_CHARS`] bytes).
    pub name: String,
    /// argon2id hash of the app secret; the secret itself is shown once at creation.
    pub secret_hash: String,
    /// When the app was created, Unix ms.
    pub created_at: i64,
    /// The correlation id of the request that created the app.
    pub correlation_id: String,
    /// The operator's tunables; a stored app without them reads as the defaults.
    #[serde(default)]
    pub settings: AppSettings,
}

/// What an app's operator can tune; every field has a sensible default.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AppSettings {
    /// Upload size and content-type limits for attachments.
    #[serde(default)]
    pub media: MediaLimits,
    /// Blocked terms and what happens to a message that contains one.
    #[serde(default)]
    pub content: ContentPolicy,
    /// Per-second send limits (off by default).
    #[serde(default)]
    pub rate_limits: RateLimits,
    /// How long messages are kept (forever by default).
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
    /// Whether a matching message is refused or accepted and flagged; defaults to [`BlockedTermAction::Reject`].
    #[serde(default)]
    pub action: BlockedTermAction,
}

/// What happens to a message containing a blocked term; serialised in snake_case (`reject`, `flag`).
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
    /// Messages one user may send per second across the app; 0 means unlimited. Exceeding it answers
    /// `rate_limited` (429) with the time left in the current second.
    #[serde(default)]
    pub user_messages_per_second: u32,
    /// Messages the whole app may send per second, all users together; 0 means unlimited.
    #[serde(default)]
    pub app_messages_per_second: u32,
}

/// How long messages are kept; without `message_days` they are kept forever.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RetentionPolicy {
    /// Days a message is kept after it was created (the operator API accepts 1 to 36500); older messages are
    /// purged for good by the retention job, except what a legal hold covers. `None` keeps messages forever.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_days: Option<u32>,
}

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

/// One sign-in of a user: every SDK token carries its session id (`jti`), and refreshing keeps it, so
/// revoking the session (logout, a ban) ends every token and live connection of it at once.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Session {
    /// The session id, a UUID; SDK tokens carry it as their `jti` claim.
    pub id: String,
    /// The app the session belongs to.
    pub app_id: String,
    /// The platform user id the session signs in (the tokens' `sub`).
    pub user_id: String,
    /// Unix ms.
    pub created_at: i64,
    /// Unix seconds, the `exp` of the session's newest token.
    pub expires_at: i64,
    /// Unix ms; a revoked session's tokens are refused everywhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<i64>,
    /// The correlation id of the request that started the session.
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

/// What members of an app may upload.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MediaLimits {
    /// Largest file a member may upload, in bytes; 100 MiB by default.
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
    /// Whether `content_type` may be uploaded: its essence (parameters dropped, lower-cased) equals an allowed type
    /// or belongs to an allowed `family/*`.
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

/// Where an upload stands; serialised in snake_case (`pending`, `complete`).
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
    /// `att_<uuid>`, assigned when the upload starts; clients call it `upload_id` and attach it by this id.
    pub id: String,
    /// The app the attachment belongs to.
    pub app_id: String,
    /// The conversation it was uploaded to; only that conversation's members may download it or attach it.
    pub conversation_id: String,
    /// The platform user id of the uploader; only they can complete the upload or attach it to a message.
    pub uploader_id: String,
    /// Blob key of the original: `<app>/<attachment>/original`.
    pub key: String,
    /// The file name as the uploader gave it, offered back on download.
    pub filename: String,
    /// The declared MIME type, normalised; completion checks the stored object has the same type.
    pub content_type: String,
    /// The declared size in bytes; completion checks the stored object has exactly this size.
    pub size: u64,
    /// Pending until the upload is completed and verified.
    pub status: AttachmentStatus,
    /// When the upload was started, Unix ms.
    pub created_at: i64,
    /// When the upload was completed, Unix ms; `None` while pending.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<i64>,
    /// Blob key of the JPEG thumbnail beside the original (`…/thumbnail.jpg`); `None` for files that are not images
    /// or do not decode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thumbnail_key: Option<String>,
    /// The message that carries the attachment, linked when that message is persisted (the first link stays);
    /// `None` until then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// The correlation id of the request that started the upload.
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

/// A user of one app, created on first sight when the app's backend requests an SDK token for them.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct User {
    /// Platform user id (a UUID v7), used as `sub` in SDK tokens, `sender_id` and `member_ids`.
    pub id: String,
    /// The app the user belongs to.
    pub app_id: String,
    /// The id the app's own backend uses for this user; unique within the app.
    pub external_id: String,
    /// Name shown to other users, trimmed (at most [`limits::MAX_NAME_CHARS`] bytes); updated whenever a token
    /// request gives one, dropped on erasure. `None` when never given.
    #[serde(default)]
    pub display_name: Option<String>,
    /// When the user was first seen, Unix ms.
    pub created_at: i64,
    /// The correlation id of the request that created the user.
    pub correlation_id: String,
}

/// Whether a conversation is one-to-one or a group; serialised in snake_case (`direct`, `group`).
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ConversationKind {
    /// Exactly two members, no roles beyond member, and a fixed membership and name; its id is derived from the pair
    /// ([`Conversation::direct_id`]), so there is one per pair of users.
    Direct,
    /// An owner, admins and members (at most [`limits::MAX_GROUP_MEMBERS`] in all); a random UUID v7 id.
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
    /// Optional name, trimmed (at most [`limits::MAX_NAME_CHARS`] characters); only a group's owner or admins can
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

/// A chat message. `id` is its MongoDB `_id`, and `(app_id, conversation_id, seq)` is unique, which
/// makes persisting it idempotent. Edits and deletions publish the whole new state with a higher
/// `version`; persistence keeps the highest version it has seen, so any delivery order converges.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Message {
    /// A UUID v7 claimed with the seq when the message was sent; a retried send (same `client_msg_id`) gets the same
    /// id back.
    pub id: String,
    /// The app the message belongs to.
    pub app_id: String,
    /// The conversation the message was sent to.
    pub conversation_id: String,
    /// Position in the conversation, assigned once by its sequence counter and increasing from 1; unique per
    /// conversation. History pages, read horizons and `since_seq` resumption are all expressed in it.
    pub seq: i64,
    /// The platform user id of the sender.
    pub sender_id: String,
    /// The sender's idempotency key (at most [`limits::MAX_ID_BYTES`] bytes): retrying a send with the same key
    /// returns the original id and seq instead of sending twice.
    pub client_msg_id: String,
    /// The message text (at most [`limits::MAX_TEXT_BYTES`] bytes); may be empty only when the message carries
    /// attachments, and is emptied by deletion.
    pub text: String,
    /// The id of the message this one replies to, in the same conversation; `None` for a top-level message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
    /// When the message was accepted, Unix ms.
    pub created_at: i64,
    /// The correlation id of the request behind this state: the send, or the latest edit or deletion.
    pub correlation_id: String,
    /// 0 as sent; each edit or deletion takes a higher value from [`crate::domain::clock::next_version`].
    #[serde(default)]
    pub version: i64,
    /// When the text was last edited, Unix ms; `None` if never edited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edited_at: Option<i64>,
    /// Set by a (soft) deletion, which also empties `text`: the tombstone keeps the thread coherent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<i64>,
    /// The original of a forwarded message; `None` for a message written here.
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

    /// Whether the message was deleted (it is a tombstone with `deleted_at` set).
    pub fn is_deleted(&self) -> bool {
        self.deleted_at.is_some()
    }
}

/// What a message says about one of its attachments; the bytes stay in blob storage and are fetched
/// through the media function, which checks membership on every download.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct MessageAttachment {
    /// The attachment's id (`att_<uuid>`); download it through the media function.
    pub id: String,
    /// The file name as uploaded.
    pub filename: String,
    /// The MIME type, as verified when the upload was completed.
    pub content_type: String,
    /// The size in bytes.
    pub size: u64,
}

/// Where a forwarded message came from.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ForwardedFrom {
    /// The conversation the original message was in.
    pub conversation_id: String,
    /// The original message's id.
    pub message_id: String,
}

/// One user's reaction with one emoji on one message. Removing it keeps the record with
/// `active: false` and a higher `version`, so an add and a remove converge whatever order they land in.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Reaction {
    /// `{message_id}:{user_id}:{emoji}`: one per user per emoji.
    pub id: String,
    /// The app the reaction belongs to.
    pub app_id: String,
    /// The conversation of the message.
    pub conversation_id: String,
    /// The id of the message reacted to.
    pub message_id: String,
    /// The platform user id of the reacting user.
    pub user_id: String,
    /// The emoji, 1 to [`limits::MAX_EMOJI_BYTES`] bytes with no whitespace, control characters or colons (colons
    /// separate the parts of the id).
    pub emoji: String,
    /// `true` while the reaction stands; `false` once it was removed.
    pub active: bool,
    /// From [`crate::domain::clock::next_version`]; the stored state with the highest version wins, so stale adds
    /// and removes are ignored.
    pub version: i64,
    /// The correlation id of the request that set this state.
    pub correlation_id: String,
}

impl Reaction {
    /// The reaction id `{message_id}:{user_id}:{emoji}` (see [`Reaction::id`]).
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
    /// The app the conversation belongs to.
    pub app_id: String,
    /// The seq of the newest message (equal to `last_message.seq`).
    pub last_seq: i64,
    /// The newest message, in its latest known state (edited, or a tombstone).
    pub last_message: Message,
}

/// How many users reacted to a message with an emoji, and whether the viewer is one of them.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ReactionCount {
    /// The emoji.
    pub emoji: String,
    /// How many users have an active reaction with this emoji on the message.
    pub count: usize,
    /// Whether the viewer (the user the history is read for) is one of them.
    pub mine: bool,
}

/// Limits on user-supplied content, enforced before anything is sequenced or published.
pub mod limits {
    /// Longest message text, in bytes (16 KiB); longer sends and edits are refused with `validation_failed`.
    pub const MAX_TEXT_BYTES: usize = 16 * 1024;
    /// Any client-supplied id (conversation, message, user, `client_msg_id`, …).
    pub const MAX_ID_BYTES: usize = 128;
    /// Most members a group may have, the owner included.
    pub const MAX_GROUP_MEMBERS: usize = 1_000;
    /// Longest conversation name, in characters; the auth function also caps app and display names at this many
    /// bytes.
    pub const MAX_NAME_CHARS: usize = 200;
    /// Longest external user id an app's backend may give, in bytes.
    pub const MAX_EXTERNAL_ID_BYTES: usize = 256;
    /// Longest reaction emoji, in bytes.
    pub const MAX_EMOJI_BYTES: usize = 32;
}
