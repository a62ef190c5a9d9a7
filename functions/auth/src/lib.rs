//! The auth function: app administration (operator token) and SDK token issuing (app credentials).
//!
//! Routes:
//! - `POST /api/v1/admin/apps` `{name}` → `201 {app_id, app_secret, name}`; the secret is shown only here.
//! - `POST /api/v1/admin/apps/{app_id}/secret` `{end_sessions?}` (operator token) →
//!   `{app_id, app_secret, sessions_ended}`: a new secret; the old one stops working at once. With
//!   `end_sessions: true` (for a leaked secret) every session of the app ends too: its tokens are refused
//!   and its live connections closed, so every user signs in again through the app's backend.
//! - `GET|PUT /api/v1/admin/apps/{app_id}/settings` `{media, content, rate_limits, retention}`
//!   (operator token) → `{app_id, settings}`.
//! - Webhook endpoints (operator token, see `webhooks`): `POST|GET /api/v1/admin/apps/{app_id}/webhooks`,
//!   `GET|PATCH|DELETE …/webhooks/{webhook_id}`, `POST …/webhooks/{webhook_id}/secret {overlap_secs?}`.
//!
//! - `POST /api/v1/auth/sdk/token` `{app_id, app_secret, user_external_id, display_name?}` →
//!   `{token, expires_at, session_id, user:{id, external_id, display_name}, socket_urls}`: a new session;
//!   `403 user_banned` while the user is banned app-wide.
//!
//! With the user's SDK token (`Authorization: Bearer`), for the token's session:
//! - `POST /api/v1/auth/refresh` → the same shape as the token response: a new token for the same
//!   session, with a later expiry.
//! - `POST /api/v1/auth/logout` → `{session_id, revoked: true}`: the session's tokens are refused from
//!   now on and its live connections closed.
//! - `GET /api/v1/auth/sessions` → `{sessions:[{session_id, created_at, expires_at, current}]}`: the
//!   user's active sessions; `DELETE /api/v1/auth/sessions/{session_id}` ends one of them.
//!
//! Every action here is written to the audit trail (`caas.audit`).

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::routing::{delete, get, post};
use axum::{Extension, Json, Router};
use caas_shared::config::Config;
use caas_shared::domain::audit::{actions, Actor, AuditEvent, Target};
use caas_shared::domain::correlation::CorrelationId;
use caas_shared::domain::model::{limits, App, Restriction, RestrictionKind, User};
use caas_shared::ports::bus::Bus;
use caas_shared::ports::store::Store;
use caas_shared::runtime::http::{finish_router, read_json, Authenticated, VerifiesSdkTokens};
use caas_shared::services::auth::IssuedToken;
use caas_shared::services::auth::{self, TokenSigner};
use caas_shared::services::credentials::CredentialCheck;
use caas_shared::services::sessions::{self, Revocation};
use caas_shared::{now_ms, Error, Result};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

mod admin;
mod webhooks;

pub struct AuthService {
    store: Arc<dyn Store>,
    bus: Arc<dyn Bus>,
    signer: TokenSigner,
    admin_token: Option<String>,
    socket_urls: Vec<String>,
    /// Verifies app secrets at a bounded, failure-limited, uniform cost.
    credentials: CredentialCheck,
    /// Seals webhook signing secrets (`CAAS_SECRETS_KEY`); without it the webhook routes answer
    /// `not_configured`.
    sealing_key: Option<caas_shared::domain::sealing::SealingKey>,
    /// Whether webhook URLs may be plain http to loopback (dev mode and tests).
    webhooks_allow_loopback_http: bool,
}

impl AuthService {
    pub fn new(store: Arc<dyn Store>, bus: Arc<dyn Bus>, config: &Config) -> Self {
        Self {
            store,
            bus,
            signer: TokenSigner::from_config(config),
            admin_token: config.admin_token.clone(),
            socket_urls: config.socket_urls.clone(),
            credentials: CredentialCheck::default(),
            // Config validated the key when it read it; an absent one leaves webhooks unconfigured.
            sealing_key: config.sealing_key().ok(),
            webhooks_allow_loopback_http: config.webhooks_allow_loopback_http,
        }
    }
}

