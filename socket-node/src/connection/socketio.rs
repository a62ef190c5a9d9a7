//! A Socket.IO client on the one connection model: the Engine.IO open packet, the CONNECT that carries
//! its token, then its events answered by the same requests as native frames, with the native reply
//! body in the Socket.IO acknowledgement.

use super::handshake::{self, BeforeConnect, Handshake};
use super::{admit_client, close_frame, Connection, Live, Transport, Wire};
use crate::commands::subscribe;
use crate::handshakes::HandshakeTicket;
use crate::polling::PollingSession;
use crate::socketio::packet::{Packet, MAIN_NAMESPACE};
use crate::socketio::recovery::{Held, Offset, Record, Tracker};
use crate::socketio::wire::Transcoder;
use crate::socketio::{engine, events, wire};
use crate::{dispatch, Node};
use caas_shared::domain::protocol::{self, Subscribe};
use caas_shared::ports::cache::{RESUME_TTL_CONNECTED, RESUME_TTL_DISCONNECTED};
use caas_shared::services::auth::Claims;
use caas_shared::Error;
use serde_json::Value;
use std::collections::BTreeMap;
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
    /// The record of the session the client asked to resume (its recovery id and what it held, with
    /// the offset it sent), taken when the connection is greeted.
    resume: Option<(String, Record, Option<Offset>)>,
    /// Recovery state, when recovery is on.
    recovery: Option<Arc<Tracker>>,
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
    handshake_place: Option<HandshakeTicket>,
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
    let identity = match handshake::verify_connect(&node, &connect) {
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
    let resume = match (connect.resume, node.settings.socketio_recovery) {
        (Some((pid, offset)), true) => Box::pin(resume_record(&node, &identity.claims, pid))
            .await
            .map(|(pid, record)| (pid, record, offset.as_deref().and_then(Offset::parse))),
        _ => None,
    };
    let state = Box::new(SocketIo {
        socket_id: random_id(),
        unacked: AtomicU64::new(0),
        polling,
        resume,
        recovery: None,
    });
    admit_client(node, identity, transport, Some(state)).await
}

