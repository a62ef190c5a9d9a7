//! Send gating as a use case: bans and mutes, rate limits, the content policy.
//!
//! Restrictions live in the store (the record) and are mirrored into the cache per app, so the socket
//! node checks a user's restrictions and rate counters in one cache round trip per send; a missing
//! mirror is reloaded from the store, so losing the cache never lifts a ban.

use crate::domain::model::{AppSettings, BlockedTermAction};
use crate::domain::moderation::{blocked_terms_in, mirrored_expiry, GateCheck, SendGate};
use crate::ports::cache::Cache;
use crate::ports::store::Store;
use crate::services::auth::Claims;
use crate::services::conversations::Caller;
use crate::services::session_lookups::SessionLookups;
use crate::{Error, Result};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How stale an app's settings (content policy, rate limits) may be on a node.
pub const SETTINGS_TTL: Duration = Duration::from_secs(5);

/// Each app's settings as recently read, so the checks every send makes rarely wait for the store.
/// Single-flight: when an entry goes stale, one caller reads the store while the others keep using the
/// stale settings (or, with nothing cached yet, wait for that one read), so a stale entry never sends
/// every concurrent sender to the store at once.
#[derive(Default)]
pub struct AppSettingsCache {
    slots: Mutex<HashMap<String, SettingsSlot>>,
}

#[derive(Default)]
struct SettingsSlot {
    /// When the settings were read, and what they were.
    cached: Option<(Instant, Arc<AppSettings>)>,
    /// Held by the one caller reading the store for this app.
    refresh: Arc<tokio::sync::Mutex<()>>,
}

/// What the cache holds for an app right now.
enum Lookup {
    Fresh(Arc<AppSettings>),
    Stale(Arc<AppSettings>, Arc<tokio::sync::Mutex<()>>),
    Missing(Arc<tokio::sync::Mutex<()>>),
}

impl AppSettingsCache {
    /// The app's settings, read from the store at most every [`SETTINGS_TTL`] per app; `Unauthorized` when the app no
    /// longer exists.
    pub async fn get(&self, store: &dyn Store, app_id: &str) -> Result<Arc<AppSettings>> {
        let _refreshing = match self.lookup(app_id) {
            Lookup::Fresh(settings) => return Ok(settings),
            Lookup::Stale(stale, refresh) => match refresh.try_lock_owned() {
                Ok(guard) => guard,
                Err(_) => return Ok(stale), // another caller is reading the store
            },
            Lookup::Missing(refresh) => {
                let guard = refresh.lock_owned().await;
                if let Lookup::Fresh(settings) = self.lookup(app_id) {
                    return Ok(settings); // read by the caller we waited for
                }
                guard
            }
        };
        let app = match store.find_app(app_id).await? {
            Some(app) => app,
            None => {
                self.slots().remove(app_id);
                return Err(Error::Unauthorized(format!("app {app_id} no longer exists")));
            }
        };
        let settings = Arc::new(app.settings);
        self.slots().entry(app_id.to_owned()).or_default().cached = Some((Instant::now(), Arc::clone(&settings)));
        Ok(settings)
    }

    fn slots(&self) -> std::sync::MutexGuard<'_, HashMap<String, SettingsSlot>> {
        self.slots.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn lookup(&self, app_id: &str) -> Lookup {
        let mut slots = self.slots();
        if !slots.contains_key(app_id) {
            slots.insert(app_id.to_owned(), SettingsSlot::default());
        }
        let slot = &slots[app_id];
        match &slot.cached {
            Some((fetched, settings)) if fetched.elapsed() < SETTINGS_TTL => Lookup::Fresh(Arc::clone(settings)),
            Some((_, settings)) => Lookup::Stale(Arc::clone(settings), Arc::clone(&slot.refresh)),
            None => Lookup::Missing(Arc::clone(&slot.refresh)),
        }
    }
}

/// Refuses a connection whose session has ended (logout, ban) or whose user is banned from the app.
/// The session is looked up through `sessions`, which batches the lookups of concurrent connects; the
/// ban is checked meanwhile, so a connect costs one store read's latency, not two round trips in a row.
pub async fn admit(sessions: &SessionLookups, store: &dyn Store, cache: &dyn Cache, claims: &Claims) -> Result<()> {
    let check = GateCheck::connect(&claims.app_id, &claims.sub);
    let (live, verdict) = tokio::join!(sessions.require_live(claims), gate(store, cache, &check));
    live?;
    verdict?.into_result()
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
    let (settings, terms) = screen_content(store, settings, caller.app_id, text).await?;
    let check = GateCheck::send(caller.app_id, caller.user_id, conversation_id, &settings.rate_limits);
    gate(store, cache, &check).await?.into_result()?;
    Ok(terms)
}

