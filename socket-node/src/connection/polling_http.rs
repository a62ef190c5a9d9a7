//! Engine.IO long-polling over HTTP/1.1, and the upgrade to a WebSocket. A TCP connection that starts
//! with a polling request serves requests (kept alive) until the client closes it: the first GET of a
//! session creates it and starts its connection task; later requests name it by `sid`. See
//! [`crate::polling`] for the session itself.

use super::handshake::{self, EngineIo, Handshake};
use super::http::{self, HttpError, Request, Response};
use super::{socketio, Socket, Transport};
use crate::handshakes::HandshakeTicket;
use crate::outbox::Outbox;
use crate::polling::PollingSession;
use crate::socketio::engine::{self, Refusal};
use crate::Node;
use futures_util::{SinkExt, StreamExt};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

/// How long a client has to finish its upgrade once it has probed (Socket.IO's `upgradeTimeout`).
const UPGRADE_TIMEOUT: Duration = Duration::from_secs(10);

const TEXT: &str = "text/plain; charset=UTF-8";

/// Serves long-polling requests on one TCP connection, starting with `first`.
pub async fn serve(node: Arc<Node>, mut stream: TcpStream, mut buffer: Vec<u8>, first: Request) {
    let mut request = first;
    loop {
        let keep_alive = !request.wants_close();
        let response = Box::pin(answer(&node, &mut stream, &mut buffer, &request)).await;
        let response = with_cors(&node, &request, response);
        // A client that does not read its response holds this connection for a bounded time only.
        let written = tokio::time::timeout(node.settings.handshake_timeout, response.write(&mut stream, keep_alive));
        if !matches!(written.await, Ok(Ok(()))) || !keep_alive {
            return;
        }
        // The next request on the kept-alive connection; one left idle past the handshake timeout is
        // closed (the client opens another when it polls again).
        let next = tokio::time::timeout(
            node.settings.handshake_timeout,
            http::read_head(&mut stream, &mut buffer),
        );
        request = match next.await {
            Ok(Ok(Some(request))) => request,
            _ => return,
        };
        if !is_polling(&request) {
            let refused = Response::error(400, "bad_request", "this connection serves /socket.io/ polling only");
            let _ = refused.write(&mut stream, false).await;
            return;
        }
    }
}

fn is_polling(request: &Request) -> bool {
    matches!(request.path.as_str(), handshake::SOCKETIO_PATH | "/socket.io")
        && matches!(handshake::engine_io_request(request), Ok(EngineIo::Polling))
        || request.method == "OPTIONS"
}

/// Answers one polling request.
async fn answer(node: &Arc<Node>, stream: &mut TcpStream, buffer: &mut Vec<u8>, request: &Request) -> Response {
    if request.method == "OPTIONS" {
        // A browser's CORS preflight (its page sets `extraHeaders`); the headers are added by `with_cors`.
        return Response::new(204, TEXT, String::new());
    }
    match handshake::engine_io_request(request) {
        Ok(EngineIo::Polling) => {}
        Ok(EngineIo::WebSocket { .. }) => return handshake::refusal_response(Refusal::BadRequest),
        Err(refusal) => return handshake::refusal_response(refusal),
    }
    let Some(sid) = request.query_param("sid") else {
        return open_session(node, stream, request);
    };
    let Some(session) = node.polling.get(&sid) else {
        return handshake::refusal_response(Refusal::UnknownSession);
    };
    match request.method.as_str() {
        "GET" => poll(node, &session).await,
        "POST" => post(node, stream, buffer, request, &session).await,
        _ => handshake::refusal_response(Refusal::BadRequest),
    }
}

/// A new session: its sid in the open packet, and its connection task, which waits for the CONNECT.
/// Until then it counts among its client address's pending handshakes (evicting that address's oldest
/// when at the cap), so one client opening sessions in a loop on a kept-alive connection is bounded like
/// one opening TCP connections.
fn open_session(node: &Arc<Node>, stream: &TcpStream, request: &Request) -> Response {
    let Ok(peer) = stream.peer_addr() else {
        return handshake::refusal_response(Refusal::BadRequest);
    };
    let address = node.client_address(peer.ip(), request.header("x-forwarded-for"));
    let handshake_place = node.handshakes.admit(Some(address));
    let Ok(slot) = Arc::clone(&node.connection_slots).try_acquire_owned() else {
        return Response::error(503, "unavailable", "this node is full; try another").with("Retry-After", "1".into());
    };
    let sid = socketio::random_id();
    let outbox = Arc::new(Outbox::new(node.settings.send_queue_bytes));
    let session = Arc::new(PollingSession::new(sid.clone(), outbox, slot));
    node.polling.insert(Arc::clone(&session));
    let found = Handshake::from_request(request);
    tokio::spawn(run_session(Arc::clone(node), session, found, handshake_place));
    Response::new(200, TEXT, handshake::open_packet(node, sid, vec!["websocket"]))
}

