//! Send gating as a use case: bans and mutes, rate limits, the content policy.
//!
//! Restrictions live in the store (the record) and are mirrored into the cache per app, so the socket
//! node checks a user's restrictions and rate counters in one cache round trip per send; a missing
//! mirror is reloaded from the store, so losing the cache never lifts a ban.

use crate::domain::model::{AppSettings, BlockedTermAction};
use crate::domain::moderation::{blocked_terms_in, mirrored_expiry, GateCheck, SendGate};
use crate::ports::cache::Cache;
use crate::ports::store::Store;
use crate::services::auth::{require_live_session, Claims};
use crate::services::conversations::Caller;
use crate::{Error, Result};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How stale an app's settings (content policy, rate limits) may be on a node.
pub const SETTINGS_TTL: Duration = Duration::from_secs(5);

/// Each app's settings as recently read, so the checks every send makes rarely wait for the store.
#[derive(Default)]
pub struct AppSettingsCache {
    entries: Mutex<HashMap<String, (Instant, Arc<AppSettings>)>>,
}

impl AppSettingsCache {
    /// The app's settings, read from the store at most every [`SETTINGS_TTL`] per app; `Unauthorized` when the app no
    /// longer exists.
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
pub async fn admit(store: &dyn Store, cache: &dyn Cache, claims: &Claims) -> Result<()> {
    require_live_session(store, claims).await?;
    let check = GateCheck::connect(&claims.app_id, &claims.sub);
    gate(store, cache, &check).await?.into_result()
}

/// Checks a post — a send, a forward, an edit, a reaction (with empty `text`) — against the content
/// policy, the user's restrictions and the rate limits, which count every post. Returns the blocked
/// terms the text may carry because the policy only flags them.
pub async fn screen_post(
    store: &dyn Store,
    cache: &dyn Cache,
    settings: &AppSettingsCache,
    caller: Caller<'_>,
    conversation_id: &str,
    text: &str,
) -> Result<Vec<String>> {
    let settings = settings.get(store, caller.app_id).await?;
    let terms = blocked_terms_in(&settings.content, text);
    if !terms.is_empty() && settings.content.action == BlockedTermAction::Reject {
        return Err(Error::ContentBlocked(format!(
            "the message contains terms this app does not allow: {}",
            terms.join(", ")
        )));
    }
    let check = GateCheck::send(caller.app_id, caller.user_id, conversation_id, &settings.rate_limits);
    gate(store, cache, &check).await?.into_result()?;
    Ok(terms)
}

/// Refuses an action in a conversation that is not a post (typing) by a banned or muted user.
pub async fn screen_action(
    store: &dyn Store,
    cache: &dyn Cache,
    caller: Caller<'_>,
    conversation_id: &str,
) -> Result<()> {
    let check = GateCheck::act(caller.app_id, caller.user_id, conversation_id);
    gate(store, cache, &check).await?.into_result()
}

/// Answers `check` from the cache, first mirroring the app's restrictions from the store when the
/// cache lost them (or never had them).
pub async fn gate(store: &dyn Store, cache: &dyn Cache, check: &GateCheck<'_>) -> Result<SendGate> {
    match cache.gate(check).await? {
        SendGate::Unloaded => {
            let entries: Vec<(String, i64)> = store
                .list_restrictions(check.app_id)
                .await?
                .iter()
                .filter(|r| r.is_active(check.now_ms))
                .map(|r| (r.id.clone(), mirrored_expiry(r)))
                .collect();
            cache.mirror_restrictions(check.app_id, &entries).await?;
            match cache.gate(check).await? {
                SendGate::Unloaded => Err(Error::Internal("restrictions did not stay mirrored".into())),
                verdict => Ok(verdict),
            }
        }
        verdict => Ok(verdict),
    }
}
