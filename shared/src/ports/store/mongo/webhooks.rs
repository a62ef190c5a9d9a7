//! Webhook endpoints in the MongoDB store (`webhooks`, indexed by app).

use super::{is_duplicate_key, to_document, MongoStore};
use crate::domain::model::WebhookEndpoint;
use crate::ports::store::WebhookStore;
use crate::{Error, Result};
use async_trait::async_trait;
use mongodb::bson::doc;

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

    async fn replace_webhook(&self, endpoint: &WebhookEndpoint) -> Result<()> {
        let replaced = self
            .collection("webhooks")
            .replace_one(
                doc! {"_id": &endpoint.id, "app_id": &endpoint.app_id},
                to_document(endpoint)?,
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
}