/// A long-polling session's connection task: the same establishment and reading loop as a WebSocket
/// client's; the sid is forgotten when it ends.
async fn run_session(
    node: Arc<Node>,
    session: Arc<PollingSession>,
    found: Handshake,
    handshake_place: HandshakeTicket,
) {
    let deadline = Instant::now() + node.settings.handshake_timeout;
    let shutdown = node.shutdown_listener();
    let transport = Transport::Polling(Arc::clone(&session));
    let evicted = handshake_place.evicted();
    let live = tokio::select! {
        live = Box::pin(socketio::establish(
            Arc::clone(&node),
            transport,
            found,
            deadline,
            Some(handshake_place),
        )) => live,
        () = evicted => {
            tracing::debug!(sid = %session.sid, "pending polling handshake evicted for a newer one");
            None
        }
    };
    if let Some(live) = live {
        live.run(shutdown).await;
    }
    // However the session ended, nothing more is sent or taken: a held poll returns, a waiting POST is
    // answered, and the sid is forgotten.
    session.outbox.close();
    session.close_inbound();
    session.release_poll.notify_waiters();
    node.polling.remove(&session.sid);
}

/// A GET: held until something is queued for the client (the heartbeat's ping releases it at the
/// latest), then everything queued, up to `maxPayload`, in one body.
async fn poll(node: &Node, session: &PollingSession) -> Response {
    if session.upgraded.load(Ordering::SeqCst) {
        return handshake::refusal_response(Refusal::BadRequest);
    }
    // Registered before the check below, so a probe between the two still releases this poll.
    let released = session.release_poll.notified();
    tokio::pin!(released);
    released.as_mut().enable();
    if session.upgrading.load(Ordering::SeqCst) {
        // Released at once while the client upgrades, so its pause completes.
        return Response::new(200, TEXT, engine::Packet::Noop.encode());
    }
    if session.polling.swap(true, Ordering::SeqCst) {
        // Two polls at once: the reference server ends the session.
        session.close_inbound();
        return handshake::refusal_response(Refusal::BadRequest);
    }
    // The heartbeat's ping releases a held poll every interval; the cap only matters for a session
    // whose connection task is gone, and never lets a request hang.
    let hold = node.settings.ping_interval + node.settings.ping_timeout;
    let body = tokio::select! {
        frame = session.outbox.next() => match frame {
            Some(first) => drain(node, session, &first),
            None => {
                session.drained.notify_one();
                engine::Packet::Close.encode()
            }
        },
        () = &mut released => engine::Packet::Noop.encode(),
        () = tokio::time::sleep(hold) => engine::Packet::Noop.encode(),
    };
    session.polling.store(false, Ordering::SeqCst);
    Response::new(200, TEXT, body)
}

/// `first` and whatever else is queued, transcoded and joined by the record separator.
fn drain(node: &Node, session: &PollingSession, first: &str) -> String {
    let transcoder = session.transcoder.get().cloned().unwrap_or_default();
    let mut packets = Vec::new();
    transcoder.transcode(first, &mut packets);
    let mut bytes: usize = packets.iter().map(String::len).sum();
    while bytes < node.settings.max_frame_bytes {
        let Some(frame) = session.outbox.try_next() else { break };
        let start = packets.len();
        transcoder.transcode(&frame, &mut packets);
        bytes += packets[start..].iter().map(|p| p.len() + 1).sum::<usize>();
    }
    if session.outbox.is_closed_and_empty() {
        session.drained.notify_one();
    }
    engine::encode_payload(&packets)
}

