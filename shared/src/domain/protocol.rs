//! WebSocket frames between clients and socket nodes.
//!
//! Client → server: `{"id":"<req id>","type":"<event>","data":{…},"correlation_id"?}`.
//! Server → client: replies `{"reply_to","ok":true,"data"}` / `{"reply_to","ok":false,"error":{"code","message"}}`
//! and events `{"type","data"}`.

use crate::domain::model::ConversationKind;
use crate::Error;
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// A client frame before its `data` is interpreted, so that a bad payload can still be answered
/// with the request id it came with.
#[derive(Debug, Deserialize)]
pub struct ClientFrame {
    /// The client's request id, echoed as `reply_to` in the reply so the client can match the two; without one
    /// the reply carries `"reply_to": null`.
    #[serde(default)]
    pub id: Option<String>,
    /// The event name (wire name `type`), e.g. `message.send`; see [`ClientEvent`] for the full list.
    #[serde(rename = "type")]
    pub kind: String,
    /// The event's payload, interpreted by [`ClientEvent::from_frame`]; `null` when absent.
    #[serde(default)]
    pub data: Value,
    /// A correlation id for this request alone; without one the connection's id (from the upgrade) is used.
    #[serde(default)]
    pub correlation_id: Option<String>,
    /// Only in the `auth` frame.
    #[serde(default)]
    pub token: Option<String>,
}

impl ClientFrame {
    /// Parses one text frame: `invalid_json` when it is not JSON, `validation_failed` when it is not an object or
    /// lacks a `type`.
    pub fn parse(text: &str) -> Result<Self, Error> {
        // Straight into the struct, no intermediate tree. Serde would also read a struct from an array, so
        // the object is checked by its first character.
        match serde_json::from_str::<Self>(text) {
            Err(e) if !matches!(e.classify(), serde_json::error::Category::Data) => Err(e.into()),
            _ if !text.trim_start().starts_with('{') => Err(Error::Validation("a frame must be a JSON object".into())),
            Ok(frame) => Ok(frame),
            Err(e) => Err(Error::Validation(format!("malformed frame: {e}"))),
        }
    }
}

