//! Messages, their reactions and attachments.

use serde::{Deserialize, Serialize};

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
    /// Where the attachment's upload URL writes; completion copies the verified bytes to `key`, the
    /// only key downloads serve. Whatever lands here after completion is never served.
    pub fn staging_key(&self) -> String {
        format!("{}/{}/upload", self.app_id, self.id)
    }

    /// Every blob key the attachment may occupy: the original, its thumbnail and the staging key.
    pub fn blob_keys(&self) -> Vec<String> {
        let mut keys = vec![self.key.clone(), self.staging_key()];
        keys.extend(self.thumbnail_key.clone());
        keys
    }

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
    /// The sender's idempotency key (at most [`limits::MAX_ID_BYTES`](super::limits::MAX_ID_BYTES) bytes): retrying a send with the same key
    /// returns the original id and seq instead of sending twice.
    pub client_msg_id: String,
    /// The message text (at most [`limits::MAX_TEXT_BYTES`](super::limits::MAX_TEXT_BYTES) bytes); may be empty only when the message carries
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

    /// The message as clients see it (JSON), split around its seq's digits, for a message whose seq
    /// the claim has not decided yet (0): `head + seq + tail` is its encoding with that seq. `None`
    /// when the seq is already set.
    pub fn encode_around_seq(&self) -> serde_json::Result<Option<(String, String)>> {
        /// The first `"seq":` is the message's own field: only strings come before it, and inside a
        /// string a quote is always escaped.
        const UNSET_SEQ: &str = r#","seq":0,"#;
        if self.seq != 0 {
            return Ok(None);
        }
        let mut json = serde_json::to_string(self)?;
        let Some(at) = json.find(UNSET_SEQ) else {
            return Ok(None);
        };
        let tail = json.split_off(at + UNSET_SEQ.len() - 1);
        json.truncate(at + UNSET_SEQ.len() - 2);
        Ok(Some((json, tail)))
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
    /// The emoji, 1 to [`limits::MAX_EMOJI_BYTES`](super::limits::MAX_EMOJI_BYTES) bytes with no whitespace, control characters or colons (colons
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

/// A conversation's durable record of the seqs it may have handed out, kept in the store because the
/// cache's counter can be lost (a flush, a failover). Every seq is covered by `reserved_through` before
/// any message carries it, so a counter re-created after a loss starts above every seq in use.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct SeqReservation {
    /// The app of the conversation.
    pub app_id: String,
    /// The conversation whose seqs these are.
    pub conversation_id: String,
    /// No seq above this has been handed out.
    #[serde(default)]
    pub reserved_through: i64,
    /// Seqs that may never carry a message: what was reserved but perhaps not used when a counter was
    /// re-created. A replay does not wait for them.
    #[serde(default)]
    pub uncertain: Vec<SeqSpan>,
}

/// The seqs after `after` up to and including `through`.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct SeqSpan {
    /// The last seq before the span.
    pub after: i64,
    /// The last seq of the span.
    pub through: i64,
}

impl SeqSpan {
    /// Whether `seq` lies in the span.
    pub fn contains(&self, seq: i64) -> bool {
        seq > self.after && seq <= self.through
    }
}

impl SeqReservation {
    /// The reservation of a conversation that never reserved: nothing reserved, nothing uncertain.
    pub fn none(app_id: &str, conversation_id: &str) -> Self {
        Self {
            app_id: app_id.to_owned(),
            conversation_id: conversation_id.to_owned(),
            ..Self::default()
        }
    }

    /// Whether a message with `seq` may never exist (it lies in an uncertain span).
    pub fn may_be_void(&self, seq: i64) -> bool {
        self.uncertain.iter().any(|span| span.contains(seq))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_encoded_around_its_seq_is_its_encoding_with_any_seq() {
        let message = Message {
            id: "m-1".into(),
            app_id: "a".into(),
            conversation_id: r#"c","seq":0,"#.into(),
            text: r#"{"seq":0,"x":1} ünïcode"#.into(),
            reply_to: Some("p".into()),
            ..Message::default()
        };
        let (head, tail) = message.encode_around_seq().unwrap().unwrap();
        for seq in [1, 42, 1_000_001] {
            let sequenced = Message { seq, ..message.clone() };
            assert_eq!(format!("{head}{seq}{tail}"), serde_json::to_string(&sequenced).unwrap());
        }
        assert_eq!(Message { seq: 3, ..message }.encode_around_seq().unwrap(), None);
    }
}
