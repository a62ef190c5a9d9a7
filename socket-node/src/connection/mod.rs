//! One client connection, in mini-redis's shape: [`serve`] runs handshake → admit → run → teardown.
//! Frames are answered in order (which keeps one sender's messages in `seq` order) while a writer task
//! drains the connection's bounded queue.

mod handshake;
mod writer;

use crate::dispatch;
use crate::hub::{ConnectionId, Outlet};
use crate::outbox::Outbox;
use crate::session::Session;
use crate::shutdown::Shutdown;
use crate::tally::Place;
use crate::Node;
use caas_shared::domain::correlation::CorrelationId;
use caas_shared::domain::protocol;
use caas_shared::ports::cache::{self, PresenceHolder};
use caas_shared::services::auth::Claims;
use caas_shared::services::moderation;
use caas_shared::Error;
use futures_util::stream::SplitStream;
use futures_util::{SinkExt, StreamExt};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::{oneshot, Notify};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;
use tracing::Instrument;

type Socket = WebSocketStream<TcpStream>;

/// Initial read buffer of each connection (see [`handshake::upgrade`]).
pub const READ_BUFFER_BYTES: usize = 1024;

/// Serves one accepted TCP stream until the client leaves, misbehaves, or the node shuts down.
/// `handshake_place` is the stream's place among its IP address's handshakes; it is given back once the
/// connection is authenticated (or refused).
pub async fn serve(node: Arc<Node>, stream: TcpStream, handshake_place: Place<IpAddr>, shutdown: Shutdown) {
    // An async fn's future is as large as its largest state, and this one lives as long as the
    // connection: the setup is boxed (and freed once done), so an idle connection carries only the
    // reading loop's state (3.9 KiB per connection before, measured with `size_of_val`).
    let Some(live) = Box::pin(establish(node, stream, handshake_place)).await else {
        return;
    };
    let span = live.span.clone();
    live.run(shutdown).instrument(span).await;
}

/// What a connection that passed the handshake and admission reads and writes with.
struct Live {
    connection: Box<Connection>,
    incoming: SplitStream<Socket>,
    writer: JoinHandle<()>,
    /// Hands the writer the close frame the reader chose.
    close: oneshot::Sender<Message>,
    span: tracing::Span,
}

impl Live {
    /// Answers the client's frames until it leaves, is too slow, is revoked or the node shuts down,
    /// then tears down and closes with the reason. Holds only what reading needs: this is the state
    /// every idle connection keeps.
    async fn run(self, mut shutdown: Shutdown) {
        let Live {
            connection,
            incoming,
            mut writer,
            close,
            ..
        } = self;
        let close_frame = connection.read_frames(incoming, &mut shutdown).await;
        Box::pin(connection.teardown(true)).await;
        let _ = close.send(close_frame);
        connection.outbox.close();
        drop(connection);
        // A client that stopped reading would keep the writer waiting on the socket for ever: after the
        // patience runs out the writer goes, and with it the socket and whatever it still held.
        if Box::pin(tokio::time::timeout(CLOSE_PATIENCE, &mut writer))
            .await
            .is_err()
        {
            writer.abort();
            tracing::info!("client did not take its last frames; socket dropped");
        }
        tracing::info!("disconnected");
    }
}