/// The record of the session a reconnecting client names, if it is still kept and is this user's.
async fn resume_record(node: &Node, claims: &Claims, pid: String) -> Option<(String, Record)> {
    let json = match node.cache.load_resume(&claims.app_id, &pid).await {
        Ok(json) => json?,
        Err(e) => {
            tracing::warn!(error = %e, "could not read a resume record; the client starts afresh");
            return None;
        }
    };
    let record: Record = serde_json::from_str(&json).ok()?;
    (record.user_id == claims.sub).then_some((pid, record))
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
            // A binary event or ack (its attachments follow as binary frames, each refused too): told
            // with an `error` event, the connection stays (closing would only make the client resend).
            Err(e) if sio.starts_with(['5', '6']) => {
                if self.outbox.push(wire::error_event(&e, None).into()).is_err() {
                    return Handled::Close(super::too_slow());
                }
                return Handled::Continue;
            }
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
                            let kind = request.kind;
                            let since_seq = request.data.get("since_seq").and_then(Value::as_i64);
                            let result =
                                dispatch::request(node, &self.session, &kind, request.data, correlation_id).await;
                            if let Ok(reply) = &result {
                                self.track_subscription(&kind, since_seq, reply).await;
                            }
                            result
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
            // A CONNECT to a namespace this server does not have: refused, as before connecting.
            Packet::Connect { namespace, .. } if namespace != MAIN_NAMESPACE => {
                let refused = wire::connect_error(&namespace, &Error::NotFound("Invalid namespace".into()));
                if self.outbox.push(refused.into()).is_err() {
                    return Handled::Close(super::too_slow());
                }
                Handled::Continue
            }
            // A second CONNECT to `/`, the client's acks (the server asks for none): nothing to do.
            Packet::Connect { .. } | Packet::Ack { .. } => Handled::Continue,
            Packet::ConnectError { .. } => {
                Handled::Close(close_frame(CloseCode::Protocol, "a client does not send CONNECT_ERROR"))
            }
        }
    }

    /// The greeting of a Socket.IO client: the CONNECT answer, `ready`, and — for a client that asked to
    /// resume a session that is still kept — every message it missed since, in order. With recovery
    /// on, the answer carries the recovery id: the same one when every subscription was recovered
    /// (the client then sets `socket.recovered`), a new one otherwise. Returns the packets and the
    /// connection's transcoder.
    pub(super) async fn socketio_preamble(&mut self, ready: String) -> (Vec<String>, Transcoder) {
        let resume = self.socketio.as_mut().and_then(|io| io.resume.take());
        let mut frames = vec![ready];
        let tracker = match self.node.settings.socketio_recovery {
            false => None,
            true => {
                let socket_id = self
                    .socketio
                    .as_ref()
                    .expect("a Socket.IO connection")
                    .socket_id
                    .clone();
                let tracker = match resume {
                    Some((pid, record, offset)) => {
                        let held = record.held(offset.as_ref());
                        let (recovered, missed) = Box::pin(self.replay(&held, &record)).await;
                        frames.extend(missed);
                        tracing::info!(
                            recovered,
                            offset = offset.is_some(),
                            "Socket.IO client resumed its session"
                        );
                        let pid = if recovered { pid } else { random_id() };
                        Tracker::resumed(pid, record, &held, &socket_id)
                    }
                    None => Tracker::new(random_id(), Record::new(self.session.user_id()), &socket_id),
                };
                let tracker = Arc::new(tracker);
                self.save_resume(&tracker.pid, &tracker.record(), RESUME_TTL_CONNECTED)
                    .await;
                Some(tracker)
            }
        };
        let io = self.socketio.as_mut().expect("a Socket.IO connection");
        io.recovery = tracker.clone();
        let mut packets = vec![wire::connected(&io.socket_id, tracker.as_ref().map(|t| t.pid.as_str()))];
        let transcoder = Transcoder::new(tracker, self.node.settings.socketio_original_events);
        for frame in &frames {
            transcoder.transcode(frame, &mut packets);
        }
        (packets, transcoder)
    }

    /// Subscribes the connection again to each conversation of `record` after what the client holds
    /// (`held`: the floor, and seqs above it it already has, which are not sent again); returns
    /// whether everything missed is in the returned `message.new` frames. A conversation the user is
    /// no longer in is left out (nothing of it is owed). The replay is bounded by a quarter of the send
    /// queue (it may be sent twice, under the original names too): a client that missed more is told it
    /// was not recovered and reloads history, rather than overflowing and reconnecting in a loop.
    async fn replay(&self, held: &BTreeMap<String, Held>, record: &Record) -> (bool, Vec<String>) {
        let caller = self.session.caller(self.session.correlation_id.as_str());
        let budget = self.node.settings.send_queue_bytes / 4;
        let mut recovered = true;
        let mut missed: Vec<String> = Vec::new();
        let mut bytes = 0;
        for (conversation_id, floor) in &record.subscriptions {
            let holds = held.get(conversation_id);
            let request = Subscribe {
                conversation_id: conversation_id.clone(),
                since_seq: Some(holds.map_or(floor.seq, |h| h.floor)),
                epoch: Some(floor.epoch.clone()),
            };
            match subscribe::subscribe(&self.node, &self.session, caller, request).await {
                Ok(reply) => {
                    recovered &= reply["recovered"] == true && reply["has_more"] == false;
                    let messages = reply["messages"].as_array().map(Vec::as_slice).unwrap_or_default();
                    let already_held = |message: &&Value| {
                        let seq = message["seq"].as_i64().unwrap_or_default();
                        holds.is_some_and(|h| h.ahead.contains(&seq))
                    };
                    for message in messages.iter().filter(|m| !already_held(m)) {
                        let frame = protocol::event("message.new", message);
                        bytes += frame.len();
                        if bytes > budget {
                            recovered = false;
                            break;
                        }
                        missed.push(frame);
                    }
                }
                Err(Error::Forbidden(_) | Error::NotFound(_)) => {}
                Err(e) => {
                    tracing::warn!(error = %e, %conversation_id, "could not resume a subscription");
                    recovered = false;
                }
            }
        }
        (recovered, missed)
    }

    /// A pong confirmed what was written before its ping: the floors it moved are saved.
    pub(super) async fn confirm_delivered(&self) {
        let Some(tracker) = self.socketio.as_ref().and_then(|io| io.recovery.as_ref()) else {
            return;
        };
        if let Some(record) = tracker.ponged() {
            self.save_resume(&tracker.pid, &record, RESUME_TTL_CONNECTED).await;
        }
    }

    /// Keeps the connection's record for Socket.IO's disconnection window once it has closed, unless
    /// the client has already resumed it on a newer connection (which then owns it: this one's older
    /// floors and subscriptions must not replace the newer ones). Read, then written: a resume within
    /// those few milliseconds is the one case this does not cover.
    pub(super) async fn keep_for_recovery(&self) {
        let Some(io) = self.socketio.as_ref() else { return };
        let Some(tracker) = io.recovery.as_ref() else { return };
        let app_id = self.session.app_id();
        if let Ok(Some(json)) = self.node.cache.load_resume(app_id, &tracker.pid).await {
            let saved: Option<Record> = serde_json::from_str(&json).ok();
            if saved.is_some_and(|saved| saved.owner != io.socket_id) {
                return;
            }
        }
        self.save_resume(&tracker.pid, &tracker.record(), RESUME_TTL_DISCONNECTED)
            .await;
    }

    /// Follows the client's subscriptions in its recovery record. A subscribe that recovered from the
    /// client's `since_seq` starts its floor there (its replayed messages count once a pong confirms
    /// them); one without starts at the conversation's last seq (what came before is history).
    async fn track_subscription(&self, kind: &str, since_seq: Option<i64>, reply: &Value) {
        let Some(tracker) = self.socketio.as_ref().and_then(|io| io.recovery.as_ref()) else {
            return;
        };
        let conversation_id = reply["conversation_id"].as_str().unwrap_or_default();
        let record = match kind {
            "conversation.subscribe" => {
                let epoch = reply["epoch"].as_str().unwrap_or_default();
                let last_seq = reply["last_seq"].as_i64().unwrap_or(0);
                let recovered_from = since_seq.filter(|_| reply["recovered"] == true);
                let replayed: Vec<i64> = reply["messages"]
                    .as_array()
                    .map(|messages| messages.iter().filter_map(|m| m["seq"].as_i64()).collect())
                    .unwrap_or_default();
                let floor = recovered_from.unwrap_or(last_seq);
                tracker.subscribed(conversation_id, epoch, floor, &replayed, recovered_from.is_some())
            }
            "conversation.leave" => tracker.unsubscribed(conversation_id),
            _ => return,
        };
        self.save_resume(&tracker.pid, &record, RESUME_TTL_CONNECTED).await;
    }

    /// Best effort: without its record a client reconnects unrecovered and reloads history.
    async fn save_resume(&self, pid: &str, record: &Record, ttl: std::time::Duration) {
        let json = serde_json::to_string(record).expect("a record always encodes");
        if let Err(e) = self
            .node
            .cache
            .save_resume(self.session.app_id(), pid, &json, ttl)
            .await
        {
            tracing::warn!(error = %e, "could not save the Socket.IO resume record");
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
