//! Events from Socket.IO clients, as native requests: every native event under its own name (data in
//! the first argument), and the replaced system's events — `sendMessage`, `message:edit`,
//! `message:delete`, `message:forward`, `message:react`, with their camelCase fields — mapped onto
//! the native ones. The table is in `docs/protocol.md`.

use caas_shared::{Error, Result};
use serde_json::{Map, Value};

/// A native request: its event name and data.
#[derive(Debug, PartialEq)]
pub struct Request {
    pub kind: String,
    pub data: Value,
}

/// The native request a Socket.IO event stands for. `derived_msg_id` names a message the client sent
/// without a `clientMsgId` (the replaced system's `sendMessage` had none); see
/// `Connection::derived_msg_id` for why that keeps a resent packet from sending twice.
pub fn to_request(name: &str, mut args: Vec<Value>, derived_msg_id: impl FnOnce() -> String) -> Result<Request> {
    if args.len() > 1 {
        return Err(Error::Validation(format!(
            "{name} takes one argument, its data object (and an acknowledgement callback)"
        )));
    }
    let data = args.pop().unwrap_or(Value::Null);
    let (kind, data) = match name {
        "sendMessage" => (
            "message.send",
            with_msg_id(original_fields(name, data)?, derived_msg_id),
        ),
        "message:edit" => ("message.edit", original_fields(name, data)?),
        "message:delete" => ("message.delete", original_fields(name, data)?),
        "message:forward" => (
            "message.forward",
            with_msg_id(original_fields(name, data)?, derived_msg_id),
        ),
        "message:react" => {
            let mut fields = original_fields(name, data)?;
            let remove = match fields.remove("remove") {
                None | Some(Value::Bool(false)) => false,
                Some(Value::Bool(true)) => true,
                Some(_) => return Err(Error::Validation("message:react: remove is true or false".into())),
            };
            let kind = if remove { "reaction.remove" } else { "reaction.add" };
            (kind, fields)
        }
        native => {
            return Ok(Request {
                kind: native.to_owned(),
                data,
            })
        }
    };
    Ok(Request {
        kind: kind.to_owned(),
        data: Value::Object(data),
    })
}

/// The replaced system's camelCase fields in native form: snake_case keys, `messageContent` as `text`,
/// `targetConversationId` as `conversation_id`, `reaction` as `emoji`.
fn original_fields(name: &str, data: Value) -> Result<Map<String, Value>> {
    let Value::Object(fields) = data else {
        return Err(Error::Validation(format!("{name} takes a data object")));
    };
    Ok(fields
        .into_iter()
        .map(|(key, value)| {
            let key = match snake_case(&key).as_str() {
                "message_content" => "text".to_owned(),
                "target_conversation_id" => "conversation_id".to_owned(),
                "reaction" => "emoji".to_owned(),
                other => other.to_owned(),
            };
            (key, value)
        })
        .collect())
}

fn with_msg_id(mut fields: Map<String, Value>, derived_msg_id: impl FnOnce() -> String) -> Map<String, Value> {
    if !fields.contains_key("client_msg_id") {
        fields.insert("client_msg_id".into(), Value::String(derived_msg_id()));
    }
    fields
}

fn snake_case(key: &str) -> String {
    let mut out = String::with_capacity(key.len() + 4);
    for c in key.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request(name: &str, data: Value) -> Request {
        to_request(name, vec![data], || "derived-1".into()).unwrap()
    }

    #[test]
    fn native_events_pass_through() {
        let data = json!({"conversation_id": "c", "client_msg_id": "m", "text": "hi"});
        assert_eq!(
            request("message.send", data.clone()),
            Request {
                kind: "message.send".into(),
                data
            }
        );
        assert_eq!(
            to_request("conversation.list", vec![], String::new).unwrap().data,
            Value::Null
        );
    }

    #[test]
    fn the_original_events_map_onto_native_ones() {
        let sent = request(
            "sendMessage",
            json!({"conversationId": "c", "messageContent": "Hello World"}),
        );
        assert_eq!(sent.kind, "message.send");
        assert_eq!(
            sent.data,
            json!({"conversation_id": "c", "text": "Hello World", "client_msg_id": "derived-1"})
        );
        let kept = request(
            "sendMessage",
            json!({"conversationId": "c", "messageContent": "x", "clientMsgId": "mine", "replyTo": "m0"}),
        );
        assert_eq!(kept.data["client_msg_id"], "mine");
        assert_eq!(kept.data["reply_to"], "m0");
        let edit = request(
            "message:edit",
            json!({"conversationId": "c", "messageId": "m", "messageContent": "new"}),
        );
        assert_eq!(
            (edit.kind.as_str(), edit.data),
            (
                "message.edit",
                json!({"conversation_id": "c", "message_id": "m", "text": "new"})
            )
        );
        assert_eq!(
            request("message:delete", json!({"conversationId": "c", "messageId": "m"})).kind,
            "message.delete"
        );
        let forward = request(
            "message:forward",
            json!({"targetConversationId": "t", "sourceConversationId": "s", "messageId": "m"}),
        );
        assert_eq!(
            forward.data,
            json!({"conversation_id": "t", "source_conversation_id": "s", "message_id": "m", "client_msg_id": "derived-1"})
        );
        let react = json!({"conversationId": "c", "messageId": "m", "emoji": "👍"});
        assert_eq!(request("message:react", react.clone()).kind, "reaction.add");
        let mut unreact = react;
        unreact["remove"] = json!(true);
        let removed = request("message:react", unreact);
        assert_eq!(removed.kind, "reaction.remove");
        assert!(removed.data.get("remove").is_none());
    }

    #[test]
    fn bad_shapes_are_refused_with_the_reason() {
        let two = to_request("message.send", vec![json!({}), json!({})], String::new).unwrap_err();
        assert!(two.public_message().contains("one argument"), "{two}");
        let not_object = to_request("sendMessage", vec![json!("hi")], String::new).unwrap_err();
        assert_eq!(not_object.code(), "validation_failed");
        let bad_remove = to_request(
            "message:react",
            vec![json!({"conversationId": "c", "messageId": "m", "emoji": "x", "remove": "yes"})],
            String::new,
        );
        assert!(bad_remove.is_err());
    }
}
