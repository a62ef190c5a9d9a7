//! Attachments in the MongoDB store.

use super::{is_duplicate_key, number_of, to_document, MongoStore};
use crate::domain::model::{Attachment, Message};
use crate::ports::store::AttachmentStore;
use crate::{Error, Result};
use async_trait::async_trait;
use futures_util::TryStreamExt;
use mongodb::bson::{doc, Document};

#[async_trait]
impl AttachmentStore for MongoStore {
    async fn insert_attachment(&self, attachment: &Attachment) -> Result<()> {
        match self
            .collection("attachments")
            .insert_one(to_document(attachment)?)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_duplicate_key(&e) => {
                Err(Error::Conflict(format!("attachment {} already exists", attachment.id)))
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn find_attachments(&self, app_id: &str, ids: &[String]) -> Result<Vec<Attachment>> {
        let filter = doc! {"app_id": app_id, "_id": {"$in": ids}};
        self.find_all("attachments", filter, doc! {"_id": 1}, ids.len()).await
    }

    async fn complete_attachment(
        &self,
        app_id: &str,
        attachment_id: &str,
        completed_at: i64,
        thumbnail_key: Option<&str>,
    ) -> Result<Attachment> {
        let mut set = doc! {"status": "complete", "completed_at": completed_at};
        if let Some(thumbnail_key) = thumbnail_key {
            set.insert("thumbnail_key", thumbnail_key);
        }
        self.collection("attachments")
            .update_one(
                doc! {"_id": attachment_id, "app_id": app_id, "status": "pending"},
                doc! {"$set": set},
            )
            .await?;
        self.find_one_in("attachments", doc! {"_id": attachment_id, "app_id": app_id})
            .await?
            .ok_or_else(|| Error::NotFound(format!("attachment {attachment_id} not found")))
    }

    async fn link_attachments(&self, messages: &[Message]) -> Result<usize> {
        let mut linked = 0;
        for message in messages.iter().filter(|m| !m.attachments.is_empty()) {
            let ids: Vec<&str> = message.attachments.iter().map(|a| a.id.as_str()).collect();
            let result = self
                .collection("attachments")
                .update_many(
                    doc! {"app_id": &message.app_id, "_id": {"$in": ids}, "message_id": {"$exists": false}},
                    doc! {"$set": {"message_id": &message.id}},
                )
                .await?;
            linked += result.modified_count as usize;
        }
        Ok(linked)
    }

    async fn count_pending_uploads(&self, app_id: &str, uploader_id: &str, since: i64) -> Result<u64> {
        let filter = doc! {
            "app_id": app_id, "uploader_id": uploader_id, "status": "pending", "created_at": {"$gte": since},
        };
        Ok(self.collection("attachments").count_documents(filter).await?)
    }

    async fn attachments_by_uploader(&self, app_id: &str, uploader_id: &str) -> Result<Vec<Attachment>> {
        let filter = doc! {"app_id": app_id, "uploader_id": uploader_id};
        self.find_all("attachments", filter, doc! {"_id": 1}, usize::MAX).await
    }

    async fn uploaded_bytes(&self, app_id: &str, uploader_id: &str) -> Result<u64> {
        let pipeline = [
            doc! {"$match": {"app_id": app_id, "uploader_id": uploader_id}},
            doc! {"$group": {"_id": null, "bytes": {"$sum": "$size"}}},
        ];
        let groups: Vec<Document> = self
            .collection("attachments")
            .aggregate(pipeline)
            .await?
            .try_collect()
            .await?;
        let bytes = groups.first().and_then(|group| number_of(group, "bytes")).unwrap_or(0);
        Ok(u64::try_from(bytes).unwrap_or(0))
    }

    async fn unsent_attachments_before(&self, app_id: &str, before: i64, limit: usize) -> Result<Vec<Attachment>> {
        let filter = doc! {"app_id": app_id, "message_id": null, "created_at": {"$lt": before}};
        self.find_all("attachments", filter, doc! {"created_at": 1, "_id": 1}, limit)
            .await
    }

    async fn delete_attachments(&self, app_id: &str, attachment_ids: &[String]) -> Result<usize> {
        if attachment_ids.is_empty() {
            return Ok(0);
        }
        let deleted = self
            .collection("attachments")
            .delete_many(doc! {"app_id": app_id, "_id": {"$in": attachment_ids}})
            .await?;
        Ok(deleted.deleted_count as usize)
    }
}
