//! Delivering queued webhook events (issue 38): take the due deliveries, sign and POST each, and record
//! what happened — delivered, retried later (the schedule, or the receiver's `Retry-After`), or
//! dead-lettered; `410 Gone` and a day of failures disable the endpoint. Nothing here sleeps: a retry is a
//! due time in the queue, so one slow endpoint holds up nothing but its own deliveries.

use crate::domain::audit::{actions, Actor, AuditEvent, Target};
use crate::domain::model::{AttemptRecord, DeliveryStatus, WebhookDelivery, WebhookEndpoint};
use crate::domain::sealing::SealingKey;
use crate::domain::webhooks::retry::{self, Attempt, Verdict, DISABLE_AFTER_FAILING};
use crate::domain::webhooks::signature_header;
use crate::ports::bus::Bus;
use crate::ports::store::{ClaimLimit, HealthChange, InFlight, Store};
use crate::ports::webhook_transport::{OutboundRequest, Outcome, WebhookTransport, DELIVERY_TIMEOUT};
use crate::services::webhooks::signing_secrets;
use crate::Result;
use futures_util::stream::FuturesUnordered;
use futures_util::StreamExt;
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::time::{Duration, Instant};

/// How long a claimed delivery is leased to its worker: longer than an attempt can take, so a live
/// worker never loses it, short enough that a dead worker's deliveries come back soon.
pub const LEASE: Duration = Duration::from_secs(60);

/// POSTs in flight at once per worker.
pub const CONCURRENT_ATTEMPTS: usize = 32;

/// POSTs in flight at once per app and worker: an app whose endpoints are all slow or dead holds at most
/// half of the [`CONCURRENT_ATTEMPTS`], so other apps' deliveries go on at once.
pub const ATTEMPTS_PER_APP: usize = CONCURRENT_ATTEMPTS / 2;

/// POSTs in flight at once per endpoint and worker, likewise within an app. An endpoint that is failing
/// gets one at a time (a probe) until one is delivered: its backlog then waits in the queue instead of
/// holding slots with attempts that would time out.
pub const ATTEMPTS_PER_ENDPOINT: usize = 8;

/// The most deliveries one [`Deliverer::deliver_due`] takes: even if every attempt runs to its timeout,
/// the last one starts well inside the lease. (A result recorded after the lease anyway is refused by
/// the queue.)
pub const MAX_CLAIM: usize = CONCURRENT_ATTEMPTS * 4;

/// How often an idle [`Deliverer::run`] looks for due deliveries (it also wakes when told that
/// deliveries were queued, and after every attempt).
pub const POLL_INTERVAL: Duration = Duration::from_millis(200);

/// What a [`Deliverer::run`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct RunReport {
    /// Attempts made.
    pub attempts: usize,
    /// Of them, deliveries that arrived.
    pub delivered: usize,
    /// Attempts that could not be recorded (the store was away); their deliveries come back when the
    /// lease ends.
    pub errors: usize,
}

/// What one attempt decided, for the caller's logs and tests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attempted {
    /// The delivery.
    pub delivery_id: String,
    /// The verdict on it.
    pub verdict: Verdict,
    /// Why the endpoint was disabled by this attempt (`gone`, `failing`), if it was.
    pub disabled: Option<&'static str>,
}

/// Delivers due webhook events.
pub struct Deliverer<'a> {
    /// The queue and the endpoints.
    pub store: &'a dyn Store,
    /// Where the operator is told (an audit event) when an endpoint is disabled.
    pub bus: &'a dyn Bus,
    /// Opens the endpoints' signing secrets.
    pub key: &'a SealingKey,
    /// Sends the POSTs.
    pub transport: &'a dyn WebhookTransport,
    /// The waits between attempts.
    pub schedule: &'a [Duration],
}

