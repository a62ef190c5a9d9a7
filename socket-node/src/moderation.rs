//! The app's moderation as this node enforces it: ended sessions and bans at connect; bans, mutes, the content policy and
//! rate limits at every send. Restrictions and rate counters are answered by the cache in one round
//! trip; app settings are kept here for a few seconds so a send never waits for the store.

use crate::handlers::Session;
use crate::Node;
use caas_shared::audit::{actions, Actor, AuditEvent, Target};
use caas_shared::model::{AppSettings, BlockedTermAction, Message};
use caas_shared::moderation::{self, blocked_terms_in, GateCheck};
use caas_shared::store::Store;
use caas_shared::{Error, Result};
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How stale an app's settings (content policy, rate limits) may be on a node.
pub const SETTINGS_TTL: Duration = Duration::from_secs(5);

#[derive(Default)]
pub struct AppSettingsCache {
    entries: Mutex<HashMap<String, (Instant, Arc<AppSettings>)>>,
}

impl AppSettingsCache {
    pub async fn get(&self, store: &dyn Store, app_id: &str) -> Result<Arc<AppSettings>> {
        let fresh = {
            let entries = self.entries.lock().expect("settings lock");
            entries
                .get(app_id)
                .filter(|(fetched, _)| fetched.elapsed() < SETTINGS_TTL)
                .map(|(_, settings)| Arc::clone(settings))
        };
        if let Some(settings) = fresh {
            return Ok(settings);
        }
        let app = store
            .find_app(app_id)
            .await?
            .ok_or_else(|| Error::Unauthorized(format!("app {app_id} no longer exists")))?;
        let settings = Arc::new(app.settings);
        self.entries
            .lock()
            .expect("settings lock")
            .insert(app_id.to_owned(), (Instant::now(), Arc::clone(&settings)));
        Ok(settings)
    }
}

/// Refuses a connection whose session has ended (logout, ban) or whose user is banned from the app.
pub async fn admit(node: &Node, session: &Session) -> Result<()> {
    caas_shared::auth::require_live_session(node.store.as_ref(), &session.claims).await?;
    let check = GateCheck::connect(session.app_id(), session.user_id());
    moderation::gate(node.store.as_ref(), node.cache.as_ref(), &check)
        .await?
        .into_result()
}

/// Checks a send against the content policy, the user's restrictions and the rate limits. Returns the
/// blocked terms the message may carry because the policy only flags them.
pub async fn screen_send(node: &Node, session: &Session, conversation_id: &str, text: &str) -> Result<Vec<String>> {
    let settings = node.app_settings.get(node.store.as_ref(), session.app_id()).await?;
    let terms = blocked_terms_in(&settings.content, text);
    if !terms.is_empty() && settings.content.action == BlockedTermAction::Reject {
        return Err(Error::ContentBlocked(format!(
            "the message contains terms this app does not allow: {}",
            terms.join(", ")
        )));
    }
    let check = GateCheck::send(
        session.app_id(),
        session.user_id(),
        conversation_id,
        &settings.rate_limits,
    );
    moderation::gate(node.store.as_ref(), node.cache.as_ref(), &check)
        .await?
        .into_result()?;
    Ok(terms)
}

/// Asks for a review of a message the content policy flagged (an audit event). The message is already
/// accepted, so a failure here is logged rather than failing the send.
pub async fn report_flagged(node: &Node, message: &Message, terms: Vec<String>) {
    let event = AuditEvent::new(
        &message.app_id,
        actions::MESSAGE_FLAGGED,
        Actor::user(&message.sender_id),
        Target::new("message", &message.id),
        &message.correlation_id,
    )
    .with_details(json!({"conversation_id": message.conversation_id, "seq": message.seq, "terms": terms}));
    if let Err(e) = event.emit(node.bus.as_ref()).await {
        tracing::error!(error = %e, message_id = %message.id, "flagging a message for review failed");
    }
}
