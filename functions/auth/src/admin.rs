//! The operator's routes: creating apps, rotating their secrets (optionally ending every session),
//! and reading or replacing their settings.

use super::*;
use axum::http::StatusCode;
use caas_shared::domain::model::AppSettings;
use caas_shared::domain::moderation;
use caas_shared::runtime::http::read_optional_json;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateAppRequest {
    name: String,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RotateSecretRequest {
    /// Also end every session of the app (a leaked secret may have minted tokens already).
    #[serde(default)]
    end_sessions: bool,
}

pub(crate) fn require_operator(service: &AuthService, headers: &HeaderMap) -> Result<()> {
    caas_shared::runtime::http::require_operator(service.admin_token.as_deref(), headers)
}

pub(crate) async fn create_app(
    State(service): State<Arc<AuthService>>,
    Extension(correlation_id): Extension<CorrelationId>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<Value>)> {
    require_operator(&service, &headers)?;
    let request: CreateAppRequest = read_json(&headers, body).await?;
    let name = validate_text("name", &request.name, limits::MAX_NAME_CHARS)?;
    let (secret, secret_hash) = new_secret().await?;
    let app = App::new(
        format!("app_{}", uuid_simple()),
        name,
        secret_hash,
        now_ms(),
        correlation_id.to_string(),
    );
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

pub(crate) async fn rotate_secret(
    State(service): State<Arc<AuthService>>,
    Extension(correlation_id): Extension<CorrelationId>,
    headers: HeaderMap,
    Path(app_id): Path<String>,
    body: Body,
) -> Result<Json<Value>> {
    require_operator(&service, &headers)?;
    let request: RotateSecretRequest = read_optional_json(&headers, body).await?;
    let (secret, secret_hash) = new_secret().await?;
    // The new hash first: from here on no new session can be minted with the old secret (a token
    // request that verified it a moment earlier notices the change and ends its own session).
    let app = service.store.replace_app_secret(&app_id, &secret_hash).await?;
    let sessions_ended = if request.end_sessions {
        sessions::revoke_app(
            service.store.as_ref(),
            service.bus.as_ref(),
            &app.id,
            "app secret rotated",
            correlation_id.as_str(),
        )
        .await?
    } else {
        0
    };
    tracing::info!(app_id = %app.id, sessions_ended, "app secret rotated");
    AuditEvent::new(
        &app.id,
        actions::APP_SECRET_ROTATED,
        Actor::operator(),
        Target::new("app", &app.id),
        correlation_id.as_str(),
    )
    .with_details(json!({"end_sessions": request.end_sessions, "sessions_ended": sessions_ended}))
    .emit(service.bus.as_ref())
    .await?;
    Ok(Json(
        json!({"app_id": app.id, "app_secret": secret, "sessions_ended": sessions_ended}),
    ))
}

pub(crate) async fn show_settings(
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
pub(crate) async fn replace_settings(
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
