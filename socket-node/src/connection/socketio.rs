//! A Socket.IO client on the one connection model: the Engine.IO open packet, the CONNECT that carries
//! its token, then its events answered by the same requests as native frames, with the native reply
//! body in the Socket.IO acknowledgement.

use super::handshake::{self, BeforeConnect, Handshake};
use super::{admit_client, close_frame, Connection, Live, Transport, Wire};
use crate::polling::PollingSession;
use crate::socketio::packet::{Packet, MAIN_NAMESPACE};
use crate::socketio::{engine, events, wire};
use crate::tally::Place;
use crate::{dispatch, Node};
use caas_shared::Error;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

/// A Socket.IO client's state on its connection.
pub struct SocketIo {
    /// The socket id told to the client in the CONNECT answer.
    socket_id: String,
    /// Counts events sent without an acknowledgement, to name their messages.
    unacked: AtomicU64,
    /// The long-polling session the connection began as, if it did.
    pub polling: Option<Arc<PollingSession>>,
}

impl SocketIo {
    /// The CONNECT answer.
    pub fn connected(&self) -> String {
        wire::connected(&self.socket_id, None)
    }
}

/// A random id for a session or socket: 128 bits, so a long-polling sid (a bearer secret for its
/// requests) cannot be guessed.
pub fn random_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Opens a Socket.IO session on `transport`: the open packet (on a WebSocket; a long-polling client
/// got it in its first GET's answer), then the client's CONNECT, its token verified, and the same
/// admission as every connection. The CONNECT must come before `deadline`.
pub async fn establish(
    node: Arc<Node>,
    mut transport: Transport,
    found: Handshake,
    deadline: Instant,
    handshake_place: Option<Place<IpAddr>>,
) -> Option<Live> {
    if let Transport::WebSocket(_) = transport {
        transport
            .send(handshake::open_packet(&node, random_id(), Vec::new()))
            .await;
    }
    let connect = tokio::time::timeout_at(deadline, async {
        loop {
            let text = transport.recv().await?;
            match handshake::before_connect(&text, &found) {
                Ok(Some(connect)) => return Some(Ok(connect)),
                Ok(None) => {}
                Err(BeforeConnect::Answer(packet)) => transport.send(packet).await,
                Err(BeforeConnect::Fatal(e)) => return Some(Err(e)),
            }
        }
    })
    .await;
    drop(handshake_place);
    let connect = match connect {
        Ok(Some(Ok(connect))) => connect,
        Ok(Some(Err(e))) => {
            tracing::debug!(error = %e, "Socket.IO session ended before its CONNECT");
            transport
                .refuse(Wire::SocketIo, &e, CloseCode::Protocol, "protocol error")
                .await;
            return None;
        }
        Ok(None) => return None,
        Err(_) => {
            let e = Error::Unauthorized("no CONNECT packet before the handshake timeout".into());
            transport
                .refuse(Wire::SocketIo, &e, CloseCode::Policy, "authentication failed")
                .await;
            return None;
        }
    };
    let (claims, correlation_id) = match handshake::verify_connect(&node, &connect) {
        Ok(identity) => identity,
        Err(e) => {
            transport
                .refuse(Wire::SocketIo, &e, CloseCode::Policy, "authentication failed")
                .await;
            return None;
        }
    };
    let polling = match &transport {
        Transport::Polling(session) => Some(Arc::clone(session)),
        Transport::WebSocket(_) => None,
    };
    let state = Box::new(SocketIo {
        socket_id: random_id(),
        unacked: AtomicU64::new(0),
        polling,
    });
    admit_client(node, claims, correlation_id, transport, Some(state)).await
}

/// What reading one Socket.IO packet asks of the reading loop.
pub enum Handled {
    Continue,
    /// The client answered the heartbeat.
    Pong,
    /// The connection ends with this close frame.
    Close(Message),
}

impl Connection {
    /// Reads one Engine.IO packet from the client and answers it. A packet that does not parse ends
    /// the connection, as the reference server does: the client reconnects and recovers.
    pub(super) async fn socketio_packet(&self, text: &str) -> Handled {
        let invalid = |e: Error| {
            tracing::info!(error = %e, "invalid Socket.IO packet; closing");
            Handled::Close(close_frame(CloseCode::Protocol, "invalid Socket.IO packet"))
        };
        let sio = match engine::Packet::decode(text) {
            Ok(engine::Packet::Message(sio)) => sio,
            Ok(engine::Packet::Pong(_)) => return Handled::Pong,
            Ok(engine::Packet::Close) => return Handled::Close(close_frame(CloseCode::Normal, "")),
            // Pings, probes and noops from a client ask for nothing here.
            Ok(_) => return Handled::Continue,
            Err(e) => return invalid(e),
        };
        let packet = match Packet::decode(sio) {
            Ok(packet) => packet,
            Err(e) => return invalid(e),
        };
        match packet {
            Packet::Event {
                namespace,
                ack_id,
                name,
                args,
            } => {
                let result = if namespace != MAIN_NAMESPACE {
                    Err(Error::NotFound(format!("namespace {namespace} does not exist; use /")))
                } else {
                    match events::to_request(&name, args, || self.derived_msg_id(ack_id)) {
                        Ok(request) => {
                            let node = &self.node;
                            let correlation_id = &self.session.correlation_id;
                            dispatch::request(node, &self.session, &request.kind, request.data, correlation_id).await
                        }
                        Err(e) => Err(e),
                    }
                };
                let reply = match ack_id {
                    Some(ack_id) => Some(wire::ack(ack_id, &result)),
                    None => result.err().map(|e| wire::error_event(&e, Some(&name))),
                };
                // Never waits: a client that asks for more than it reads overflows and is closed.
                if let Some(reply) = reply {
                    if self.outbox.push(reply.into()).is_err() {
                        return Handled::Close(super::too_slow());
                    }
                }
                Handled::Continue
            }
            Packet::Disconnect { .. } => Handled::Close(close_frame(CloseCode::Normal, "")),
            // A second CONNECT, the client's acks (the server asks for none): nothing to do.
            Packet::Connect { .. } | Packet::Ack { .. } => Handled::Continue,
            Packet::ConnectError { .. } => {
                Handled::Close(close_frame(CloseCode::Protocol, "a client does not send CONNECT_ERROR"))
            }
        }
    }

    /// Names a message sent without a `clientMsgId` (the replaced system's `sendMessage` had none) by
    /// this socket and the packet's ack id, which the client library never reuses on a socket: each
    /// such emit is sequenced exactly once. An app that resends — after a reconnect, or with the
    /// library's `retries` option, which re-emits under a new ack id — must send a `clientMsgId` for
    /// the resend to be recognised (docs/protocol.md).
    fn derived_msg_id(&self, ack_id: Option<u64>) -> String {
        let io = self.socketio.as_ref().expect("a Socket.IO connection");
        match ack_id {
            Some(ack_id) => format!("sio-{}-{ack_id}", io.socket_id),
            None => format!("sio-{}-n{}", io.socket_id, io.unacked.fetch_add(1, Ordering::Relaxed)),
        }
    }
}
