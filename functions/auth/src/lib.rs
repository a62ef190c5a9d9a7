//! The auth function: app administration (operator token) and SDK token issuing (app credentials).
//!
//! Routes:
//! - `POST /api/v1/admin/apps` `{name}` → `201 {app_id, app_secret, name}`; the secret is shown only here.
//! - `GET|PUT /api/v1/admin/apps/{app_id}/settings` `{media:{max_upload_bytes, allowed_content_types}}`
//!   (operator token) → `{app_id, settings}`.
//! - `POST /api/v1/auth/sdk/token` `{app_id, app_secret, user_external_id, display_name?}` →
//!   `{token, expires_at, user:{id, external_id, display_name}, socket_urls}`.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use caas_shared::auth::{self, TokenSigner};
use caas_shared::config::Config;
use caas_shared::correlation::CorrelationId;
use caas_shared::http::{bearer_token, finish_router, read_json};
use caas_shared::model::{limits, App, AppSettings, User};
use caas_shared::store::Store;
use caas_shared::{now_ms, Error, Result};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

pub struct AuthService {
    store: Arc<dyn Store>,
    signer: TokenSigner,
    admin_token: Option<String>,
    socket_urls: Vec<String>,
}

impl AuthService {
    pub fn new(store: Arc<dyn Store>, config: &Config) -> Self {
        Self {
            store,
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
    let expected = service
        .admin_token
        .as_deref()
        .ok_or_else(|| Error::Forbidden("admin API is disabled: CAAS_ADMIN_TOKEN is not set".into()))?;
    match bearer_token(headers) {
        Some(presented) if auth::constant_time_eq(presented, expected) => Ok(()),
        Some(_) => Err(Error::Unauthorized("invalid operator token".into())),
        None => Err(Error::Unauthorized(
            "missing Authorization: Bearer <operator token>".into(),
        )),
    }
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
    let secret = auth::generate_secret();
    let secret_for_hashing = secret.clone();
    let secret_hash = tokio::task::spawn_blocking(move || auth::hash_secret(&secret_for_hashing))
        .await
        .map_err(|e| Error::Internal(format!("hashing task: {e}")))??;
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
    Ok((
        StatusCode::CREATED,
        Json(json!({"app_id": app.id, "app_secret": secret, "name": app.name})),
    ))
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

/// Replaces an app's settings (media limits); omitted sections return to their defaults.
async fn replace_settings(
    State(service): State<Arc<AuthService>>,
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
    let app = service.store.update_app_settings(&app_id, &settings).await?;
    tracing::info!(app_id = %app.id, "app settings replaced");
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
