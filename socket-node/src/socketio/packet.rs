//! Socket.IO v5 packets, each carried in one Engine.IO message packet:
//! `<type>[<namespace>,][<ack id>][<JSON>]`, the namespace left out when it is `/`. Binary events and
//! acks (types 5 and 6, whose attachments follow as separate binary packets) are refused: chat payloads
//! are JSON, and files go through the media API.
//!
//! Spec: <https://github.com/socketio/socket.io-protocol> (v5); the vectors in the tests come from its
//! README and test suite and from the reference parser's tests (`socketio/socket.io`,
//! `packages/socket.io-parser`).

use caas_shared::{Error, Result};
use serde_json::Value;

/// The default namespace, the only one this server offers.
pub const MAIN_NAMESPACE: &str = "/";

/// Event names a client may not emit: the Socket.IO client library reserves them for its own events.
const RESERVED_EVENTS: [&str; 6] = [
    "connect",
    "connect_error",
    "disconnect",
    "disconnecting",
    "newListener",
    "removeListener",
];

/// One Socket.IO packet.
#[derive(Clone, Debug, PartialEq)]
pub enum Packet {
    /// `0`: the client joins a namespace, with its `auth` object; the server answers with its socket id.
    Connect {
        /// The namespace joined.
        namespace: String,
        /// The client's `auth` option (a JSON object), or the server's `{"sid": …}` reply.
        data: Option<Value>,
    },
    /// `1`: either side leaves the namespace. From the server it tells the client not to reconnect.
    Disconnect {
        /// The namespace left.
        namespace: String,
    },
    /// `2`: an event, `[name, args…]`; with an ack id the sender waits for an [`Packet::Ack`].
    Event {
        /// The event's namespace.
        namespace: String,
        /// Set when the sender waits for an acknowledgement.
        ack_id: Option<u64>,
        /// The event name.
        name: String,
        /// The event's arguments.
        args: Vec<Value>,
    },
    /// `3`: the acknowledgement of the event with this id, with the arguments of its callback.
    Ack {
        /// The acknowledgement's namespace.
        namespace: String,
        /// The id of the event acknowledged.
        ack_id: u64,
        /// The callback's arguments.
        args: Vec<Value>,
    },
    /// `4`: the server refuses the connection; the client raises `connect_error` and does not retry.
    ConnectError {
        /// The namespace refused.
        namespace: String,
        /// `{"message": …, "data"?: …}`: what the client sees as the error's `message` and `data`.
        data: Value,
    },
}

impl Packet {
    /// Decodes one packet, checking its payload's shape as the reference parser does, with one
    /// difference: an event's name must be a string (socket.io-parser also takes a number, which no
    /// event of this server has).
    pub fn decode(text: &str) -> Result<Self> {
        let invalid = |why: &str| Error::Validation(format!("invalid Socket.IO packet: {why}"));
        let mut rest = text;
        let kind = rest.chars().next().ok_or_else(|| invalid("empty"))?;
        rest = &rest[kind.len_utf8()..];
        if kind == '5' || kind == '6' {
            return Err(Error::Validation(
                "binary Socket.IO events and acks are not supported; send JSON".into(),
            ));
        }
        if !('0'..='4').contains(&kind) {
            return Err(invalid(&format!("unknown packet type {kind:?}")));
        }
        let namespace = match rest.strip_prefix('/') {
            Some(_) => {
                let end = rest.find(',').unwrap_or(rest.len());
                let namespace = &rest[..end];
                rest = rest.get(end + 1..).unwrap_or("");
                namespace.to_owned()
            }
            None => MAIN_NAMESPACE.to_owned(),
        };
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let ack_id = match digits {
            0 => None,
            _ => Some(
                rest[..digits]
                    .parse::<u64>()
                    .map_err(|_| invalid("the ack id is out of range"))?,
            ),
        };
        rest = &rest[digits..];
        let payload: Option<Value> = match rest {
            "" => None,
            json => Some(serde_json::from_str(json).map_err(|e| invalid(&format!("bad JSON: {e}")))?),
        };
        match (kind, payload) {
            ('0', data @ (None | Some(Value::Object(_)))) if ack_id.is_none() => {
                Ok(Packet::Connect { namespace, data })
            }
            ('0', _) => Err(invalid("a CONNECT carries an object, or nothing")),
            ('1', None) if ack_id.is_none() => Ok(Packet::Disconnect { namespace }),
            ('1', _) => Err(invalid("a DISCONNECT carries nothing")),
            ('2', Some(Value::Array(mut items))) => {
                let name = match items.first() {
                    Some(Value::String(name)) if !RESERVED_EVENTS.contains(&name.as_str()) => name.clone(),
                    Some(Value::String(name)) => return Err(invalid(&format!("{name:?} is a reserved event name"))),
                    _ => return Err(invalid("an EVENT is an array whose first item is the event name")),
                };
                items.remove(0);
                Ok(Packet::Event {
                    namespace,
                    ack_id,
                    name,
                    args: items,
                })
            }
            ('2', _) => Err(invalid("an EVENT is an array whose first item is the event name")),
            ('3', Some(Value::Array(args))) => match ack_id {
                Some(ack_id) => Ok(Packet::Ack {
                    namespace,
                    ack_id,
                    args,
                }),
                None => Err(invalid("an ACK names the event it acknowledges")),
            },
            ('3', _) => Err(invalid("an ACK carries an array")),
            (_, Some(data @ (Value::Object(_) | Value::String(_)))) if ack_id.is_none() => {
                Ok(Packet::ConnectError { namespace, data })
            }
            _ => Err(invalid("a CONNECT_ERROR carries an object or a string")),
        }
    }