/// The function as deployed: its routes with the shared correlation and JSON-error handling.
pub fn router(service: Arc<AuthService>) -> Router {
    finish_router(routes(service))
}

/// Just the routes, for the local gateway to merge with the other functions'.
pub fn routes(service: Arc<AuthService>) -> Router {
    Router::new()
        .route("/api/v1/admin/apps", post(admin::create_app))
        .route("/api/v1/admin/apps/{app_id}/secret", post(admin::rotate_secret))
        .route(
            "/api/v1/admin/apps/{app_id}/settings",
            get(admin::show_settings).put(admin::replace_settings),
        )
        .route(
            "/api/v1/admin/apps/{app_id}/webhooks",
            post(webhooks::create).get(webhooks::list),
        )
        .route(
            "/api/v1/admin/apps/{app_id}/webhooks/{webhook_id}",
            get(webhooks::show).patch(webhooks::change).delete(webhooks::remove),
        )
        .route(
            "/api/v1/admin/apps/{app_id}/webhooks/{webhook_id}/secret",
            post(webhooks::rotate_secret),
        )
        .route(
            "/api/v1/admin/apps/{app_id}/webhooks/{webhook_id}/deliveries",
            get(webhooks::deliveries),
        )
        .route(
            "/api/v1/admin/apps/{app_id}/webhooks/{webhook_id}/deliveries/{delivery_id}/retry",
            post(webhooks::retry_delivery),
        )
        .route(
            "/api/v1/admin/apps/{app_id}/webhooks/{webhook_id}/test",
            post(webhooks::test),
        )
        .route(
            "/api/v1/admin/apps/{app_id}/webhooks/{webhook_id}/replay",
            post(webhooks::replay),
        )
        .route("/api/v1/admin/apps/{app_id}/events", get(webhooks::events))
        .route("/api/v1/auth/sdk/token", post(issue_sdk_token))
        .route("/api/v1/auth/refresh", post(refresh))
        .route("/api/v1/auth/logout", post(logout))
        .route("/api/v1/auth/sessions", get(list_sessions))
        .route("/api/v1/auth/sessions/{session_id}", delete(end_session))
        .with_state(service)
}

impl VerifiesSdkTokens for AuthService {
    fn token_signer(&self) -> &TokenSigner {
        &self.signer
    }

    fn session_store(&self) -> &dyn Store {
        self.store.as_ref()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SdkTokenRequest {
    app_id: String,
    app_secret: String,
    user_external_id: String,
    #[serde(default)]
    display_name: Option<String>,
}

fn validate_text(field: &str, value: &str, max_bytes: usize) -> Result<String> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err(Error::Validation(format!("{field} must not be empty")));
    }
    if trimmed.len() > max_bytes {
        return Err(Error::Validation(format!("{field} must be at most {max_bytes} bytes")));
    }
    if limits::has_deceptive_chars(trimmed) {
        return Err(Error::Validation(format!(
            "{field} must not contain control characters or bidirectional overrides"
        )));
    }
    Ok(trimmed.to_owned())
}