/// Upgrades, authenticates and admits the client, greets it and starts its writer; `None` when it was
/// refused (and told why) or never finished its handshake.
async fn establish(node: Arc<Node>, stream: TcpStream, handshake_place: Place<IpAddr>) -> Option<Live> {
    // The upgrade and the authentication together get one deadline, so a client that opens a TCP
    // connection and sends nothing (or dribbles bytes) holds a slot for a bounded time only.
    let authenticated = tokio::time::timeout(node.settings.handshake_timeout, async {
        let (mut socket, found) = handshake::upgrade(&node, stream).await?;
        let result = Box::pin(handshake::authenticate(&node, &mut socket, found)).await;
        Some((socket, result))
    })
    .await;
    drop(handshake_place);
    let (mut socket, claims, correlation_id) = match authenticated {
        Ok(Some((socket, Ok((claims, correlation_id))))) => (socket, claims, correlation_id),
        Ok(Some((mut socket, Err(e)))) => {
            refuse(&mut socket, &e, CloseCode::Policy, "authentication failed").await;
            return None;
        }
        Ok(None) => return None,
        Err(_) => {
            tracing::debug!("handshake timed out");
            return None;
        }
    };
    let span =
        tracing::info_span!("ws", correlation_id = %correlation_id, app_id = %claims.app_id, user_id = %claims.sub);
    async move {
        let user = (claims.app_id.clone(), claims.sub.clone());
        let Some(user_place) = node
            .user_connections
            .enter(user, node.settings.max_connections_per_user)
        else {
            let e = Error::RateLimited {
                message: format!(
                    "this user already has {} connections to this node; close one first",
                    node.settings.max_connections_per_user
                ),
                retry_after_ms: 1_000,
            };
            refuse(&mut socket, &e, CloseCode::Policy, "too many connections").await;
            return None;
        };
        let connection = Connection::open(node, claims, correlation_id, user_place);
        match Box::pin(connection.admit()).await {
            Ok(()) => Some(connection.greet(socket).await),
            Err(e) => {
                connection.teardown(false).await;
                let code = if e.is_server_fault() {
                    CloseCode::Again
                } else {
                    CloseCode::Policy
                };
                refuse(&mut socket, &e, code, e.code()).await;
                None
            }
        }
    }
    .instrument(span)
    .await
}

/// How long a refused client, or a closing one, gets to take its last frames before the socket is dropped.
const CLOSE_PATIENCE: Duration = Duration::from_secs(5);

/// Tells the client why it is refused (an `error` event), then closes with `code`; a client that does
/// not read gets [`CLOSE_PATIENCE`], then its socket is dropped.
async fn refuse(socket: &mut Socket, error: &Error, code: CloseCode, reason: &str) {
    let _ = tokio::time::timeout(CLOSE_PATIENCE, async {
        let _ = socket
            .send(Message::text(protocol::event("error", error_body(error))))
            .await;
        let _ = socket.send(close_frame(code, reason)).await;
    })
    .await;
}

fn close_frame(code: CloseCode, reason: &str) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: reason.into(),
    }))
}

/// The instant a token expiring at `expires_at` (Unix seconds) runs out.
fn token_deadline(expires_at: i64) -> tokio::time::Instant {
    let left = expires_at
        .saturating_mul(1000)
        .saturating_sub(caas_shared::now_ms())
        .max(0);
    tokio::time::Instant::now() + Duration::from_millis(left as u64)
}

fn too_slow() -> Message {
    close_frame(CloseCode::Again, "client too slow; reconnect and resume")
}

fn error_body(error: &Error) -> serde_json::Value {
    serde_json::json!({"code": error.code(), "message": error.public_message()})
}

/// An authenticated connection, registered with the hub from [`Connection::open`] until
/// [`Connection::teardown`].
struct Connection {
    node: Arc<Node>,
    session: Session,
    /// Names this connection's presence uniquely across nodes.
    holder: String,
    /// The connection's byte-bounded queue (replies and hub deliveries share it); the writer drains it.
    outbox: Arc<Outbox>,
    revoked: Arc<Notify>,
    /// The connection's place among its user's connections on this node, given back when it is dropped.
    _user_place: Place<(String, String)>,
}