/// Every request a client can make, tagged by the frame's `type`, with its `data` as the payload.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum ClientEvent {
    /// Any `data` is ignored.
    #[serde(rename = "ping")]
    Ping(#[serde(default)] Option<IgnoredAny>),
    /// Only valid as a connection's first frame; later it is refused.
    #[serde(rename = "auth")]
    Auth(#[serde(default)] Option<IgnoredAny>),
    /// `conversation.create`: a direct conversation (returned as is if it exists) or a group owned by the caller.
    #[serde(rename = "conversation.create")]
    CreateConversation(CreateConversation),
    /// `conversation.list`: the caller's conversations with last message and unread count; `data` is optional.
    #[serde(rename = "conversation.list")]
    ListConversations(#[serde(default)] Option<ListConversations>),
    /// `conversation.members`: the member records (with roles) of a conversation the caller belongs to.
    #[serde(rename = "conversation.members")]
    Members(ConversationRef),
    /// `conversation.members.add`: adds users to a group (owner or admin only).
    #[serde(rename = "conversation.members.add")]
    AddMembers(AddMembers),
    /// `conversation.members.remove`: removes another member (owner or admin only), or the caller.
    #[serde(rename = "conversation.members.remove")]
    RemoveMember(RemoveMember),
    /// `conversation.leave`: the caller removes themself.
    #[serde(rename = "conversation.leave")]
    Leave(ConversationRef),
    /// `conversation.update`: renames a group (owner or admin only).
    #[serde(rename = "conversation.update")]
    Rename(RenameConversation),
    /// `conversation.subscribe`: live events of the conversation on this connection, plus the replay of what a
    /// reconnecting client missed.
    #[serde(rename = "conversation.subscribe")]
    Subscribe(Subscribe),
    /// `conversation.history`: a page of messages with reply counts and reactions.
    #[serde(rename = "conversation.history")]
    History(History),
    /// `read.mark`: moves the caller's read horizon and tells the conversation (a `read` event).
    #[serde(rename = "read.mark")]
    MarkRead(MarkRead),
    /// `typing.start`: tells the conversation the caller is typing (a `typing` event that lapses after 5 s).
    #[serde(rename = "typing.start")]
    TypingStart(ConversationRef),
    /// `typing.stop`: tells the conversation the caller stopped typing.
    #[serde(rename = "typing.stop")]
    TypingStop(ConversationRef),
    /// `presence.subscribe`: the users' current presence, then `presence` events as it changes.
    #[serde(rename = "presence.subscribe")]
    PresenceSubscribe(PresenceSubscribe),
    /// `message.send`: a new message; answered with an `accepted` [`Ack`] once the bus has it.
    #[serde(rename = "message.send")]
    Send(SendMessage),
    /// `message.edit`: the sender replaces a message's text.
    #[serde(rename = "message.edit")]
    Edit(EditMessage),
    /// `message.delete`: soft-deletes a message (the sender, or a group owner or admin).
    #[serde(rename = "message.delete")]
    Delete(MessageRef),
    /// `message.forward`: copies a message into another conversation.
    #[serde(rename = "message.forward")]
    Forward(ForwardMessage),
    /// `message.replies`: the thread under one message.
    #[serde(rename = "message.replies")]
    Replies(Replies),
    /// `reaction.add`: the caller reacts to a message with an emoji.
    #[serde(rename = "reaction.add")]
    ReactionAdd(ReactionRequest),
    /// `reaction.remove`: the caller takes back a reaction.
    #[serde(rename = "reaction.remove")]
    ReactionRemove(ReactionRequest),
    /// A `type` no variant names (with no `data`; see [`ClientEvent::from_frame`]).
    #[serde(other)]
    Unknown,
}

impl ClientEvent {
    /// Interprets the frame's `data` as the payload of its `type`: `unknown_event` for a type no
    /// variant names, `validation_failed` naming the problem for a payload that does not fit.
    pub fn from_frame(frame: &ClientFrame) -> Result<Self, Error> {
        Self::from_data(&frame.kind, frame.data.clone())
    }

    /// [`Self::from_frame`] for a frame's `kind` and its `data`, taken rather than copied.
    pub fn from_data(kind: &str, data: Value) -> Result<Self, Error> {
        let unknown = || Error::UnknownEvent(kind.to_owned());
        let tagged = Value::Object(serde_json::Map::from_iter([
            ("type".to_owned(), Value::from(kind)),
            ("data".to_owned(), data),
        ]));
        match Self::deserialize(tagged) {
            Ok(ClientEvent::Unknown) => Err(unknown()),
            Ok(event) => Ok(event),
            // `Unknown` takes no data, so an unknown type that came with some is told apart here.
            Err(_) if matches!(Self::deserialize(json!({"type": kind})), Ok(ClientEvent::Unknown)) => Err(unknown()),
            Err(e) => Err(Error::Validation(format!("invalid data for {kind}: {e}"))),
        }
    }
}

/// `conversation.create`: who is in the new conversation and what it is called.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateConversation {
    /// Direct (exactly one other member) or group (at least one other, at most
    /// [`MAX_GROUP_MEMBERS`](crate::domain::model::limits::MAX_GROUP_MEMBERS) in all); wire values `direct`, `group`.
    pub kind: ConversationKind,
    /// The other members; the caller is always added.
    pub member_ids: Vec<String>,
    /// Optional name, 1 to [`MAX_NAME_CHARS`](crate::domain::model::limits::MAX_NAME_CHARS) characters once
    /// trimmed.
    #[serde(default)]
    pub name: Option<String>,
}

/// `conversation.subscribe`: which conversation, and what the client already holds of it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Subscribe {
    /// The conversation to receive live events of; the caller must be a member.
    pub conversation_id: String,
    /// The highest seq the client holds; when given, the reply replays what came after it (up to
    /// `REPLAY_PAGE` messages, `has_more` telling whether to ask again).
    /// `None` subscribes without a replay.
    #[serde(default)]
    pub since_seq: Option<i64>,
    /// The conversation epoch the client's seqs belong to; when it differs from the current one no replay is
    /// made and the client must reload history.
    #[serde(default)]
    pub epoch: Option<String>,
}

/// Any event that names just a conversation (`conversation.leave`, `conversation.members`,
/// `typing.start`, `typing.stop`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConversationRef {
    /// The conversation's id.
    pub conversation_id: String,
}

