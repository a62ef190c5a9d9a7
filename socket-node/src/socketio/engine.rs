//! Engine.IO v4 packets, the transport layer under Socket.IO v5 (what `socket.io-client` 4.x speaks):
//! one packet per WebSocket frame, or several in one HTTP long-polling body separated by `\x1e`. Text
//! only: binary packets (`b<base64>` when polling, binary frames on a WebSocket) are refused, as the
//! native protocol refuses binary frames.
//!
//! Spec: <https://github.com/socketio/engine.io-protocol> (v4); the vectors in the tests come from its
//! test suite and from the reference parser's tests (`socketio/socket.io`, `packages/engine.io-parser`).

use caas_shared::{Error, Result};
use serde::Serialize;

/// Separates packets in a long-polling body (the ASCII record separator).
pub const SEPARATOR: char = '\u{1e}';

/// One Engine.IO packet; the text borrows from the frame or body it was decoded from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Packet<'a> {
    /// `0` + the handshake JSON ([`Handshake`]); only the server sends it.
    Open(&'a str),
    /// `1`: the transport is closing.
    Close,
    /// `2`: a heartbeat from the server (v4), or `2probe` from a client testing a WebSocket upgrade.
    Ping(&'a str),
    /// `3`: the answer to a ping (`3probe` to a probe).
    Pong(&'a str),
    /// `4` + a Socket.IO packet.
    Message(&'a str),
    /// `5`: the client switches to the WebSocket it probed.
    Upgrade,
    /// `6`: nothing; releases a held poll while the client upgrades.
    Noop,
}

impl<'a> Packet<'a> {
    /// Decodes one packet; a packet type out of range, an empty packet or a binary one is an error, and
    /// so (stricter than engine.io-parser, which ignores it) is data after a close, upgrade or noop.
    pub fn decode(text: &'a str) -> Result<Self> {
        let mut chars = text.chars();
        let kind = chars
            .next()
            .ok_or_else(|| Error::Validation("an Engine.IO packet is never empty".into()))?;
        let data = chars.as_str();
        let no_data = |packet: Packet<'a>| {
            if data.is_empty() {
                Ok(packet)
            } else {
                Err(Error::Validation(format!("Engine.IO packet {kind:?} carries no data")))
            }
        };
        match kind {
            '0' => Ok(Packet::Open(data)),
            '1' => no_data(Packet::Close),
            '2' => Ok(Packet::Ping(data)),
            '3' => Ok(Packet::Pong(data)),
            '4' => Ok(Packet::Message(data)),
            '5' => no_data(Packet::Upgrade),
            '6' => no_data(Packet::Noop),
            'b' => Err(Error::Validation(
                "binary Engine.IO packets are not supported; send JSON text".into(),
            )),
            other => Err(Error::Validation(format!("unknown Engine.IO packet type {other:?}"))),
        }
    }

    /// Appends the packet's text to `out`.
    pub fn encode_into(&self, out: &mut String) {
        let (kind, data) = match *self {
            Packet::Open(data) => ('0', data),
            Packet::Close => ('1', ""),
            Packet::Ping(data) => ('2', data),
            Packet::Pong(data) => ('3', data),
            Packet::Message(data) => ('4', data),
            Packet::Upgrade => ('5', ""),
            Packet::Noop => ('6', ""),
        };
        out.reserve(1 + data.len());
        out.push(kind);
        out.push_str(data);
    }

    /// The packet's text.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        self.encode_into(&mut out);
        out
    }
}

/// Decodes a long-polling body: one or more packets separated by [`SEPARATOR`]. A body with any bad
/// packet is refused as a whole (the server then closes the session, as the reference server does).
pub fn decode_payload(body: &str) -> Result<Vec<Packet<'_>>> {
    body.split(SEPARATOR).map(Packet::decode).collect()
}

/// Joins encoded packets into one long-polling response body.
pub fn encode_payload(packets: impl IntoIterator<Item = impl AsRef<str>>) -> String {
    let mut out = String::new();
    for (index, packet) in packets.into_iter().enumerate() {
        if index > 0 {
            out.push(SEPARATOR);
        }
        out.push_str(packet.as_ref());
    }
    out
}

/// The open packet's JSON: the session id and the heartbeat and size rules the client must follow.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Handshake {
    /// The Engine.IO session id; a long-polling client presents it on every request, so it is a secret.
    pub sid: String,
    /// Transports the client may upgrade to: `["websocket"]` for a polling session, `[]` on a WebSocket.
    pub upgrades: Vec<&'static str>,
    /// How often the server pings, in ms.
    pub ping_interval: u64,
    /// How long the server waits for the pong, in ms, before it closes the session.
    pub ping_timeout: u64,
    /// The largest body or frame the server accepts, in bytes.
    pub max_payload: usize,
}

