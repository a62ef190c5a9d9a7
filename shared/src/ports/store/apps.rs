//! The apps part of the store port: the tenants, their settings and their secret.

use crate::domain::model::{App, AppSettings};
use crate::Result;
use async_trait::async_trait;

/// Apps (the tenants), their settings and their secret.
#[async_trait]
pub trait AppStore: Send + Sync {
    /// Stores a new app; `Conflict` when the id is taken.
    async fn insert_app(&self, app: &App) -> Result<()>;
    /// The app with this id; `None` when there is none.
    async fn find_app(&self, app_id: &str) -> Result<Option<App>>;
    /// Replaces the app's settings; `NotFound` for an unknown app.
    async fn update_app_settings(&self, app_id: &str, settings: &AppSettings) -> Result<App>;
    /// Replaces the app's secret hash (a rotation); `NotFound` for an unknown app.
    async fn replace_app_secret(&self, app_id: &str, secret_hash: &str) -> Result<App>;
    /// Every app, ordered by id; the retention job walks them all.
    async fn list_apps(&self) -> Result<Vec<App>>;
}
