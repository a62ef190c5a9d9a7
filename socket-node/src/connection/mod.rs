//! One client connection, in mini-redis's shape: [`serve`] runs handshake → admit → run → teardown.
//! Frames are answered in order (which keeps one sender's messages in `seq` order) while a writer task
//! drains the connection's bounded queue. The wire is a codec over that one model: native JSON frames
//! on `/ws`, or Socket.IO (Engine.IO v4) on `/socket.io/` over a WebSocket or HTTP long-polling
//! ([`socketio`], [`polling_http`]).

mod handshake;
mod http;
mod polling_http;
mod reading;
mod socketio;
mod transport;
mod writer;

use crate::handshakes::HandshakeTicket;
use crate::hub::{ConnectionId, Outlet};
use crate::outbox::Outbox;
use crate::session::Session;
use crate::shutdown::Shutdown;
use crate::socketio::wire::Transcoder;
use crate::tally::Place;
use crate::Node;
use caas_shared::domain::protocol;
use caas_shared::ports::cache::{self, PresenceHolder};
use caas_shared::services::keys::SIGNED_CURVE25519;
use caas_shared::services::moderation;
use caas_shared::Error;
use futures_util::{FutureExt, StreamExt};
use handshake::Route;
use reading::Incoming;
use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::{oneshot, Notify};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tracing::Instrument;
use transport::{finish_polling, Transport, Wire};

type Socket = crate::WebSocket;

/// Initial read buffer of each connection (see `handshake::upgrade`).
pub const READ_BUFFER_BYTES: usize = 1024;

/// Serves one accepted TCP stream from `peer` until the client leaves, misbehaves, or the node shuts
/// down. `ticket` is the stream's place among the pending handshakes; it is given back once the
/// connection is authenticated (or refused), and an eviction before then closes the connection.
pub fn serve(
    node: Arc<Node>,
    stream: TcpStream,
    peer: IpAddr,
    ticket: HandshakeTicket,
    shutdown: Shutdown,
) -> impl Future<Output = ()> + Send {
    // This future lives as long as the connection, and is as large as its largest state plus whatever
    // it holds across every state — an async fn keeps its arguments and every local it ever bound
    // (moved-from or not) beside the reading loop. So the setup is boxed (freed once done) and the
    // reading loop is chained on without an async fn around it: an idle connection carries only the
    // reading loop's state (3.9 KiB per connection when the handshake was inline; 1,584 bytes with the
    // setup's arguments and locals kept beside the loop; measured with `size_of_val`).
    let evicted = ticket.evicted();
    let setup = Box::pin(async move {
        tokio::select! {
            live = establish(node, stream, peer, ticket) => live,
            () = evicted => {
                tracing::debug!(%peer, "pending handshake evicted for a newer one");
                None
            }
        }
    });
    setup.then(move |live| futures_util::future::OptionFuture::from(live.map(|live| live.run(shutdown))).map(drop))
}

/// The writing half of a connection on a WebSocket: its task, and how the reader hands it the close
/// frame it chose. A long-polling connection has none: its held GETs write.
struct Writer {
    task: JoinHandle<()>,
    close: oneshot::Sender<Message>,
}

impl Writer {
    fn start(
        sink: futures_util::stream::SplitSink<Socket, Message>,
        outbox: Arc<Outbox>,
        socketio: Option<Transcoder>,
    ) -> Self {
        let (close, close_rx) = oneshot::channel::<Message>();
        let task = tokio::spawn(writer::write_frames(sink, outbox, close_rx, socketio));
        Self { task, close }
    }
}

/// What a connection that passed the handshake and admission reads and writes with.
struct Live {
    connection: Box<Connection>,
    incoming: Incoming,
    writer: Option<Writer>,
    span: tracing::Span,
}

