//! One client connection: handshake and authentication, then a loop that answers frames in order
//! (which keeps one sender's messages in `seq` order) while a writer task drains the bounded queue.

use crate::handlers::{self, Session};
use crate::hub::Outlet;
use crate::moderation;
use crate::Node;
use caas_shared::auth::Claims;
use caas_shared::cache;
use caas_shared::correlation::{self, CorrelationId};
use caas_shared::protocol::{self, ClientFrame};
use caas_shared::Error;
use futures_util::{SinkExt, StreamExt};
use std::sync::Arc;
use tokio::net::TcpStream;
use tokio::sync::{broadcast, mpsc, Notify};
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_tungstenite::WebSocketStream;
use tracing::Instrument;

/// What the HTTP upgrade request told us.
#[derive(Default)]
struct Handshake {
    token: Option<String>,
    correlation_id: Option<String>,
}

fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        (key == name).then(|| value.to_owned())
    })
}

fn http_error(status: u16, code: &str, message: &str) -> ErrorResponse {
    let body = serde_json::json!({"error": {"code": code, "message": message}}).to_string();
    let mut response = ErrorResponse::new(Some(body));
    *response.status_mut() = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::BAD_REQUEST);
    response
}

/// Reads the token and correlation id from the upgrade request; refuses paths other than `/ws`.
// The error type is tungstenite's handshake callback contract, not ours to shrink.
#[allow(clippy::result_large_err)]
fn inspect_upgrade(request: &Request, response: Response, found: &mut Handshake) -> Result<Response, ErrorResponse> {
    if request.uri().path() != "/ws" {
        return Err(http_error(404, "route_not_found", "WebSocket endpoint is /ws"));
    }
    let query = request.uri().query().unwrap_or_default();
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    found.token = header("authorization")
        .and_then(|v| v.strip_prefix("Bearer ").map(|t| t.trim().to_owned()))
        .or_else(|| query_param(query, "token"));
    found.correlation_id = header(correlation::HEADER).or_else(|| query_param(query, "correlation_id"));
    Ok(response)
}

fn close_frame(code: CloseCode, reason: &str) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: reason.into(),
    }))
}

type Socket = WebSocketStream<TcpStream>;

/// Initial read buffer of each connection (see [`serve`]).
pub const READ_BUFFER_BYTES: usize = 1024;

