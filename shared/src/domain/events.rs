//! Kafka envelopes. Values are JSON; metadata travels in headers so consumers can route and trace
//! without parsing the payload.

use crate::domain::model::{Conversation, Message, Reaction};
use serde::{Deserialize, Serialize};

/// The Kafka topic names. Long-running processes (socket nodes, the local gateway and bridge) create them all
/// from [`topics::ALL`] at start-up; the in-memory bus has them from the start.
pub mod topics {
    /// Every message state ([`MessageEvent`](super::MessageEvent)), keyed by conversation id: written by the
    /// send, edit, delete and react use cases and by retention; read by persist-messages, persist-conversations
    /// and index-messages.
    pub const MESSAGES: &str = "caas.messages";
    /// Conversation and membership changes ([`ConversationEvent`](super::ConversationEvent)), keyed by
    /// conversation id; every socket node relays them to its connections.
    pub const CONVERSATIONS: &str = "caas.conversations";
    /// [`PersistedAck`](super::PersistedAck)s from persist-messages once messages are stored, keyed by
    /// conversation id; socket nodes relay them to the senders as `persisted` acks.
    pub const ACKS: &str = "caas.acks";
    /// [`AuditEvent`](crate::domain::audit::AuditEvent)s, keyed by app id so each app's chain stays in order; the
    /// write-audit function appends them to the chain.
    pub const AUDIT: &str = "caas.audit";
    /// Moderation measures socket nodes enforce on live connections (a ban ends them).
    pub const MODERATION: &str = "caas.moderation";
    /// Every topic, for creating them all at start-up.
    pub const ALL: [&str; 5] = [MESSAGES, CONVERSATIONS, ACKS, AUDIT, MODERATION];
}

/// The value of the `schema_version` header every record carries: the version of the payload shapes defined here.
pub const SCHEMA_VERSION: &str = "1";

/// Headers every record carries (ARCHITECTURE.md: correlation_id, app_id, event_type, schema_version).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EventHeaders {
    /// Travels as the `correlation_id` header ([`KAFKA_HEADER`](crate::domain::correlation::KAFKA_HEADER)).
    pub correlation_id: String,
    /// The app the record belongs to (the `app_id` header).
    pub app_id: String,
    /// What the record is (the `event_type` header), e.g. `message.created`, `conversation.updated`,
    /// `message.persisted`, or an audit action.
    pub event_type: String,
}

impl EventHeaders {
    /// The headers of one record of `app_id`, of type `event_type`, traced by `correlation_id`.
    pub fn new(app_id: &str, event_type: &str, correlation_id: &str) -> Self {
        Self {
            correlation_id: correlation_id.to_owned(),
            app_id: app_id.to_owned(),
            event_type: event_type.to_owned(),
        }
    }

    /// The headers of `event`, a record on `caas.messages`.
    pub fn for_message_event(app_id: &str, event: &MessageEvent, correlation_id: &str) -> Self {
        Self::new(app_id, event.event_type(), correlation_id)
    }

    /// The `(name, value)` pairs as they travel on the bus.
    pub fn pairs(&self) -> [(&'static str, &str); 4] {
        [
            (crate::domain::correlation::KAFKA_HEADER, self.correlation_id.as_str()),
            ("app_id", self.app_id.as_str()),
            ("event_type", self.event_type.as_str()),
            ("schema_version", SCHEMA_VERSION),
        ]
    }
}

/// Everything published on `caas.messages`, keyed by conversation id so each conversation stays ordered.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", content = "data")]
pub enum MessageEvent {
    /// A new message, as sent (`version` 0); wire `type` `message.created`.
    #[serde(rename = "message.created")]
    Created(Message),
    /// The whole message after an edit, with a higher `version`.
    #[serde(rename = "message.edited")]
    Edited(Message),
    /// The tombstone after a soft deletion, with a higher `version`.
    #[serde(rename = "message.deleted")]
    Deleted(Message),
    /// One user's reaction state with one emoji after an add or a remove.
    #[serde(rename = "message.reacted")]
    Reacted(Reaction),
    /// Retention removed the message for good; carries its tombstone so readers that keep copies
    /// (the search index, conversation summaries) drop the content too.
    #[serde(rename = "message.purged")]
    Purged(Message),
}

impl MessageEvent {
    /// The wire name of the variant, also sent as the record's `event_type` header.
    pub fn event_type(&self) -> &'static str {
        match self {
            MessageEvent::Created(_) => "message.created",
            MessageEvent::Edited(_) => "message.edited",
            MessageEvent::Deleted(_) => "message.deleted",
            MessageEvent::Reacted(_) => "message.reacted",
            MessageEvent::Purged(_) => "message.purged",
        }
    }

    /// The record's bytes when its `data` is already encoded as `data_json` (the message as clients see
    /// it, encoded once for the bus, the recent window and the fan-out); byte for byte what serde writes
    /// for the event.
    pub fn encode_with_data(&self, data_json: &str) -> Vec<u8> {
        format!(r#"{{"type":"{}","data":{data_json}}}"#, self.event_type()).into_bytes()
    }

    /// The record's correlation id, filled in from the Kafka header when the payload lacks one.
    pub fn correlation_id_mut(&mut self) -> &mut String {
        match self {
            MessageEvent::Created(message)
            | MessageEvent::Edited(message)
            | MessageEvent::Deleted(message)
            | MessageEvent::Purged(message) => &mut message.correlation_id,
            MessageEvent::Reacted(reaction) => &mut reaction.correlation_id,
        }
    }
}

/// Published on `caas.acks` once a message is durably stored; socket nodes relay it to the sender.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct PersistedAck {
    /// The app the message belongs to.
    pub app_id: String,
    /// The conversation the message was stored in.
    pub conversation_id: String,
    /// The stored message's id.
    pub message_id: String,
    /// The message's seq in the conversation.
    pub seq: i64,
    /// The platform user id of the sender, whose connections get the ack.
    pub sender_id: String,
    /// The sender's idempotency key, so the client can match the ack to its pending message.
    pub client_msg_id: String,
    /// The correlation id of the send.
    pub correlation_id: String,
}

