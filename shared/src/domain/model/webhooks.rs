//! An app's webhook endpoints (issue 38): where its events are delivered, which ones, and the signing
//! secret (sealed at rest, see [`crate::domain::sealing`]).

use serde::{Deserialize, Serialize};

/// One endpoint of an app: events of the listed types are POSTed to `url`, signed.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct WebhookEndpoint {
    /// `wh_<uuid>`, assigned at creation.
    pub id: String,
    /// The app whose events it receives.
    pub app_id: String,
    /// `https://…` (plain http only to loopback in dev mode and tests).
    pub url: String,
    /// The event types it receives (see `domain::webhooks::EVENT_TYPES`).
    pub event_types: Vec<String>,
    /// Free text for the operator (at most 200 bytes).
    #[serde(default)]
    pub description: String,
    /// Whether events are delivered; an endpoint answering `410 Gone`, or failing for 24 h in a row,
    /// is disabled by the platform (`disabled_reason` says which).
    pub enabled: bool,
    /// Why the platform disabled it (`gone`, `failing`); `None` when enabled or disabled by the operator.
    #[serde(default)]
    pub disabled_reason: Option<String>,
    /// The signing secret (`whsec_…`), sealed.
    pub secret_sealed: String,
    /// Since when (Unix ms) every attempt to it has failed; `None` after a success. An endpoint failing
    /// for a day is disabled.
    #[serde(default)]
    pub failing_since: Option<i64>,
    /// The secret before the last rotation, sealed, still signing until `previous_secret_until`.
    #[serde(default)]
    pub previous_secret_sealed: Option<String>,
    /// Until when (Unix ms) the previous secret signs too.
    #[serde(default)]
    pub previous_secret_until: Option<i64>,
    /// Unix ms.
    pub created_at: i64,
    /// Unix ms of the last change.
    pub updated_at: i64,
    /// The correlation id of the request that created it.
    pub correlation_id: String,
}

/// Where a delivery stands.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Waiting for its first or next attempt at `due_at`.
    Pending,
    /// A 2xx answered it.
    Delivered,
    /// Given up (refused, gone, or the schedule used up): dead-lettered, retried only by the operator.
    Dead,
}

/// One event on its way to one endpoint: the durable retry queue (`webhook_deliveries`). Retries are
/// scheduled here, never by sleeping in a consumer, so no partition and no other endpoint waits.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct WebhookDelivery {
    /// `<endpoint id>:<event id>`: one delivery per event and endpoint, however often the event is
    /// consumed.
    pub id: String,
    /// The endpoint's app.
    pub app_id: String,
    /// The endpoint it goes to.
    pub endpoint_id: String,
    /// The `webhook-id` header: the same on every attempt, so receivers can drop repeats.
    pub event_id: String,
    /// The event's type, e.g. `message.new`.
    pub event_type: String,
    /// The body, exactly as it is signed and sent.
    pub payload: String,
    /// The correlation id of the change that caused the event (also a header of every attempt).
    pub correlation_id: String,
    /// Unix ms.
    pub created_at: i64,
    /// Pending, delivered or dead.
    pub status: DeliveryStatus,
    /// Attempts made so far.
    pub attempts: u32,
    /// When the next attempt is due (Unix ms); while an attempt runs, when its lease ends.
    pub due_at: i64,
    /// The last attempt's HTTP status, if it got one.
    #[serde(default)]
    pub last_status: Option<u16>,
    /// The last attempt's failure, when it had no answer (timeout, connection), or why it was dead-lettered.
    #[serde(default)]
    pub last_error: Option<String>,
    /// How long the last attempt took, ms.
    #[serde(default)]
    pub last_latency_ms: Option<i64>,
    /// When it was delivered or dead-lettered (Unix ms).
    #[serde(default)]
    pub finished_at: Option<i64>,
}

