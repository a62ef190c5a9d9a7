//! Checking an app's credentials at the token endpoint without handing attackers an oracle or a lever:
//! every check costs the same argon2 verification whether or not the app exists (app ids cannot be
//! probed by timing), repeated failures from one source or against one app are refused with
//! `rate_limited` before any hashing, and at most [`MAX_CONCURRENT_HASHES`] verifications (≈19 MiB
//! each) run at once, so a flood of wrong secrets cannot exhaust the function's memory or CPU.
//!
//! The counters live in the process: each function instance (or the dev gateway) limits what reaches it;
//! in AWS, put API Gateway throttling or a WAF rate rule in front for a fleet-wide ceiling.

use crate::domain::model::App;
use crate::ports::store::Store;
use crate::services::auth::{hash_secret, verify_secret};
use crate::{Error, Result};
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// Verifications running at once per process; more wait up to [`HASH_QUEUE_PATIENCE`].
pub const MAX_CONCURRENT_HASHES: usize = 4;
/// How long a check waits for a verification slot before it is refused as `rate_limited`.
pub const HASH_QUEUE_PATIENCE: Duration = Duration::from_secs(2);
/// The window failures are counted in.
pub const FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// Failed checks one source may make per window; later checks from it are refused unhashed.
pub const FAILURES_PER_SOURCE: u32 = 10;
/// Failed checks against one app per window, from all sources; later checks for it are refused unhashed.
pub const FAILURES_PER_APP: u32 = 100;
/// Sources and apps tracked at once; beyond this, expired windows are forgotten first.
const MAX_TRACKED: usize = 100_000;

/// Failures counted in the current window of one source or app.
struct Window {
    started: Instant,
    failures: u32,
}

/// The token endpoint's credential check; one per process, shared by every request.
pub struct CredentialCheck {
    hashing: Semaphore,
    failures: Mutex<HashMap<String, Window>>,
    /// Verified against when the app does not exist, so that costs the same as a wrong secret.
    decoy_hash: OnceLock<String>,
}

impl Default for CredentialCheck {
    fn default() -> Self {
        Self {
            hashing: Semaphore::new(MAX_CONCURRENT_HASHES),
            failures: Mutex::default(),
            decoy_hash: OnceLock::new(),
        }
    }
}

fn invalid_credentials() -> Error {
    // One answer for an unknown app and a wrong secret.
    Error::Unauthorized("invalid app credentials".into())
}

impl CredentialCheck {
    /// The app whose id and secret these are; `source` names the caller (its IP address) for the
    /// failure limit. `Unauthorized` for an unknown app or a wrong secret alike, `RateLimited` when the
    /// source or the app failed too often lately or too many checks are running.
    pub async fn verify(&self, store: &dyn Store, app_id: &str, secret: &str, source: &str) -> Result<App> {
        let (source_key, app_key) = (format!("source:{source}"), format!("app:{app_id}"));
        self.refuse_if_failing(&source_key, FAILURES_PER_SOURCE, "this address")?;
        self.refuse_if_failing(&app_key, FAILURES_PER_APP, "this app")?;
        let app = store.find_app(app_id).await?;
        let stored_hash = match &app {
            Some(app) => app.secret_hash.clone(),
            None => self.decoy_hash()?,
        };
        let _slot = tokio::time::timeout(HASH_QUEUE_PATIENCE, self.hashing.acquire())
            .await
            .map_err(|_| Error::RateLimited {
                message: "too many credential checks are running; retry shortly".into(),
                retry_after_ms: 1_000,
            })?
            .map_err(|_| Error::Internal("credential check closed".into()))?;
        // Again after waiting: checks that queued behind the failures that reached the limit are refused.
        self.refuse_if_failing(&source_key, FAILURES_PER_SOURCE, "this address")?;
        self.refuse_if_failing(&app_key, FAILURES_PER_APP, "this app")?;
        let secret = secret.to_owned();
        let valid = tokio::task::spawn_blocking(move || verify_secret(&secret, &stored_hash))
            .await
            .map_err(|e| Error::Internal(format!("verification task: {e}")))?;
        match app {
            Some(app) if valid => Ok(app),
            _ => {
                self.count_failure(source_key);
                self.count_failure(app_key);
                Err(invalid_credentials())
            }
        }
    }

    fn decoy_hash(&self) -> Result<String> {
        if let Some(hash) = self.decoy_hash.get() {
            return Ok(hash.clone());
        }
        let hash = hash_secret(&crate::services::auth::generate_secret())?;
        Ok(self.decoy_hash.get_or_init(|| hash).clone())
    }

    fn refuse_if_failing(&self, key: &str, limit: u32, whose: &str) -> Result<()> {
        let failures = self.failures.lock().expect("failures lock");
        match failures.get(key) {
            Some(window) if window.started.elapsed() < FAILURE_WINDOW && window.failures >= limit => {
                let left = FAILURE_WINDOW.saturating_sub(window.started.elapsed());
                Err(Error::RateLimited {
                    message: format!(
                        "too many failed credential checks for {whose}; retry in {} s",
                        left.as_secs() + 1
                    ),
                    retry_after_ms: i64::try_from(left.as_millis()).unwrap_or(i64::MAX),
                })
            }
            _ => Ok(()),
        }
    }

    fn count_failure(&self, key: String) {
        let mut failures = self.failures.lock().expect("failures lock");
        if failures.len() >= MAX_TRACKED {
            failures.retain(|_, window| window.started.elapsed() < FAILURE_WINDOW);
        }
        let window = failures.entry(key).or_insert_with(|| Window {
            started: Instant::now(),
            failures: 0,
        });
        if window.started.elapsed() >= FAILURE_WINDOW {
            *window = Window {
                started: Instant::now(),
                failures: 0,
            };
        }
        window.failures += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::store::{AppStore, MemoryStore};

    async fn store_with_app(secret: &str) -> (MemoryStore, String) {
        let store = MemoryStore::new();
        let app = App::new(
            "app_1".into(),
            "one".into(),
            hash_secret(secret).unwrap(),
            1,
            "corr".into(),
        );
        store.insert_app(&app).await.unwrap();
        (store, app.id)
    }

    #[tokio::test]
    async fn wrong_secrets_from_one_source_are_refused_unhashed_after_the_limit() {
        let (store, app_id) = store_with_app("right").await;
        let check = CredentialCheck::default();
        for _ in 0..FAILURES_PER_SOURCE {
            let e = check.verify(&store, &app_id, "wrong", "10.0.0.1").await.unwrap_err();
            assert_eq!(e.code(), "unauthorized");
        }
        let e = check.verify(&store, &app_id, "right", "10.0.0.1").await.unwrap_err();
        assert_eq!(e.code(), "rate_limited", "even the right secret waits out the window");
        // Another source is not affected.
        assert_eq!(
            check.verify(&store, &app_id, "right", "10.0.0.2").await.unwrap().id,
            app_id
        );
    }

    #[tokio::test]
    async fn an_unknown_app_fails_like_a_wrong_secret_and_counts() {
        let (store, _) = store_with_app("right").await;
        let check = CredentialCheck::default();
        let e = check.verify(&store, "app_missing", "x", "10.0.0.3").await.unwrap_err();
        assert_eq!(
            (e.code(), e.to_string()),
            ("unauthorized", "invalid app credentials".into())
        );
        assert!(check.decoy_hash.get().is_some(), "a decoy hash was verified against");
    }
}
