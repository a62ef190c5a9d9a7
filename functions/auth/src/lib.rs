//! The auth function: app administration (operator token) and SDK token issuing (app credentials).
//!
//! Routes:
//! - `POST /api/v1/admin/apps` `{name}` → `201 {app_id, app_secret, name}`; the secret is shown only here.
//! - `POST /api/v1/admin/apps/{app_id}/secret` (operator token) → `{app_id, app_secret}`: a new secret;
//!   the old one stops working at once.
//! - `GET|PUT /api/v1/admin/apps/{app_id}/settings` `{media, content, rate_limits, retention}`
//!   (operator token) → `{app_id, settings}`.
//!
//! Every action here is written to the audit trail (`caas.audit`).
//! - `POST /api/v1/auth/sdk/token` `{app_id, app_secret, user_external_id, display_name?}` →
//!   `{token, expires_at, user:{id, external_id, display_name}, socket_urls}`.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use caas_shared::audit::{actions, Actor, AuditEvent, Target};
use caas_shared::auth::{self, TokenSigner};
use caas_shared::bus::Bus;
use caas_shared::config::Config;
use caas_shared::correlation::CorrelationId;
use caas_shared::http::{finish_router, read_json};
use caas_shared::model::{limits, App, AppSettings, User};
use caas_shared::moderation;
use caas_shared::store::Store;
use caas_shared::{now_ms, Error, Result};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

pub struct AuthService {
    store: Arc<dyn Store>,
    bus: Arc<dyn Bus>,
    signer: TokenSigner,
    admin_token: Option<String>,
    socket_urls: Vec<String>,
}

impl AuthService {
    pub fn new(store: Arc<dyn Store>, bus: Arc<dyn Bus>, config: &Config) -> Self {
        Self {
            store,
            bus,
            signer: TokenSigner::from_config(config),
            admin_token: config.admin_token.clone(),
            socket_urls: config.socket_urls.clone(),
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
        .route("/api/v1/admin/apps", post(create_app))
        .route("/api/v1/admin/apps/{app_id}/secret", post(rotate_secret))
        .route(
            "/api/v1/admin/apps/{app_id}/settings",
            get(show_settings).put(replace_settings),
        )
        .route("/api/v1/auth/sdk/token", post(issue_sdk_token))
        .with_state(service)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateAppRequest {
    name: String,
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

fn require_operator(service: &AuthService, headers: &HeaderMap) -> Result<()> {
    caas_shared::http::require_operator(service.admin_token.as_deref(), headers)
}

fn validate_text(field: &str, value: &str, max_bytes: usize) -> Result<String> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err(Error::Validation(format!("{field} must not be empty")));
    }
    if trimmed.len() > max_bytes {
        return Err(Error::Validation(format!("{field} must be at most {max_bytes} bytes")));
    }
    if trimmed.chars().any(char::is_control) {
        return Err(Error::Validation(format!(
            "{field} must not contain control characters"
        )));
    }
    Ok(trimmed.to_owned())
}

async fn create_app(
    State(service): State<Arc<AuthService>>,
    Extension(correlation_id): Extension<CorrelationId>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<Value>)> {
    require_operator(&service, &headers)?;
    let request: CreateAppRequest = read_json(&headers, body).await?;
    let name = validate_text("name", &request.name, limits::MAX_NAME_CHARS)?;
    let (secret, secret_hash) = new_secret().await?;
    let app = App {
        id: format!("app_{}", uuid_simple()),
        name,
        secret_hash,
        created_at: now_ms(),
        correlation_id: correlation_id.to_string(),
        settings: Default::default(),
    };
    service.store.insert_app(&app).await?;
    tracing::info!(app_id = %app.id, "app created");
    AuditEvent::new(
        &app.id,
        actions::APP_CREATED,
        Actor::operator(),
        Target::new("app", &app.id),
        &app.correlation_id,
    )
    .with_details(json!({"name": app.name}))
    .emit(service.bus.as_ref())
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"app_id": app.id, "app_secret": secret, "name": app.name})),
    ))
}

/// A new secret and its argon2 hash (hashing is slow on purpose, so off the async workers).
async fn new_secret() -> Result<(String, String)> {
    let secret = auth::generate_secret();
    let secret_for_hashing = secret.clone();
    let secret_hash = tokio::task::spawn_blocking(move || auth::hash_secret(&secret_for_hashing))
        .await
        .map_err(|e| Error::Internal(format!("hashing task: {e}")))??;
    Ok((secret, secret_hash))
}

async fn rotate_secret(
    State(service): State<Arc<AuthService>>,
    Extension(correlation_id): Extension<CorrelationId>,
    headers: HeaderMap,
    Path(app_id): Path<String>,
) -> Result<Json<Value>> {
    require_operator(&service, &headers)?;
    let (secret, secret_hash) = new_secret().await?;
    let app = service.store.replace_app_secret(&app_id, &secret_hash).await?;
    tracing::info!(app_id = %app.id, "app secret rotated");
    AuditEvent::new(
        &app.id,
        actions::APP_SECRET_ROTATED,
        Actor::operator(),
        Target::new("app", &app.id),
        correlation_id.as_str(),
    )
    .emit(service.bus.as_ref())
    .await?;
    Ok(Json(json!({"app_id": app.id, "app_secret": secret})))
}