impl Handshake {
    /// The open packet: `0{"sid":…,"upgrades":[…],"pingInterval":…,"pingTimeout":…,"maxPayload":…}`.
    pub fn open_packet(&self) -> String {
        let json = serde_json::to_string(self).expect("a handshake always encodes");
        Packet::Open(&json).encode()
    }
}

/// Why an Engine.IO HTTP request is refused, with the code and message the reference server uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The `transport` query parameter names no transport this server offers.
    UnknownTransport,
    /// The `sid` names no live session (it ended, or never existed on this node).
    UnknownSession,
    /// A new session must start with a GET.
    BadHandshakeMethod,
    /// The request does not fit the session (another transport, a second poll at once, a bad upgrade).
    BadRequest,
    /// The server refuses the client.
    Forbidden,
    /// `EIO` is missing or not 4.
    UnsupportedProtocolVersion,
}

impl Refusal {
    /// The HTTP status and the JSON body `{"code":N,"message":…}`.
    pub fn response(self) -> (u16, String) {
        let (code, message) = match self {
            Refusal::UnknownTransport => (0, "Transport unknown"),
            Refusal::UnknownSession => (1, "Session ID unknown"),
            Refusal::BadHandshakeMethod => (2, "Bad handshake method"),
            Refusal::BadRequest => (3, "Bad request"),
            Refusal::Forbidden => (4, "Forbidden"),
            Refusal::UnsupportedProtocolVersion => (5, "Unsupported protocol version"),
        };
        let status = if self == Refusal::Forbidden { 403 } else { 400 };
        (
            status,
            serde_json::json!({"code": code, "message": message}).to_string(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packets_round_trip_as_the_reference_parser_encodes_them() {
        // engine.io-parser's test: [open, close, ping "probe", pong "probe", message "test"].
        let packets = [
            Packet::Open(""),
            Packet::Close,
            Packet::Ping("probe"),
            Packet::Pong("probe"),
            Packet::Message("test"),
        ];
        let body = encode_payload(packets.iter().map(Packet::encode));
        assert_eq!(body, "0\u{1e}1\u{1e}2probe\u{1e}3probe\u{1e}4test");
        assert_eq!(decode_payload(&body).unwrap(), packets);
        assert_eq!(Packet::Upgrade.encode(), "5");
        assert_eq!(Packet::Noop.encode(), "6");
        assert_eq!(Packet::decode("5").unwrap(), Packet::Upgrade);
        assert_eq!(
            Packet::decode("4é").unwrap(),
            Packet::Message("é"),
            "text is UTF-8, not bytes"
        );
    }

    #[test]
    fn a_polling_body_carries_several_messages() {
        // The test suite posts this body and expects the three messages back.
        let decoded = decode_payload("4test1\u{1e}4test2\u{1e}4test3").unwrap();
        assert_eq!(
            decoded,
            [
                Packet::Message("test1"),
                Packet::Message("test2"),
                Packet::Message("test3")
            ]
        );
    }

    #[test]
    fn bad_packets_are_refused() {
        // The reference parser's errors ("" and "a123"), a type out of range, and data where this
        // server wants none.
        for bad in ["", "a123", "7", "1x", "5probe", "6 "] {
            assert!(Packet::decode(bad).is_err(), "{bad:?} decoded");
        }
        let binary = Packet::decode("bAQIDBA==").unwrap_err();
        assert!(binary.to_string().contains("binary"), "{binary}");
        assert!(
            decode_payload("4ok\u{1e}").is_err(),
            "an empty packet after a separator"
        );
    }

    #[test]
    fn the_open_packet_tells_the_client_the_sessions_rules() {
        let handshake = Handshake {
            sid: "lv_VI97HAXpY6yYWAAAC".into(),
            upgrades: vec!["websocket"],
            ping_interval: 25_000,
            ping_timeout: 20_000,
            max_payload: 1_000_000,
        };
        assert_eq!(
            handshake.open_packet(),
            r#"0{"sid":"lv_VI97HAXpY6yYWAAAC","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}"#
        );
    }

    #[test]
    fn refusals_use_the_reference_servers_codes() {
        assert_eq!(
            Refusal::UnknownSession.response(),
            (400, r#"{"code":1,"message":"Session ID unknown"}"#.to_owned())
        );
        assert_eq!(Refusal::Forbidden.response().0, 403);
        assert_eq!(
            Refusal::UnsupportedProtocolVersion.response().1,
            r#"{"code":5,"message":"Unsupported protocol version"}"#
        );
    }
}
