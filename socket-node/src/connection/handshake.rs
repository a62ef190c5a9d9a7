//! The first request on a TCP connection, routed: the WebSocket upgrade of `/ws` (native frames) or of
//! `/socket.io/` (Socket.IO), or Engine.IO long-polling. Both protocols then authenticate the same way:
//! the token from the upgrade request (`Authorization` or `?token=`) or from the client's first message
//! (a native `auth` frame within the auth timeout, or the Socket.IO CONNECT's `auth.token`); the
//! correlation id from the handshake, else that first message, else generated. A client that does
//! end-to-end encryption names its device the same ways (`?device_id=`, the auth frame's
//! `data.device_id`, the CONNECT's `auth.deviceId`), so key-directory notices reach that device.

use super::http::{self, Request, Response};
use super::{Socket, READ_BUFFER_BYTES};
use crate::handshakes::HandshakeTicket;
use crate::socketio::engine::Refusal;
use crate::socketio::packet::{Packet, MAIN_NAMESPACE};
use crate::socketio::{engine, wire};
use crate::Node;
use caas_shared::domain::correlation::{self, CorrelationId};
use caas_shared::domain::keys::check_device_id;
use caas_shared::domain::protocol::{self, ClientFrame};
use caas_shared::services::auth::Claims;
use caas_shared::Error;
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use std::net::IpAddr;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// The Engine.IO path, with and without its trailing slash (clients send the former).
pub const SOCKETIO_PATH: &str = "/socket.io/";

/// What the upgrade request told us.
#[derive(Default)]
pub struct Handshake {
    token: Option<String>,
    correlation_id: Option<String>,
    device_id: Option<String>,
}

/// Who an authenticated client is: its token's claims, its correlation id and, when it named one, its
/// device in the key directory.
pub struct Identity {
    pub claims: Claims,
    pub correlation_id: CorrelationId,
    pub device_id: Option<String>,
}

impl Identity {
    /// Verifies `token`; a device id, when given, must be one the key directory accepts.
    fn verify(
        node: &Node,
        token: &str,
        correlation_id: Option<&str>,
        device_id: Option<String>,
    ) -> Result<Self, Error> {
        let claims = node.signer.verify(token)?;
        if let Some(device_id) = &device_id {
            check_device_id(device_id)?;
        }
        Ok(Self {
            claims,
            correlation_id: CorrelationId::from_untrusted(correlation_id),
            device_id,
        })
    }
}

impl Handshake {
    pub fn from_request(request: &Request) -> Self {
        Self {
            token: request.bearer_token().or_else(|| request.query_param("token")),
            correlation_id: request
                .header(correlation::HEADER)
                .map(str::to_owned)
                .or_else(|| request.query_param("correlation_id")),
            device_id: request.query_param("device_id"),
        }
    }
}

/// Where the first request leads.
pub enum Route {
    /// A native client upgraded on `/ws`.
    Native(Socket, Handshake),
    /// A Socket.IO client that opened a WebSocket straight away (`transport=websocket`, no `sid`).
    SocketIo(Socket, Handshake),
    /// A Socket.IO long-polling session's WebSocket upgrade (`transport=websocket&sid=…`).
    Upgrade(Socket, String),
    /// A long-polling request: this connection serves HTTP requests from here on.
    Polling(TcpStream, Vec<u8>, Request),
}

