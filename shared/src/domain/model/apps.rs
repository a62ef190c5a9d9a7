//! Tenants: an app and the settings its operator controls (content policy, rate limits, retention, media).

use serde::{Deserialize, Serialize};

/// A tenant: one customer application with its own users and conversations.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct App {
    /// `app_<uuid>`, assigned at creation; the `app_id` every other record of this tenant is scoped by.
    pub id: String,
    /// Display name given at creation, trimmed (at most [`limits::MAX_NAME_CHARS`](super::limits::MAX_NAME_CHARS) bytes).
    pub name: String,
    /// argon2id hash of the app secret; the secret itself is shown once at creation.
    pub secret_hash: String,
    /// When the app was created, Unix ms.
    pub created_at: i64,
    /// The correlation id of the request that created the app.
    pub correlation_id: String,
    /// The operator's tunables; a stored app without them reads as the defaults.
    #[serde(default)]
    pub settings: AppSettings,
}

impl App {
    /// A new app with the default settings.
    pub fn new(id: String, name: String, secret_hash: String, created_at: i64, correlation_id: String) -> Self {
        Self {
            id,
            name,
            secret_hash,
            created_at,
            correlation_id,
            settings: AppSettings::default(),
        }
    }
}

/// What an app's operator can tune; every field has a sensible default.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AppSettings {
    /// Upload size and content-type limits for attachments.
    #[serde(default)]
    pub media: MediaLimits,
    /// Blocked terms and what happens to a message that contains one.
    #[serde(default)]
    pub content: ContentPolicy,
    /// Per-second send limits (off by default).
    #[serde(default)]
    pub rate_limits: RateLimits,
    /// How long messages are kept (forever by default).
    #[serde(default)]
    pub retention: RetentionPolicy,
}

/// Terms an app does not accept in messages, and what happens to a message that contains one.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ContentPolicy {
    /// Matched case-insensitively on whole words (a term may span several words).
    #[serde(default)]
    pub blocked_terms: Vec<String>,
    /// Whether a matching message is refused or accepted and flagged; defaults to [`BlockedTermAction::Reject`].
    #[serde(default)]
    pub action: BlockedTermAction,
}

/// What happens to a message containing a blocked term; serialised in snake_case (`reject`, `flag`).
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum BlockedTermAction {
    /// The send is refused with `content_blocked`; nothing is sequenced or stored.
    #[default]
    Reject,
    /// The message goes through and a `message.flagged` audit event asks for a review.
    Flag,
}

/// Sends allowed per second; 0 (the default) means unlimited. Off by default because what is normal
/// differs by app (a support chat versus a live-event room); the operator sets them per app.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RateLimits {
    /// Messages one user may send per second across the app; 0 means unlimited. Exceeding it answers
    /// `rate_limited` (429) with the time left in the current second.
    #[serde(default)]
    pub user_messages_per_second: u32,
    /// Messages the whole app may send per second, all users together; 0 means unlimited.
    #[serde(default)]
    pub app_messages_per_second: u32,
}

/// How long messages are kept; without `message_days` they are kept forever.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RetentionPolicy {
    /// Days a message is kept after it was created (the operator API accepts 1 to 36500); older messages are
    /// purged for good by the retention job, except what a legal hold covers. `None` keeps messages forever.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_days: Option<u32>,
}

/// What members of an app may upload.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MediaLimits {
    /// Largest file a member may upload, in bytes; 100 MiB by default.
    pub max_upload_bytes: u64,
    /// Exact types (`application/pdf`) or families (`image/*`).
    pub allowed_content_types: Vec<String>,
}

impl Default for MediaLimits {
    fn default() -> Self {
        Self {
            max_upload_bytes: 100 * 1024 * 1024,
            allowed_content_types: ["image/*", "video/*", "audio/*", "application/pdf", "text/plain"]
                .map(str::to_owned)
                .to_vec(),
        }
    }
}

impl MediaLimits {
    /// Whether `content_type` may be uploaded: its essence (parameters dropped, lower-cased) equals an allowed type
    /// or belongs to an allowed `family/*`.
    /// A family never admits a [`SCRIPTABLE_TYPES`](crate::domain::downloads::SCRIPTABLE_TYPES) type
    /// (`image/*` does not allow `image/svg+xml`): those must be listed exactly.
    pub fn allows(&self, content_type: &str) -> bool {
        let essence = crate::domain::downloads::essence(content_type);
        let scriptable = crate::domain::downloads::SCRIPTABLE_TYPES.contains(&essence.as_str());
        self.allowed_content_types
            .iter()
            .any(|allowed| match allowed.strip_suffix("/*") {
                Some(family) => !scriptable && essence.split_once('/').is_some_and(|(f, _)| f == family),
                None => *allowed == essence,
            })
    }
}
