//! Apps in the in-memory store.

use super::Change::Changed;
use super::MemoryStore;
use crate::domain::model::{App, AppSettings};
use crate::ports::store::AppStore;
use crate::{Error, Result};
use async_trait::async_trait;

#[async_trait]
impl AppStore for MemoryStore {
    async fn insert_app(&self, app: &App) -> Result<()> {
        self.write(|tables| {
            if tables.apps.contains_key(&app.id) {
                return Err(Error::Conflict(format!("app {} already exists", app.id)));
            }
            tables.apps.insert(app.id.clone(), app.clone());
            Ok(Changed(()))
        })
    }

    async fn find_app(&self, app_id: &str) -> Result<Option<App>> {
        self.read(|tables| tables.apps.get(app_id).cloned())
    }

    async fn update_app_settings(&self, app_id: &str, settings: &AppSettings) -> Result<App> {
        self.write(|tables| {
            let app = tables
                .apps
                .get_mut(app_id)
                .ok_or_else(|| Error::NotFound(format!("app {app_id} not found")))?;
            app.settings = settings.clone();
            Ok(Changed(app.clone()))
        })
    }

    async fn replace_app_secret(&self, app_id: &str, secret_hash: &str) -> Result<App> {
        self.write(|tables| {
            let app = tables
                .apps
                .get_mut(app_id)
                .ok_or_else(|| Error::NotFound(format!("app {app_id} not found")))?;
            app.secret_hash = secret_hash.to_owned();
            Ok(Changed(app.clone()))
        })
    }

    async fn list_apps(&self) -> Result<Vec<App>> {
        let mut apps: Vec<App> = self.read(|tables| tables.apps.values().cloned().collect())?;
        apps.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(apps)
    }
}
