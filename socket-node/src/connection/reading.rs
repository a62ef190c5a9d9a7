//! The reading loop every live connection runs, whichever its wire: frames answered in order, beside the
//! timers and signals that end a connection (token expiry, shutdown, a full outbox, revocation) and, for
//! a Socket.IO client, the heartbeat and the switch from long-polling to the upgraded WebSocket.

use super::socketio::Handled;
use super::{close_frame, token_deadline, too_slow, writer, Connection, Socket, Writer};
use crate::config::NodeSettings;
use crate::dispatch;
use crate::polling::PollingSession;
use crate::shutdown::Shutdown;
use crate::socketio::wire::Transcoder;
use caas_shared::domain::protocol;
use caas_shared::Error;
use futures_util::stream::SplitStream;
use futures_util::StreamExt;
use std::pin::Pin;
use std::sync::Arc;
use tokio::time::{Instant, Sleep};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{self, Message};

/// Where a live connection's client frames come from.
pub enum Incoming {
    WebSocket(SplitStream<Socket>),
    /// A Socket.IO long-polling session: packets from its POSTs.
    Polling(Arc<PollingSession>),
}

impl Incoming {
    /// The client's next frame, or the WebSocket a long-polling client upgraded to.
    async fn next(&mut self) -> Next {
        match self {
            Incoming::WebSocket(stream) => Next::Frame(stream.next().await),
            // Boxed: only long-polling sessions need this state, and every idle WebSocket connection
            // would carry its size.
            Incoming::Polling(session) => Box::pin(next_polled(session)).await,
        }
    }
}

enum Next {
    Frame(Option<Result<Message, tungstenite::Error>>),
    /// Boxed: a socket is large, and this value is held while a frame is answered.
    Upgraded(Box<Socket>),
}

async fn next_polled(session: &PollingSession) -> Next {
    tokio::select! {
        // Packets already posted are taken before the switch (a client sends `5` only after its last
        // POST was answered, but nothing is left behind either way).
        biased;
        packet = session.recv() => Next::Frame(packet.map(|text| Ok(Message::text(text)))),
        socket = session.upgraded_socket() => Next::Upgraded(Box::new(socket)),
    }
}

/// Completes when the Socket.IO heartbeat is due; never for a native connection.
async fn beat(heartbeat: &mut Option<Pin<Box<Sleep>>>) {
    match heartbeat {
        Some(sleep) => sleep.as_mut().await,
        None => std::future::pending().await,
    }
}