#[allow(clippy::result_large_err)] // the handshake callback's signature is tungstenite's
pub async fn serve(node: Arc<Node>, stream: TcpStream, mut shutdown: broadcast::Receiver<()>) {
    // tungstenite zero-fills its whole read buffer before each read, so its 128 KiB default would be
    // resident for every idle connection; chat frames are small, and larger ones grow the buffer as needed.
    let config = WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER_BYTES)
        .max_message_size(Some(node.settings.max_frame_bytes))
        .max_frame_size(Some(node.settings.max_frame_bytes));
    let mut handshake = Handshake::default();
    let callback = |request: &Request, response: Response| inspect_upgrade(request, response, &mut handshake);
    let handshake_done = Box::pin(tokio_tungstenite::accept_hdr_async_with_config(
        stream,
        callback,
        Some(config),
    ));
    let mut socket = match handshake_done.await {
        Ok(socket) => socket,
        Err(e) => {
            tracing::debug!(error = %e, "handshake failed");
            return;
        }
    };
    let (claims, correlation_id) = match Box::pin(authenticate(&node, &mut socket, handshake)).await {
        Ok(authenticated) => authenticated,
        Err(e) => {
            let _ = socket
                .send(Message::text(protocol::event("error", error_body(&e))))
                .await;
            let _ = socket
                .send(close_frame(CloseCode::Policy, "authentication failed"))
                .await;
            return;
        }
    };
    let span =
        tracing::info_span!("ws", correlation_id = %correlation_id, app_id = %claims.app_id, user_id = %claims.sub);
    async move {
        let (frames_tx, frames_rx) = mpsc::channel::<Utf8Bytes>(node.settings.send_queue);
        let (overflow, revoked) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
        let connection = node.hub.register(Outlet {
            session_id: claims.jti.clone(),
            frames: frames_tx.clone(),
            overflow: Arc::clone(&overflow),
            revoked: Arc::clone(&revoked),
        });
        let session = Session { claims, connection, correlation_id };
        let user_channel = cache::user_channel(&session.claims.app_id, &session.claims.sub);
        if let Err(e) = node.hub.subscribe(connection, &user_channel).await {
            tracing::error!(error = %e, "could not subscribe the user channel");
            node.hub.unregister(connection).await;
            let _ = socket.send(close_frame(CloseCode::Again, "try again later")).await;
            return;
        }
        // Checked after subscribing: a ban or logout is stored before its revocation is published, so
        // one made during this handshake is either seen here or delivered on the channel.
        if let Err(e) = Box::pin(moderation::admit(&node, &session)).await {
            node.hub.unregister(connection).await;
            let _ = socket.send(Message::text(protocol::event("error", error_body(&e)))).await;
            let code = if e.is_server_fault() { CloseCode::Again } else { CloseCode::Policy };
            let _ = socket.send(close_frame(code, e.code())).await;
            return;
        }
        let ready = protocol::event(
            "ready",
            serde_json::json!({"user_id": session.claims.sub, "app_id": session.claims.app_id, "correlation_id": session.correlation_id}),
        );
        // Written before the writer task starts, so `ready` is always the first frame; anything the hub
        // queued meanwhile follows it.
        let _ = socket.send(Message::text(ready)).await;
        let holder = format!("{}:{connection}", node.settings.node_id);
        Box::pin(announce_presence(&node, &session, &holder, true)).await;
        let mut presence_renewal = tokio::time::interval(cache::PRESENCE_TTL / 3);
        presence_renewal.tick().await;
        tracing::info!("connected");
        let (sink, mut incoming) = socket.split();
        let (close_tx, close_rx) = tokio::sync::oneshot::channel::<Message>();
        let writer = tokio::spawn(write_frames(sink, frames_rx, close_rx));
        let close = loop {
            tokio::select! {
                _ = shutdown.recv() => break close_frame(CloseCode::Away, "server shutting down"),
                _ = overflow.notified() => break close_frame(CloseCode::Again, "client too slow; reconnect and resume"),
                _ = revoked.notified() => break close_frame(CloseCode::Policy, "session revoked"),
                _ = presence_renewal.tick() => {
                    if let Err(e) = node.cache.presence_touch(&session.claims.app_id, &session.claims.sub, &holder).await {
                        tracing::warn!(error = %e, "presence renewal failed");
                    }
                }
                frame = incoming.next() => match frame {
                    Some(Ok(Message::Text(text))) => {
                        // Boxed: a request's future is large and exists only while it runs; inline, every idle
                        // connection's task would carry its size.
                        let reply = Box::pin(answer(&node, &session, text.as_str())).await;
                        if frames_tx.send(reply.into()).await.is_err() {
                            break close_frame(CloseCode::Normal, "");
                        }
                    }
                    Some(Ok(Message::Binary(_))) => {
                        let reply = protocol::reply_error(None, &Error::Validation("binary frames are not supported; send JSON text".into()));
                        let _ = frames_tx.send(reply.into()).await;
                    }
                    Some(Ok(Message::Close(_))) | None => break close_frame(CloseCode::Normal, ""),
                    Some(Ok(_)) => {}
                    Some(Err(e)) => {
                        tracing::info!(error = %e, "connection error");
                        break close_frame(CloseCode::Protocol, "protocol error");
                    }
                },
            }
        };
        node.hub.unregister(connection).await;
        Box::pin(announce_presence(&node, &session, &holder, false)).await;
        let _ = close_tx.send(close);
        drop(frames_tx);
        let _ = writer.await;
        tracing::info!("disconnected");
    }
    .instrument(span)
    .await
}