/// `conversation.list`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListConversations {
    /// Most conversations to return, 1 to `MAX_LIST`; 50 when absent.
    #[serde(default)]
    pub limit: Option<usize>,
}

/// `conversation.members.add`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddMembers {
    /// The group to add to.
    pub conversation_id: String,
    /// Platform user ids of the users to add; ones already members are skipped, unknown ones refuse the request.
    pub member_ids: Vec<String>,
    /// The role the new members get: `member` (the default) or `admin` (only the owner may add admins); never
    /// `owner`.
    #[serde(default)]
    pub role: Option<crate::domain::model::Role>,
}

/// `conversation.members.remove`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoveMember {
    /// The conversation's id.
    pub conversation_id: String,
    /// The platform user id of the member to remove; the owner cannot be removed.
    pub user_id: String,
}

/// `conversation.update`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenameConversation {
    /// The group's id.
    pub conversation_id: String,
    /// The new name, 1 to [`MAX_NAME_CHARS`](crate::domain::model::limits::MAX_NAME_CHARS) characters once trimmed.
    pub name: String,
}

/// `presence.subscribe`: current presence of these users (of the caller's app), then `presence` events.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PresenceSubscribe {
    /// Platform user ids to watch, 1 to 500 of them.
    pub user_ids: Vec<String>,
}

/// `read.mark`: everything up to `seq` has been read.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MarkRead {
    /// The conversation's id.
    pub conversation_id: String,
    /// The seq read up to (not negative); capped at the conversation's last seq, and a horizon never moves back.
    pub seq: i64,
}

/// `conversation.history`: a page of messages; see `SeqRange` in the store port.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct History {
    /// The conversation's id.
    pub conversation_id: String,
    /// Only messages with a lower seq (the page ends right before it); for paging back through older history.
    #[serde(default)]
    pub before_seq: Option<i64>,
    /// Only messages with a higher seq (the page starts right after it); for reading forward.
    #[serde(default)]
    pub after_seq: Option<i64>,
    /// Page size, 1 to `MAX_HISTORY_PAGE`; 50 when absent.
    #[serde(default)]
    pub limit: Option<usize>,
}

/// `message.send`: a new message from the caller.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendMessage {
    /// The conversation to send to; the caller must be a member.
    pub conversation_id: String,
    /// The client's idempotency key for this message: retrying with the same key returns the original id and seq
    /// (`duplicate: true` in the ack) instead of sending twice.
    pub client_msg_id: String,
    /// The text, at most [`MAX_TEXT_BYTES`](crate::domain::model::limits::MAX_TEXT_BYTES) bytes; may be empty
    /// (or absent) only when `attachments` is not.
    #[serde(default)]
    pub text: String,
    /// The id of the message in the same conversation this one replies to.
    #[serde(default)]
    pub reply_to: Option<String>,
    /// Ids of completed uploads (`POST /api/v1/media/uploads/{id}/complete`).
    #[serde(default)]
    pub attachments: Vec<String>,
}

/// `message.edit`: the sender's new text for a message.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EditMessage {
    /// The conversation's id.
    pub conversation_id: String,
    /// The id of the message to edit; it must be the caller's and not deleted.
    pub message_id: String,
    /// The new text: not blank, at most [`MAX_TEXT_BYTES`](crate::domain::model::limits::MAX_TEXT_BYTES) bytes.
    pub text: String,
}

/// `message.delete`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessageRef {
    /// The conversation's id.
    pub conversation_id: String,
    /// The message's id.
    pub message_id: String,
}

/// `message.replies`: the thread under one message.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Replies {
    /// The conversation's id.
    pub conversation_id: String,
    /// The id of the parent message.
    pub message_id: String,
    /// Most replies to return, 1 to `MAX_HISTORY_PAGE`; 50 when absent.
    #[serde(default)]
    pub limit: Option<usize>,
    /// Only replies after this seq (the last one of the previous page).
    #[serde(default)]
    pub after_seq: Option<i64>,
}

/// `message.forward`: a new message in `conversation_id` that copies and references the source.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardMessage {
    /// The conversation to forward into; the caller must be a member.
    pub conversation_id: String,
    /// The idempotency key of the new message, as in [`SendMessage::client_msg_id`].
    pub client_msg_id: String,
    /// The conversation the original message is in; the caller must be a member of it too.
    pub source_conversation_id: String,
    /// The id of the message to forward; a deleted message cannot be forwarded.
    pub message_id: String,
}

