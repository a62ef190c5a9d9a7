//! Webhook endpoints in the in-memory store.

use super::Change::Changed;
use super::MemoryStore;
use crate::domain::model::WebhookEndpoint;
use crate::ports::store::WebhookStore;
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

    async fn replace_webhook(&self, endpoint: &WebhookEndpoint) -> Result<()> {
        self.write(|tables| match tables.webhooks.get_mut(&endpoint.id) {
            Some(stored) if stored.app_id == endpoint.app_id => {
                *stored = endpoint.clone();
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
                Ok(super::Change::Unchanged(false))
            }
        })
    }
}
