//! The operator's webhook routes (issue 38), under `/api/v1/admin/apps/{app_id}/webhooks`: register,
//! list, read, change, rotate the signing secret of, and remove an app's endpoints. A secret is in the
//! answer only when it is created; every change goes to the audit trail.

use super::*;
use axum::http::StatusCode;
use caas_shared::domain::sealing::SealingKey;
use caas_shared::runtime::http::read_optional_json;
use caas_shared::services::webhooks::{self, EndpointChange, NewEndpoint, WebhookAdmin};

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RotateRequest {
    /// How long the current secret keeps signing beside the new one (default a day; 0 for a leak).
    #[serde(default)]
    overlap_secs: Option<i64>,
}

fn admin<'a>(service: &'a AuthService, headers: &HeaderMap) -> Result<WebhookAdmin<'a>> {
    admin::require_operator(service, headers)?;
    let key: &SealingKey = service.sealing_key.as_ref().ok_or_else(|| {
        Error::NotConfigured(
            "this deployment has no CAAS_SECRETS_KEY, which webhooks need to seal their secrets".into(),
        )
    })?;
    Ok(WebhookAdmin {
        store: service.store.as_ref(),
        key,
        allow_loopback_http: service.webhooks_allow_loopback_http,
    })
}

async fn audit(
    service: &AuthService,
    app_id: &str,
    action: &str,
    endpoint_id: &str,
    correlation_id: &CorrelationId,
    details: Value,
) -> Result<()> {
    AuditEvent::new(
        app_id,
        action,
        Actor::operator(),
        Target::new("webhook", endpoint_id),
        correlation_id.as_str(),
    )
    .with_details(details)
    .emit(service.bus.as_ref())
    .await
}

pub(crate) async fn create(
    State(service): State<Arc<AuthService>>,
    Extension(correlation_id): Extension<CorrelationId>,
    headers: HeaderMap,
    Path(app_id): Path<String>,
    body: Body,
) -> Result<(StatusCode, Json<Value>)> {
    let admin = admin(&service, &headers)?;
    let request: NewEndpoint = read_json(&headers, body).await?;
    let now = now_ms();
    let (endpoint, secret) = admin.create(&app_id, request, now, correlation_id.as_str()).await?;
    tracing::info!(app_id, webhook_id = %endpoint.id, "webhook endpoint created");
    let view = webhooks::view(&endpoint, now);
    let details = json!({"url": endpoint.url, "event_types": endpoint.event_types});
    audit(
        &service,
        &app_id,
        actions::WEBHOOK_CREATED,
        &endpoint.id,
        &correlation_id,
        details,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(json!({"webhook": view, "secret": secret}))))
}

pub(crate) async fn list(
    State(service): State<Arc<AuthService>>,
    headers: HeaderMap,
    Path(app_id): Path<String>,
) -> Result<Json<Value>> {
    let admin = admin(&service, &headers)?;
    let now = now_ms();
    let endpoints = admin.list(&app_id).await?;
    let views: Vec<Value> = endpoints.iter().map(|e| webhooks::view(e, now)).collect();
    Ok(Json(json!({"webhooks": views})))
}

pub(crate) async fn show(
    State(service): State<Arc<AuthService>>,
    headers: HeaderMap,
    Path((app_id, id)): Path<(String, String)>,
) -> Result<Json<Value>> {
    let admin = admin(&service, &headers)?;
    let endpoint = admin.get(&app_id, &id).await?;
    Ok(Json(json!({"webhook": webhooks::view(&endpoint, now_ms())})))
}

pub(crate) async fn change(
    State(service): State<Arc<AuthService>>,
    Extension(correlation_id): Extension<CorrelationId>,
    headers: HeaderMap,
    Path((app_id, id)): Path<(String, String)>,
    body: Body,
) -> Result<Json<Value>> {
    let admin = admin(&service, &headers)?;
    let request: EndpointChange = read_json(&headers, body).await?;
    let now = now_ms();
    let (before, after) = admin.change(&app_id, &id, request, now).await?;
    tracing::info!(app_id, webhook_id = %id, "webhook endpoint changed");
    let (before, after) = (webhooks::view(&before, now), webhooks::view(&after, now));
    let details = json!({"before": before, "after": after});
    audit(
        &service,
        &app_id,
        actions::WEBHOOK_CHANGED,
        &id,
        &correlation_id,
        details,
    )
    .await?;
    Ok(Json(json!({"webhook": after})))
}

pub(crate) async fn rotate_secret(
    State(service): State<Arc<AuthService>>,
    Extension(correlation_id): Extension<CorrelationId>,
    headers: HeaderMap,
    Path((app_id, id)): Path<(String, String)>,
    body: Body,
) -> Result<Json<Value>> {
    let admin = admin(&service, &headers)?;
    let request: RotateRequest = read_optional_json(&headers, body).await?;
    let now = now_ms();
    let (endpoint, secret) = admin.rotate_secret(&app_id, &id, request.overlap_secs, now).await?;
    tracing::info!(app_id, webhook_id = %id, "webhook secret rotated");
    let view = webhooks::view(&endpoint, now);
    let details = json!({"previous_secret_signs_until": view["previous_secret_signs_until"]});
    audit(
        &service,
        &app_id,
        actions::WEBHOOK_SECRET_ROTATED,
        &id,
        &correlation_id,
        details,
    )
    .await?;
    Ok(Json(json!({"webhook": view, "secret": secret})))
}

pub(crate) async fn remove(
    State(service): State<Arc<AuthService>>,
    Extension(correlation_id): Extension<CorrelationId>,
    headers: HeaderMap,
    Path((app_id, id)): Path<(String, String)>,
) -> Result<Json<Value>> {
    let admin = admin(&service, &headers)?;
    admin.delete(&app_id, &id).await?;
    tracing::info!(app_id, webhook_id = %id, "webhook endpoint removed");
    audit(
        &service,
        &app_id,
        actions::WEBHOOK_DELETED,
        &id,
        &correlation_id,
        json!({}),
    )
    .await?;
    Ok(Json(json!({"id": id, "deleted": true})))
}
