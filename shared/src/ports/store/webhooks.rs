//! The webhooks part of the store port: an app's endpoints and the queue of deliveries to them.

use super::InsertOutcome;
use crate::domain::model::{AttemptRecord, EventQuery, WebhookDelivery, WebhookEndpoint, WebhookEvent};
use crate::Result;
use async_trait::async_trait;
use std::collections::{HashMap, HashSet};

/// A worker's deliveries in flight, per endpoint and per app.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InFlight {
    /// Per endpoint id.
    pub endpoints: HashMap<String, usize>,
    /// Per app id.
    pub apps: HashMap<String, usize>,
}

impl InFlight {
    /// Counts one more delivery to `endpoint_id` of `app_id`.
    pub fn add(&mut self, app_id: &str, endpoint_id: &str) {
        *self.endpoints.entry(endpoint_id.to_owned()).or_default() += 1;
        *self.apps.entry(app_id.to_owned()).or_default() += 1;
    }

    /// Counts one delivery to `endpoint_id` of `app_id` less (one that finished, or that another worker
    /// leased first).
    pub fn remove(&mut self, app_id: &str, endpoint_id: &str) {
        for (counts, key) in [(&mut self.endpoints, endpoint_id), (&mut self.apps, app_id)] {
            if let Some(count) = counts.get_mut(key) {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    counts.remove(key);
                }
            }
        }
    }

    /// Deliveries in flight in all.
    pub fn total(&self) -> usize {
        self.apps.values().sum()
    }
}

/// How many deliveries one claim may take.
#[derive(Clone, Copy, Debug)]
pub struct ClaimLimit<'a> {
    /// In all.
    pub total: usize,
    /// Per app, counting those the caller already has in flight: an app whose endpoints are all slow
    /// or dead holds at most this many of a worker's attempts, and other apps' deliveries go on.
    pub per_app: usize,
    /// Per endpoint, likewise: one slow endpoint leaves room for its app's others.
    pub per_endpoint: usize,
    /// Endpoints that are failing: one delivery at a time each (a probe), so a dead endpoint's backlog
    /// does not fill its app's share with attempts that will time out.
    pub probing: &'a HashSet<String>,
    /// The caller's deliveries in flight.
    pub in_flight: &'a InFlight,
}

impl ClaimLimit<'_> {
    /// How many deliveries `endpoint_id` may have in flight.
    pub fn endpoint_limit(&self, endpoint_id: &str) -> usize {
        if self.probing.contains(endpoint_id) {
            1
        } else {
            self.per_endpoint
        }
    }

    /// Whether one more delivery to `endpoint_id` of `app_id` fits beside `taken` (in flight and
    /// claimed so far).
    pub fn admits(&self, taken: &InFlight, app_id: &str, endpoint_id: &str) -> bool {
        taken.endpoints.get(endpoint_id).copied().unwrap_or(0) < self.endpoint_limit(endpoint_id)
            && taken.apps.get(app_id).copied().unwrap_or(0) < self.per_app
    }

    /// The endpoints that may take no more deliveries beside `taken`.
    pub fn full_endpoints(&self, taken: &InFlight) -> Vec<String> {
        taken
            .endpoints
            .iter()
            .filter(|(endpoint, count)| **count >= self.endpoint_limit(endpoint))
            .map(|(endpoint, _)| endpoint.clone())
            .collect()
    }

    /// The apps that may take no more deliveries beside `taken`.
    pub fn full_apps(&self, taken: &InFlight) -> Vec<String> {
        taken
            .apps
            .iter()
            .filter(|(_, count)| **count >= self.per_app)
            .map(|(app, _)| app.clone())
            .collect()
    }
}

/// What an attempt said about its endpoint's health.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HealthChange {
    /// It was delivered: the endpoint's failure streak, if any, ends.
    Recovered,
    /// It failed (no answer, or one to retry) at `at`: a failure streak starts unless one runs, and
    /// the endpoint is disabled (`failing`) if its streak began at or before `disable_if_since`.
    Failed {
        /// When.
        at: i64,
        /// The latest start of a streak long enough to disable the endpoint.
        disable_if_since: i64,
    },
    /// It answered `410 Gone`: the endpoint is disabled (`gone`).
    Gone,
}

impl HealthChange {
    /// The `disabled_reason` this change disables an endpoint with, if it can.
    pub fn disabling_reason(&self) -> Option<&'static str> {
        match self {
            Self::Recovered => None,
            Self::Failed { .. } => Some("failing"),
            Self::Gone => Some("gone"),
        }
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
    /// Applies what an attempt said about the app's endpoint to its health fields (the operator's
    /// fields stay), deciding on the stored endpoint rather than on a caller's copy, so that workers
    /// finishing attempts at once neither undo each other nor disable an endpoint twice. The reason
    /// (`gone`, `failing`) when this call disabled the endpoint; `None` otherwise (also when there is no
    /// such endpoint, or it was disabled already).
    async fn change_webhook_health(&self, app_id: &str, id: &str, change: HealthChange)
        -> Result<Option<&'static str>>;
    /// The ids of every app's enabled endpoints that are failing (a failure streak runs): a worker
    /// starting up probes them one delivery at a time from its first claim.
    async fn failing_webhook_ids(&self) -> Result<Vec<String>>;
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
    /// How many of the app's events `query` reads, counting at most `query.limit` (whoever asks whether
    /// a window holds more than N need not count the rest).
    async fn count_webhook_events(&self, app_id: &str, query: &EventQuery) -> Result<u64>;
    /// Removes every app's events recorded before `before` (Unix ms); how many.
    async fn purge_webhook_events(&self, before: i64) -> Result<u64>;
}