async fn show_settings(
    State(service): State<Arc<AuthService>>,
    headers: HeaderMap,
    Path(app_id): Path<String>,
) -> Result<Json<Value>> {
    require_operator(&service, &headers)?;
    let app = service
        .store
        .find_app(&app_id)
        .await?
        .ok_or_else(|| Error::NotFound(format!("app {app_id} not found")))?;
    Ok(Json(json!({"app_id": app.id, "settings": app.settings})))
}

/// Replaces an app's settings; omitted sections return to their defaults.
async fn replace_settings(
    State(service): State<Arc<AuthService>>,
    Extension(correlation_id): Extension<CorrelationId>,
    headers: HeaderMap,
    Path(app_id): Path<String>,
    body: Body,
) -> Result<Json<Value>> {
    require_operator(&service, &headers)?;
    let settings: AppSettings = read_json(&headers, body).await?;
    let media = &settings.media;
    if media.max_upload_bytes == 0 || media.max_upload_bytes > MAX_SINGLE_UPLOAD_BYTES {
        return Err(Error::Validation(format!(
            "media.max_upload_bytes must be 1 to {MAX_SINGLE_UPLOAD_BYTES} (one presigned PUT)"
        )));
    }
    let valid_pattern = |p: &String| {
        let (kind, sub) = p.split_once('/').unwrap_or_default();
        !kind.is_empty() && !sub.is_empty() && p.len() <= 127 && !p.contains(char::is_whitespace)
    };
    if !media.allowed_content_types.iter().all(valid_pattern) {
        return Err(Error::Validation(
            "media.allowed_content_types are media types (image/png) or families (image/*)".into(),
        ));
    }
    moderation::validate_policy(&settings.content, &settings.rate_limits)?;
    if settings
        .retention
        .message_days
        .is_some_and(|days| !(1..=36_500).contains(&days))
    {
        return Err(Error::Validation("retention.message_days must be 1 to 36500".into()));
    }
    let before = service
        .store
        .find_app(&app_id)
        .await?
        .ok_or_else(|| Error::NotFound(format!("app {app_id} not found")))?
        .settings;
    let app = service.store.update_app_settings(&app_id, &settings).await?;
    tracing::info!(app_id = %app.id, "app settings replaced");
    AuditEvent::new(
        &app.id,
        actions::APP_SETTINGS_CHANGED,
        Actor::operator(),
        Target::new("app", &app.id),
        correlation_id.as_str(),
    )
    .with_details(json!({"before": before, "after": app.settings}))
    .emit(service.bus.as_ref())
    .await?;
    Ok(Json(json!({"app_id": app.id, "settings": app.settings})))
}

/// S3 takes at most 5 GiB in one PUT.
const MAX_SINGLE_UPLOAD_BYTES: u64 = 5 * 1024 * 1024 * 1024;

async fn issue_sdk_token(
    State(service): State<Arc<AuthService>>,
    Extension(correlation_id): Extension<CorrelationId>,
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
    // One answer for an unknown app and a wrong secret, so callers cannot probe which app ids exist.
    let invalid_credentials = || Error::Unauthorized("invalid app credentials".into());
    let app = service
        .store
        .find_app(request.app_id.trim())
        .await?
        .ok_or_else(invalid_credentials)?;
    let stored_hash = app.secret_hash.clone();
    let secret = request.app_secret;
    let valid = tokio::task::spawn_blocking(move || auth::verify_secret(&secret, &stored_hash))
        .await
        .map_err(|e| Error::Internal(format!("verification task: {e}")))?;
    if !valid {
        return Err(invalid_credentials());
    }
    let candidate = User {
        id: uuid::Uuid::now_v7().to_string(),
        app_id: app.id.clone(),
        external_id,
        display_name,
        created_at: now_ms(),
        correlation_id: correlation_id.to_string(),
    };
    let user = service.store.upsert_user(&candidate).await?;
    let issued = service.signer.issue(&app.id, &user.id, &user.external_id)?;
    tracing::info!(app_id = %app.id, user_id = %user.id, session_id = %issued.session_id, "sdk token issued");
    AuditEvent::new(
        &app.id,
        actions::TOKEN_ISSUED,
        Actor::app(&app.id),
        Target::new("user", &user.id),
        correlation_id.as_str(),
    )
    .with_details(json!({"session_id": issued.session_id, "expires_at": issued.expires_at}))
    .emit(service.bus.as_ref())
    .await?;
    Ok(Json(json!({
        "token": issued.token,
        "expires_at": issued.expires_at,
        "user": {"id": user.id, "external_id": user.external_id, "display_name": user.display_name},
        "socket_urls": service.socket_urls,
    })))
}

fn uuid_simple() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}
