//! Retention: messages older than an app's `retention.message_days` are deleted for good, with their
//! reactions and attachments, except what an active legal hold covers. Run on a schedule by the
//! `enforce-retention` function (an EventBridge Schedule in the template) and on demand by an operator.
//!
//! MongoDB and blob storage are cleaned here; a `message.purged` event per message (carrying its
//! tombstone) tells the search index and conversation summaries, whose writers own them.

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
            if let Some(report) = self.apply(&app, correlation_id).await? {
                reports.push(report);
            }
        }
        Ok(reports)
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
