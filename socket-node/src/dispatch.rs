//! Turns one text frame into its reply: parse the envelope, pick the correlation id, interpret the
//! payload as a typed [`ClientEvent`], and hand it to its command. Bad input is answered with an error
//! reply and never fails the connection.

use crate::budget::Kind;
use crate::commands::{conversations, messages, presence, subscribe};
use crate::session::Session;
use crate::Node;
use caas_shared::domain::correlation::CorrelationId;
use caas_shared::domain::protocol::{self, ClientEvent, ClientFrame};
use caas_shared::{now_ms, Error, Result};
use serde_json::{json, Value};
use tracing::Instrument;

/// The reply frame to one client text frame.
pub async fn answer(node: &Node, session: &Session, text: &str) -> String {
    let mut frame = match ClientFrame::parse(text) {
        Ok(frame) => frame,
        Err(e) => return protocol::reply_error(None, &e),
    };
    let correlation_id = match frame.correlation_id.as_deref() {
        Some(id) => CorrelationId::from_untrusted(Some(id)),
        None => session.correlation_id.clone(),
    };
    let span = request_span(&frame, &correlation_id);
    // The payload moves into the request; an `auth` frame may carry its token beside `data`.
    let mut data = std::mem::take(&mut frame.data);
    if let (Some(token), "auth") = (frame.token.take(), frame.kind.as_str()) {
        data = json!({"token": token});
    }
    let result = request(node, session, &frame.kind, data, &correlation_id)
        .instrument(span)
        .await;
    match result {
        Ok(data) => protocol::reply_ok(frame.id.as_deref(), data),
        Err(e) => protocol::reply_error(frame.id.as_deref(), &e),
    }
}

/// Runs one request, the event `kind` with its `data`, whichever wire it came on; `auth` renews the
/// connection's token. Server faults are logged here, once.
pub async fn request(
    node: &Node,
    session: &Session,
    kind: &str,
    data: Value,
    correlation_id: &CorrelationId,
) -> Result<Value> {
    let result = match kind {
        "auth" => renew(node, session, data.get("token").and_then(Value::as_str)).await,
        _ => match ClientEvent::from_data(kind, data) {
            Ok(event) => dispatch(node, session, event, correlation_id).await,
            Err(e) => Err(e),
        },
    };
    if let Err(e) = &result {
        if e.is_server_fault() {
            tracing::error!(error = %e, kind, "event failed");
        }
    }
    result
}

/// The span of one request: only a frame that names its own correlation id needs one (the connection's
/// `ws` span already carries the connection's). Creating a span per frame cost more than the frame's
/// parsing under load.
fn request_span(frame: &ClientFrame, correlation_id: &CorrelationId) -> tracing::Span {
    match frame.correlation_id {
        Some(_) => tracing::info_span!("event", kind = %frame.kind, frame_correlation_id = %correlation_id),
        None => tracing::Span::none(),
    }
}

/// An `auth` request on a live connection: a fresh token for the same session moves the connection's
/// expiry, so a client refreshes (HTTP `/auth/refresh`) and hands the new token over without reconnecting.
async fn renew(node: &Node, session: &Session, token: Option<&str>) -> Result<Value> {
    let token = token.ok_or_else(|| Error::Validation("an auth frame carries a token".into()))?;
    let claims = node.signer.verify(token)?;
    node.sessions.require_live(&claims).await?;
    let expires_at = session.renew(&claims)?;
    Ok(json!({"authenticated": true, "expires_at": expires_at}))
}

/// Runs one request; `correlation_id` is the frame's own or the connection's.
pub async fn dispatch(
    node: &Node,
    session: &Session,
    event: ClientEvent,
    correlation_id: &CorrelationId,
) -> Result<Value> {
    let caller = session.caller(correlation_id.as_str());
    // Before anything is read: a client over its budget costs the node this check only.
    let kind = match &event {
        ClientEvent::Ping(_) | ClientEvent::Auth(_) | ClientEvent::Send(_) | ClientEvent::Unknown => None,
        ClientEvent::MarkRead(_) | ClientEvent::TypingStart(_) | ClientEvent::TypingStop(_) => Some(Kind::Signal),
        _ => Some(Kind::Request),
    };
    if let Some(kind) = kind {
        session.budget.take(kind, &node.settings.rates)?;
    }
    match event {
        ClientEvent::Ping(_) => Ok(json!({"pong": now_ms()})),
        ClientEvent::Auth(_) => Err(Error::Validation(
            "auth renews a connection only as a frame of its own".into(),
        )),
        ClientEvent::CreateConversation(request) => conversations::create(node, caller, request).await,
        ClientEvent::ListConversations(request) => conversations::list(node, caller, request.unwrap_or_default()).await,
        ClientEvent::Members(request) => conversations::members(node, caller, request).await,
        ClientEvent::AddMembers(request) => conversations::add_members(node, caller, request).await,
        ClientEvent::RemoveMember(request) => {
            conversations::remove_member(node, caller, &request.conversation_id, &request.user_id).await
        }
        ClientEvent::Leave(request) => {
            conversations::remove_member(node, caller, &request.conversation_id, caller.user_id).await
        }
        ClientEvent::Rename(request) => conversations::rename(node, caller, request).await,
        ClientEvent::MarkRead(request) => conversations::mark_read(node, caller, request).await,
        ClientEvent::TypingStart(request) => conversations::typing(node, caller, request, true).await,
        ClientEvent::TypingStop(request) => conversations::typing(node, caller, request, false).await,
        ClientEvent::Subscribe(request) => subscribe::subscribe(node, session, caller, request).await,
        ClientEvent::History(request) => subscribe::history(node, caller, request).await,
        ClientEvent::PresenceSubscribe(request) => presence::subscribe(node, session, request).await,
        ClientEvent::Send(request) => messages::send(node, caller, request).await,
        ClientEvent::Edit(request) => messages::edit(node, caller, request).await,
        ClientEvent::Delete(request) => messages::delete(node, caller, request).await,
        ClientEvent::Forward(request) => messages::forward(node, caller, request).await,
        ClientEvent::Replies(request) => node.messages().replies(caller, request).await,
        ClientEvent::ReactionAdd(request) => messages::react(node, caller, request, true).await,
        ClientEvent::ReactionRemove(request) => messages::react(node, caller, request, false).await,
        // `from_frame` answers an unknown type itself, naming it.
        ClientEvent::Unknown => Err(Error::UnknownEvent("?".into())),
    }
}
