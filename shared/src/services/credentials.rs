//! Checking an app's credentials at the token endpoint without handing attackers an oracle or a lever:
//! every check costs the same argon2 verification whether or not the app exists (app ids cannot be
//! probed by timing), repeated failures from one source are refused with `rate_limited` before any
//! hashing, and at most [`MAX_CONCURRENT_HASHES`] verifications (≈19 MiB each) run at once, so a flood
//! of wrong secrets cannot exhaust the function's memory or CPU.
//!
//! An app's id is in every one of its users' tokens, so anyone can aim wrong secrets at it: failures
//! against one app never refuse the right secret. Once an app has had [`FAILURES_PER_APP`] failures in a
//! window it is under attack, and checks for it from sources that have not proven the secret lately
//! share one verification slot ([`SUSPECT_HASHES`]) — the attack queues behind itself while the app's
//! own backend (a source that presented the right secret within [`PROVEN_SOURCE_MEMORY`]) keeps the
//! other slots, and a new backend address still gets through, only more slowly.
//!
//! The counters live in the process: each function instance (or the dev gateway) limits what reaches it;
//! in AWS, put API Gateway throttling or a WAF rate rule in front for a fleet-wide ceiling.

use crate::domain::model::App;
use crate::ports::store::Store;
use crate::services::auth::{hash_secret, verify_secret};
use crate::services::windows::FixedWindows;
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
/// Failed checks against one app per window, from all sources, past which the app is under attack:
/// checks for it from unproven sources then share [`SUSPECT_HASHES`] slots (never refused for it).
pub const FAILURES_PER_APP: u32 = 100;
/// Verification slots shared by the checks of apps under attack from sources not proven lately.
pub const SUSPECT_HASHES: usize = 1;
/// How long a source that presented an app's right secret is trusted to be that app's backend.
pub const PROVEN_SOURCE_MEMORY: Duration = Duration::from_secs(3600);
/// Proven sources remembered at once; beyond this, lapsed ones are forgotten first.
const MAX_TRACKED: usize = 100_000;

/// The token endpoint's credential check; one per process, shared by every request.
pub struct CredentialCheck {
    hashing: Semaphore,
    /// Taken first by checks of an app under attack from a source not proven for it.
    suspect_hashing: Semaphore,
    failures: FixedWindows,
    /// (app id, source) → when the source last presented the app's right secret.
    proven: Mutex<HashMap<(String, String), Instant>>,
    /// Verified against when the app does not exist, so that costs the same as a wrong secret.
    decoy_hash: OnceLock<String>,
}