/// `reaction.add` / `reaction.remove`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReactionRequest {
    /// The conversation's id.
    pub conversation_id: String,
    /// The id of the message reacted to; it must not be deleted.
    pub message_id: String,
    /// The emoji, 1 to [`MAX_EMOJI_BYTES`](crate::domain::model::limits::MAX_EMOJI_BYTES) bytes with no whitespace
    /// or colons.
    pub emoji: String,
}

/// How far a sent message has got; wire values `accepted`, `persisted`.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum AckStatus {
    /// Sequenced and on the bus: the reply to `message.send`. Delivery and persistence follow.
    Accepted,
    /// Written to the store by persist-messages: sent later as an `ack` event to the sender's connections.
    Persisted,
}

/// Tells a sender how far its message has got.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Ack {
    /// The conversation the message was sent to.
    pub conversation_id: String,
    /// The sender's idempotency key, so the client can match the ack to its pending message.
    pub client_msg_id: String,
    /// The message id assigned to the send.
    pub message_id: String,
    /// The message's seq in the conversation.
    pub seq: i64,
    /// Accepted (the reply to the send) or persisted (a later `ack` event).
    pub status: AckStatus,
    /// True when this send repeated an earlier `client_msg_id` and no new message was created.
    #[serde(default)]
    pub duplicate: bool,
}

/// Encodes a reply's `data`.
pub fn to_data(value: &impl Serialize) -> Result<Value, Error> {
    serde_json::to_value(value).map_err(|e| Error::Internal(format!("encoding reply: {e}")))
}

/// A successful reply frame: `{"reply_to":…,"ok":true,"data":…}`.
pub fn reply_ok(reply_to: Option<&str>, data: impl Serialize) -> String {
    /// Encoded straight from the data (no intermediate `Value`), keys in the documented order.
    #[derive(Serialize)]
    struct Reply<'a, T> {
        reply_to: Option<&'a str>,
        ok: bool,
        data: T,
    }
    serde_json::to_string(&Reply {
        reply_to,
        ok: true,
        data,
    })
    .unwrap_or_else(|e| reply_error(reply_to, &Error::Internal(format!("encoding a reply: {e}"))))
}

/// An error reply frame: `{"reply_to":…,"ok":false,"error":{"code","message"}}` with the error's stable code and
/// public message (infrastructure details are not shown).
pub fn reply_error(reply_to: Option<&str>, error: &Error) -> String {
    json!({"reply_to": reply_to, "ok": false, "error": error_body(error)}).to_string()
}

/// What a client is told of an error, on every wire: `{"code","message"}`, the stable code and the
/// public message (infrastructure details are not shown).
pub fn error_body(error: &Error) -> Value {
    let mut body = json!({"code": error.code(), "message": error.public_message()});
    if let Some(wait) = error.retry_after_ms() {
        body["retry_after_ms"] = wait.into();
    }
    body
}

/// A server event frame `{"type":kind,"data":…}`, e.g. `message.new`, `typing`, `presence`.
pub fn event(kind: &str, data: impl Serialize) -> String {
    json!({"type": kind, "data": data}).to_string()
}

/// Sent to the live connections of an ended session (logout, a ban) just before they are closed.
pub const SESSION_REVOKED: &str = "session.revoked";

/// The `session.revoked` frame, `data` `{"reason":…}`, sent before the connection is closed.
pub fn session_revoked(reason: &str) -> String {
    event_with_encoded_data(SESSION_REVOKED, &json!({"reason": reason}).to_string())
}

