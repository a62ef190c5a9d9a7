//! Retention: messages older than an app's `retention.message_days` are deleted for good, with their
//! reactions and attachments, except what an active legal hold covers. Run on a schedule by the
//! `enforce-retention` function (an EventBridge Schedule in the template) and on demand by an operator.
//!
//! MongoDB and blob storage are cleaned here; a `message.purged` event per message (carrying its
//! tombstone) tells the search index and conversation summaries, whose writers own them.
//!
//! Every app, whatever its policy, also loses the uploads no message carries once they are
//! [`UNSENT_UPLOAD_TTL_MS`] old (abandoned, or completed and never sent): they would otherwise hold
//! storage, and count against their uploader's quota, for ever.

use crate::Api;
use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::{Extension, Json};
use caas_shared::domain::audit::{actions, Actor, AuditEvent, Target};
use caas_shared::domain::correlation::CorrelationId;
use caas_shared::domain::events::{topics, EventHeaders, MessageEvent};
use caas_shared::domain::model::{App, Message};
use caas_shared::ports::blob::Blobs;
use caas_shared::ports::bus::Bus;
use caas_shared::ports::store::{RetentionExceptions, Store};
use caas_shared::{now_ms, Result};
use futures_util::future::try_join_all;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

const DAY_MS: i64 = 24 * 3600 * 1000;
/// How long an upload no message carries is kept (a day: far longer than any client takes between
/// completing an upload and sending the message, and persisting it links the two).
pub const UNSENT_UPLOAD_TTL_MS: i64 = DAY_MS;
/// Messages purged per round trip.
const PAGE: usize = 500;
/// Purge events published at once (each waits for the broker).
const ANNOUNCE_CONCURRENCY: usize = 64;

/// What one run did for one app.
#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct RetentionReport {
    pub app_id: String,
    pub messages_purged: usize,
    pub attachments_deleted: usize,
    /// Uploads no message carries, removed after [`UNSENT_UPLOAD_TTL_MS`].
    pub unsent_uploads_deleted: usize,
}

/// The ports a retention run needs.
pub struct Retention<'a> {
    pub store: &'a dyn Store,
    pub bus: &'a dyn Bus,
    pub blobs: &'a dyn Blobs,
}

