//! Attachments in the in-memory store.

use super::Change::{self, Changed};
use super::MemoryStore;
use crate::domain::model::{Attachment, AttachmentStatus, Message};
use crate::ports::store::AttachmentStore;
use crate::{Error, Result};
use async_trait::async_trait;

#[async_trait]
impl AttachmentStore for MemoryStore {
    async fn insert_attachment(&self, attachment: &Attachment) -> Result<()> {
        self.write(|tables| {
            if tables.attachments.contains_key(&attachment.id) {
                return Err(Error::Conflict(format!("attachment {} already exists", attachment.id)));
            }
            tables.attachments.insert(attachment.id.clone(), attachment.clone());
            Ok(Changed(()))
        })
    }

    async fn find_attachments(&self, app_id: &str, ids: &[String]) -> Result<Vec<Attachment>> {
        self.read(|tables| {
            ids.iter()
                .filter_map(|id| tables.attachments.get(id))
                .filter(|a| a.app_id == app_id)
                .cloned()
                .collect()
        })
    }

    async fn complete_attachment(
        &self,
        app_id: &str,
        attachment_id: &str,
        completed_at: i64,
        thumbnail_key: Option<&str>,
    ) -> Result<Attachment> {
        self.write(|tables| {
            let attachment = tables
                .attachments
                .get_mut(attachment_id)
                .filter(|a| a.app_id == app_id)
                .ok_or_else(|| Error::NotFound(format!("attachment {attachment_id} not found")))?;
            if attachment.status == AttachmentStatus::Pending {
                attachment.status = AttachmentStatus::Complete;
                attachment.completed_at = Some(completed_at);
                attachment.thumbnail_key = thumbnail_key.map(str::to_owned);
            }
            Ok(Changed(attachment.clone()))
        })
    }

    async fn link_attachments(&self, messages: &[Message]) -> Result<usize> {
        self.write(|tables| {
            let mut linked = 0;
            for message in messages {
                for reference in &message.attachments {
                    let stored = tables
                        .attachments
                        .get_mut(&reference.id)
                        .filter(|a| a.app_id == message.app_id && a.message_id.is_none());
                    if let Some(attachment) = stored {
                        attachment.message_id = Some(message.id.clone());
                        linked += 1;
                    }
                }
            }
            Ok(Change::when(linked > 0, linked))
        })
    }

    async fn count_pending_uploads(&self, app_id: &str, uploader_id: &str, since: i64) -> Result<u64> {
        self.read(|tables| {
            tables
                .attachments
                .values()
                .filter(|a| a.app_id == app_id && a.uploader_id == uploader_id)
                .filter(|a| a.status == AttachmentStatus::Pending && a.created_at >= since)
                .count() as u64
        })
    }

    async fn attachments_by_uploader(&self, app_id: &str, uploader_id: &str) -> Result<Vec<Attachment>> {
        let mut uploaded: Vec<Attachment> = self.read(|tables| {
            tables
                .attachments
                .values()
                .filter(|a| a.app_id == app_id && a.uploader_id == uploader_id)
                .cloned()
                .collect()
        })?;
        uploaded.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(uploaded)
    }

    async fn uploaded_bytes(&self, app_id: &str, uploader_id: &str) -> Result<u64> {
        self.read(|tables| {
            tables
                .attachments
                .values()
                .filter(|a| a.app_id == app_id && a.uploader_id == uploader_id)
                .map(|a| a.size)
                .sum()
        })
    }

    async fn unsent_attachments_before(&self, app_id: &str, before: i64, limit: usize) -> Result<Vec<Attachment>> {
        let mut unsent: Vec<Attachment> = self.read(|tables| {
            tables
                .attachments
                .values()
                .filter(|a| a.app_id == app_id && a.message_id.is_none() && a.created_at < before)
                .cloned()
                .collect()
        })?;
        unsent.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        unsent.truncate(limit);
        Ok(unsent)
    }

    async fn delete_attachments(&self, app_id: &str, attachment_ids: &[String]) -> Result<usize> {
        self.write(|tables| {
            let before = tables.attachments.len();
            tables
                .attachments
                .retain(|id, a| a.app_id != app_id || !attachment_ids.contains(id));
            Ok(Changed(before - tables.attachments.len()))
        })
    }
}