#[cfg(any(test, feature = "conformance"))]
impl WebhookEndpoint {
    /// An enabled endpoint for tests: `id` of `app_id` at an https URL, for `event_types`, created at
    /// `created_at`, with a sealed secret no key opens.
    pub fn for_tests(app_id: &str, id: &str, event_types: &[&str], created_at: i64) -> Self {
        Self {
            id: id.into(),
            app_id: app_id.into(),
            url: "https://hooks.example.com/caas".into(),
            event_types: event_types.iter().map(|t| t.to_string()).collect(),
            description: String::new(),
            enabled: true,
            disabled_reason: None,
            failing_since: None,
            secret_sealed: "v1.sealed".into(),
            previous_secret_sealed: None,
            previous_secret_until: None,
            created_at,
            updated_at: created_at,
            correlation_id: "test".into(),
        }
    }
}

impl WebhookDelivery {
    /// The refusal of a hand-made retry of delivery `id` while it is pending (a worker may hold it).
    pub fn still_pending(id: &str) -> crate::Error {
        crate::Error::Conflict(format!("delivery {id} is still pending; it is retried on its own"))
    }

    /// A new delivery of event `event_id` to `endpoint`, due at `at` (Unix ms), not attempted yet.
    pub fn queued(
        endpoint: &WebhookEndpoint,
        event_id: &str,
        event_type: &str,
        payload: String,
        correlation_id: &str,
        at: i64,
    ) -> Self {
        Self {
            id: format!("{}:{event_id}", endpoint.id),
            app_id: endpoint.app_id.clone(),
            endpoint_id: endpoint.id.clone(),
            event_id: event_id.to_owned(),
            event_type: event_type.to_owned(),
            payload,
            correlation_id: correlation_id.to_owned(),
            created_at: at,
            status: DeliveryStatus::Pending,
            attempts: 0,
            due_at: at,
            last_status: None,
            last_error: None,
            last_latency_ms: None,
            finished_at: None,
        }
    }
}

/// The result of one attempt, as the queue records it.
#[derive(Clone, Debug, PartialEq)]
pub struct AttemptRecord {
    /// The attempt count after this attempt.
    pub attempts: u32,
    /// Pending again (with its next `due_at`), delivered or dead.
    pub status: DeliveryStatus,
    /// The next attempt's time, for a pending delivery (otherwise when it finished).
    pub due_at: i64,
    /// The answer's status, if any.
    pub last_status: Option<u16>,
    /// The failure without an answer, or why it was given up.
    pub last_error: Option<String>,
    /// How long it took, ms.
    pub last_latency_ms: i64,
    /// When it finished (delivered or dead), Unix ms.
    pub finished_at: Option<i64>,
}

/// One event as webhooks carry it, kept in the app's event log for replay (issue 38): the customer's
/// backend reads the log back in order with a cursor, and operators re-send a time range of it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct WebhookEvent {
    /// `evt_…`, derived from what the event is about, so an event consumed twice is one event (also
    /// the `webhook-id` its deliveries carry).
    pub id: String,
    /// The app it belongs to.
    pub app_id: String,
    /// Its place in the app's event log, from 1, assigned when it is first stored (0 before); the
    /// cursor of the events API.
    #[serde(default)]
    pub seq: i64,
    /// One of [`EVENT_TYPES`](crate::domain::webhooks::EVENT_TYPES).
    pub event_type: String,
    /// When the platform recorded it, Unix ms.
    pub created_at: i64,
    /// The correlation id of the request that caused it.
    pub correlation_id: String,
    /// The body POSTed to endpoints, byte for byte (JSON).
    pub payload: String,
}

/// Which events of an app's log to read, always in ascending `seq` order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EventQuery {
    /// Only events after this place in the log (the cursor; 0 reads from the start).
    pub after_seq: i64,
    /// Only these types; empty means every type.
    pub types: Vec<String>,
    /// Only events recorded at or after this time (Unix ms).
    pub from_ms: Option<i64>,
    /// Only events recorded at or before this time (Unix ms).
    pub to_ms: Option<i64>,
    /// At most this many.
    pub limit: usize,
}

impl EventQuery {
    /// Whether `event` is one this query reads (apart from the limit).
    pub fn matches(&self, event: &WebhookEvent) -> bool {
        event.seq > self.after_seq
            && (self.types.is_empty() || self.types.contains(&event.event_type))
            && self.from_ms.is_none_or(|from| event.created_at >= from)
            && self.to_ms.is_none_or(|to| event.created_at <= to)
    }
}
