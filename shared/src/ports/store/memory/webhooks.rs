//! Webhook endpoints and their delivery queue in the in-memory store.

use super::Change::{Changed, Unchanged};
use super::MemoryStore;
use crate::domain::model::{AttemptRecord, DeliveryStatus, WebhookDelivery, WebhookEndpoint};
use crate::ports::store::{ClaimLimit, HealthChange, InsertOutcome, WebhookDeliveryStore, WebhookStore};
use crate::{Error, Result};
use async_trait::async_trait;

#[async_trait]
impl WebhookStore for MemoryStore {
    async fn insert_webhook(&self, endpoint: &WebhookEndpoint, max_per_app: usize) -> Result<()> {
        self.write(|tables| {
            let count = tables.webhooks.values().filter(|w| w.app_id == endpoint.app_id).count();
            if count >= max_per_app {
                return Err(Error::LimitExceeded(format!(
                    "an app has at most {max_per_app} webhook endpoints"
                )));
            }
            if tables.webhooks.contains_key(&endpoint.id) {
                return Err(Error::Conflict(format!("webhook {} already exists", endpoint.id)));
            }
            tables.webhooks.insert(endpoint.id.clone(), endpoint.clone());
            Ok(Changed(()))
        })
    }

    async fn find_webhook(&self, app_id: &str, id: &str) -> Result<Option<WebhookEndpoint>> {
        self.read(|tables| tables.webhooks.get(id).filter(|w| w.app_id == app_id).cloned())
    }

    async fn list_webhooks(&self, app_id: &str) -> Result<Vec<WebhookEndpoint>> {
        let mut listed: Vec<WebhookEndpoint> = self.read(|tables| {
            tables
                .webhooks
                .values()
                .filter(|w| w.app_id == app_id)
                .cloned()
                .collect()
        })?;
        listed.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(listed)
    }

    async fn replace_webhook(&self, endpoint: &WebhookEndpoint, enablement: bool) -> Result<()> {
        self.write(|tables| match tables.webhooks.get_mut(&endpoint.id) {
            Some(stored) if stored.app_id == endpoint.app_id => {
                let (enabled, disabled_reason, failing_since) = if enablement {
                    (
                        endpoint.enabled,
                        endpoint.disabled_reason.clone(),
                        endpoint.failing_since,
                    )
                } else {
                    (stored.enabled, stored.disabled_reason.clone(), stored.failing_since)
                };
                *stored = WebhookEndpoint {
                    enabled,
                    disabled_reason,
                    failing_since,
                    ..endpoint.clone()
                };
                Ok(Changed(()))
            }
            _ => Err(Error::NotFound(format!("webhook {} not found", endpoint.id))),
        })
    }

    async fn delete_webhook(&self, app_id: &str, id: &str) -> Result<bool> {
        self.write(|tables| {
            let found = tables.webhooks.get(id).is_some_and(|w| w.app_id == app_id);
            if found {
                tables.webhooks.remove(id);
                Ok(Changed(true))
            } else {
                Ok(Unchanged(false))
            }
        })
    }

    async fn change_webhook_health(
        &self,
        app_id: &str,
        id: &str,
        change: HealthChange,
    ) -> Result<Option<&'static str>> {
        self.write(|tables| {
            let Some(endpoint) = tables.webhooks.get_mut(id).filter(|e| e.app_id == app_id) else {
                return Ok(Unchanged(None));
            };
            let before = endpoint.clone();
            let disable = match change {
                HealthChange::Recovered => {
                    endpoint.failing_since = None;
                    false
                }
                HealthChange::Failed { at, disable_if_since } => {
                    let since = *endpoint.failing_since.get_or_insert(at);
                    since <= disable_if_since
                }
                HealthChange::Gone => true,
            };
            let mut disabled = None;
            if disable && endpoint.enabled {
                endpoint.enabled = false;
                endpoint.disabled_reason = change.disabling_reason().map(str::to_owned);
                disabled = change.disabling_reason();
            }
            Ok(if *endpoint == before {
                Unchanged(disabled)
            } else {
                Changed(disabled)
            })
        })
    }

    async fn failing_webhook_ids(&self) -> Result<Vec<String>> {
        self.read(|tables| {
            tables
                .webhooks
                .values()
                .filter(|endpoint| endpoint.enabled && endpoint.failing_since.is_some())
                .map(|endpoint| endpoint.id.clone())
                .collect()
        })
    }
}