/// Reads the first request and routes it; `None` when the client went away or was refused (an HTTP
/// error was written). The handshake counts against the client's address from here on.
pub async fn route(node: &Node, mut stream: TcpStream, peer: IpAddr, ticket: &HandshakeTicket) -> Option<Route> {
    let mut buffer = Vec::new();
    let request = match http::read_head(&mut stream, &mut buffer).await {
        Ok(Some(request)) => request,
        Ok(None) => return None,
        Err(e) => {
            tracing::debug!(error = %e, "bad request head");
            let response = match e {
                http::HttpError::HeadTooLarge => Response::error(431, "bad_request", "the request head is too large"),
                _ => Response::error(400, "bad_request", "malformed HTTP request"),
            };
            let _ = response.write(&mut stream, false).await;
            return None;
        }
    };
    ticket.attribute(node.client_address(peer, request.header("x-forwarded-for")));
    let refused = match request.path.as_str() {
        "/ws" if request.is_websocket_upgrade() => {
            let found = Handshake::from_request(&request);
            return upgrade(node, stream, buffer, &request)
                .await
                .map(|s| Route::Native(s, found));
        }
        "/ws" => Response::error(426, "upgrade_required", "/ws is a WebSocket endpoint"),
        SOCKETIO_PATH | "/socket.io" => match engine_io_request(&request) {
            Err(refusal) => refusal_response(refusal),
            Ok(EngineIo::WebSocket { sid: None }) => {
                let found = Handshake::from_request(&request);
                return upgrade(node, stream, buffer, &request)
                    .await
                    .map(|s| Route::SocketIo(s, found));
            }
            Ok(EngineIo::WebSocket { sid: Some(sid) }) => {
                return upgrade(node, stream, buffer, &request)
                    .await
                    .map(|s| Route::Upgrade(s, sid));
            }
            Ok(EngineIo::Polling) => return Some(Route::Polling(stream, buffer, request)),
        },
        _ => Response::error(
            404,
            "route_not_found",
            "WebSocket endpoints are /ws (native) and /socket.io/ (Socket.IO)",
        ),
    };
    let _ = refused.write(&mut stream, false).await;
    None
}

/// What an Engine.IO request asks for.
pub enum EngineIo {
    WebSocket { sid: Option<String> },
    Polling,
}

/// Checks an Engine.IO request's protocol version and transport, as the reference server does.
pub fn engine_io_request(request: &Request) -> Result<EngineIo, Refusal> {
    if request.query_param("EIO").as_deref() != Some("4") {
        return Err(Refusal::UnsupportedProtocolVersion);
    }
    let sid = request.query_param("sid");
    match request.query_param("transport").as_deref() {
        Some("websocket") if request.is_websocket_upgrade() => Ok(EngineIo::WebSocket { sid }),
        Some("websocket") => Err(Refusal::BadRequest),
        Some("polling") if request.is_websocket_upgrade() => Err(Refusal::BadRequest),
        Some("polling") if sid.is_none() && request.method != "GET" && request.method != "OPTIONS" => {
            Err(Refusal::BadHandshakeMethod)
        }
        Some("polling") => Ok(EngineIo::Polling),
        _ => Err(Refusal::UnknownTransport),
    }
}

/// The HTTP response for an Engine.IO refusal.
pub fn refusal_response(refusal: Refusal) -> Response {
    let (status, body) = refusal.response();
    Response::new(status, "application/json", body)
}

/// Writes the `101` and wraps the stream; `None` when the upgrade is refused (the reason written) or
/// the client went away.
async fn upgrade(node: &Node, mut stream: TcpStream, mut buffer: Vec<u8>, request: &Request) -> Option<Socket> {
    let accepted = match http::switching_protocols(request) {
        Ok(accepted) => accepted,
        Err(refused) => {
            let _ = refused.write(&mut stream, false).await;
            return None;
        }
    };
    if let Err(e) = stream.write_all(accepted.as_bytes()).await {
        tracing::debug!(error = %e, "upgrade failed");
        return None;
    }
    // tungstenite zero-fills its whole read buffer before each read, so its 128 KiB default would be
    // resident for every idle connection; chat frames are small, and larger ones grow the buffer as
    // needed. The frame cap is also the Engine.IO `maxPayload`.
    let config = WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER_BYTES)
        .max_message_size(Some(node.settings.max_frame_bytes))
        .max_frame_size(Some(node.settings.max_frame_bytes));
    // Whatever followed the head (a client's first frames) is the socket's first input; the head
    // buffer itself is freed.
    buffer.shrink_to_fit();
    Some(WebSocketStream::from_partially_read(stream, buffer, Role::Server, Some(config)).await)
}

