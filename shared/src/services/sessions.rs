//! Ending sessions (logout, revoking another device, an app-wide ban), shared by the auth and compliance
//! functions. The revocation is stored first, so the sessions' tokens are refused from then on; then it
//! is announced on `caas.moderation`, where every socket node closes the live connections it holds for
//! those sessions; each ended session is audited (an app-wide end is audited once, by its caller).

use crate::domain::audit::{actions, Actor, AuditEvent, Target};
use crate::domain::events::{topics, EventHeaders, SessionRevocation};
use crate::domain::model::Session;
use crate::ports::bus::Bus;
use crate::ports::store::Store;
use crate::Result;
use serde_json::json;

/// Whose sessions end, why, and on whose behalf.
pub struct Revocation<'a> {
    /// The app of the sessions.
    pub app_id: &'a str,
    /// The platform user id whose sessions end.
    pub user_id: &'a str,
    /// One session; `None` ends every session of the user.
    pub session_id: Option<&'a str>,
    /// Shown to the client in the `session.revoked` frame and kept in the audit trail.
    pub reason: &'a str,
    /// Who ended them, recorded in each `session.revoked` audit event (the user on logout, the operator on a ban).
    pub actor: Actor,
    /// The correlation id of the request, carried by the announcement and the audit events.
    pub correlation_id: &'a str,
}

/// Revokes the sessions and closes their live connections; returns the sessions that were still active.
pub async fn revoke(store: &dyn Store, bus: &dyn Bus, revocation: Revocation<'_>) -> Result<Vec<Session>> {
    let Revocation {
        app_id,
        user_id,
        session_id,
        reason,
        actor,
        correlation_id,
    } = revocation;
    let ended = store
        .revoke_sessions(app_id, user_id, session_id, crate::now_ms())
        .await?;
    // Ending all sessions closes every connection of the user, even one whose session was revoked a
    // moment earlier by another path.
    if session_id.is_none() || !ended.is_empty() {
        let announcement = SessionRevocation {
            app_id: app_id.to_owned(),
            user_id: Some(user_id.to_owned()),
            session_id: session_id.map(str::to_owned),
            reason: reason.to_owned(),
            correlation_id: correlation_id.to_owned(),
        };
        let headers = EventHeaders::new(app_id, crate::domain::protocol::SESSION_REVOKED, correlation_id);
        bus.publish_json(topics::MODERATION, app_id, &headers, &announcement)
            .await?;
    }
    for session in &ended {
        AuditEvent::new(
            app_id,
            actions::SESSION_REVOKED,
            actor.clone(),
            Target::new("session", &session.id),
            correlation_id,
        )
        .with_details(json!({"user_id": user_id, "reason": reason}))
        .emit(bus)
        .await?;
    }
    Ok(ended)
}

/// Ends every session of the app (a secret rotation that should lock out whoever holds tokens) and
/// closes their live connections; returns how many sessions it revoked (expired ones not yet revoked included). The announcement names
/// no user, so each socket node closes all its connections of the app.
pub async fn revoke_app(
    store: &dyn Store,
    bus: &dyn Bus,
    app_id: &str,
    reason: &str,
    correlation_id: &str,
) -> Result<u64> {
    let ended = store.revoke_app_sessions(app_id, crate::now_ms()).await?;
    let announcement = SessionRevocation {
        app_id: app_id.to_owned(),
        user_id: None,
        session_id: None,
        reason: reason.to_owned(),
        correlation_id: correlation_id.to_owned(),
    };
    let headers = EventHeaders::new(app_id, crate::domain::protocol::SESSION_REVOKED, correlation_id);
    bus.publish_json(topics::MODERATION, app_id, &headers, &announcement)
        .await?;
    Ok(ended)
}
