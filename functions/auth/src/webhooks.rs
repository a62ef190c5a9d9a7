//! The operator's webhook routes (issue 38), under `/api/v1/admin/apps/{app_id}/webhooks`: register,
//! list, read, change, rotate the signing secret of, and remove an app's endpoints (a secret is in the
//! answer only when it is created; every change goes to the audit trail); list an endpoint's
//! deliveries, retry one, send a test event, replay a time range; and `/api/v1/admin/apps/{app_id}/events`,
//! the app's event log read with a cursor.

use super::*;
use axum::extract::RawQuery;
use axum::http::StatusCode;
use caas_shared::domain::model::{DeliveryStatus, EventQuery, WebhookDelivery};
use caas_shared::domain::sealing::SealingKey;
use caas_shared::runtime::http::{parse_query, read_optional_json};
use caas_shared::services::webhook_events;
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
    let key: &SealingKey = service
        .sealing_key
        .as_ref()
        .ok_or_else(caas_shared::config::no_secrets_key)?;
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

/// The events API's query: `after` (a cursor from a page before; from the start without), `types`
/// (comma-separated), `limit` (1 to 500, default 100).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct EventsQuery {
    #[serde(default)]
    after: Option<String>,
    #[serde(default)]
    types: Option<String>,
    #[serde(default)]
    limit: Option<usize>,
}

/// An app's event log, read in order from a cursor: a receiver that was down catches up here.
pub(crate) async fn events(
    State(service): State<Arc<AuthService>>,
    headers: HeaderMap,
    Path(app_id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>> {
    admin::require_operator(&service, &headers)?;
    let query: EventsQuery = parse_query(raw.as_deref())?;
    let after_seq =
        match query.after.as_deref().filter(|a| !a.is_empty()) {
            None => 0,
            Some(cursor) => cursor.parse::<i64>().ok().filter(|seq| *seq >= 0).ok_or_else(|| {
                Error::Validation(format!("after must be a cursor from an earlier page, got {cursor:?}"))
            })?,
        };
    let types: Vec<String> = query
        .types
        .as_deref()
        .unwrap_or_default()
        .split(',')
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect();
    if !types.is_empty() {
        caas_shared::domain::webhooks::validate_event_types(&types)?;
    }
    let limit = query.limit.unwrap_or(100);
    if !(1..=webhook_events::MAX_PAGE).contains(&limit) {
        return Err(Error::Validation(format!(
            "limit must be 1 to {}",
            webhook_events::MAX_PAGE
        )));
    }
    let query = EventQuery {
        after_seq,
        types,
        limit,
        ..EventQuery::default()
    };
    Ok(Json(
        webhook_events::read_events(service.store.as_ref(), &app_id, query).await?,
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplayRequest {
    /// Unix ms, included.
    from: i64,
    /// Unix ms, included.
    to: i64,
}

/// Re-sends the app's events of a time range to one endpoint (the events it subscribes to).
pub(crate) async fn replay(
    State(service): State<Arc<AuthService>>,
    Extension(correlation_id): Extension<CorrelationId>,
    headers: HeaderMap,
    Path((app_id, id)): Path<(String, String)>,
    body: Body,
) -> Result<(StatusCode, Json<Value>)> {
    let admin = admin(&service, &headers)?;
    let request: ReplayRequest = read_json(&headers, body).await?;
    let endpoint = admin.get(&app_id, &id).await?;
    let replay_id = format!("replay_{}", uuid::Uuid::now_v7().simple());
    let range = (request.from, request.to);
    let queued = webhook_events::replay(service.store.as_ref(), &endpoint, range, &replay_id, now_ms()).await?;
    tracing::info!(app_id, webhook_id = %id, queued, %correlation_id, "webhook replay queued");
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"replay_id": replay_id, "queued": queued})),
    ))
}

/// A delivery as the operator sees it (without the payload, which the events API returns).
fn delivery_view(delivery: &WebhookDelivery) -> Value {
    json!({
        "id": delivery.id,
        "event_id": delivery.event_id,
        "event_type": delivery.event_type,
        "status": delivery.status,
        "attempts": delivery.attempts,
        "last_status": delivery.last_status,
        "last_error": delivery.last_error,
        "last_latency_ms": delivery.last_latency_ms,
        "next_attempt_at": (delivery.status == DeliveryStatus::Pending).then_some(delivery.due_at),
        "created_at": delivery.created_at,
        "finished_at": delivery.finished_at,
        "correlation_id": delivery.correlation_id,
    })
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct DeliveriesQuery {
    #[serde(default)]
    limit: Option<usize>,
}

/// Most deliveries one listing returns.
const MAX_DELIVERIES_LISTED: usize = 200;

/// An endpoint's deliveries, newest first: status, attempts, last answer and latency, next attempt.
pub(crate) async fn deliveries(
    State(service): State<Arc<AuthService>>,
    headers: HeaderMap,
    Path((app_id, id)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>> {
    let admin = admin(&service, &headers)?;
    let query: DeliveriesQuery = parse_query(raw.as_deref())?;
    let limit = query.limit.unwrap_or(50);
    if !(1..=MAX_DELIVERIES_LISTED).contains(&limit) {
        return Err(Error::Validation(format!("limit must be 1 to {MAX_DELIVERIES_LISTED}")));
    }
    let endpoint = admin.get(&app_id, &id).await?;
    let listed = service
        .store
        .list_webhook_deliveries(&app_id, &endpoint.id, limit)
        .await?;
    let views: Vec<Value> = listed.iter().map(delivery_view).collect();
    Ok(Json(json!({"deliveries": views})))
}

/// One more attempt at a finished (delivered or dead-lettered) delivery, as soon as a worker is free.
pub(crate) async fn retry_delivery(
    State(service): State<Arc<AuthService>>,
    Extension(correlation_id): Extension<CorrelationId>,
    headers: HeaderMap,
    Path((app_id, id, delivery_id)): Path<(String, String, String)>,
) -> Result<Json<Value>> {
    admin(&service, &headers)?;
    let retried = service
        .store
        .retry_webhook_delivery(&app_id, &id, &delivery_id, now_ms())
        .await?
        .ok_or_else(|| Error::NotFound(format!("delivery {delivery_id} not found")))?;
    tracing::info!(app_id, webhook_id = %id, delivery_id, %correlation_id, "webhook delivery retried by the operator");
    Ok(Json(json!({"delivery": delivery_view(&retried)})))
}

/// Sends a `webhook.test` event to the endpoint, whatever it subscribes to.
pub(crate) async fn test(
    State(service): State<Arc<AuthService>>,
    Extension(correlation_id): Extension<CorrelationId>,
    headers: HeaderMap,
    Path((app_id, id)): Path<(String, String)>,
) -> Result<(StatusCode, Json<Value>)> {
    let admin = admin(&service, &headers)?;
    let endpoint = admin.get(&app_id, &id).await?;
    let delivery =
        webhook_events::send_test(service.store.as_ref(), &endpoint, correlation_id.as_str(), now_ms()).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"delivery": delivery_view(&delivery)})),
    ))
}