impl PersistedAck {
    /// The ack of a stored `message`.
    pub fn for_message(message: &Message) -> Self {
        Self {
            app_id: message.app_id.clone(),
            conversation_id: message.conversation_id.clone(),
            message_id: message.id.clone(),
            seq: message.seq,
            sender_id: message.sender_id.clone(),
            client_msg_id: message.client_msg_id.clone(),
            correlation_id: message.correlation_id.clone(),
        }
    }
}

/// Published on `caas.conversations` (keyed by conversation id) whenever a conversation or its
/// membership changes, whichever entry point made the change. Every socket node tails the topic and
/// tells its own connections, so live clients hear of changes made over HTTP too.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ConversationEvent {
    /// `conversation.created`, `conversation.updated` (renamed, members added or removed).
    pub kind: String,
    /// The conversation as it is after the change (members included).
    pub conversation: Conversation,
    /// Users who joined with this change; they get `conversation.joined`.
    #[serde(default)]
    pub added: Vec<String>,
    /// Users who left or were removed; they get `conversation.removed` and lose live delivery at once.
    #[serde(default)]
    pub removed: Vec<String>,
}

/// The key directory's notices, published by the keys function on `caas.conversations` (keyed by the
/// user id) so every socket node relays them, as it relays conversation changes.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind")]
pub enum KeyNotice {
    /// `user_id` added or deleted a device: `recipients` (the members of their conversations, and
    /// they themselves) get `device_list.changed {user_id}`.
    #[serde(rename = "device_list.changed")]
    DeviceListChanged {
        /// The app of the user.
        app_id: String,
        /// Whose device list changed.
        user_id: String,
        /// The platform user ids to tell.
        recipients: Vec<String>,
        /// The correlation id of the upload or deletion.
        correlation_id: String,
    },
    /// A claim left the device's one-time pool below the threshold: the device's own connections get
    /// `keys.low {device_id, count}`.
    #[serde(rename = "keys.low")]
    KeysLow {
        /// The app of the device's user.
        app_id: String,
        /// The device's user.
        user_id: String,
        /// The device whose pool runs low.
        device_id: String,
        /// Its unclaimed one-time keys.
        count: u64,
        /// The correlation id of the claim.
        correlation_id: String,
    },
}

/// A record of `caas.conversations`: a conversation change or a key-directory notice (told apart by
/// `kind`).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum ConversationsRecord {
    /// A key-directory notice (`kind` `device_list.changed` or `keys.low`).
    Keys(KeyNotice),
    /// A conversation or membership change.
    Change(ConversationEvent),
}

/// Published on `caas.moderation` (keyed by app) when a user's sessions end: every socket node tails
/// the topic and closes the connections it holds of that session, or of the user when none is named.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct SessionRevocation {
    /// The app the sessions belong to (also the record key).
    pub app_id: String,
    /// The platform user id whose sessions ended; `None` when every session of the app ended (a secret
    /// rotation that ends all sessions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// The one session that ended; `None` when every session of the user ended (e.g. an app-wide ban).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// Shown to the client in the `session.revoked` frame.
    pub reason: String,
    /// The correlation id of the request that revoked the sessions.
    pub correlation_id: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_conversations_topic_tells_key_notices_from_conversation_changes() {
        let notice = KeyNotice::KeysLow {
            app_id: "a".into(),
            user_id: "u".into(),
            device_id: "D".into(),
            count: 3,
            correlation_id: "c".into(),
        };
        let record: ConversationsRecord = serde_json::from_slice(&serde_json::to_vec(&notice).unwrap()).unwrap();
        assert_eq!(record, ConversationsRecord::Keys(notice));
        let change = ConversationEvent {
            kind: "conversation.created".into(),
            conversation: serde_json::from_value(serde_json::json!({
                "id": "c", "app_id": "a", "kind": "group", "created_by": "u", "member_ids": ["u"],
                "epoch": "e", "created_at": 1, "correlation_id": "c",
            }))
            .unwrap(),
            added: vec!["u".into()],
            removed: vec![],
        };
        let record: ConversationsRecord = serde_json::from_slice(&serde_json::to_vec(&change).unwrap()).unwrap();
        assert_eq!(record, ConversationsRecord::Change(change));
    }

    #[test]
    fn an_event_around_encoded_data_is_what_serde_writes() {
        let message = Message {
            id: "m".into(),
            text: "say \"hi\"\n".into(),
            seq: 7,
            ..Message::default()
        };
        let data = serde_json::to_string(&message).unwrap();
        for event in [MessageEvent::Created(message.clone()), MessageEvent::Deleted(message)] {
            assert_eq!(event.encode_with_data(&data), serde_json::to_vec(&event).unwrap());
        }
    }
}