impl Connection {
    /// Registers the connection with the hub; frames queued for it wait in its outbox.
    fn open(
        node: Arc<Node>,
        claims: Claims,
        correlation_id: CorrelationId,
        user_place: Place<(String, String)>,
    ) -> Box<Self> {
        let outbox = Arc::new(Outbox::new(node.settings.send_queue_bytes));
        let revoked = Arc::new(Notify::new());
        let connection: ConnectionId = node.hub.next_connection_id();
        let holder = format!("{}:{connection}", node.settings.node_id);
        node.hub.register(
            connection,
            Outlet {
                session_id: claims.jti.clone(),
                presence: PresenceHolder {
                    app_id: claims.app_id.clone(),
                    user_id: claims.sub.clone(),
                    holder: holder.clone(),
                },
                outbox: Arc::clone(&outbox),
                revoked: Arc::clone(&revoked),
            },
        );
        let session = Session::new(claims, connection, correlation_id);
        Box::new(Self {
            node,
            session,
            holder,
            outbox,
            revoked,
            _user_place: user_place,
        })
    }

    /// Subscribes the user channel (revocations, acks, conversation notices), then refuses an ended
    /// session or a banned user. Checked after subscribing: a ban or logout is stored before its
    /// revocation is published, so one made during this handshake is either seen here or delivered on
    /// the channel.
    async fn admit(&self) -> Result<(), Error> {
        let user_channel = cache::user_channel(self.session.app_id(), self.session.user_id());
        if let Err(e) = self.node.hub.subscribe(self.session.connection, &user_channel).await {
            tracing::error!(error = %e, "could not subscribe the user channel");
            return Err(e);
        }
        let node = &self.node;
        moderation::admit(
            &node.sessions,
            node.store.as_ref(),
            node.cache.as_ref(),
            &self.session.claims,
        )
        .await
    }

    /// Greets the client, announces its presence and starts the writer task on the socket's sending half;
    /// returns what [`Live::run`] needs, under the connection's span (the one this runs in).
    async fn greet(self: Box<Self>, mut socket: Socket) -> Live {
        let claims = &self.session.claims;
        let ready = protocol::event(
            "ready",
            serde_json::json!({"user_id": claims.sub, "app_id": claims.app_id, "correlation_id": self.session.correlation_id}),
        );
        // Written before the writer task starts, so `ready` is always the first frame; anything the hub
        // queued meanwhile follows it.
        let _ = socket.send(Message::text(ready)).await;
        Box::pin(self.announce_presence(true)).await;
        tracing::info!("connected");
        let (sink, incoming) = socket.split();
        let (close, close_rx) = oneshot::channel::<Message>();
        let writer = tokio::spawn(writer::write_frames(sink, Arc::clone(&self.outbox), close_rx));
        Live {
            connection: self,
            incoming,
            writer,
            close,
            span: tracing::Span::current(),
        }
    }