impl Connection {
    /// Answers frames in order; returns the close frame that ends the connection.
    pub(super) async fn read_frames(
        &self,
        incoming: &mut Incoming,
        writer: &mut Option<Writer>,
        shutdown: &mut Shutdown,
    ) -> Message {
        let settings = &self.node.settings;
        let socketio = self.socketio.is_some();
        // A native client's heartbeat shares the token's timer (no timer or allocation of its own per
        // idle connection): the timer wakes at whichever is due first, and a frame only notes the time.
        let mut native = (!socketio).then(NativeBeat::new);
        let due = |native: &Option<NativeBeat>| {
            let token = token_deadline(self.session.expires_at());
            native.as_ref().map_or(token, |beat| beat.due(settings).min(token))
        };
        let expiry = tokio::time::sleep_until(due(&native));
        // Socket.IO's heartbeat: the server pings every interval and closes a client that does not
        // answer within the timeout. Boxed, and only for Socket.IO clients: a native one does not
        // carry it.
        let mut heartbeat =
            socketio.then(|| Box::pin(tokio::time::sleep_until(Instant::now() + settings.ping_interval)));
        let mut awaiting_pong = false;
        // Created once: each of these ends the loop, and a future re-created on every turn would
        // register with its notifier again per frame (the shutdown channel is shared by every
        // connection, so that was a lock every connection took per frame).
        let (shutting_down, overflowed, revoked) = (shutdown.recv(), self.outbox.overflowed(), self.revoked.notified());
        tokio::pin!(expiry, shutting_down, overflowed, revoked);
        loop {
            tokio::select! {
                () = &mut expiry => {
                    if caas_shared::now_ms() / 1000 >= self.session.expires_at() {
                        let _ = self.outbox.push(protocol::event("session.expired", serde_json::json!({
                            "reason": "token expired; reconnect with a fresh token, or send one in an auth frame before it expires",
                        })).into());
                        self.tell_socketio_client_not_to_reconnect();
                        return close_frame(CloseCode::Policy, "token expired");
                    }
                    match native.as_mut().map(|beat| beat.check(Instant::now(), settings)) {
                        Some(Beat::Silent) => {
                            tracing::info!("no pong within the ping timeout");
                            return close_frame(CloseCode::Away, "ping timeout");
                        }
                        Some(Beat::Ping) if self.outbox.push(writer::WEBSOCKET_PING.into()).is_err() => return too_slow(),
                        _ => {}
                    }
                    expiry.as_mut().reset(due(&native));
                }
                _ = self.session.renewed.notified() => expiry.as_mut().reset(due(&native)),
                () = beat(&mut heartbeat) => {
                    if awaiting_pong {
                        tracing::info!("no pong within the ping timeout");
                        return close_frame(CloseCode::Away, "ping timeout");
                    }
                    if self.outbox.push("2".into()).is_err() {
                        return too_slow();
                    }
                    awaiting_pong = true;
                    reset(&mut heartbeat, settings.ping_timeout);
                }
                () = &mut shutting_down => return close_frame(CloseCode::Away, "server shutting down"),
                () = &mut overflowed => return too_slow(),
                () = &mut revoked => {
                    self.tell_socketio_client_not_to_reconnect();
                    return close_frame(CloseCode::Policy, "session revoked");
                }
                next = incoming.next() => {
                    if let (Some(beat), Next::Frame(Some(Ok(_)))) = (native.as_mut(), &next) {
                        beat.heard(Instant::now());
                    }
                    match next {
                    Next::Upgraded(socket) => {
                        // The client switched to its WebSocket: the writer takes over the same outbox.
                        let transcoder = match &*incoming {
                            Incoming::Polling(session) => session.transcoder.get().cloned().unwrap_or_default(),
                            Incoming::WebSocket(_) => Transcoder::default(),
                        };
                        let (sink, stream) = (*socket).split();
                        *writer = Some(Writer::start(sink, Arc::clone(&self.outbox), Some(transcoder)));
                        *incoming = Incoming::WebSocket(stream);
                        tracing::debug!("upgraded to WebSocket");
                    }
                    Next::Frame(Some(Ok(Message::Text(text)))) if socketio => {
                        match Box::pin(self.socketio_packet(text.as_str())).await {
                            Handled::Continue => {}
                            Handled::Pong => {
                                awaiting_pong = false;
                                reset(&mut heartbeat, settings.ping_interval);
                                Box::pin(self.confirm_delivered()).await;
                            }
                            Handled::Close(frame) => return frame,
                        }
                    }
                    Next::Frame(Some(Ok(Message::Text(text)))) => {
                        // Boxed: a request's future is large and exists only while it runs; inline, every idle
                        // connection's task would carry its size.
                        let reply = Box::pin(dispatch::answer(&self.node, &self.session, text.as_str())).await;
                        // Never waits: a client that asks for more than it reads overflows and is closed.
                        if self.outbox.push(reply.into()).is_err() {
                            return too_slow();
                        }
                    }
                    Next::Frame(Some(Ok(Message::Binary(_)))) => {
                        let refused = Error::Validation("binary frames are not supported; send JSON text".into());
                        let reply = match socketio {
                            true => crate::socketio::wire::error_event(&refused, None),
                            false => protocol::reply_error(None, &refused),
                        };
                        if self.outbox.push(reply.into()).is_err() {
                            return too_slow();
                        }
                    }
                    Next::Frame(Some(Ok(Message::Close(_))) | None) => return close_frame(CloseCode::Normal, ""),
                    Next::Frame(Some(Ok(_))) => {}
                    Next::Frame(Some(Err(e))) => {
                        tracing::info!(error = %e, "connection error");
                        return close_frame(CloseCode::Protocol, "protocol error");
                    }
                    }
                }
            }
        }
    }

