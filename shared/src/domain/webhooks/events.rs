//! What webhooks carry (issue 38): each record the platform announces on the bus becomes zero or more
//! events of [`EVENT_TYPES`](super::EVENT_TYPES), with an id derived from what the event is about, so a
//! record consumed twice (or a message produced twice) is one event with one `webhook-id`.
//!
//! The body every endpoint receives, and the events API returns, is
//! `{"id", "type", "app_id", "created_at", "correlation_id", "data"}`; `data` per type:
//! `message.new` `{message, offline_member_ids}`, `message.updated` / `message.deleted` `{message}`,
//! `reaction.added` / `reaction.removed` `{reaction}`, `conversation.created` / `conversation.updated`
//! `{conversation}`, `member.added` / `member.removed` `{conversation, user_ids}`, `message.flagged`,
//! `user.banned`, `user.muted`, `user.restriction_lifted`: the audit event's `{actor, target, details}`.

use crate::domain::audit::{actions, AuditEvent};
use crate::domain::events::{ConversationEvent, MessageEvent};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// The type of the operator's test event, sent to one endpoint whatever it subscribes to.
pub const TEST_EVENT: &str = "webhook.test";

/// An event before it is stored: the ingest adds its id, time and, for `message.new`, who was offline.
#[derive(Clone, Debug, PartialEq)]
pub struct Draft {
    /// The app it belongs to.
    pub app_id: String,
    /// One of [`EVENT_TYPES`](super::EVENT_TYPES).
    pub event_type: &'static str,
    /// What makes this event itself: a message id and version, an audit event's id, or the record's place
    /// on the bus when nothing in it is unique.
    pub key: String,
    /// The correlation id of the request that caused it.
    pub correlation_id: String,
    /// The event's `data`.
    pub data: Value,
    /// For `message.new`: the conversation and the sender, whose other members' presence goes into
    /// `offline_member_ids`.
    pub offline_of: Option<(String, String)>,
}

/// The id of the event of `event_type` about `key` in `app_id`: `evt_` and 32 hex digits of a SHA-256.
pub fn event_id(app_id: &str, event_type: &str, key: &str) -> String {
    let digest = Sha256::new()
        .chain_update(app_id)
        .chain_update([0])
        .chain_update(event_type)
        .chain_update([0])
        .chain_update(key)
        .finalize();
    let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("evt_{hex}")
}

/// The body of an event, as every endpoint receives it.
pub fn payload(
    id: &str,
    event_type: &str,
    app_id: &str,
    created_at: i64,
    correlation_id: &str,
    data: &Value,
) -> String {
    json!({
        "id": id,
        "type": event_type,
        "app_id": app_id,
        "created_at": created_at,
        "correlation_id": correlation_id,
        "data": data,
    })
    .to_string()
}

/// The event of a record on `caas.messages`; none for a purge (retention, which webhooks do not announce).
pub fn from_message_event(event: &MessageEvent) -> Option<Draft> {
    let draft = |event_type, key: String, app_id: &str, correlation_id: &str, data| Draft {
        app_id: app_id.to_owned(),
        event_type,
        key,
        correlation_id: correlation_id.to_owned(),
        data,
        offline_of: None,
    };
    match event {
        MessageEvent::Created(m) => Some(Draft {
            offline_of: Some((m.conversation_id.clone(), m.sender_id.clone())),
            ..draft(
                "message.new",
                m.id.clone(),
                &m.app_id,
                &m.correlation_id,
                json!({"message": m}),
            )
        }),
        MessageEvent::Edited(m) => Some(draft(
            "message.updated",
            format!("{}:{}", m.id, m.version),
            &m.app_id,
            &m.correlation_id,
            json!({"message": m}),
        )),
        MessageEvent::Deleted(m) => Some(draft(
            "message.deleted",
            m.id.clone(),
            &m.app_id,
            &m.correlation_id,
            json!({"message": m}),
        )),
        MessageEvent::Reacted(r) => Some(draft(
            if r.active { "reaction.added" } else { "reaction.removed" },
            format!("{}:{}", r.id, r.version),
            &r.app_id,
            &r.correlation_id,
            json!({"reaction": r}),
        )),
        MessageEvent::Purged(_) => None,
    }
}