impl Live {
    /// Answers the client's frames until it leaves, is too slow, is revoked or the node shuts down,
    /// then tears down and closes with the reason, in the connection's span. Holds only what reading
    /// needs: this is the state every idle connection keeps (not an async fn, which would keep `self`
    /// twice beside the fields taken out of it).
    fn run(self, mut shutdown: Shutdown) -> impl Future<Output = ()> + Send {
        let Live {
            connection,
            mut incoming,
            mut writer,
            span,
        } = self;
        async move {
            let close_frame = connection.read_frames(&mut incoming, &mut writer, &mut shutdown).await;
            Box::pin(connection.teardown(true)).await;
            Box::pin(connection.keep_for_recovery()).await;
            connection.outbox.close();
            let polling = connection.socketio.as_ref().and_then(|io| io.polling.clone());
            drop(connection);
            drop(incoming);
            match writer {
                Some(Writer { mut task, close }) => {
                    let _ = close.send(close_frame);
                    // A client that stopped reading would keep the writer waiting on the socket for
                    // ever: after the patience runs out the writer goes, and with it the socket and
                    // whatever it still held.
                    if Box::pin(tokio::time::timeout(CLOSE_PATIENCE, &mut task)).await.is_err() {
                        task.abort();
                        tracing::info!("client did not take its last frames; socket dropped");
                    }
                }
                None => {
                    if let Some(session) = &polling {
                        Box::pin(finish_polling(session, close_frame)).await;
                    }
                }
            }
            if let Some(session) = polling {
                session.close_inbound();
                session.release_poll.notify_waiters();
            }
            tracing::info!("disconnected");
        }
        .instrument(span)
    }
}

/// Routes the first request; upgrades, authenticates and admits the client, greets it and starts its
/// writer; `None` when it was refused (and told why), never finished its handshake, or was an HTTP
/// request (long-polling) served here.
async fn establish(node: Arc<Node>, stream: TcpStream, peer: IpAddr, handshake_place: HandshakeTicket) -> Option<Live> {
    // The upgrade and the authentication together get one deadline, so a client that opens a TCP
    // connection and sends nothing (or dribbles bytes) holds a slot for a bounded time only.
    let deadline = Instant::now() + node.settings.handshake_timeout;
    let route = match tokio::time::timeout_at(deadline, handshake::route(&node, stream, peer, &handshake_place)).await {
        Ok(Some(route)) => route,
        Ok(None) => return None,
        Err(_) => {
            tracing::debug!("handshake timed out");
            return None;
        }
    };
    match route {
        Route::Native(mut socket, found) => {
            let authenticated =
                tokio::time::timeout_at(deadline, Box::pin(handshake::authenticate(&node, &mut socket, found))).await;
            drop(handshake_place);
            let transport = Transport::WebSocket(socket);
            let identity = match authenticated {
                Ok(Ok(identity)) => identity,
                Ok(Err(e)) => {
                    transport
                        .refuse(Wire::Native, &e, CloseCode::Policy, "authentication failed")
                        .await;
                    return None;
                }
                Err(_) => {
                    tracing::debug!("handshake timed out");
                    return None;
                }
            };
            admit_client(node, identity, transport, None).await
        }
        Route::SocketIo(socket, found) => {
            socketio::establish(
                node,
                Transport::WebSocket(socket),
                found,
                deadline,
                Some(handshake_place),
            )
            .await
        }
        Route::Upgrade(socket, sid) => {
            drop(handshake_place);
            polling_http::upgrade(&node, socket, &sid).await;
            None
        }
        Route::Polling(stream, buffer, request) => {
            drop(handshake_place);
            polling_http::serve(node, stream, buffer, request).await;
            None
        }
    }
}

/// Admits an authenticated client: its place among its user's connections, the hub, the session and
/// ban checks; then greets it. `socketio` is set for a Socket.IO client (with its session's state).
async fn admit_client(
    node: Arc<Node>,
    identity: handshake::Identity,
    transport: Transport,
    socketio: Option<Box<socketio::SocketIo>>,
) -> Option<Live> {
    let wire = if socketio.is_some() {
        Wire::SocketIo
    } else {
        Wire::Native
    };
    let (claims, correlation_id) = (&identity.claims, &identity.correlation_id);
    let span =
        tracing::info_span!("ws", correlation_id = %correlation_id, app_id = %claims.app_id, user_id = %claims.sub);
    let user = (claims.app_id.clone(), claims.sub.clone());
    async move {
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
            transport
                .refuse(wire, &e, CloseCode::Policy, "too many connections")
                .await;
            return None;
        };
        let outbox = match &transport {
            Transport::Polling(session) => Arc::clone(&session.outbox),
            Transport::WebSocket(_) => Arc::new(Outbox::new(node.settings.send_queue_bytes)),
        };
        let connection = Connection::open(node, identity, user_place, outbox, socketio);
        match Box::pin(connection.admit()).await {
            Ok(()) => Some(connection.greet(transport).await),
            Err(e) => {
                connection.teardown(false).await;
                let code = if e.is_server_fault() {
                    CloseCode::Again
                } else {
                    CloseCode::Policy
                };
                transport.refuse(wire, &e, code, e.code()).await;
                None
            }
        }
    }
    .instrument(span)
    .await
}