/// [`screen_post`] without the gate, for a send that asks the gate inside its claim: the app's
/// settings (whose rate limits the gate counts against) and the blocked terms the text may carry
/// because the policy only flags them.
pub async fn screen_content(
    store: &dyn Store,
    settings: &AppSettingsCache,
    app_id: &str,
    text: &str,
) -> Result<(Arc<AppSettings>, Vec<String>)> {
    let settings = settings.get(store, app_id).await?;
    let terms = blocked_terms_in(&settings.content, text);
    if !terms.is_empty() && settings.content.action == BlockedTermAction::Reject {
        return Err(Error::ContentBlocked(format!(
            "the message contains terms this app does not allow: {}",
            terms.join(", ")
        )));
    }
    Ok((settings, terms))
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

/// How often a reload of an app's restrictions is tried while changes keep racing it.
const MIRROR_ATTEMPTS: usize = 5;

/// Answers `check` from the cache, first mirroring the app's restrictions from the store when the
/// cache lost them (or never had them).
pub async fn gate(store: &dyn Store, cache: &dyn Cache, check: &GateCheck<'_>) -> Result<SendGate> {
    let verdict = cache.gate(check).await?;
    if verdict != SendGate::Unloaded {
        return Ok(verdict);
    }
    for _ in 0..MIRROR_ATTEMPTS {
        // The change count first: a change to the store after it is either in what is read next or
        // counted, and then the mirror refuses these entries.
        let version = cache.restrictions_version(check.app_id).await?;
        let entries: Vec<(String, i64)> = store
            .list_restrictions(check.app_id)
            .await?
            .iter()
            .filter(|r| r.is_active(check.now_ms))
            .map(|r| (r.id.clone(), mirrored_expiry(r)))
            .collect();
        if cache.mirror_restrictions(check.app_id, &entries, version).await? {
            return match cache.gate(check).await? {
                SendGate::Unloaded => Err(Error::Internal("restrictions did not stay mirrored".into())),
                verdict => Ok(verdict),
            };
        }
    }
    Err(Error::RateLimited {
        message: "this app's restrictions are changing too fast to check; try again".into(),
        retry_after_ms: 1000,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::model::App;
    use crate::ports::store::{AppStore, MemoryStore};

    #[tokio::test]
    async fn while_one_caller_refreshes_a_stale_entry_the_others_keep_the_stale_settings() {
        let store = MemoryStore::new();
        let app = App::new("app".into(), "name".into(), "hash".into(), 0, "corr".into());
        store.insert_app(&app).await.unwrap();
        let cache = AppSettingsCache::default();
        assert_eq!(
            cache
                .get(&store, "app")
                .await
                .unwrap()
                .rate_limits
                .user_messages_per_second,
            0
        );
        let mut settings = app.settings.clone();
        settings.rate_limits.user_messages_per_second = 7;
        store.update_app_settings("app", &settings).await.unwrap();
        let refresh = {
            let mut slots = cache.slots();
            let slot = slots.get_mut("app").unwrap();
            slot.cached.as_mut().unwrap().0 -= SETTINGS_TTL;
            Arc::clone(&slot.refresh)
        };
        let in_flight = refresh.try_lock().expect("nobody refreshes yet");
        let during = tokio::time::timeout(Duration::from_secs(1), cache.get(&store, "app"))
            .await
            .expect("a caller does not wait for another's refresh")
            .unwrap();
        assert_eq!(
            during.rate_limits.user_messages_per_second, 0,
            "the stale settings, not a second read"
        );
        drop(in_flight);
        assert_eq!(
            cache
                .get(&store, "app")
                .await
                .unwrap()
                .rate_limits
                .user_messages_per_second,
            7
        );
        assert_eq!(
            cache
                .get(&store, "app")
                .await
                .unwrap()
                .rate_limits
                .user_messages_per_second,
            7,
            "fresh again"
        );
        assert!(matches!(cache.get(&store, "gone").await, Err(Error::Unauthorized(_))));
        assert!(
            !cache.slots().contains_key("gone"),
            "a missing app leaves nothing behind"
        );
    }
}
