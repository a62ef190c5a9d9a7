//! Webhook endpoints (`webhooks`, indexed by app) and their delivery queue (`webhook_deliveries`,
//! indexed by due time and by endpoint) in the MongoDB store.

use super::{from_document, insert_many_idempotent, is_duplicate_key, to_document, MongoStore};
use crate::domain::model::{AttemptRecord, WebhookDelivery, WebhookEndpoint};
use crate::ports::store::{ClaimLimit, HealthChange, InsertOutcome, WebhookDeliveryStore, WebhookStore};
use crate::{Error, Result};
use async_trait::async_trait;
use futures_util::TryStreamExt;
use mongodb::bson::{self, doc, Document};
use mongodb::options::ReturnDocument;

/// Rounds one claim may take (each leases at least one delivery or fills an endpoint, or ends the claim).
const MAX_CLAIM_ROUNDS: usize = 8;

#[async_trait]
impl WebhookStore for MongoStore {
    async fn insert_webhook(&self, endpoint: &WebhookEndpoint, max_per_app: usize) -> Result<()> {
        let count = self
            .collection("webhooks")
            .count_documents(doc! {"app_id": &endpoint.app_id})
            .await?;
        if usize::try_from(count).unwrap_or(usize::MAX) >= max_per_app {
            return Err(Error::LimitExceeded(format!(
                "an app has at most {max_per_app} webhook endpoints"
            )));
        }
        match self.collection("webhooks").insert_one(to_document(endpoint)?).await {
            Ok(_) => Ok(()),
            Err(e) if is_duplicate_key(&e) => Err(Error::Conflict(format!("webhook {} already exists", endpoint.id))),
            Err(e) => Err(e.into()),
        }
    }

    async fn find_webhook(&self, app_id: &str, id: &str) -> Result<Option<WebhookEndpoint>> {
        self.find_one_in("webhooks", doc! {"_id": id, "app_id": app_id}).await
    }

    async fn list_webhooks(&self, app_id: &str) -> Result<Vec<WebhookEndpoint>> {
        self.find_all(
            "webhooks",
            doc! {"app_id": app_id},
            doc! {"created_at": 1, "_id": 1},
            usize::MAX,
        )
        .await
    }

    async fn replace_webhook(&self, endpoint: &WebhookEndpoint, enablement: bool) -> Result<()> {
        let mut set = doc! {
            "url": &endpoint.url,
            "event_types": &endpoint.event_types,
            "description": &endpoint.description,
            "secret_sealed": &endpoint.secret_sealed,
            "previous_secret_sealed": endpoint.previous_secret_sealed.as_deref(),
            "previous_secret_until": endpoint.previous_secret_until,
            "updated_at": endpoint.updated_at,
        };
        if enablement {
            set.insert("enabled", endpoint.enabled);
            set.insert("disabled_reason", endpoint.disabled_reason.as_deref());
            set.insert("failing_since", endpoint.failing_since);
        }
        let replaced = self
            .collection("webhooks")
            .update_one(
                doc! {"_id": &endpoint.id, "app_id": &endpoint.app_id},
                doc! {"$set": set},
            )
            .await?;
        if replaced.matched_count == 0 {
            return Err(Error::NotFound(format!("webhook {} not found", endpoint.id)));
        }
        Ok(())
    }

    async fn delete_webhook(&self, app_id: &str, id: &str) -> Result<bool> {
        let deleted = self
            .collection("webhooks")
            .delete_one(doc! {"_id": id, "app_id": app_id})
            .await?;
        Ok(deleted.deleted_count > 0)
    }

    async fn change_webhook_health(
        &self,
        app_id: &str,
        id: &str,
        change: HealthChange,
    ) -> Result<Option<&'static str>> {
        // Each step is one conditional update, so the stored endpoint decides: a streak starts once, and
        // of workers disabling the endpoint at once only the one whose update changed it is told so.
        let collection = self.collection("webhooks");
        let endpoint = doc! {"_id": id, "app_id": app_id};
        let disable_when = match change {
            HealthChange::Recovered => {
                collection
                    .update_one(
                        doc! {"_id": id, "app_id": app_id, "failing_since": {"$ne": null}},
                        doc! {"$set": {"failing_since": null}},
                    )
                    .await?;
                return Ok(None);
            }
            HealthChange::Failed { at, disable_if_since } => {
                collection
                    .update_one(
                        doc! {"_id": id, "app_id": app_id, "failing_since": null},
                        doc! {"$set": {"failing_since": at}},
                    )
                    .await?;
                doc! {"failing_since": {"$lte": disable_if_since}}
            }
            HealthChange::Gone => Document::new(),
        };
        let mut filter = endpoint;
        filter.insert("enabled", true);
        filter.extend(disable_when);
        let reason = change.disabling_reason();
        let updated = collection
            .update_one(filter, doc! {"$set": {"enabled": false, "disabled_reason": reason}})
            .await?;
        Ok(reason.filter(|_| updated.modified_count > 0))
    }

    async fn failing_webhook_ids(&self) -> Result<Vec<String>> {
        let failing: Vec<Document> = self
            .collection("webhooks")
            .find(doc! {"enabled": true, "failing_since": {"$ne": null}})
            .projection(doc! {"_id": 1})
            .await?
            .try_collect()
            .await?;
        Ok(failing
            .iter()
            .filter_map(|endpoint| endpoint.get_str("_id").ok().map(str::to_owned))
            .collect())
    }
}

#[async_trait]
impl WebhookDeliveryStore for MongoStore {
    async fn enqueue_webhook_deliveries(&self, deliveries: &[WebhookDelivery]) -> Result<InsertOutcome> {
        if deliveries.is_empty() {
            return Ok(InsertOutcome::default());
        }
        let documents = deliveries.iter().map(to_document).collect::<Result<Vec<_>>>()?;
        insert_many_idempotent(&self.collection("webhook_deliveries"), documents).await
    }

