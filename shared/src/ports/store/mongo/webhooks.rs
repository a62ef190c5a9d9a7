//! Webhook endpoints (`webhooks`, indexed by app) and their delivery queue (`webhook_deliveries`,
//! indexed by due time and by endpoint) in the MongoDB store.

use super::{from_document, insert_many_idempotent, is_duplicate_key, to_document, MongoStore};
use crate::domain::model::{AttemptRecord, WebhookDelivery, WebhookEndpoint};
use crate::ports::store::{ClaimLimit, InsertOutcome, WebhookDeliveryStore, WebhookStore};
use crate::{Error, Result};
use async_trait::async_trait;
use mongodb::bson::{self, doc};
use mongodb::options::ReturnDocument;

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

    async fn set_webhook_health(
        &self,
        app_id: &str,
        id: &str,
        failing_since: Option<i64>,
        disabled_reason: Option<&str>,
    ) -> Result<bool> {
        let mut set = doc! {"failing_since": failing_since};
        if let Some(reason) = disabled_reason {
            set.insert("enabled", false);
            set.insert("disabled_reason", reason);
        }
        let updated = self
            .collection("webhooks")
            .update_one(doc! {"_id": id, "app_id": app_id}, doc! {"$set": set})
            .await?;
        Ok(updated.matched_count > 0)
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
        // One at a time: each claim is a single-document atomic update, so two workers never lease the
        // same delivery (MongoDB has no atomic "update the first N").
        let mut claimed = Vec::new();
        let mut taken = limit.in_flight.clone();
        while claimed.len() < limit.total {
            let next = self
                .collection("webhook_deliveries")
                .find_one_and_update(
                    doc! {"status": "pending", "due_at": {"$lte": now},
                    "endpoint_id": {"$nin": limit.full_endpoints(&taken)}},
                    doc! {"$set": {"due_at": lease_until}},
                )
                .sort(doc! {"due_at": 1})
                .return_document(ReturnDocument::After)
                .await?;
            let Some(document) = next else { break };
            let delivery: WebhookDelivery = from_document(document)?;
            *taken.entry(delivery.endpoint_id.clone()).or_default() += 1;
            claimed.push(delivery);
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
            Some(_) => Err(Error::Conflict(format!(
                "delivery {id} is still pending; it is retried on its own"
            ))),
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
