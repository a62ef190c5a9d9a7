//! The WebSocket upgrade and authentication: the token from the upgrade request (`Authorization` or
//! `?token=`), else from an `auth` frame sent within the auth timeout; the correlation id from the
//! handshake, else the auth frame, else generated.

use super::{Socket, READ_BUFFER_BYTES};
use crate::Node;
use caas_shared::domain::correlation::{self, CorrelationId};
use caas_shared::domain::protocol::{self, ClientFrame};
use caas_shared::services::auth::Claims;
use caas_shared::Error;
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

/// What the HTTP upgrade request told us.
#[derive(Default)]
pub struct Handshake {
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

/// Completes the WebSocket upgrade; `None` when the client did not (the reason is logged).
#[allow(clippy::result_large_err)] // the handshake callback's signature is tungstenite's
pub async fn upgrade(node: &Node, stream: TcpStream) -> Option<(Socket, Handshake)> {
    // tungstenite zero-fills its whole read buffer before each read, so its 128 KiB default would be
    // resident for every idle connection; chat frames are small, and larger ones grow the buffer as needed.
    let config = WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER_BYTES)
        .max_message_size(Some(node.settings.max_frame_bytes))
        .max_frame_size(Some(node.settings.max_frame_bytes));
    let mut handshake = Handshake::default();
    let callback = |request: &Request, response: Response| inspect_upgrade(request, response, &mut handshake);
    // Boxed: the handshake's future is large and exists only while it runs.
    let upgraded = Box::pin(tokio_tungstenite::accept_hdr_async_with_config(
        stream,
        callback,
        Some(config),
    ))
    .await;
    match upgraded {
        Ok(socket) => Some((socket, handshake)),
        Err(e) => {
            tracing::debug!(error = %e, "handshake failed");
            None
        }
    }
}

/// Verifies the handshake token, or waits for an `auth` frame when there was none; returns the identity
/// and the connection's correlation id (from the handshake, else the auth frame, else generated).
pub async fn authenticate(
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