/// Verifies the handshake token, or waits for an `auth` frame when there was none; returns the identity
/// with the connection's correlation id (from the handshake, else the auth frame, else generated) and
/// device (from the handshake, else the auth frame).
pub async fn authenticate(node: &Node, socket: &mut Socket, handshake: Handshake) -> Result<Identity, Error> {
    if let Some(token) = &handshake.token {
        return Identity::verify(node, token, handshake.correlation_id.as_deref(), handshake.device_id);
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
            let device_id = handshake
                .device_id
                .or_else(|| frame.data.get("device_id").and_then(Value::as_str).map(str::to_owned));
            let correlation_id = handshake.correlation_id.as_deref().or(frame.correlation_id.as_deref());
            let identity = Identity::verify(node, &token, correlation_id, device_id)?;
            let _ = socket
                .send(Message::text(protocol::reply_ok(
                    frame.id.as_deref(),
                    serde_json::json!({"authenticated": true}),
                )))
                .await;
            Ok(identity)
        }
        _ => Err(Error::Unauthorized(
            "the first frame must be {\"type\":\"auth\",\"token\":…}".into(),
        )),
    }
}

/// The open packet of a Socket.IO session on this node.
pub fn open_packet(node: &Node, sid: String, upgrades: Vec<&'static str>) -> String {
    engine::Handshake {
        sid,
        upgrades,
        ping_interval: node.settings.ping_interval.as_millis() as u64,
        ping_timeout: node.settings.ping_timeout.as_millis() as u64,
        max_payload: node.settings.max_frame_bytes,
    }
    .open_packet()
}

/// What a Socket.IO client's CONNECT carried.
pub struct Connect {
    /// `auth.token`, else the handshake's.
    pub token: Option<String>,
    /// The handshake's correlation id, else `auth.correlationId`.
    pub correlation_id: Option<String>,
    /// Connection-state recovery: the `pid` of the session the client had, and the `offset` of the
    /// last message it received (see `socketio::recovery`).
    pub resume: Option<(String, Option<String>)>,
    /// The handshake's `?device_id=`, else `auth.deviceId` (or `auth.device_id`).
    pub device_id: Option<String>,
}

/// Reads one Engine.IO packet a client sent before its CONNECT: `Ok(Some)` for the CONNECT, `Ok(None)`
/// for a packet to skip, `Err` with the packet to answer for a CONNECT to a namespace this server does
/// not have (the client may try again), or an error that ends the session.
pub fn before_connect(text: &str, handshake: &Handshake) -> Result<Option<Connect>, BeforeConnect> {
    match engine::Packet::decode(text).map_err(BeforeConnect::Fatal)? {
        engine::Packet::Message(sio) => match Packet::decode(sio).map_err(BeforeConnect::Fatal)? {
            Packet::Connect { namespace, .. } if namespace != MAIN_NAMESPACE => Err(BeforeConnect::Answer(
                wire::connect_error(&namespace, &Error::NotFound("Invalid namespace".into())),
            )),
            Packet::Connect { data, .. } => {
                let auth = data.unwrap_or(Value::Null);
                let text = |key: &str| auth.get(key).and_then(Value::as_str).map(str::to_owned);
                let resume = text("pid").map(|pid| (pid, text("offset")));
                Ok(Some(Connect {
                    token: text("token").or_else(|| handshake.token.clone()),
                    correlation_id: handshake.correlation_id.clone().or_else(|| text("correlationId")),
                    resume,
                    device_id: handshake
                        .device_id
                        .clone()
                        .or_else(|| text("deviceId"))
                        .or_else(|| text("device_id")),
                }))
            }
            _ => Err(BeforeConnect::Fatal(Error::Validation(
                "the first Socket.IO packet must be a CONNECT".into(),
            ))),
        },
        engine::Packet::Pong(_) | engine::Packet::Noop => Ok(None),
        engine::Packet::Close => Err(BeforeConnect::Fatal(Error::Validation("closed".into()))),
        _ => Err(BeforeConnect::Fatal(Error::Validation(
            "unexpected Engine.IO packet before CONNECT".into(),
        ))),
    }
}

/// Why [`before_connect`] did not yield a CONNECT.
pub enum BeforeConnect {
    /// Answer the client with this packet and keep waiting.
    Answer(String),
    /// The session ends.
    Fatal(Error),
}

/// Verifies a Socket.IO CONNECT's token (and device id, when it names one).
pub fn verify_connect(node: &Node, connect: &Connect) -> Result<Identity, Error> {
    let token = connect.token.as_deref().ok_or_else(|| {
        Error::Unauthorized("no token: pass it as auth.token (or an Authorization header, or ?token=)".into())
    })?;
    Identity::verify(
        node,
        token,
        connect.correlation_id.as_deref(),
        connect.device_id.clone(),
    )
}