#[async_trait]
impl WebhookDeliveryStore for MemoryStore {
    async fn enqueue_webhook_deliveries(&self, deliveries: &[WebhookDelivery]) -> Result<InsertOutcome> {
        self.write(|tables| {
            let mut outcome = InsertOutcome::default();
            for delivery in deliveries {
                if tables.webhook_deliveries.contains_key(&delivery.id) {
                    outcome.duplicates += 1;
                } else {
                    tables.webhook_deliveries.insert(delivery.id.clone(), delivery.clone());
                    outcome.inserted += 1;
                }
            }
            Ok(if outcome.inserted > 0 {
                Changed(outcome)
            } else {
                Unchanged(outcome)
            })
        })
    }

    async fn claim_due_webhook_deliveries(
        &self,
        now: i64,
        lease_until: i64,
        limit: ClaimLimit<'_>,
    ) -> Result<Vec<WebhookDelivery>> {
        self.write(|tables| {
            let mut due: Vec<&mut WebhookDelivery> = tables
                .webhook_deliveries
                .values_mut()
                .filter(|d| d.status == DeliveryStatus::Pending && d.due_at <= now)
                .collect();
            due.sort_by(|a, b| (a.due_at, &a.id).cmp(&(b.due_at, &b.id)));
            let mut taken = limit.in_flight.clone();
            let mut claimed = Vec::new();
            for delivery in due {
                if claimed.len() >= limit.total {
                    break;
                }
                if !limit.admits(&taken, &delivery.app_id, &delivery.endpoint_id) {
                    continue;
                }
                taken.add(&delivery.app_id, &delivery.endpoint_id);
                delivery.due_at = lease_until;
                claimed.push(delivery.clone());
            }
            Ok(if claimed.is_empty() {
                Unchanged(claimed)
            } else {
                Changed(claimed)
            })
        })
    }

    async fn record_webhook_attempt(
        &self,
        app_id: &str,
        id: &str,
        lease_until: i64,
        record: &AttemptRecord,
    ) -> Result<bool> {
        self.write(|tables| match tables.webhook_deliveries.get_mut(id) {
            Some(delivery)
                if delivery.app_id == app_id
                    && delivery.status == DeliveryStatus::Pending
                    && delivery.due_at == lease_until =>
            {
                delivery.attempts = record.attempts;
                delivery.status = record.status;
                delivery.due_at = record.due_at;
                delivery.last_status = record.last_status;
                delivery.last_error = record.last_error.clone();
                delivery.last_latency_ms = Some(record.last_latency_ms);
                delivery.finished_at = record.finished_at;
                Ok(Changed(true))
            }
            _ => Ok(Unchanged(false)),
        })
    }

    async fn list_webhook_deliveries(
        &self,
        app_id: &str,
        endpoint_id: &str,
        limit: usize,
    ) -> Result<Vec<WebhookDelivery>> {
        let mut listed: Vec<WebhookDelivery> = self.read(|tables| {
            tables
                .webhook_deliveries
                .values()
                .filter(|d| d.app_id == app_id && d.endpoint_id == endpoint_id)
                .cloned()
                .collect()
        })?;
        listed.sort_by(|a, b| (b.created_at, &b.id).cmp(&(a.created_at, &a.id)));
        listed.truncate(limit);
        Ok(listed)
    }

    async fn retry_webhook_delivery(
        &self,
        app_id: &str,
        endpoint_id: &str,
        id: &str,
        now: i64,
    ) -> Result<Option<WebhookDelivery>> {
        self.write(|tables| match tables.webhook_deliveries.get_mut(id) {
            Some(delivery) if delivery.app_id == app_id && delivery.endpoint_id == endpoint_id => {
                if delivery.status == DeliveryStatus::Pending {
                    return Err(WebhookDelivery::still_pending(id));
                }
                delivery.status = DeliveryStatus::Pending;
                delivery.due_at = now;
                delivery.finished_at = None;
                Ok(Changed(Some(delivery.clone())))
            }
            _ => Ok(Unchanged(None)),
        })
    }

    async fn purge_finished_webhook_deliveries(&self, before: i64) -> Result<u64> {
        self.write(|tables| {
            let before_count = tables.webhook_deliveries.len();
            tables
                .webhook_deliveries
                .retain(|_, d| d.status == DeliveryStatus::Pending || d.finished_at.is_none_or(|at| at >= before));
            let purged = (before_count - tables.webhook_deliveries.len()) as u64;
            Ok(if purged > 0 { Changed(purged) } else { Unchanged(purged) })
        })
    }
}
