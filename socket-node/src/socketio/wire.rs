//! The Socket.IO codec over the node's native frames. Everything a connection queues (replies, hub
//! deliveries shared by many connections) stays in native form, `{"type":…,"data":…}`, serialised once;
//! a Socket.IO connection's writer turns each event into an Engine.IO message carrying a Socket.IO
//! EVENT, `42["type",data]`, by splicing the JSON (the payload is never re-encoded). Packets the
//! connection built for itself (acks, pings, the CONNECT answer) are queued already encoded, and pass
//! through.

use super::packet::{Packet, MAIN_NAMESPACE};
use super::recovery::{Tracker, Write};
use caas_shared::domain::protocol;
use caas_shared::Error;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Value};
use std::borrow::Cow;
use std::sync::Arc;

/// A native event frame, borrowed from its text.
#[derive(Deserialize)]
struct NativeEvent<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow, default)]
    data: Option<&'a RawValue>,
}

/// The names the replaced Socket.IO system's clients listen on for the same events, sent beside the
/// native name (same payload) so those clients keep working. Documented in `docs/protocol.md`.
pub fn original_name(native: &str) -> Option<&'static str> {
    match native {
        "message.new" => Some("message:new"),
        "message.updated" => Some("message:edited"),
        "message.deleted" => Some("message:deleted"),
        "reaction.added" | "reaction.removed" => Some("message:reacted"),
        _ => None,
    }
}

/// The `conversation_id` and `seq` of a `message.new`, for recovery.
#[derive(Deserialize)]
struct Numbered<'a> {
    #[serde(borrow)]
    conversation_id: Cow<'a, str>,
    seq: i64,
}

/// Turns one connection's queued frames into Engine.IO packets; with a recovery [`Tracker`] it notes
/// each `message.new` and ping written (see [`super::recovery`]).
#[derive(Clone, Default)]
pub struct Transcoder {
    tracker: Option<Arc<Tracker>>,
    original_names: bool,
}

impl Transcoder {
    pub fn new(tracker: Option<Arc<Tracker>>, original_names: bool) -> Self {
        Self {
            tracker,
            original_names,
        }
    }

    /// Appends the packets for one queued frame to `out`: a native event becomes a Socket.IO EVENT
    /// (twice when it has an [`original_name`] and those are on); anything already encoded passes through. A frame that
    /// is neither (only events reach a Socket.IO connection's queue in native form) is dropped rather
    /// than sent in a form the client cannot parse.
    pub fn transcode(&self, frame: &str, out: &mut Vec<String>) {
        if !frame.starts_with('{') {
            if frame == "2" {
                if let Some(tracker) = &self.tracker {
                    tracker.ping_written();
                }
            }
            out.push(frame.to_owned());
            return;
        }
        let Ok(event) = serde_json::from_str::<NativeEvent<'_>>(frame) else {
            tracing::warn!("a native frame that is not an event was queued for a Socket.IO client; dropped");
            return;
        };
        let data = event.data.map_or("null", RawValue::get);
        let mut offset = None;
        if let (Some(tracker), "message.new") = (&self.tracker, event.kind.as_ref()) {
            if let Ok(message) = serde_json::from_str::<Numbered<'_>>(data) {
                match tracker.write(&message.conversation_id, message.seq) {
                    // Socket.IO apps do not drop repeats: a live delivery of what the replay of a
                    // subscribe or resume already wrote is not sent again.
                    Write::Held => return,
                    Write::New(new) => offset = new,
                }
            }
        }
        // With recovery, the offset rides as the event's last argument, as Socket.IO's own does: the
        // client library keeps the last one and hands it back when it reconnects.
        let offset = offset.map(|offset| Value::from(offset).to_string());
        out.push(event_packet_with(&event.kind, data, offset.as_deref()));
        if let Some(name) = self.original_names.then(|| original_name(&event.kind)).flatten() {
            out.push(event_packet_with(name, data, offset.as_deref()));
        }
    }
}

/// `42["name",data]`: an Engine.IO message carrying a Socket.IO EVENT, with `data` already JSON.
pub fn event_packet(name: &str, data_json: &str) -> String {
    event_packet_with(name, data_json, None)
}

/// [`event_packet`] with a second argument, `extra_json` (already JSON), when given.
fn event_packet_with(name: &str, data_json: &str, extra_json: Option<&str>) -> String {
    let name = Value::from(name).to_string();
    let extra_len = extra_json.map_or(0, |extra| extra.len() + 1);
    let mut out = String::with_capacity(6 + name.len() + data_json.len() + extra_len);
    out.push_str("42[");
    out.push_str(&name);
    out.push(',');
    out.push_str(data_json);
    if let Some(extra) = extra_json {
        out.push(',');
        out.push_str(extra);
    }
    out.push(']');
    out
}

/// The Engine.IO message carrying one Socket.IO packet.
pub fn message(packet: &Packet) -> String {
    let mut out = String::from("4");
    out.push_str(&packet.encode());
    out
}

/// The acknowledgement of the event `ack_id`: one argument, the native reply without `reply_to`
/// (`{"ok":true,"data":…}` or `{"ok":false,"error":{"code","message"}}`), so a client reads the same
/// body either way.
pub fn ack(ack_id: u64, result: &Result<Value, Error>) -> String {
    message(&Packet::Ack {
        namespace: MAIN_NAMESPACE.into(),
        ack_id,
        args: vec![reply_body(result)],
    })
}

