//! The webhooks part of the store port: an app's endpoints and the queue of deliveries to them.

use super::InsertOutcome;
use crate::domain::model::{AttemptRecord, EventQuery, WebhookDelivery, WebhookEndpoint, WebhookEvent};
use crate::Result;
use async_trait::async_trait;
use std::collections::HashMap;

/// How many deliveries one claim may take.
#[derive(Clone, Copy, Debug)]
pub struct ClaimLimit<'a> {
    /// In all.
    pub total: usize,
    /// Per endpoint, counting those the caller already has in flight: one slow or dead endpoint then
    /// holds at most this many of a worker's attempts, and every other endpoint's deliveries go on.
    pub per_endpoint: usize,
    /// The caller's deliveries in flight, per endpoint id.
    pub in_flight: &'a HashMap<String, usize>,
}

impl ClaimLimit<'_> {
    /// The endpoints that may take no more deliveries, given `taken` (in flight and claimed so far).
    pub fn full_endpoints(&self, taken: &HashMap<String, usize>) -> Vec<String> {
        taken
            .iter()
            .filter(|(_, count)| **count >= self.per_endpoint)
            .map(|(endpoint, _)| endpoint.clone())
            .collect()
    }
}

/// An app's webhook endpoints. Every call is scoped to the app: another app's endpoint id finds nothing.
#[async_trait]
pub trait WebhookStore: Send + Sync {
    /// Stores a new endpoint unless the app has `max_per_app` already (`LimitExceeded`; counted before
    /// the insert, so operators creating endpoints at the same instant may pass it by one each);
    /// `Conflict` when the id is taken.
    async fn insert_webhook(&self, endpoint: &WebhookEndpoint, max_per_app: usize) -> Result<()>;
    /// The app's endpoint with this id.
    async fn find_webhook(&self, app_id: &str, id: &str) -> Result<Option<WebhookEndpoint>>;
    /// The app's endpoints, oldest first.
    async fn list_webhooks(&self, app_id: &str) -> Result<Vec<WebhookEndpoint>>;
    /// Writes the operator's fields of `endpoint` (URL, events, description, secrets, `updated_at`) to
    /// the stored one of the same app and id, and, with `enablement`, also whether it is enabled (with
    /// the platform's `disabled_reason` and `failing_since`); a health change the platform made meanwhile
    /// stays otherwise. `NotFound` when there is none.
    async fn replace_webhook(&self, endpoint: &WebhookEndpoint, enablement: bool) -> Result<()>;
    /// Removes the app's endpoint; whether there was one.
    async fn delete_webhook(&self, app_id: &str, id: &str) -> Result<bool>;
    /// Records the endpoint's health after a delivery (its other fields, which the operator owns,
    /// stay): since when it has been failing, and, to disable it, why. Whether the endpoint exists.
    async fn set_webhook_health(
        &self,
        app_id: &str,
        id: &str,
        failing_since: Option<i64>,
        disabled_reason: Option<&str>,
    ) -> Result<bool>;
}

/// The webhook delivery queue: one record per event and endpoint, attempted when due.
#[async_trait]
pub trait WebhookDeliveryStore: Send + Sync {
    /// Queues deliveries; one already queued (the same id: an event consumed again) is left as it is.
    async fn enqueue_webhook_deliveries(&self, deliveries: &[WebhookDelivery]) -> Result<InsertOutcome>;
    /// Takes pending deliveries due at `now`, earliest first, within `limit`, and leases them until
    /// `lease_until` (their `due_at` becomes that): a worker that dies mid-attempt leaves them to be
    /// taken again then. Two callers never take the same delivery in one lease.
    async fn claim_due_webhook_deliveries(
        &self,
        now: i64,
        lease_until: i64,
        limit: ClaimLimit<'_>,
    ) -> Result<Vec<WebhookDelivery>>;
    /// Records an attempt's result on the app's delivery, if the caller still holds the lease it claimed
    /// it under (the delivery is pending and due at `lease_until`); `false` when it does not (the lease
    /// ran out and another worker took the delivery, whose result then stands).
    async fn record_webhook_attempt(
        &self,
        app_id: &str,
        id: &str,
        lease_until: i64,
        record: &AttemptRecord,
    ) -> Result<bool>;
    /// The app's deliveries to one endpoint, newest first.
    async fn list_webhook_deliveries(
        &self,
        app_id: &str,
        endpoint_id: &str,
        limit: usize,
    ) -> Result<Vec<WebhookDelivery>>;
    /// Makes the app's finished (delivered or dead) delivery to `endpoint_id` due again at `now`, for
    /// one more attempt, and returns it; `None` when there is no such delivery; `Conflict` while it is
    /// still pending (a worker may hold it).
    async fn retry_webhook_delivery(
        &self,
        app_id: &str,
        endpoint_id: &str,
        id: &str,
        now: i64,
    ) -> Result<Option<WebhookDelivery>>;
    /// Removes every app's finished deliveries that finished before `before` (Unix ms); how many.
    async fn purge_finished_webhook_deliveries(&self, before: i64) -> Result<u64>;
}

/// Each app's webhook event log, kept for replay: events in the order they were first stored.
#[async_trait]
pub trait WebhookEventStore: Send + Sync {
    /// Stores the events not stored yet (event ids are unique across apps: they are derived from the
    /// app id), giving each the next `seq` of its app's log, and returns every
    /// one of them as stored (an event stored before keeps its `seq` and payload), in the given order.
    /// Logs are appended by one writer at a time (the deliver-webhooks function), so a reader that
    /// follows the cursor never skips an event stored after it read.
    async fn append_webhook_events(&self, events: &[WebhookEvent]) -> Result<Vec<WebhookEvent>>;
    /// The app's events that `query` reads, ascending by `seq`.
    async fn find_webhook_events(&self, app_id: &str, query: &EventQuery) -> Result<Vec<WebhookEvent>>;
    /// Removes every app's events recorded before `before` (Unix ms); how many.
    async fn purge_webhook_events(&self, before: i64) -> Result<u64>;
}