    /// Answers frames in order; returns the close frame that ends the connection.
    async fn read_frames(&self, mut incoming: SplitStream<Socket>, shutdown: &mut Shutdown) -> Message {
        let expiry = tokio::time::sleep_until(token_deadline(self.session.expires_at()));
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
                        return close_frame(CloseCode::Policy, "token expired");
                    }
                    expiry.as_mut().reset(token_deadline(self.session.expires_at()));
                }
                _ = self.session.renewed.notified() => expiry.as_mut().reset(token_deadline(self.session.expires_at())),
                () = &mut shutting_down => return close_frame(CloseCode::Away, "server shutting down"),
                () = &mut overflowed => return too_slow(),
                () = &mut revoked => return close_frame(CloseCode::Policy, "session revoked"),
                frame = incoming.next() => match frame {
                    Some(Ok(Message::Text(text))) => {
                        // Boxed: a request's future is large and exists only while it runs; inline, every idle
                        // connection's task would carry its size.
                        let reply = Box::pin(dispatch::answer(&self.node, &self.session, text.as_str())).await;
                        // Never waits: a client that asks for more than it reads overflows and is closed.
                        if self.outbox.push(reply.into()).is_err() {
                            return too_slow();
                        }
                    }
                    Some(Ok(Message::Binary(_))) => {
                        let reply = protocol::reply_error(None, &Error::Validation("binary frames are not supported; send JSON text".into()));
                        if self.outbox.push(reply.into()).is_err() {
                            return too_slow();
                        }
                    }
                    Some(Ok(Message::Close(_))) | None => return close_frame(CloseCode::Normal, ""),
                    Some(Ok(_)) => {}
                    Some(Err(e)) => {
                        tracing::info!(error = %e, "connection error");
                        return close_frame(CloseCode::Protocol, "protocol error");
                    }
                },
            }
        }
    }

    /// The one place a connection leaves the hub; an admitted one also gives up its presence.
    async fn teardown(&self, admitted: bool) {
        self.node.hub.unregister(self.session.connection).await;
        if admitted {
            Box::pin(self.announce_presence(false)).await;
        } else {
            // Never announced, but a renewal may have vouched for it while it was registered.
            let _renewals_done = self.node.hub.hold_presence().await;
            let (app_id, user_id) = (self.session.app_id(), self.session.user_id());
            if let Err(e) = self.node.cache.presence_drop(app_id, user_id, &self.holder).await {
                tracing::warn!(error = %e, "presence drop failed");
            }
        }
    }

    /// Records this connection's presence (or its end) and tells the user's watchers when the user came
    /// online or went offline. Best effort: presence must never stop a connection from working.
    async fn announce_presence(&self, connected: bool) {
        let (node, holder) = (&self.node, self.holder.as_str());
        let (app_id, user_id) = (self.session.app_id(), self.session.user_id());
        let online = if connected {
            node.cache.presence_touch(app_id, user_id, holder).await.map(|()| true)
        } else {
            // The connection has left the hub: a renewal running now saw it and must land first.
            let _renewals_done = node.hub.hold_presence().await;
            node.cache.presence_drop(app_id, user_id, holder).await
        };
        let online = match online {
            Ok(online) => online,
            Err(e) => {
                tracing::warn!(error = %e, "presence update failed");
                return;
            }
        };
        if !connected && online {
            return; // Another connection keeps the user online.
        }
        let frame = protocol::event("presence", serde_json::json!({"user_id": user_id, "online": online}));
        if let Err(e) = node
            .hub
            .publish(&cache::presence_channel(app_id, user_id), &frame)
            .await
        {
            tracing::warn!(error = %e, "presence announcement failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every idle connection keeps its task's future, which is as large as its largest state: the setup
    /// and teardown phases must stay boxed so that is the reading loop (3,952 bytes when the handshake
    /// and the greeting were inline, 1,096 boxed).
    #[tokio::test]
    async fn an_idle_connection_holds_only_the_reading_state() {
        let config = caas_shared::config::Config::from_lookup(|key| match key {
            "CAAS_STORE_URL" | "CAAS_CACHE_URL" | "CAAS_BUS_URL" => Some("memory://".into()),
            "CAAS_JWT_SECRET" => Some("a-test-secret-of-more-than-thirty-two-bytes".into()),
            _ => None,
        })
        .unwrap();
        let store = caas_shared::ports::store::connect("memory://", "caas").await.unwrap();
        let cache = caas_shared::ports::cache::connect("memory://").await.unwrap();
        let bus = caas_shared::ports::bus::connect("memory://").await.unwrap();
        let settings = crate::config::NodeSettings::from_env().unwrap();
        let node = Node::start(&config, settings, store, cache, bus).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let _client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (stream, _) = listener.accept().await.unwrap();
        let handshakes = crate::tally::Tally::default();
        let place = handshakes.enter(IpAddr::from([127, 0, 0, 1]), 1).unwrap();
        let connection = serve(Arc::clone(&node), stream, place, node.shutdown_listener());
        let bytes = std::mem::size_of_val(&connection);
        assert!(bytes <= 1_536, "a connection's future is {bytes} bytes");
    }
}
