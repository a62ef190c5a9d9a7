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
    #[serde(default)]
    pub id: Option<String>,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub data: Value,
    #[serde(default)]
    pub correlation_id: Option<String>,
    /// Only in the `auth` frame.
    #[serde(default)]
    pub token: Option<String>,
}

impl ClientFrame {
    pub fn parse(text: &str) -> Result<Self, Error> {
        let value: Value = serde_json::from_str(text)?;
        if !value.is_object() {
            return Err(Error::Validation("a frame must be a JSON object".into()));
        }
        serde_json::from_value(value).map_err(|e| Error::Validation(format!("malformed frame: {e}")))
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
    #[serde(rename = "conversation.create")]
    CreateConversation(CreateConversation),
    #[serde(rename = "conversation.list")]
    ListConversations(#[serde(default)] Option<ListConversations>),
    #[serde(rename = "conversation.members")]
    Members(ConversationRef),
    #[serde(rename = "conversation.members.add")]
    AddMembers(AddMembers),
    #[serde(rename = "conversation.members.remove")]
    RemoveMember(RemoveMember),
    #[serde(rename = "conversation.leave")]
    Leave(ConversationRef),
    #[serde(rename = "conversation.update")]
    Rename(RenameConversation),
    #[serde(rename = "conversation.subscribe")]
    Subscribe(Subscribe),
    #[serde(rename = "conversation.history")]
    History(History),
    #[serde(rename = "read.mark")]
    MarkRead(MarkRead),
    #[serde(rename = "typing.start")]
    TypingStart(ConversationRef),
    #[serde(rename = "typing.stop")]
    TypingStop(ConversationRef),
    #[serde(rename = "presence.subscribe")]
    PresenceSubscribe(PresenceSubscribe),
    #[serde(rename = "message.send")]
    Send(SendMessage),
    #[serde(rename = "message.edit")]
    Edit(EditMessage),
    #[serde(rename = "message.delete")]
    Delete(MessageRef),
    #[serde(rename = "message.forward")]
    Forward(ForwardMessage),
    #[serde(rename = "message.replies")]
    Replies(Replies),
    #[serde(rename = "reaction.add")]
    ReactionAdd(ReactionRequest),
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
        let unknown = || Error::UnknownEvent(frame.kind.clone());
        match Self::deserialize(json!({"type": frame.kind, "data": frame.data})) {
            Ok(ClientEvent::Unknown) => Err(unknown()),
            Ok(event) => Ok(event),
            // `Unknown` takes no data, so an unknown type that came with some is told apart here.
            Err(_) if matches!(Self::deserialize(json!({"type": frame.kind})), Ok(ClientEvent::Unknown)) => {
                Err(unknown())
            }
            Err(e) => Err(Error::Validation(format!("invalid data for {}: {e}", frame.kind))),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateConversation {
    pub kind: ConversationKind,
    /// The other members; the caller is always added.
    pub member_ids: Vec<String>,
    #[serde(default)]
    pub name: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Subscribe {
    pub conversation_id: String,
    #[serde(default)]
    pub since_seq: Option<i64>,
    #[serde(default)]
    pub epoch: Option<String>,
}

/// Any event that names just a conversation (`conversation.leave`, `conversation.members`,
/// `typing.start`, `typing.stop`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConversationRef {
    pub conversation_id: String,
}

/// `conversation.list`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListConversations {
    #[serde(default)]
    pub limit: Option<usize>,
}

/// `conversation.members.add`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddMembers {
    pub conversation_id: String,
    pub member_ids: Vec<String>,
    #[serde(default)]
    pub role: Option<crate::domain::model::Role>,
}

/// `conversation.members.remove`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoveMember {
    pub conversation_id: String,
    pub user_id: String,
}

/// `conversation.update`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenameConversation {
    pub conversation_id: String,
    pub name: String,
}

/// `presence.subscribe`: current presence of these users (of the caller's app), then `presence` events.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PresenceSubscribe {
    pub user_ids: Vec<String>,
}

/// `read.mark`: everything up to `seq` has been read.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MarkRead {
    pub conversation_id: String,
    pub seq: i64,
}

/// `conversation.history`: a page of messages; see [`crate::ports::store::SeqRange`].
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct History {
    pub conversation_id: String,
    #[serde(default)]
    pub before_seq: Option<i64>,
    #[serde(default)]
    pub after_seq: Option<i64>,
    #[serde(default)]
    pub limit: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendMessage {
    pub conversation_id: String,
    pub client_msg_id: String,
    #[serde(default)]
    pub text: String,
    #[serde(default)]
    pub reply_to: Option<String>,
    /// Ids of completed uploads (`POST /api/v1/media/uploads/{id}/complete`).
    #[serde(default)]
    pub attachments: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EditMessage {
    pub conversation_id: String,
    pub message_id: String,
    pub text: String,
}

/// `message.delete`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessageRef {
    pub conversation_id: String,
    pub message_id: String,
}

/// `message.replies`: the thread under one message.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Replies {
    pub conversation_id: String,
    pub message_id: String,
    #[serde(default)]
    pub limit: Option<usize>,
}

/// `message.forward`: a new message in `conversation_id` that copies and references the source.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardMessage {
    pub conversation_id: String,
    pub client_msg_id: String,
    pub source_conversation_id: String,
    pub message_id: String,
}

/// `reaction.add` / `reaction.remove`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReactionRequest {
    pub conversation_id: String,
    pub message_id: String,
    pub emoji: String,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum AckStatus {
    Accepted,
    Persisted,
}

/// Tells a sender how far its message has got.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Ack {
    pub conversation_id: String,
    pub client_msg_id: String,
    pub message_id: String,
    pub seq: i64,
    pub status: AckStatus,
    /// True when this send repeated an earlier `client_msg_id` and no new message was created.
    #[serde(default)]
    pub duplicate: bool,
}

/// Encodes a reply's `data`.
pub fn to_data(value: &impl Serialize) -> Result<Value, Error> {
    serde_json::to_value(value).map_err(|e| Error::Internal(format!("encoding reply: {e}")))
}

pub fn reply_ok(reply_to: Option<&str>, data: impl Serialize) -> String {
    json!({"reply_to": reply_to, "ok": true, "data": data}).to_string()
}

pub fn reply_error(reply_to: Option<&str>, error: &Error) -> String {
    json!({"reply_to": reply_to, "ok": false, "error": {"code": error.code(), "message": error.public_message()}})
        .to_string()
}

pub fn event(kind: &str, data: impl Serialize) -> String {
    json!({"type": kind, "data": data}).to_string()
}

/// Sent to the live connections of an ended session (logout, a ban) just before they are closed.
pub const SESSION_REVOKED: &str = "session.revoked";

pub fn session_revoked(reason: &str) -> String {
    event_with_encoded_data(SESSION_REVOKED, &json!({"reason": reason}).to_string())
}

/// An event whose `data` is already JSON (encoded once, reused for the recent window and the fan-out).
pub fn event_with_encoded_data(kind: &str, data_json: &str) -> String {
    format!(r#"{{"type":{},"data":{data_json}}}"#, Value::from(kind))
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let err: Value = serde_json::from_str(&reply_error(Some("8"), &Error::Forbidden("no".into()))).unwrap();
        assert_eq!(
            err,
            json!({"reply_to":"8","ok":false,"error":{"code":"forbidden","message":"no"}})
        );
    }
}