impl Deliverer<'_> {
    /// Takes up to `limit` (at most [`MAX_CLAIM`]) deliveries due at `now()`, at most
    /// [`ATTEMPTS_PER_APP`] per app and [`ATTEMPTS_PER_ENDPOINT`] per endpoint (one per failing endpoint),
    /// and attempts them, [`CONCURRENT_ATTEMPTS`] at a time.
    pub async fn deliver_due(&self, limit: usize, now: impl Fn() -> i64) -> Result<Vec<Attempted>> {
        let failing: HashSet<String> = self.store.failing_webhook_ids().await?.into_iter().collect();
        let claimed = self
            .claim(limit.min(MAX_CLAIM), &InFlight::default(), &failing, now())
            .await?;
        let attempts = futures_util::stream::iter(claimed.into_iter().map(|(delivery, endpoint)| {
            let now = &now;
            async move { self.attempt(&delivery, endpoint, now).await }
        }))
        .buffer_unordered(CONCURRENT_ATTEMPTS)
        .collect::<Vec<_>>()
        .await;
        attempts.into_iter().collect()
    }

    /// Delivers until `stop` resolves, then finishes the attempts in flight: claims due deliveries
    /// whenever a slot is free — after each attempt, when `wake` is notified (deliveries were queued),
    /// and every [`POLL_INTERVAL`] — keeping [`CONCURRENT_ATTEMPTS`] in flight, at most
    /// [`ATTEMPTS_PER_APP`] per app and [`ATTEMPTS_PER_ENDPOINT`] per endpoint (one while it fails). A
    /// store error is logged and the loop goes on.
    pub async fn run(
        &self,
        now: impl Fn() -> i64,
        wake: &tokio::sync::Notify,
        stop: impl Future<Output = ()>,
    ) -> RunReport {
        let mut report = RunReport::default();
        let mut attempts = FuturesUnordered::new();
        let mut in_flight = InFlight::default();
        // Endpoints that are failing: those the store says are when the run starts, then as each attempt
        // and each endpoint read at a claim says.
        let mut failing: HashSet<String> = match self.store.failing_webhook_ids().await {
            Ok(ids) => ids.into_iter().collect(),
            Err(e) => {
                tracing::error!(error = %e, "reading the failing webhook endpoints failed; their first claim is not probed");
                HashSet::new()
            }
        };
        let mut stopping = false;
        tokio::pin!(stop);
        loop {
            if !stopping && attempts.len() < CONCURRENT_ATTEMPTS {
                // The attempts in flight are driven while the claim runs: one that holds a store
                // connection must finish to free it, or a claim waiting for a connection never would.
                let (counts, probing) = (in_flight.clone(), failing.clone());
                let claim = self.claim(CONCURRENT_ATTEMPTS - attempts.len(), &counts, &probing, now());
                tokio::pin!(claim);
                let claimed = loop {
                    tokio::select! {
                        claimed = &mut claim => break claimed,
                        Some((delivery, attempted)) = attempts.next(), if !attempts.is_empty() => {
                            settle(&mut in_flight, &mut failing, &mut report, &delivery, attempted);
                        }
                    }
                };
                let claimed = claimed.unwrap_or_else(|e| {
                    tracing::error!(error = %e, "claiming due webhook deliveries failed");
                    Vec::new()
                });
                for (delivery, endpoint) in claimed {
                    in_flight.add(&delivery.app_id, &delivery.endpoint_id);
                    // A disabled or removed endpoint's deliveries are given up without a request: no
                    // reason to pace them.
                    if endpoint
                        .as_ref()
                        .is_some_and(|e| e.enabled && e.failing_since.is_some())
                    {
                        failing.insert(delivery.endpoint_id.clone());
                    } else {
                        failing.remove(&delivery.endpoint_id);
                    }
                    let now = &now;
                    attempts.push(async move {
                        let attempted = self.attempt(&delivery, endpoint, now).await;
                        (delivery, attempted)
                    });
                }
            }
            if stopping && attempts.is_empty() {
                return report;
            }
            tokio::select! {
                Some((delivery, attempted)) = attempts.next(), if !attempts.is_empty() => {
                    settle(&mut in_flight, &mut failing, &mut report, &delivery, attempted);
                }
                _ = tokio::time::sleep(POLL_INTERVAL), if !stopping => {}
                _ = wake.notified(), if !stopping => {}
                _ = &mut stop, if !stopping => stopping = true,
            }
        }
    }

    /// Leases up to `total` due deliveries within the per-app and per-endpoint limits, counting those
    /// the caller has `in_flight` (one per endpoint that is `failing`), each with its endpoint as it is
    /// now (`None` when it was removed), read once per endpoint rather than once per delivery. An
    /// endpoint that cannot be read leaves its deliveries leased, to come back when the lease ends, and
    /// the others go ahead.
    async fn claim(
        &self,
        total: usize,
        in_flight: &InFlight,
        failing: &HashSet<String>,
        at: i64,
    ) -> Result<Vec<(WebhookDelivery, Option<WebhookEndpoint>)>> {
        let limit = ClaimLimit {
            total,
            per_app: ATTEMPTS_PER_APP,
            per_endpoint: ATTEMPTS_PER_ENDPOINT,
            probing: failing,
            in_flight,
        };
        let lease_until = at + LEASE.as_millis() as i64;
        let claimed = self.store.claim_due_webhook_deliveries(at, lease_until, limit).await?;
        let mut endpoints: HashMap<(String, String), Option<Option<WebhookEndpoint>>> = HashMap::new();
        for delivery in &claimed {
            let key = (delivery.app_id.clone(), delivery.endpoint_id.clone());
            if let std::collections::hash_map::Entry::Vacant(slot) = endpoints.entry(key) {
                let found = self.store.find_webhook(&delivery.app_id, &delivery.endpoint_id).await;
                if let Err(e) = &found {
                    tracing::error!(error = %e, webhook_id = %delivery.endpoint_id,
                        "reading a webhook endpoint failed; its claimed deliveries wait for their lease to end");
                }
                slot.insert(found.ok());
            }
        }
        Ok(claimed
            .into_iter()
            .filter_map(|delivery| {
                let endpoint = endpoints[&(delivery.app_id.clone(), delivery.endpoint_id.clone())].clone()?;
                Some((delivery, endpoint))
            })
            .collect())
    }

    /// One attempt at a delivery as claimed (its `due_at` is the end of the caller's lease) to its
    /// `endpoint` as read at the claim, recorded in the queue.
    async fn attempt(
        &self,
        delivery: &WebhookDelivery,
        endpoint: Option<WebhookEndpoint>,
        now: &impl Fn() -> i64,
    ) -> Result<Attempted> {
        let endpoint = match endpoint {
            Some(endpoint) if endpoint.enabled => endpoint,
            found => {
                let why = if found.is_some() {
                    "endpoint disabled"
                } else {
                    "endpoint removed"
                };
                return self.give_up(delivery, why, now()).await;
            }
        };
        let started = Instant::now();
        let sent_at = now();
        let Ok(request) = self.request(&endpoint, delivery, sent_at) else {
            // Retrying cannot help: the secret was sealed under another key.
            let why = "its signing secret does not open with this deployment's CAAS_SECRETS_KEY";
            return self.give_up(delivery, why, sent_at).await;
        };
        let outcome = self.transport.post(&request).await;
        let latency_ms = started.elapsed().as_millis() as i64;
        let finished_at = now();
        let (attempt, last_status, last_error) = match &outcome {
            Outcome::Answered { status, retry_after } => {
                let wait = retry_after
                    .as_deref()
                    .and_then(|v| retry::parse_retry_after(v, finished_at / 1000));
                let attempt = Attempt::Answered {
                    status: *status,
                    retry_after: wait,
                };
                (attempt, Some(*status), None)
            }
            Outcome::TimedOut => (
                Attempt::TimedOut,
                None,
                Some(format!("no answer within {} s", DELIVERY_TIMEOUT.as_secs())),
            ),
            Outcome::Unreachable(why) => (Attempt::Unreachable, None, Some(why.clone())),
        };
        let attempts = delivery.attempts + 1;
        let verdict = retry::verdict(attempts as usize, attempt, self.schedule);
        let (status, due_at, finished) = match verdict {
            Verdict::Delivered => (DeliveryStatus::Delivered, finished_at, Some(finished_at)),
            Verdict::RetryAfter(wait) => (DeliveryStatus::Pending, finished_at + wait.as_millis() as i64, None),
            Verdict::Exhausted | Verdict::Refused | Verdict::Gone => {
                (DeliveryStatus::Dead, finished_at, Some(finished_at))
            }
        };
        let record = AttemptRecord {
            attempts,
            status,
            due_at,
            last_status,
            last_error,
            last_latency_ms: latency_ms,
            finished_at: finished,
        };
        let recorded = self
            .store
            .record_webhook_attempt(&delivery.app_id, &delivery.id, delivery.due_at, &record)
            .await?;
        if !recorded {
            tracing::warn!(delivery_id = %delivery.id, "a webhook attempt outlived its lease; the delivery's newer result stands");
        }
        let disabled = self.update_health(&endpoint, verdict, finished_at).await?;
        if let Some(reason) = disabled {
            self.tell_operator(&endpoint, reason, delivery).await;
        }
        Ok(Attempted {
            delivery_id: delivery.id.clone(),
            verdict,
            disabled,
        })
    }

    /// The signed POST for `delivery` at `sent_at` (Unix ms).
    fn request(&self, endpoint: &WebhookEndpoint, delivery: &WebhookDelivery, sent_at: i64) -> Result<OutboundRequest> {
        let secrets = signing_secrets(self.key, endpoint, sent_at)?;
        let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
        let timestamp = sent_at / 1000;
        let body = delivery.payload.as_bytes();
        let signature = signature_header(&secrets, &delivery.event_id, timestamp, body)?;
        Ok(OutboundRequest {
            url: endpoint.url.clone(),
            headers: vec![
                ("content-type".into(), "application/json".into()),
                ("webhook-id".into(), delivery.event_id.clone()),
                ("webhook-timestamp".into(), timestamp.to_string()),
                ("webhook-signature".into(), signature),
                ("x-correlation-id".into(), delivery.correlation_id.clone()),
            ],
            body: body.to_vec(),
        })
    }

    /// Records in the audit trail that the platform disabled `endpoint` (the operator's notice); a
    /// failure is logged, the endpoint stays disabled either way.
    async fn tell_operator(&self, endpoint: &WebhookEndpoint, reason: &str, delivery: &WebhookDelivery) {
        let event = AuditEvent::new(
            &endpoint.app_id,
            actions::WEBHOOK_DISABLED,
            Actor::system("webhooks"),
            Target::new("webhook", &endpoint.id),
            &delivery.correlation_id,
        )
        .with_details(serde_json::json!({"reason": reason, "url": endpoint.url, "delivery_id": delivery.id}));
        if let Err(e) = event.emit(self.bus).await {
            tracing::error!(error = %e, webhook_id = %endpoint.id, "recording a disabled webhook in the audit trail failed");
        }
        tracing::warn!(webhook_id = %endpoint.id, app_id = %endpoint.app_id, reason, "webhook endpoint disabled");
    }

    /// Dead-letters a delivery whose endpoint is gone or disabled, without an attempt.
    async fn give_up(&self, delivery: &WebhookDelivery, why: &str, at: i64) -> Result<Attempted> {
        let record = AttemptRecord {
            attempts: delivery.attempts,
            status: DeliveryStatus::Dead,
            due_at: at,
            last_status: None,
            last_error: Some(why.to_owned()),
            last_latency_ms: 0,
            finished_at: Some(at),
        };
        self.store
            .record_webhook_attempt(&delivery.app_id, &delivery.id, delivery.due_at, &record)
            .await?;
        Ok(Attempted {
            delivery_id: delivery.id.clone(),
            verdict: Verdict::Refused,
            disabled: None,
        })
    }

    /// Tells the store what the attempt said about the endpoint (a success only when the endpoint
    /// was failing as read): the stored endpoint decides whether a failure streak starts or ends and
    /// whether the endpoint is disabled — on `410 Gone`, or after [`DISABLE_AFTER_FAILING`] of failures
    /// in a row. The reason when this attempt disabled it.
    async fn update_health(
        &self,
        endpoint: &WebhookEndpoint,
        verdict: Verdict,
        at: i64,
    ) -> Result<Option<&'static str>> {
        let change = match verdict {
            Verdict::Delivered if endpoint.failing_since.is_some() => HealthChange::Recovered,
            // A refusal is an answer about the event, not the endpoint being down.
            Verdict::Delivered | Verdict::Refused => return Ok(None),
            Verdict::Gone => HealthChange::Gone,
            Verdict::RetryAfter(_) | Verdict::Exhausted => HealthChange::Failed {
                at,
                disable_if_since: at - DISABLE_AFTER_FAILING.as_millis() as i64,
            },
        };
        self.store
            .change_webhook_health(&endpoint.app_id, &endpoint.id, change)
            .await
    }
}

/// Books a finished attempt: its app and endpoint have one less in flight, the endpoint is failing or
/// not as the attempt says, and the report counts it.
fn settle(
    in_flight: &mut InFlight,
    failing: &mut HashSet<String>,
    report: &mut RunReport,
    delivery: &WebhookDelivery,
    attempted: Result<Attempted>,
) {
    in_flight.remove(&delivery.app_id, &delivery.endpoint_id);
    report.attempts += 1;
    match attempted {
        Ok(attempted) => {
            match attempted.verdict {
                Verdict::Delivered => {
                    failing.remove(&delivery.endpoint_id);
                }
                Verdict::RetryAfter(_) | Verdict::Exhausted | Verdict::Gone => {
                    failing.insert(delivery.endpoint_id.clone());
                }
                Verdict::Refused => {}
            }
            report.delivered += usize::from(attempted.verdict == Verdict::Delivered);
        }
        Err(e) => {
            report.errors += 1;
            tracing::error!(error = %e, endpoint_id = %delivery.endpoint_id, "recording a webhook attempt failed");
        }
    }
}

#[cfg(test)]
#[path = "webhook_delivery_tests.rs"]
mod tests;