impl Retention<'_> {
    /// Applies every app's policy (or just `only`'s).
    pub async fn run(&self, only: Option<&str>, correlation_id: &str) -> Result<Vec<RetentionReport>> {
        let apps = match only {
            Some(app_id) => self.store.find_app(app_id).await?.into_iter().collect(),
            None => self.store.list_apps().await?,
        };
        let mut reports = Vec::new();
        for app in apps {
            let unsent_uploads_deleted = self
                .expire_unsent_uploads(&app.id, now_ms() - UNSENT_UPLOAD_TTL_MS)
                .await?;
            match self.apply(&app, correlation_id).await? {
                Some(report) => reports.push(RetentionReport {
                    unsent_uploads_deleted,
                    ..report
                }),
                None if unsent_uploads_deleted > 0 => reports.push(RetentionReport {
                    app_id: app.id.clone(),
                    unsent_uploads_deleted,
                    ..RetentionReport::default()
                }),
                None => {}
            }
        }
        Ok(reports)
    }

    /// Removes the app's uploads no message carries that were started before `before` (their blobs and
    /// records); returns how many.
    pub async fn expire_unsent_uploads(&self, app_id: &str, before: i64) -> Result<usize> {
        let mut deleted = 0;
        loop {
            let unsent = self.store.unsent_attachments_before(app_id, before, PAGE).await?;
            if unsent.is_empty() {
                break;
            }
            let keys: Vec<String> = unsent.iter().flat_map(|a| a.blob_keys()).collect();
            self.blobs.delete(&keys).await?;
            let ids: Vec<String> = unsent.iter().map(|a| a.id.clone()).collect();
            deleted += self.store.delete_attachments(app_id, &ids).await?;
            if unsent.len() < PAGE {
                break;
            }
        }
        if deleted > 0 {
            tracing::info!(app_id, deleted, "unsent uploads expired");
        }
        Ok(deleted)
    }

    /// Applies one app's policy; `None` when it keeps messages forever.
    async fn apply(&self, app: &App, correlation_id: &str) -> Result<Option<RetentionReport>> {
        let Some(days) = app.settings.retention.message_days else {
            return Ok(None);
        };
        let cutoff = now_ms() - i64::from(days) * DAY_MS;
        let except = RetentionExceptions::from_holds(&self.store.active_holds(&app.id).await?);
        let mut report = RetentionReport {
            app_id: app.id.clone(),
            ..RetentionReport::default()
        };
        loop {
            let expired = self
                .store
                .messages_created_before(&app.id, cutoff, &except, PAGE)
                .await?;
            if expired.is_empty() {
                break;
            }
            report.attachments_deleted += self.delete_attachments(&app.id, &expired).await?;
            let ids: Vec<String> = expired.iter().map(|m| m.id.clone()).collect();
            report.messages_purged += self.store.purge_messages(&app.id, &ids).await?;
            for chunk in expired.chunks(ANNOUNCE_CONCURRENCY) {
                try_join_all(
                    chunk
                        .iter()
                        .map(|message| self.announce(message.clone(), correlation_id)),
                )
                .await?;
            }
        }
        if report.messages_purged > 0 {
            AuditEvent::new(
                &app.id,
                actions::RETENTION_APPLIED,
                Actor::system("retention"),
                Target::new("app", &app.id),
                correlation_id,
            )
            .with_details(
                json!({"message_days": days, "cutoff": cutoff, "messages_purged": report.messages_purged,
                "attachments_deleted": report.attachments_deleted}),
            )
            .emit(self.bus)
            .await?;
        }
        tracing::info!(app_id = %app.id, purged = report.messages_purged, attachments = report.attachments_deleted, "retention applied");
        Ok(Some(report))
    }

    async fn delete_attachments(&self, app_id: &str, messages: &[Message]) -> Result<usize> {
        let ids: Vec<String> = messages
            .iter()
            .flat_map(|m| m.attachments.iter().map(|a| a.id.clone()))
            .collect();
        if ids.is_empty() {
            return Ok(0);
        }
        let attachments = self.store.find_attachments(app_id, &ids).await?;
        let keys: Vec<String> = attachments.iter().flat_map(|a| a.blob_keys()).collect();
        self.blobs.delete(&keys).await?;
        self.store.delete_attachments(app_id, &ids).await
    }

    /// Tells the index and the summaries that the message is gone.
    async fn announce(&self, message: Message, correlation_id: &str) -> Result<()> {
        let tombstone = message.into_tombstone(now_ms(), correlation_id);
        let (app_id, key) = (tombstone.app_id.clone(), tombstone.conversation_id.clone());
        let event = MessageEvent::Purged(tombstone);
        let headers = EventHeaders::for_message_event(&app_id, &event, correlation_id);
        self.bus.publish_json(topics::MESSAGES, &key, &headers, &event).await
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RunRequest {
    #[serde(default)]
    app_id: Option<String>,
}

/// `POST /compliance/retention/run`: runs retention now, for one app or all.
pub async fn run_now(
    State(api): Api,
    Extension(correlation_id): Extension<CorrelationId>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>> {
    let request: RunRequest = api.operator_request(&headers, body).await?;
    if let Some(app_id) = &request.app_id {
        api.app(app_id).await?;
    }
    let retention = Retention {
        store: api.store.as_ref(),
        bus: api.bus.as_ref(),
        blobs: api.blobs.as_ref(),
    };
    let apps = retention
        .run(request.app_id.as_deref(), correlation_id.as_str())
        .await?;
    Ok(Json(json!({"apps": apps})))
}

#[cfg(test)]
mod tests {
    use super::*;
    use caas_shared::domain::model::{Attachment, AttachmentStatus};
    use caas_shared::ports::blob::local::LocalBlobs;
    use caas_shared::ports::store::{AttachmentStore, MemoryStore};

    #[tokio::test]
    async fn uploads_no_message_carries_are_removed_once_old_enough() {
        let dir = std::env::temp_dir().join(format!("retention-{}", uuid::Uuid::new_v4().simple()));
        let blobs = LocalBlobs::new(dir.to_str().unwrap(), "http://127.0.0.1:1", "s").unwrap();
        let store = MemoryStore::new();
        let bus = caas_shared::ports::bus::connect("memory://").await.unwrap();
        let upload = |id: &str, created_at: i64, message_id: Option<&str>| Attachment {
            id: id.into(),
            app_id: "app".into(),
            conversation_id: "c".into(),
            uploader_id: "alice".into(),
            key: format!("app/{id}/original"),
            filename: "f.png".into(),
            content_type: "image/png".into(),
            size: 3,
            status: AttachmentStatus::Complete,
            created_at,
            completed_at: Some(created_at),
            thumbnail_key: None,
            message_id: message_id.map(str::to_owned),
            correlation_id: "c".into(),
        };
        let (old, sent, fresh) = (
            upload("old", 10, None),
            upload("sent", 10, Some("m")),
            upload("fresh", 100, None),
        );
        for attachment in [&old, &sent, &fresh] {
            store.insert_attachment(attachment).await.unwrap();
            blobs.put(&attachment.key, b"png".to_vec(), "image/png").await.unwrap();
        }
        let retention = Retention {
            store: &store,
            bus: bus.as_ref(),
            blobs: &blobs,
        };
        assert_eq!(retention.expire_unsent_uploads("app", 50).await.unwrap(), 1);
        let left = store
            .find_attachments("app", &["old".into(), "sent".into(), "fresh".into()])
            .await
            .unwrap();
        let mut ids: Vec<&str> = left.iter().map(|a| a.id.as_str()).collect();
        ids.sort();
        assert_eq!(ids, ["fresh", "sent"], "sent and recent uploads stay");
        assert_eq!(blobs.get(&old.key).await.unwrap(), None, "its blob is gone");
        assert!(blobs.get(&sent.key).await.unwrap().is_some());
        assert_eq!(
            store.uploaded_bytes("app", "alice").await.unwrap(),
            6,
            "its bytes are given back"
        );
        let _ = std::fs::remove_dir_all(dir);
    }
}