/// Sends queued frames in order; when the connection ends, flushes what is queued and finishes with the
/// close frame the reader chose.
async fn write_frames(
    mut sink: futures_util::stream::SplitSink<Socket, Message>,
    mut frames: mpsc::Receiver<Utf8Bytes>,
    mut close: tokio::sync::oneshot::Receiver<Message>,
) {
    let close_message = loop {
        tokio::select! {
            biased;
            frame = frames.recv() => match frame {
                Some(frame) => {
                    if sink.feed(Message::Text(frame)).await.is_err() { return; }
                    // Coalesce: write everything already queued before one flush.
                    while let Ok(frame) = frames.try_recv() {
                        if sink.feed(Message::Text(frame)).await.is_err() { return; }
                    }
                    if sink.flush().await.is_err() { return; }
                }
                // Every sender is gone: the reader has finished and its close frame is on its way.
                None => break (&mut close).await.ok(),
            },
            message = &mut close => break message.ok(),
        }
    };
    if let Some(message) = close_message {
        let _ = sink.send(message).await;
    }
    let _ = sink.close().await;
}

/// Records this connection's presence (or its end) and tells the user's watchers when the user came
/// online or went offline. Best effort: presence must never stop a connection from working.
async fn announce_presence(node: &Node, session: &Session, holder: &str, connected: bool) {
    let (app_id, user_id) = (&session.claims.app_id, &session.claims.sub);
    let online = if connected {
        node.cache.presence_touch(app_id, user_id, holder).await.map(|()| true)
    } else {
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

fn error_body(error: &Error) -> serde_json::Value {
    serde_json::json!({"code": error.code(), "message": error.public_message()})
}

/// Turns one text frame into its reply, never failing the connection on bad input.
async fn answer(node: &Node, session: &Session, text: &str) -> String {
    let frame = match ClientFrame::parse(text) {
        Ok(frame) => frame,
        Err(e) => return protocol::reply_error(None, &e),
    };
    let correlation_id = match frame.correlation_id.as_deref() {
        Some(id) => CorrelationId::from_untrusted(Some(id)),
        None => session.correlation_id.clone(),
    };
    let result = handlers::dispatch(node, session, &frame, &correlation_id)
        .instrument(tracing::info_span!("event", kind = %frame.kind, frame_correlation_id = %correlation_id))
        .await;
    match result {
        Ok(data) => protocol::reply_ok(frame.id.as_deref(), data),
        Err(e) => {
            if e.is_server_fault() {
                tracing::error!(error = %e, kind = %frame.kind, "event failed");
            }
            protocol::reply_error(frame.id.as_deref(), &e)
        }
    }
}

/// Verifies the handshake token, or waits for an `auth` frame when there was none; returns the identity
/// and the connection's correlation id (from the handshake, else the auth frame, else generated).
async fn authenticate(
    node: &Node,
    socket: &mut Socket,
    handshake: Handshake,
) -> Result<(Claims, CorrelationId), Error> {
    if let Some(token) = handshake.token {
        let correlation_id = CorrelationId::from_untrusted(handshake.correlation_id.as_deref());
        return Ok((node.signer.verify(&token)?, correlation_id));
    }
    let first = tokio::time::timeout(node.settings.auth_timeout, socket.next())
        .await
        .map_err(|_| Error::Unauthorized("no token: send {\"type\":\"auth\",\"token\":…} within 5 s".into()))?;
    let Some(Ok(Message::Text(text))) = first else {
        return Err(Error::Unauthorized("expected an auth frame".into()));
    };
    let frame = ClientFrame::parse(text.as_str())?;
    match (
        frame.kind.as_str(),
        frame
            .token
            .or_else(|| frame.data.get("token").and_then(|t| t.as_str()).map(str::to_owned)),
    ) {
        ("auth", Some(token)) => {
            let claims = node.signer.verify(&token)?;
            let correlation_id =
                CorrelationId::from_untrusted(handshake.correlation_id.as_deref().or(frame.correlation_id.as_deref()));
            let _ = socket
                .send(Message::text(protocol::reply_ok(
                    frame.id.as_deref(),
                    serde_json::json!({"authenticated": true}),
                )))
                .await;
            Ok((claims, correlation_id))
        }
        _ => Err(Error::Unauthorized(
            "the first frame must be {\"type\":\"auth\",\"token\":…}".into(),
        )),
    }
}