    /// A Socket.IO client whose session ended (revoked, expired) gets a server DISCONNECT, so it does
    /// not reconnect by itself with a token that no longer works.
    fn tell_socketio_client_not_to_reconnect(&self) {
        if self.socketio.is_some() {
            let _ = self.outbox.push(crate::socketio::wire::server_disconnect().into());
        }
    }
}

fn reset(heartbeat: &mut Option<Pin<Box<Sleep>>>, after: std::time::Duration) {
    if let Some(sleep) = heartbeat {
        sleep.as_mut().reset(Instant::now() + after);
    }
}

/// A native connection's heartbeat: the server pings a client it has not heard from for an interval
/// (any frame counts), and disconnects one that stays silent for the timeout after a ping — so a
/// vanished client goes offline within interval + timeout instead of at the balancer's idle timeout.
/// Only the two times are kept per connection (the interval and the timeout are the node's settings).
struct NativeBeat {
    heard: Instant,
    pinged: Option<Instant>,
}

/// What the heartbeat wants when its time came.
#[derive(Debug, PartialEq, Eq)]
enum Beat {
    /// Nothing yet.
    Wait,
    /// Send a ping.
    Ping,
    /// Pinged and silent past the timeout: disconnect.
    Silent,
}

impl NativeBeat {
    fn new() -> Self {
        Self {
            heard: Instant::now(),
            pinged: None,
        }
    }

    /// The client sent something at `now`.
    fn heard(&mut self, now: Instant) {
        self.heard = now;
    }

    /// A ping sent since the client was last heard from.
    fn unanswered(&self) -> Option<Instant> {
        self.pinged.filter(|pinged| *pinged >= self.heard)
    }

    /// When [`Self::check`] has something to do.
    fn due(&self, settings: &NodeSettings) -> Instant {
        match self.unanswered() {
            Some(pinged) => pinged + settings.native_ping_timeout,
            None => self.heard + settings.native_ping_interval,
        }
    }

    /// What is due at `now`.
    fn check(&mut self, now: Instant, settings: &NodeSettings) -> Beat {
        match self.unanswered() {
            Some(pinged) if now >= pinged + settings.native_ping_timeout => Beat::Silent,
            Some(_) => Beat::Wait,
            None if now >= self.heard + settings.native_ping_interval => {
                self.pinged = Some(now);
                Beat::Ping
            }
            None => Beat::Wait,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_silent_client_is_pinged_then_dropped_and_any_frame_keeps_it() {
        let mut settings = NodeSettings::from_env().unwrap();
        settings.native_ping_interval = Duration::from_secs(25);
        settings.native_ping_timeout = Duration::from_secs(20);
        let settings = &settings;
        let mut beat = NativeBeat::new();
        let start = beat.heard;
        let at = |secs: u64| start + Duration::from_secs(secs);
        assert_eq!(beat.check(at(10), settings), Beat::Wait);
        assert_eq!(beat.due(settings), at(25));
        assert_eq!(beat.check(at(25), settings), Beat::Ping);
        assert_eq!(beat.due(settings), at(45));
        assert_eq!(beat.check(at(30), settings), Beat::Wait, "waiting for the pong");
        beat.heard(at(31));
        assert_eq!(
            beat.due(settings),
            at(56),
            "answered: the next ping is an interval after"
        );
        assert_eq!(beat.check(at(50), settings), Beat::Wait);
        assert_eq!(beat.check(at(56), settings), Beat::Ping);
        assert_eq!(beat.check(at(75), settings), Beat::Wait);
        assert_eq!(beat.check(at(76), settings), Beat::Silent);
    }
}
