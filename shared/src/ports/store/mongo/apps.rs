//! Apps in the MongoDB store.

use super::{from_document, is_duplicate_key, to_document, MongoStore};
use crate::domain::model::{App, AppSettings};
use crate::ports::store::AppStore;
use crate::{Error, Result};
use async_trait::async_trait;
use mongodb::bson::{self, doc};
use mongodb::options::ReturnDocument;

#[async_trait]
impl AppStore for MongoStore {
    async fn insert_app(&self, app: &App) -> Result<()> {
        match self.collection("apps").insert_one(to_document(app)?).await {
            Ok(_) => Ok(()),
            Err(e) if is_duplicate_key(&e) => Err(Error::Conflict(format!("app {} already exists", app.id))),
            Err(e) => Err(e.into()),
        }
    }

    async fn find_app(&self, app_id: &str) -> Result<Option<App>> {
        self.find_one_in("apps", doc! {"_id": app_id}).await
    }

    async fn update_app_settings(&self, app_id: &str, settings: &AppSettings) -> Result<App> {
        let settings = bson::to_document(settings).map_err(|e| Error::Internal(format!("encoding settings: {e}")))?;
        self.collection("apps")
            .update_one(doc! {"_id": app_id}, doc! {"$set": {"settings": settings}})
            .await?;
        self.find_app(app_id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("app {app_id} not found")))
    }

    async fn replace_app_secret(&self, app_id: &str, secret_hash: &str) -> Result<App> {
        self.collection("apps")
            .find_one_and_update(doc! {"_id": app_id}, doc! {"$set": {"secret_hash": secret_hash}})
            .return_document(ReturnDocument::After)
            .await?
            .map(from_document)
            .transpose()?
            .ok_or_else(|| Error::NotFound(format!("app {app_id} not found")))
    }

    async fn list_apps(&self) -> Result<Vec<App>> {
        self.find_all("apps", doc! {}, doc! {"_id": 1}, usize::MAX).await
    }
}
