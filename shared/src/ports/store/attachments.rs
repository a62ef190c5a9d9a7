//! The attachments part of the store port.

use crate::domain::model::{Attachment, Message};
use crate::Result;
use async_trait::async_trait;

/// Attachments: recorded on upload, completed, linked to the message that carries them and deleted on
/// erasure.
#[async_trait]
pub trait AttachmentStore: Send + Sync {
    /// Records a new (pending) upload; `Conflict` when the id is taken.
    async fn insert_attachment(&self, attachment: &Attachment) -> Result<()>;
    /// The attachments among `ids` that exist in this app.
    async fn find_attachments(&self, app_id: &str, ids: &[String]) -> Result<Vec<Attachment>>;
    /// Marks an attachment complete with its thumbnail key, if any; completing it again changes nothing
    /// and returns the stored attachment. `NotFound` for an unknown one.
    async fn complete_attachment(
        &self,
        app_id: &str,
        attachment_id: &str,
        completed_at: i64,
        thumbnail_key: Option<&str>,
    ) -> Result<Attachment>;
    /// Records which message carries each of these messages' attachments (the first link stays);
    /// safe to repeat. Returns how many attachments were newly linked.
    async fn link_attachments(&self, messages: &[Message]) -> Result<usize>;
    /// How many of the user's uploads are still pending and were started at or after `since` (Unix ms).
    async fn count_pending_uploads(&self, app_id: &str, uploader_id: &str, since: i64) -> Result<u64>;
    /// Every attachment the user uploaded in this app, ordered by id (for export and erasure).
    async fn attachments_by_uploader(&self, app_id: &str, uploader_id: &str) -> Result<Vec<Attachment>>;
    /// Bytes the user's uploads in this app hold or reserve (pending and completed, sent or not): what
    /// the per-user storage quota counts.
    async fn uploaded_bytes(&self, app_id: &str, uploader_id: &str) -> Result<u64>;
    /// Up to `limit` of the app's uploads that no message carries and that were started before `before`
    /// (Unix ms), oldest first: abandoned or never sent, for the retention job to remove.
    async fn unsent_attachments_before(&self, app_id: &str, before: i64, limit: usize) -> Result<Vec<Attachment>>;
    /// Deletes these attachment records (the blobs are the caller's to delete); returns how many went.
    async fn delete_attachments(&self, app_id: &str, attachment_ids: &[String]) -> Result<usize>;
}