/// A POST: its packets, handed to the connection task in order; `ok` once taken.
async fn post(
    node: &Node,
    stream: &mut TcpStream,
    buffer: &mut Vec<u8>,
    request: &Request,
    session: &PollingSession,
) -> Response {
    if session.upgraded.load(Ordering::SeqCst) {
        // The client switched to its WebSocket: packets go there now.
        return handshake::refusal_response(Refusal::BadRequest);
    }
    if session.posting.swap(true, Ordering::SeqCst) {
        session.close_inbound();
        return handshake::refusal_response(Refusal::BadRequest);
    }
    let response = async {
        let read = http::read_body(stream, buffer, request, node.settings.max_frame_bytes);
        let body = match tokio::time::timeout(node.settings.handshake_timeout, read).await {
            Err(_) => {
                session.close_inbound();
                return Response::error(408, "timeout", "the body did not arrive in time");
            }
            Ok(read) => read,
        };
        let body = match body {
            Ok(body) => body,
            Err(HttpError::BodyTooLarge(max)) => {
                session.close_inbound();
                return Response::error(413, "payload_too_large", &format!("a body is at most {max} bytes"));
            }
            Err(HttpError::LengthRequired) => {
                return Response::error(411, "length_required", "a POST body needs a Content-Length")
            }
            Err(e) => return Response::error(400, "bad_request", &e.to_string()),
        };
        let packets = match std::str::from_utf8(&body).map_err(|_| ()).and_then(|text| {
            engine::decode_payload(text)
                .map(|packets| packets.iter().map(engine::Packet::encode).collect::<Vec<_>>())
                .map_err(|_| ())
        }) {
            Ok(packets) => packets,
            Err(()) => {
                // A body that does not parse ends the session, as in the reference server.
                session.close_inbound();
                return handshake::refusal_response(Refusal::BadRequest);
            }
        };
        if session.post(packets).await {
            Response::new(200, TEXT, "ok".into())
        } else {
            handshake::refusal_response(Refusal::UnknownSession)
        }
    }
    .await;
    session.posting.store(false, Ordering::SeqCst);
    response
}

/// CORS headers for a browser page on an allowed origin (`CAAS_SOCKETIO_CORS_ORIGINS`). The token
/// travels in the CONNECT packet, never in a cookie, so credentials are not allowed.
fn with_cors(node: &Node, request: &Request, mut response: Response) -> Response {
    let Some(origin) = request.header("origin") else {
        return response;
    };
    let allowed = &node.settings.cors_origins;
    if !allowed.iter().any(|allowed| allowed == "*" || allowed == origin) {
        return response;
    }
    response = response
        .with("Access-Control-Allow-Origin", origin.to_owned())
        .with("Vary", "Origin".into());
    if request.method == "OPTIONS" {
        let headers = request.header("access-control-request-headers").unwrap_or("");
        response = response
            .with("Access-Control-Allow-Methods", "GET, POST, OPTIONS".into())
            .with("Access-Control-Allow-Headers", headers.to_owned())
            .with("Access-Control-Max-Age", "600".into());
    }
    response
}

/// A polling session's WebSocket upgrade: `2probe` answered with `3probe` (and any held poll released
/// with a noop), then the client's `5`, after which the socket is the session's transport.
pub async fn upgrade(node: &Node, mut socket: Socket, sid: &str) {
    let Some(session) = node.polling.get(sid) else {
        let _ = socket.close(None).await;
        return;
    };
    if session.upgraded.load(Ordering::SeqCst) {
        let _ = socket.close(None).await;
        return;
    }
    // Whether this attempt probed (and so set `upgrading`): only then may it undo that.
    let mut probed = false;
    let switched = tokio::time::timeout(UPGRADE_TIMEOUT, async {
        while let Some(Ok(Message::Text(text))) = socket.next().await {
            match engine::Packet::decode(text.as_str()) {
                // The probe: from now on polls are released at once. A second upgrade of the same
                // session finds `upgrading` set and is refused.
                Ok(engine::Packet::Ping("probe")) if !probed => {
                    if session.upgrading.swap(true, Ordering::SeqCst) {
                        return false;
                    }
                    probed = true;
                    if socket.send(Message::text("3probe")).await.is_err() {
                        return false;
                    }
                    session.release_poll.notify_waiters();
                }
                Ok(engine::Packet::Upgrade) => return probed,
                _ => return false,
            }
        }
        false
    })
    .await;
    if switched == Ok(true) {
        session.hand_over(socket);
    } else {
        tracing::debug!("upgrade abandoned; the session keeps polling");
        if probed {
            session.upgrading.store(false, Ordering::SeqCst);
        }
        let _ = socket.close(None).await;
    }
}