/// The native reply's body without `reply_to`.
pub fn reply_body(result: &Result<Value, Error>) -> Value {
    match result {
        Ok(data) => json!({"ok": true, "data": data}),
        Err(e) => json!({"ok": false, "error": protocol::error_body(e)}),
    }
}

/// The `error` event telling a client why an event it sent without an acknowledgement failed (with an
/// acknowledgement the error is its answer).
pub fn error_event(error: &Error, event: Option<&str>) -> String {
    let mut body = protocol::error_body(error);
    body["event"] = json!(event);
    event_packet("error", &body.to_string())
}

/// The CONNECT answer: the client's socket id, and the recovery id it presents when it reconnects.
pub fn connected(socket_id: &str, pid: Option<&str>) -> String {
    let mut data = json!({"sid": socket_id});
    if let Some(pid) = pid {
        data["pid"] = json!(pid);
    }
    message(&Packet::Connect {
        namespace: MAIN_NAMESPACE.into(),
        data: Some(data),
    })
}

/// CONNECT_ERROR: the client raises `connect_error` with `err.message` and `err.data.code`, and does
/// not retry by itself (a bad or revoked token needs the app's attention, not a reconnect loop).
pub fn connect_error(namespace: &str, error: &Error) -> String {
    let mut data = json!({"message": error.public_message(), "data": {"code": error.code()}});
    if namespace != MAIN_NAMESPACE {
        data = json!({"message": "Invalid namespace"});
    }
    message(&Packet::ConnectError {
        namespace: namespace.into(),
        data,
    })
}

/// The server's DISCONNECT: the client gets "io server disconnect" and does not reconnect by itself.
pub fn server_disconnect() -> String {
    message(&Packet::Disconnect {
        namespace: MAIN_NAMESPACE.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transcoded(frame: &str) -> Vec<String> {
        let mut out = Vec::new();
        Transcoder::new(None, true).transcode(frame, &mut out);
        out
    }

    #[test]
    fn native_events_become_socketio_events_in_either_key_order() {
        let data = r#"{"conversation_id":"c1","seq":3,"text":"hi \"you\""}"#;
        let typed_first = format!(r#"{{"type":"message.new","data":{data}}}"#);
        let data_first = format!(r#"{{"data":{data},"type":"message.new"}}"#);
        for frame in [typed_first, data_first] {
            let packets = transcoded(&frame);
            assert_eq!(packets[0], format!(r#"42["message.new",{data}]"#));
            assert_eq!(packets[1], format!(r#"42["message:new",{data}]"#));
            let decoded = Packet::decode(&packets[0][1..]).unwrap();
            assert!(matches!(decoded, Packet::Event { ref name, .. } if name == "message.new"));
        }
        assert_eq!(
            transcoded(r#"{"type":"typing","data":{"user_id":"u"}}"#),
            [r#"42["typing",{"user_id":"u"}]"#]
        );
        assert_eq!(transcoded("2"), ["2"], "encoded packets pass through");
        let mut native_only = Vec::new();
        Transcoder::new(None, false).transcode(r#"{"type":"message.new","data":{}}"#, &mut native_only);
        assert_eq!(native_only, [r#"42["message.new",{}]"#]);
        assert!(transcoded(r#"{"reply_to":null}"#).is_empty());
    }

    #[test]
    fn with_recovery_messages_and_pings_written_are_noted() {
        let tracker = Arc::new(Tracker::new("p".into(), super::super::recovery::Record::new("u"), "s"));
        tracker.subscribed("c1", "e", 3, &[], true);
        let transcoder = Transcoder::new(Some(Arc::clone(&tracker)), true);
        let mut out = Vec::new();
        transcoder.transcode(
            r#"{"type":"message.new","data":{"conversation_id":"c1","seq":4}}"#,
            &mut out,
        );
        transcoder.transcode("2", &mut out);
        let offset = r#""{\"c1\":[4]}""#;
        assert_eq!(
            out[0],
            format!(r#"42["message.new",{{"conversation_id":"c1","seq":4}},{offset}]"#)
        );
        assert_eq!(
            out[1],
            format!(r#"42["message:new",{{"conversation_id":"c1","seq":4}},{offset}]"#)
        );
        assert_eq!(out[2], "2");
        assert_eq!(tracker.ponged().unwrap().subscriptions["c1"].seq, 4);
    }

    #[test]
    fn acks_carry_the_native_reply_body() {
        assert_eq!(ack(12, &Ok(json!({"seq": 1}))), r#"4312[{"ok":true,"data":{"seq":1}}]"#);
        let refused = ack(3, &Err(Error::Forbidden("not a member".into())));
        let Packet::Ack { args, ack_id, .. } = Packet::decode(&refused[1..]).unwrap() else {
            panic!("not an ack: {refused}");
        };
        assert_eq!(ack_id, 3);
        assert_eq!(
            args,
            [json!({"ok": false, "error": {"code": "forbidden", "message": "not a member"}})]
        );
    }

    #[test]
    fn connect_answers_and_refusals() {
        assert_eq!(connected("s1", None), r#"40{"sid":"s1"}"#);
        assert_eq!(connected("s1", Some("p1")), r#"40{"sid":"s1","pid":"p1"}"#);
        let refused = connect_error("/", &Error::Unauthorized("token expired".into()));
        assert_eq!(
            refused,
            r#"44{"message":"token expired","data":{"code":"unauthorized"}}"#
        );
        assert_eq!(
            connect_error("/admin", &Error::Unauthorized("x".into())),
            r#"44/admin,{"message":"Invalid namespace"}"#
        );
        assert_eq!(server_disconnect(), "41");
    }
}