/// An event whose `data` is already JSON (encoded once, reused for the recent window and the fan-out).
pub fn event_with_encoded_data(kind: &str, data_json: &str) -> String {
    format!(r#"{{"type":{},"data":{data_json}}}"#, Value::from(kind))
}

/// The seq of a `message.new` frame (as [`event_with_encoded_data`] builds it around an encoded
/// [`Message`](crate::domain::model::Message)), read without parsing the frame: the message's first
/// `"seq":` is its own field, since only strings come before it and a quote inside a string is always
/// escaped. `None` for any other frame.
pub fn message_new_seq(frame: &str) -> Option<u64> {
    const PREFIX: &str = r#"{"type":"message.new","data":{"#;
    const SEQ: &str = r#","seq":"#;
    let data = frame.strip_prefix(PREFIX)?;
    let after = &data[data.find(SEQ)? + SEQ.len()..];
    let digits = after.find(|c: char| !c.is_ascii_digit()).unwrap_or(after.len());
    after[..digits].parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_new_frame_tells_its_seq() {
        let message = crate::domain::model::Message {
            id: "m".into(),
            seq: 42,
            text: r#"a "seq":7 and ,\"seq\":8"#.into(),
            ..Default::default()
        };
        let frame = event_with_encoded_data("message.new", &serde_json::to_string(&message).unwrap());
        assert_eq!(message_new_seq(&frame), Some(42));
        let edited = event_with_encoded_data("message.updated", &serde_json::to_string(&message).unwrap());
        assert_eq!(message_new_seq(&edited), None, "only message.new is sequenced");
        assert_eq!(message_new_seq(r#"{"type":"typing","data":{"seq":1}}"#), None);
        assert_eq!(message_new_seq(r#"{"type":"message.new","data":{"id":"m"}}"#), None);
    }

    #[test]
    fn frames_parse_and_bad_payloads_name_the_problem() {
        let frame = ClientFrame::parse(r#"{"id":"1","type":"message.send","data":{"conversation_id":"c"}}"#).unwrap();
        let err = ClientEvent::from_frame(&frame).unwrap_err();
        assert_eq!(err.code(), "validation_failed");
        assert!(err.public_message().contains("client_msg_id"));
        for unknown in [r#"{"type":"nope"}"#, r#"{"type":"nope","data":{"a":1}}"#] {
            let frame = ClientFrame::parse(unknown).unwrap();
            assert_eq!(ClientEvent::from_frame(&frame).unwrap_err().code(), "unknown_event");
        }
        let ping = ClientFrame::parse(r#"{"type":"ping","data":{"any":"thing"}}"#).unwrap();
        assert!(matches!(ClientEvent::from_frame(&ping), Ok(ClientEvent::Ping(_))));
        let list = ClientFrame::parse(r#"{"type":"conversation.list","data":null}"#).unwrap();
        assert!(matches!(
            ClientEvent::from_frame(&list),
            Ok(ClientEvent::ListConversations(None))
        ));
        assert_eq!(ClientFrame::parse("{oops").unwrap_err().code(), "invalid_json");
        assert_eq!(ClientFrame::parse("[1]").unwrap_err().code(), "validation_failed");
        assert_eq!(
            ClientFrame::parse(r#" [null, "ping"]"#).unwrap_err().code(),
            "validation_failed",
            "a struct's fields in an array are not a frame"
        );
        assert_eq!(
            ClientFrame::parse(r#"{"id":"1"}"#).unwrap_err().code(),
            "validation_failed"
        );
    }

    #[test]
    fn pre_encoded_events_match_encoded_ones() {
        let data = json!({"text": "hi \"there\"", "seq": 3});
        let encoded: Value = serde_json::from_str(&event_with_encoded_data("message.new", &data.to_string())).unwrap();
        let direct: Value = serde_json::from_str(&event("message.new", &data)).unwrap();
        assert_eq!(encoded, direct);
    }

    #[test]
    fn replies_have_the_documented_shape() {
        let ok: Value = serde_json::from_str(&reply_ok(Some("7"), json!({"a":1}))).unwrap();
        assert_eq!(ok, json!({"reply_to":"7","ok":true,"data":{"a":1}}));
        for reply_to in [Some("7"), None] {
            assert_eq!(
                reply_ok(reply_to, json!({"a": [1, "x"]})),
                json!({"reply_to": reply_to, "ok": true, "data": {"a": [1, "x"]}}).to_string(),
                "encoded without a Value, byte for byte as before"
            );
        }
        let err: Value = serde_json::from_str(&reply_error(Some("8"), &Error::Forbidden("no".into()))).unwrap();
        assert_eq!(
            err,
            json!({"reply_to":"8","ok":false,"error":{"code":"forbidden","message":"no"}})
        );
    }
}