/// The caller's IP address as the platform saw it: API Gateway's or the load balancer's record of the
/// connection under Lambda, the TCP peer behind the local gateway. Never `X-Forwarded-For`, which the
/// caller writes.
fn source_address(extensions: &axum::http::Extensions) -> String {
    use lambda_http::request::RequestContext;
    let from_lambda = extensions.get::<RequestContext>().and_then(|context| match context {
        RequestContext::ApiGatewayV2(context) => context.http.source_ip.clone(),
        RequestContext::ApiGatewayV1(context) => context.identity.source_ip.clone(),
        _ => None,
    });
    from_lambda
        .or_else(|| {
            extensions
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map(|peer| peer.0.ip().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

async fn issue_sdk_token(
    State(service): State<Arc<AuthService>>,
    Extension(correlation_id): Extension<CorrelationId>,
    extensions: axum::http::Extensions,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>> {
    let request: SdkTokenRequest = read_json(&headers, body).await?;
    let external_id = validate_text(
        "user_external_id",
        &request.user_external_id,
        limits::MAX_EXTERNAL_ID_BYTES,
    )?;
    let display_name = request
        .display_name
        .as_deref()
        .map(|name| validate_text("display_name", name, limits::MAX_NAME_CHARS))
        .transpose()?;
    if request.app_id.trim().is_empty() || request.app_secret.is_empty() {
        return Err(Error::Validation("app_id and app_secret must not be empty".into()));
    }
    let source = source_address(&extensions);
    let app = service
        .credentials
        .verify(
            service.store.as_ref(),
            request.app_id.trim(),
            &request.app_secret,
            &source,
        )
        .await?;
    let candidate = User {
        id: uuid::Uuid::now_v7().to_string(),
        app_id: app.id.clone(),
        external_id,
        display_name,
        created_at: now_ms(),
        correlation_id: correlation_id.to_string(),
    };
    let user = service.store.upsert_user(&candidate).await?;
    let token_audit = |action: &str| {
        AuditEvent::new(
            &app.id,
            action,
            Actor::app(&app.id),
            Target::new("user", &user.id),
            correlation_id.as_str(),
        )
    };
    let ban_id = Restriction::id_for(RestrictionKind::Ban, &user.id, None);
    if let Some(ban) = service.store.find_restriction(&app.id, &ban_id).await? {
        if ban.is_active(now_ms()) {
            token_audit(actions::TOKEN_REFUSED)
                .with_details(json!({"reason": "banned", "restriction_id": ban.id}))
                .emit(service.bus.as_ref())
                .await?;
            return Err(Error::Banned("this user is banned from the app".into()));
        }
    }
    let issued = auth::start_session(
        &service.signer,
        service.store.as_ref(),
        (&app.id, &user.id, &user.external_id),
        correlation_id.as_str(),
    )
    .await?;
    refuse_if_rotated_meanwhile(&service, &app, &user.id, &issued.session_id).await?;
    tracing::info!(app_id = %app.id, user_id = %user.id, session_id = %issued.session_id, "sdk token issued");
    token_audit(actions::TOKEN_ISSUED)
        .with_details(json!({"session_id": issued.session_id, "expires_at": issued.expires_at}))
        .emit(service.bus.as_ref())
        .await?;
    let user = json!({"id": user.id, "external_id": user.external_id, "display_name": user.display_name});
    Ok(Json(token_response(&service, &issued, user)))
}

/// A secret rotated between verifying it and recording the session would otherwise leave a session
/// minted with the old secret that a rotation ending all sessions did not see: such a session is ended
/// here and the request refused, as if it had come a moment later.
async fn refuse_if_rotated_meanwhile(
    service: &AuthService,
    verified: &App,
    user_id: &str,
    session_id: &str,
) -> Result<()> {
    let current = service.store.find_app(&verified.id).await?;
    if current.is_some_and(|app| app.secret_hash == verified.secret_hash) {
        return Ok(());
    }
    service
        .store
        .revoke_sessions(&verified.id, user_id, Some(session_id), now_ms())
        .await?;
    Err(Error::Unauthorized("invalid app credentials".into()))
}

/// What every token grant answers: the token, its session and where to connect.
fn token_response(service: &AuthService, issued: &IssuedToken, user: Value) -> Value {
    json!({
        "token": issued.token,
        "expires_at": issued.expires_at,
        "session_id": issued.session_id,
        "user": user,
        "socket_urls": service.socket_urls,
    })
}

/// A new token for the caller's session; refused once the session has ended.
async fn refresh(State(service): State<Arc<AuthService>>, caller: Authenticated) -> Result<Json<Value>> {
    let claims = &caller.claims;
    let session = service
        .store
        .find_session(&claims.app_id, &claims.jti)
        .await?
        .ok_or_else(|| Error::Unauthorized("session revoked".into()))?;
    let not_after = session.created_at / 1000 + auth::MAX_SESSION_LIFETIME.as_secs() as i64;
    if now_ms() / 1000 >= not_after {
        return Err(Error::Unauthorized(format!(
            "the session reached its maximum lifetime of {} days; request a new token",
            auth::MAX_SESSION_LIFETIME.as_secs() / 86_400
        )));
    }
    let issued = service.signer.reissue(claims, not_after)?;
    service
        .store
        .extend_session(&claims.app_id, &claims.jti, issued.expires_at)
        .await?
        .ok_or_else(|| Error::Unauthorized("session revoked".into()))?;
    tracing::info!(app_id = %claims.app_id, user_id = %claims.sub, session_id = %claims.jti, "sdk token refreshed");
    AuditEvent::new(
        &claims.app_id,
        actions::TOKEN_REFRESHED,
        Actor::user(&claims.sub),
        Target::new("session", &claims.jti),
        &caller.correlation_id,
    )
    .with_details(json!({"expires_at": issued.expires_at}))
    .emit(service.bus.as_ref())
    .await?;
    // The same `user` shape as the token endpoint's; the name is the store's (tokens do not carry it).
    let display_name = service
        .store
        .find_users(&claims.app_id, std::slice::from_ref(&claims.sub))
        .await?
        .into_iter()
        .next()
        .and_then(|user| user.display_name);
    let user = json!({"id": claims.sub, "external_id": claims.external_id, "display_name": display_name});
    Ok(Json(token_response(&service, &issued, user)))
}

async fn logout(State(service): State<Arc<AuthService>>, caller: Authenticated) -> Result<Json<Value>> {
    let session_id = caller.claims.jti.clone();
    end_sessions_of_caller(&service, &caller, &session_id, "logged out").await?;
    Ok(Json(json!({"session_id": session_id, "revoked": true})))
}

async fn list_sessions(State(service): State<Arc<AuthService>>, caller: Authenticated) -> Result<Json<Value>> {
    let claims = &caller.claims;
    let now = now_ms();
    let sessions: Vec<Value> = service
        .store
        .list_sessions(&claims.app_id, &claims.sub)
        .await?
        .into_iter()
        .filter(|s| s.is_active(now))
        .map(|s| {
            json!({"session_id": s.id, "created_at": s.created_at, "expires_at": s.expires_at,
                   "current": s.id == claims.jti})
        })
        .collect();
    Ok(Json(json!({"sessions": sessions})))
}

/// Ends another session of the caller (a lost phone); ending the current one is a logout.
async fn end_session(
    State(service): State<Arc<AuthService>>,
    caller: Authenticated,
    Path(session_id): Path<String>,
) -> Result<Json<Value>> {
    end_sessions_of_caller(&service, &caller, &session_id, "ended from another session").await?;
    Ok(Json(json!({"session_id": session_id, "revoked": true})))
}

async fn end_sessions_of_caller(
    service: &AuthService,
    caller: &Authenticated,
    session_id: &str,
    reason: &str,
) -> Result<()> {
    let claims = &caller.claims;
    let revocation = Revocation {
        app_id: &claims.app_id,
        user_id: &claims.sub,
        session_id: Some(session_id),
        reason,
        actor: Actor::user(&claims.sub),
        correlation_id: &caller.correlation_id,
    };
    // Scoped to the caller's own sessions: another user's session id ends nothing and is not found.
    let ended = sessions::revoke(service.store.as_ref(), service.bus.as_ref(), revocation).await?;
    if ended.is_empty() {
        return Err(Error::NotFound(format!("no active session {session_id}")));
    }
    tracing::info!(app_id = %claims.app_id, user_id = %claims.sub, session_id, reason, "session ended");
    Ok(())
}

fn uuid_simple() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}
