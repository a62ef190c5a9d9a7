//! An app's webhook endpoints (issue 38): where its events are delivered, which ones, and the signing
//! secret (sealed at rest, see [`crate::domain::sealing`]).

use serde::{Deserialize, Serialize};

/// One endpoint of an app: events of the listed types are POSTed to `url`, signed.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct WebhookEndpoint {
    /// `wh_<uuid>`, assigned at creation.
    pub id: String,
    /// The app whose events it receives.
    pub app_id: String,
    /// `https://…` (plain http only to loopback in dev mode and tests).
    pub url: String,
    /// The event types it receives (see `domain::webhooks::EVENT_TYPES`).
    pub event_types: Vec<String>,
    /// Free text for the operator (at most 200 bytes).
    #[serde(default)]
    pub description: String,
    /// Whether events are delivered; an endpoint answering `410 Gone`, or failing for 24 h in a row,
    /// is disabled by the platform (`disabled_reason` says which).
    pub enabled: bool,
    /// Why the platform disabled it (`gone`, `failing`); `None` when enabled or disabled by the operator.
    #[serde(default)]
    pub disabled_reason: Option<String>,
    /// The signing secret (`whsec_…`), sealed.
    pub secret_sealed: String,
    /// The secret before the last rotation, sealed, still signing until `previous_secret_until`.
    #[serde(default)]
    pub previous_secret_sealed: Option<String>,
    /// Until when (Unix ms) the previous secret signs too.
    #[serde(default)]
    pub previous_secret_until: Option<i64>,
    /// Unix ms.
    pub created_at: i64,
    /// Unix ms of the last change.
    pub updated_at: i64,
    /// The correlation id of the request that created it.
    pub correlation_id: String,
}