    async fn claim_due_webhook_deliveries(
        &self,
        now: i64,
        lease_until: i64,
        limit: ClaimLimit<'_>,
    ) -> Result<Vec<WebhookDelivery>> {
        // In rounds of three round trips, whatever the batch: read the earliest due candidates (leaving out
        // the endpoints at their limit), lease those within the limits with one update that re-checks each is
        // still due (so two workers never lease the same delivery), and read back what this claim's token
        // took. A round that fills an endpoint is followed by one without it, so one endpoint's backlog
        // never hides another endpoint's due deliveries.
        let collection = self.collection("webhook_deliveries");
        let mut claimed = Vec::new();
        let mut taken = limit.in_flight.clone();
        for _round in 0..MAX_CLAIM_ROUNDS {
            let room = limit.total.saturating_sub(claimed.len());
            if room == 0 {
                break;
            }
            let candidates: Vec<Document> = collection
                .find(doc! {"status": "pending", "due_at": {"$lte": now},
                "endpoint_id": {"$nin": limit.full_endpoints(&taken)},
                "app_id": {"$nin": limit.full_apps(&taken)}})
                .sort(doc! {"due_at": 1, "_id": 1})
                .limit(room as i64)
                .projection(doc! {"_id": 1, "app_id": 1, "endpoint_id": 1})
                .await?
                .try_collect()
                .await?;
            if candidates.is_empty() {
                break;
            }
            let mut picked: Vec<(&str, &str, &str)> = Vec::new();
            for candidate in &candidates {
                let (Ok(id), Ok(app), Ok(endpoint)) = (
                    candidate.get_str("_id"),
                    candidate.get_str("app_id"),
                    candidate.get_str("endpoint_id"),
                ) else {
                    continue;
                };
                if limit.admits(&taken, app, endpoint) {
                    taken.add(app, endpoint);
                    picked.push((id, app, endpoint));
                }
            }
            let ids: Vec<&str> = picked.iter().map(|(id, _, _)| *id).collect();
            let token = uuid::Uuid::new_v4().simple().to_string();
            collection
                .update_many(
                    doc! {"_id": {"$in": &ids}, "status": "pending", "due_at": {"$lte": now}},
                    doc! {"$set": {"due_at": lease_until, "claim": &token}},
                )
                .await?;
            let mut leased: Vec<WebhookDelivery> = self
                .find_all(
                    "webhook_deliveries",
                    doc! {"_id": {"$in": &ids}, "claim": &token},
                    doc! {"due_at": 1, "_id": 1},
                    usize::MAX,
                )
                .await?;
            // Earliest due first, as the candidates came (their `due_at` is now the lease's).
            leased.sort_by_key(|delivery| ids.iter().position(|id| *id == delivery.id));
            // What another worker leased first is not ours: its endpoint and app count one less.
            for (id, app, endpoint) in &picked {
                if !leased.iter().any(|delivery| delivery.id == *id) {
                    taken.remove(app, endpoint);
                }
            }
            claimed.extend(leased);
        }
        Ok(claimed)
    }

    async fn record_webhook_attempt(
        &self,
        app_id: &str,
        id: &str,
        lease_until: i64,
        record: &AttemptRecord,
    ) -> Result<bool> {
        let status = bson::to_bson(&record.status).map_err(|e| Error::Internal(format!("encoding status: {e}")))?;
        let updated = self
            .collection("webhook_deliveries")
            .update_one(
                doc! {"_id": id, "app_id": app_id, "status": "pending", "due_at": lease_until},
                doc! {"$set": {
                    "attempts": i64::from(record.attempts),
                    "status": status,
                    "due_at": record.due_at,
                    "last_status": record.last_status.map(i32::from),
                    "last_error": record.last_error.as_deref(),
                    "last_latency_ms": record.last_latency_ms,
                    "finished_at": record.finished_at,
                }},
            )
            .await?;
        Ok(updated.matched_count > 0)
    }

    async fn list_webhook_deliveries(
        &self,
        app_id: &str,
        endpoint_id: &str,
        limit: usize,
    ) -> Result<Vec<WebhookDelivery>> {
        self.find_all(
            "webhook_deliveries",
            doc! {"app_id": app_id, "endpoint_id": endpoint_id},
            doc! {"created_at": -1, "_id": -1},
            limit,
        )
        .await
    }

    async fn retry_webhook_delivery(
        &self,
        app_id: &str,
        endpoint_id: &str,
        id: &str,
        now: i64,
    ) -> Result<Option<WebhookDelivery>> {
        let retried = self
            .collection("webhook_deliveries")
            .find_one_and_update(
                doc! {"_id": id, "app_id": app_id, "endpoint_id": endpoint_id, "status": {"$ne": "pending"}},
                doc! {"$set": {"status": "pending", "due_at": now, "finished_at": null}},
            )
            .return_document(ReturnDocument::After)
            .await?;
        if let Some(document) = retried {
            return Ok(Some(from_document(document)?));
        }
        let pending: Option<WebhookDelivery> = self
            .find_one_in(
                "webhook_deliveries",
                doc! {"_id": id, "app_id": app_id, "endpoint_id": endpoint_id},
            )
            .await?;
        match pending {
            Some(_) => Err(WebhookDelivery::still_pending(id)),
            None => Ok(None),
        }
    }

    async fn purge_finished_webhook_deliveries(&self, before: i64) -> Result<u64> {
        let purged = self
            .collection("webhook_deliveries")
            .delete_many(doc! {"status": {"$ne": "pending"}, "finished_at": {"$lt": before}})
            .await?;
        Ok(purged.deleted_count)
    }
}