    /// The packet's text.
    pub fn encode(&self) -> String {
        let (kind, namespace, ack_id, payload) = match self {
            Packet::Connect { namespace, data } => ('0', namespace, None, data.as_ref().map(Value::to_string)),
            Packet::Disconnect { namespace } => ('1', namespace, None, None),
            Packet::Event {
                namespace,
                ack_id,
                name,
                args,
            } => {
                let mut items = Vec::with_capacity(args.len() + 1);
                items.push(Value::String(name.clone()));
                items.extend(args.iter().cloned());
                ('2', namespace, *ack_id, Some(Value::Array(items).to_string()))
            }
            Packet::Ack {
                namespace,
                ack_id,
                args,
            } => (
                '3',
                namespace,
                Some(*ack_id),
                Some(Value::Array(args.clone()).to_string()),
            ),
            Packet::ConnectError { namespace, data } => ('4', namespace, None, Some(data.to_string())),
        };
        let mut out = String::new();
        out.push(kind);
        if namespace != MAIN_NAMESPACE {
            out.push_str(namespace);
            out.push(',');
        }
        if let Some(ack_id) = ack_id {
            out.push_str(&ack_id.to_string());
        }
        if let Some(payload) = payload {
            out.push_str(&payload);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn main_ns() -> String {
        MAIN_NAMESPACE.to_owned()
    }

    #[test]
    fn the_protocol_readmes_examples_round_trip() {
        let cases = [
            (
                r#"0/admin,{"sid":"oSO0OpakMV_3jnilAAAA"}"#,
                Packet::Connect {
                    namespace: "/admin".into(),
                    data: Some(json!({"sid": "oSO0OpakMV_3jnilAAAA"})),
                },
            ),
            (
                r#"4{"message":"Not authorized"}"#,
                Packet::ConnectError {
                    namespace: main_ns(),
                    data: json!({"message": "Not authorized"}),
                },
            ),
            (
                r#"2/admin,["bar"]"#,
                Packet::Event {
                    namespace: "/admin".into(),
                    ack_id: None,
                    name: "bar".into(),
                    args: vec![],
                },
            ),
            (
                r#"212["foo"]"#,
                Packet::Event {
                    namespace: main_ns(),
                    ack_id: Some(12),
                    name: "foo".into(),
                    args: vec![],
                },
            ),
            (
                r#"3/admin,13["bar"]"#,
                Packet::Ack {
                    namespace: "/admin".into(),
                    ack_id: 13,
                    args: vec![json!("bar")],
                },
            ),
            (
                "1/admin,",
                Packet::Disconnect {
                    namespace: "/admin".into(),
                },
            ),
            (
                "0",
                Packet::Connect {
                    namespace: main_ns(),
                    data: None,
                },
            ),
        ];
        for (text, packet) in cases {
            assert_eq!(Packet::decode(text).unwrap(), packet, "decoding {text}");
            // The reference encoder writes `1/admin,` for a disconnect from a namespace.
            assert_eq!(packet.encode(), text, "encoding {packet:?}");
        }
    }

    #[test]
    fn an_event_with_an_ack_is_answered_with_its_arguments() {
        // From the test suite: the server echoes the arguments of `message-with-ack` in the ack.
        let event = Packet::decode(r#"2456["message-with-ack",1,"2",{"3":[false]}]"#).unwrap();
        let Packet::Event {
            ack_id: Some(456),
            name,
            args,
            ..
        } = event
        else {
            panic!("not an event with an ack: {event:?}");
        };
        assert_eq!(name, "message-with-ack");
        let ack = Packet::Ack {
            namespace: main_ns(),
            ack_id: 456,
            args,
        };
        assert_eq!(ack.encode(), r#"3456[1,"2",{"3":[false]}]"#);
    }

    #[test]
    fn the_reference_parsers_bad_packets_are_refused() {
        for bad in [
            r#"42["some","data""#,
            r#"0/admin,"invalid""#,
            "0[]",
            "1/admin,{}",
            "2/admin,{}",
            r#"2[true,"foo"]"#,
            r#"2[null,"bar"]"#,
            r#"2["connect"]"#,
            r#"2["disconnect","123"]"#,
            "999",
            "2[]",
            "3[]",
            "",
            "{}",
            r#"2{}"#,
        ] {
            assert!(Packet::decode(bad).is_err(), "{bad:?} decoded");
        }
        for binary in [
            "5",
            "51",
            "5a-",
            r#"51-["hello",{"_placeholder":true,"num":0}]"#,
            "61-0[]",
        ] {
            let refused = Packet::decode(binary).unwrap_err();
            assert!(refused.to_string().contains("binary"), "{binary:?}: {refused}");
        }
    }

    #[test]
    fn a_connect_carries_the_auth_object_and_the_reply_carries_the_socket_id() {
        let connect = Packet::decode(r#"0{"token":"jwt","correlationId":"test-correlation-001"}"#).unwrap();
        assert_eq!(
            connect,
            Packet::Connect {
                namespace: main_ns(),
                data: Some(json!({"token": "jwt", "correlationId": "test-correlation-001"})),
            }
        );
        let reply = Packet::Connect {
            namespace: main_ns(),
            data: Some(json!({"sid": "abc"})),
        };
        assert_eq!(reply.encode(), r#"0{"sid":"abc"}"#);
    }
}
