//! The webhooks part of the store port: an app's endpoints.

use crate::domain::model::WebhookEndpoint;
use crate::Result;
use async_trait::async_trait;

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
    /// Replaces the stored endpoint (same app and id) with `endpoint`; `NotFound` when there is none.
    async fn replace_webhook(&self, endpoint: &WebhookEndpoint) -> Result<()>;
    /// Removes the app's endpoint; whether there was one.
    async fn delete_webhook(&self, app_id: &str, id: &str) -> Result<bool>;
}