/// How long a refused client, or a closing one, gets to take its last frames before the socket is dropped.
const CLOSE_PATIENCE: Duration = Duration::from_secs(5);

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
    /// A Socket.IO client's state; `None` for a native one (so native connections stay as small).
    socketio: Option<Box<socketio::SocketIo>>,
    /// The connection's place among its user's connections on this node, given back when it is dropped.
    _user_place: Place<(String, String)>,
}

impl Connection {
    /// Registers the connection with the hub; frames queued for it wait in its outbox.
    fn open(
        node: Arc<Node>,
        identity: handshake::Identity,
        user_place: Place<(String, String)>,
        outbox: Arc<Outbox>,
        socketio: Option<Box<socketio::SocketIo>>,
    ) -> Box<Self> {
        let handshake::Identity {
            claims,
            correlation_id,
            device_id,
        } = identity;
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
                device_id: device_id.clone(),
            },
        );
        let session = Session::new(claims, connection, correlation_id, device_id);
        Box::new(Self {
            node,
            session,
            holder,
            outbox,
            revoked,
            socketio,
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
    async fn greet(mut self: Box<Self>, mut transport: Transport) -> Live {
        let claims = &self.session.claims;
        let mut greeting = serde_json::json!({"user_id": claims.sub, "app_id": claims.app_id, "correlation_id": self.session.correlation_id});
        if let Some(device_id) = &self.session.device_id {
            greeting["device_id"] = device_id.as_str().into();
            if let Some(counts) = Box::pin(self.one_time_key_counts(device_id)).await {
                greeting["one_time_key_counts"] = counts;
            }
        }
        let ready = protocol::event("ready", greeting);
        // Written before the writer task starts (or ahead of the outbox), so `ready` is always the first
        // frame (after a Socket.IO client's CONNECT answer, and followed by what a recovered one
        // missed); anything the hub queued meanwhile follows.
        let transcoder = match self.socketio.is_some() {
            true => {
                let (preamble, transcoder) = Box::pin(self.socketio_preamble(ready)).await;
                // A held poll wakes on the greeting and takes whatever else is queued with it: it must
                // encode those with this connection's transcoder.
                if let Transport::Polling(session) = &transport {
                    let _ = session.transcoder.set(transcoder.clone());
                }
                transport.send_first(preamble).await;
                Some(transcoder)
            }
            false => {
                transport.send(ready).await;
                None
            }
        };
        Box::pin(self.announce_presence(true)).await;
        tracing::info!("connected");
        let (incoming, writer) = match transport {
            Transport::WebSocket(socket) => {
                let (sink, incoming) = socket.split();
                let writer = Writer::start(sink, Arc::clone(&self.outbox), transcoder);
                (Incoming::WebSocket(incoming), Some(writer))
            }
            Transport::Polling(session) => (Incoming::Polling(session), None),
        };
        Live {
            connection: self,
            incoming,
            writer,
            span: tracing::Span::current(),
        }
    }

    /// The named device's unclaimed one-time keys, for `ready`; `None` (and a warning) when the store
    /// cannot say: the connection is not refused for it.
    async fn one_time_key_counts(&self, device_id: &str) -> Option<serde_json::Value> {
        let (app_id, user_id) = (self.session.app_id(), self.session.user_id());
        match self.node.store.count_one_time_keys(app_id, user_id, device_id).await {
            Ok(count) => Some(serde_json::json!({ SIGNED_CURVE25519: count })),
            Err(e) => {
                tracing::warn!(error = %e, "could not count the device's one-time keys");
                None
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
    /// and the greeting were inline, 1,376 boxed, 1,504 once the setup's arguments and locals sat beside
    /// the loop; 1,048 without). The task's allocation is the future plus about 100 bytes of tokio's
    /// header, rounded up to the allocator's size class: up to ~1,180 bytes of future fit the 1,280-byte
    /// class, the next is 1,536 — a few bytes more here can cost 256 per connection.
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
        let peer = IpAddr::from([127, 0, 0, 1]);
        let ticket = node.handshakes.admit(Some(peer));
        let connection = serve(Arc::clone(&node), stream, peer, ticket, node.shutdown_listener());
        let bytes = std::mem::size_of_val(&connection);
        eprintln!("connection future: {bytes} bytes");
        assert!(bytes <= 1_152, "a connection's future is {bytes} bytes");
    }
}