/// The events of a conversation change on `caas.conversations` at `position` (its place on the bus,
/// the only thing unique about a change): `conversation.created`; or `member.added` and
/// `member.removed` for a membership change; or `conversation.updated` for anything else (a rename).
pub fn from_conversation_event(event: &ConversationEvent, position: &str) -> Vec<Draft> {
    let conversation = &event.conversation;
    let draft = |event_type: &'static str, data: Value| Draft {
        app_id: conversation.app_id.clone(),
        event_type,
        key: format!("{position}:{event_type}"),
        correlation_id: conversation.correlation_id.clone(),
        data,
        offline_of: None,
    };
    if event.kind == "conversation.created" {
        return vec![Draft {
            key: conversation.id.clone(),
            ..draft("conversation.created", json!({"conversation": conversation}))
        }];
    }
    let mut drafts = Vec::new();
    for (event_type, user_ids) in [("member.added", &event.added), ("member.removed", &event.removed)] {
        if !user_ids.is_empty() {
            drafts.push(draft(
                event_type,
                json!({"conversation": conversation, "user_ids": user_ids}),
            ));
        }
    }
    if drafts.is_empty() {
        drafts.push(draft("conversation.updated", json!({"conversation": conversation})));
    }
    drafts
}

/// The event of an audit record on `caas.audit`, for the moderation actions webhooks announce.
pub fn from_audit_event(event: &AuditEvent) -> Option<Draft> {
    let event_type = match event.action.as_str() {
        actions::MESSAGE_FLAGGED => "message.flagged",
        actions::USER_RESTRICTED => match event.details.get("kind").and_then(Value::as_str) {
            Some("ban") => "user.banned",
            Some("mute") => "user.muted",
            _ => return None,
        },
        actions::USER_RESTRICTION_LIFTED => "user.restriction_lifted",
        _ => return None,
    };
    Some(Draft {
        app_id: event.app_id.clone(),
        event_type,
        key: event.id.clone(),
        correlation_id: event.correlation_id.clone(),
        data: json!({"actor": event.actor, "target": event.target, "details": event.details}),
        offline_of: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::audit::{Actor, Target};
    use crate::domain::model::{Conversation, Message, Reaction};

    fn message(version: i64) -> Message {
        Message {
            id: "m1".into(),
            app_id: "app".into(),
            conversation_id: "c1".into(),
            sender_id: "alice".into(),
            version,
            correlation_id: "corr".into(),
            ..Message::default()
        }
    }

    #[test]
    fn message_events_map_to_their_webhook_types_with_stable_keys() {
        let reaction = |active| Reaction {
            id: "m1:bob:👍".into(),
            app_id: "app".into(),
            conversation_id: "c1".into(),
            message_id: "m1".into(),
            user_id: "bob".into(),
            emoji: "👍".into(),
            active,
            version: 9,
            correlation_id: "corr".into(),
        };
        let cases = [
            (MessageEvent::Created(message(0)), Some(("message.new", "m1"))),
            (MessageEvent::Edited(message(3)), Some(("message.updated", "m1:3"))),
            (MessageEvent::Deleted(message(4)), Some(("message.deleted", "m1"))),
            (
                MessageEvent::Reacted(reaction(true)),
                Some(("reaction.added", "m1:bob:👍:9")),
            ),
            (
                MessageEvent::Reacted(reaction(false)),
                Some(("reaction.removed", "m1:bob:👍:9")),
            ),
            (MessageEvent::Purged(message(5)), None),
        ];
        for (event, expected) in cases {
            let draft = from_message_event(&event);
            let got = draft.as_ref().map(|d| (d.event_type, d.key.as_str()));
            assert_eq!(got, expected, "{}", event.event_type());
            if let Some(draft) = draft {
                assert_eq!((draft.app_id.as_str(), draft.correlation_id.as_str()), ("app", "corr"));
                assert_eq!(
                    draft.offline_of.is_some(),
                    draft.event_type == "message.new",
                    "only a new message reports who was offline"
                );
            }
        }
        let new = from_message_event(&MessageEvent::Created(message(0))).unwrap();
        assert_eq!(new.data["message"]["id"], "m1");
        assert_eq!(new.offline_of, Some(("c1".into(), "alice".into())));
    }

    #[test]
    fn conversation_changes_become_created_member_or_updated_events() {
        let conversation: Conversation = serde_json::from_value(json!({
            "id": "c1", "app_id": "app", "kind": "group", "created_by": "alice", "member_ids": ["alice", "bob"],
            "epoch": "e", "created_at": 1, "correlation_id": "corr",
        }))
        .unwrap();
        let change = |kind: &str, added: &[&str], removed: &[&str]| ConversationEvent {
            kind: kind.into(),
            conversation: conversation.clone(),
            added: added.iter().map(|s| s.to_string()).collect(),
            removed: removed.iter().map(|s| s.to_string()).collect(),
        };
        let types = |event: &ConversationEvent| -> Vec<(&'static str, String)> {
            from_conversation_event(event, "caas.conversations:0:7")
                .into_iter()
                .map(|d| (d.event_type, d.key))
                .collect()
        };
        assert_eq!(
            types(&change("conversation.created", &["alice", "bob"], &[])),
            [("conversation.created", "c1".to_string())]
        );
        assert_eq!(
            types(&change("conversation.updated", &["carol"], &["bob"])),
            [
                ("member.added", "caas.conversations:0:7:member.added".to_string()),
                ("member.removed", "caas.conversations:0:7:member.removed".to_string())
            ]
        );
        assert_eq!(
            types(&change("conversation.updated", &[], &[])),
            [(
                "conversation.updated",
                "caas.conversations:0:7:conversation.updated".to_string()
            )]
        );
        let added = &from_conversation_event(&change("conversation.updated", &["carol"], &[]), "p")[0];
        assert_eq!(added.data["user_ids"], json!(["carol"]));
    }

    #[test]
    fn only_moderation_audit_events_become_webhook_events() {
        let audit = |action: &str, details: Value| {
            AuditEvent::new("app", action, Actor::operator(), Target::new("user", "bob"), "corr").with_details(details)
        };
        let cases = [
            (
                audit(actions::MESSAGE_FLAGGED, json!({"terms": ["x"]})),
                Some("message.flagged"),
            ),
            (
                audit(actions::USER_RESTRICTED, json!({"kind": "ban"})),
                Some("user.banned"),
            ),
            (
                audit(actions::USER_RESTRICTED, json!({"kind": "mute"})),
                Some("user.muted"),
            ),
            (audit(actions::USER_RESTRICTED, json!({"kind": "other"})), None),
            (
                audit(actions::USER_RESTRICTION_LIFTED, json!({"kind": "ban"})),
                Some("user.restriction_lifted"),
            ),
            (audit(actions::TOKEN_ISSUED, Value::Null), None),
        ];
        for (event, expected) in cases {
            let draft = from_audit_event(&event);
            assert_eq!(draft.as_ref().map(|d| d.event_type), expected, "{}", event.action);
            if let Some(draft) = draft {
                assert_eq!(draft.key, event.id, "the audit event's own id");
                assert_eq!(draft.data["target"]["id"], "bob");
            }
        }
    }

    #[test]
    fn event_ids_depend_on_app_type_and_key_only() {
        let id = event_id("app", "message.new", "m1");
        assert_eq!(id, event_id("app", "message.new", "m1"));
        assert!(id.starts_with("evt_") && id.len() == 36);
        for other in [
            event_id("app2", "message.new", "m1"),
            event_id("app", "message.deleted", "m1"),
            event_id("app", "message.new", "m2"),
            // The separators keep the parts apart.
            event_id("ap", "pmessage.new", "m1"),
        ] {
            assert_ne!(id, other);
        }
    }

    #[test]
    fn every_mapped_type_is_one_endpoints_may_subscribe_to() {
        for event_type in [
            "message.new",
            "message.updated",
            "message.deleted",
            "reaction.added",
            "reaction.removed",
            "conversation.created",
            "conversation.updated",
            "member.added",
            "member.removed",
            "message.flagged",
            "user.banned",
            "user.muted",
            "user.restriction_lifted",
        ] {
            assert!(super::super::EVENT_TYPES.contains(&event_type), "{event_type}");
        }
    }
}