impl Default for CredentialCheck {
    fn default() -> Self {
        Self {
            hashing: Semaphore::new(MAX_CONCURRENT_HASHES),
            suspect_hashing: Semaphore::new(SUSPECT_HASHES),
            failures: FixedWindows::new(FAILURE_WINDOW),
            proven: Mutex::default(),
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
    /// source failed too often lately or no verification slot came free in time.
    pub async fn verify(&self, store: &dyn Store, app_id: &str, secret: &str, source: &str) -> Result<App> {
        let (source_key, app_key) = (format!("source:{source}"), format!("app:{app_id}"));
        self.refuse_if_failing(&source_key, FAILURES_PER_SOURCE, "this address")?;
        let app = store.find_app(app_id).await?;
        let stored_hash = match &app {
            Some(app) => app.secret_hash.clone(),
            None => self.decoy_hash()?,
        };
        let suspect = self.is_failing(&app_key, FAILURES_PER_APP) && !self.is_proven(app_id, source);
        let _suspect_slot = match suspect {
            true => Some(Self::slot(&self.suspect_hashing).await?),
            false => None,
        };
        let _slot = Self::slot(&self.hashing).await?;
        // Again after waiting: checks that queued behind the failures that reached the limit are refused.
        self.refuse_if_failing(&source_key, FAILURES_PER_SOURCE, "this address")?;
        let secret = secret.to_owned();
        let valid = tokio::task::spawn_blocking(move || verify_secret(&secret, &stored_hash))
            .await
            .map_err(|e| Error::Internal(format!("verification task: {e}")))?;
        match app {
            Some(app) if valid => {
                self.remember_proven(app_id, source);
                Ok(app)
            }
            _ => {
                self.count_failure(source_key);
                self.count_failure(app_key);
                Err(invalid_credentials())
            }
        }
    }

    /// A verification slot of `lane`, waiting at most [`HASH_QUEUE_PATIENCE`].
    async fn slot(lane: &Semaphore) -> Result<tokio::sync::SemaphorePermit<'_>> {
        tokio::time::timeout(HASH_QUEUE_PATIENCE, lane.acquire())
            .await
            .map_err(|_| Error::RateLimited {
                message: "too many credential checks are running; retry shortly".into(),
                retry_after_ms: 1_000,
            })?
            .map_err(|_| Error::Internal("credential check closed".into()))
    }

    fn is_proven(&self, app_id: &str, source: &str) -> bool {
        let proven = self.proven.lock().expect("proven lock");
        proven
            .get(&(app_id.to_owned(), source.to_owned()))
            .is_some_and(|at| at.elapsed() < PROVEN_SOURCE_MEMORY)
    }

    fn remember_proven(&self, app_id: &str, source: &str) {
        let mut proven = self.proven.lock().expect("proven lock");
        if proven.len() >= MAX_TRACKED {
            proven.retain(|_, at| at.elapsed() < PROVEN_SOURCE_MEMORY);
            if proven.len() >= MAX_TRACKED {
                proven.clear();
            }
        }
        proven.insert((app_id.to_owned(), source.to_owned()), Instant::now());
    }

    fn is_failing(&self, key: &str, limit: u32) -> bool {
        self.failures.count(key).0 >= limit
    }

    fn decoy_hash(&self) -> Result<String> {
        if let Some(hash) = self.decoy_hash.get() {
            return Ok(hash.clone());
        }
        let hash = hash_secret(&crate::services::auth::generate_secret())?;
        Ok(self.decoy_hash.get_or_init(|| hash).clone())
    }

    fn refuse_if_failing(&self, key: &str, limit: u32, whose: &str) -> Result<()> {
        let (failures, left) = self.failures.count(key);
        if failures < limit {
            return Ok(());
        }
        Err(Error::RateLimited {
            message: format!(
                "too many failed credential checks for {whose}; retry in {} s",
                left.as_secs() + 1
            ),
            retry_after_ms: i64::try_from(left.as_millis()).unwrap_or(i64::MAX),
        })
    }

    fn count_failure(&self, key: String) {
        self.failures.add(&key, 1);
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
    async fn wrong_secrets_from_many_sources_never_lock_the_right_secret_out() {
        let (store, app_id) = store_with_app("right").await;
        let check = std::sync::Arc::new(CredentialCheck::default());
        // The backend proved itself before the attack.
        check.verify(&store, &app_id, "right", "10.1.0.1").await.unwrap();
        // 200 wrong secrets from 20 addresses: each address reaches its own limit.
        let store = std::sync::Arc::new(store);
        let attacks = (0..20).map(|n| {
            let (check, store, app_id) = (check.clone(), store.clone(), app_id.clone());
            tokio::spawn(async move {
                for _ in 0..FAILURES_PER_SOURCE {
                    let e = check
                        .verify(store.as_ref(), &app_id, "wrong", &format!("10.2.0.{n}"))
                        .await
                        .unwrap_err();
                    assert!(["unauthorized", "rate_limited"].contains(&e.code()), "{e}");
                }
            })
        });
        futures_util::future::join_all(attacks).await;
        assert!(
            check.is_failing(&format!("app:{app_id}"), FAILURES_PER_APP),
            "the app is under attack"
        );
        for source in ["10.1.0.1", "10.3.0.21"] {
            let verified = check.verify(store.as_ref(), &app_id, "right", source).await;
            assert_eq!(
                verified.map(|app| app.id).ok(),
                Some(app_id.clone()),
                "the right secret from {source}"
            );
        }
        let e = check
            .verify(store.as_ref(), &app_id, "right", "10.2.0.3")
            .await
            .unwrap_err();
        assert_eq!(e.code(), "rate_limited", "a failing source still waits out its window");
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
