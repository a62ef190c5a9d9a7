//! The session check of every socket connect, batched: concurrent connects (a burst of new clients, or
//! a reconnect storm after a node died) share one store read per batch instead of one each.
//!
//! The store stays the only authority on sessions, so a revocation is seen by the next connect exactly
//! as with [`auth::require_live_session`]; the batching only changes how many reads carry the question.
//! A lone connect is not delayed: a batch is whatever is waiting when a read slot frees up, so batches
//! grow only while every slot is busy, which is when batching pays.

use crate::domain::model::Session;
use crate::ports::store::Store;
use crate::services::auth::{self, Claims};
use crate::{Error, Result};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, Semaphore};

/// At most this many sessions per store read. A MongoDB `$in` over this many `_id`s is one index walk;
/// SecantusDB, the test server, answers ~13k sessions/s in batches of 16–64 against ~1.5k with one
/// read each, and slows again past that.
pub const MAX_BATCH: usize = 32;
/// Store reads in flight at once; connects beyond them wait and join the next batch.
pub const READS_IN_FLIGHT: usize = 4;
/// Connects waiting for a read slot before a new one waits to be queued (each holds a few hundred
/// bytes); [`READ_TIMEOUT`] bounds how long a slot stays taken, hence the wait.
const QUEUE: usize = 8_192;
/// A store read that takes longer fails its whole batch (503-class, the client reconnects), so a hung
/// store cannot hold every read slot and, behind them, every connect and renewal on the node.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Answers "is this session live?" for many connections at once; cheap to share behind an `Arc`.
pub struct SessionLookups {
    requests: mpsc::Sender<Lookup>,
}

struct Lookup {
    app_id: String,
    session_id: String,
    answer: oneshot::Sender<Result<Option<Session>>>,
}

impl SessionLookups {
    /// Starts the task that batches the lookups on `store`; it ends when the last handle is dropped.
    pub fn start(store: Arc<dyn Store>) -> Self {
        let (requests, queue) = mpsc::channel(QUEUE);
        tokio::spawn(serve(store, queue));
        Self { requests }
    }

    /// Refuses a verified token whose session was revoked or never recorded for this user; the same
    /// verdicts as [`auth::require_live_session`].
    pub async fn require_live(&self, claims: &Claims) -> Result<()> {
        let (answer, answered) = oneshot::channel();
        let lookup = Lookup {
            app_id: claims.app_id.clone(),
            session_id: claims.jti.clone(),
            answer,
        };
        let stopped = || Error::Internal("the session lookups stopped".into());
        self.requests.send(lookup).await.map_err(|_| stopped())?;
        let session = answered.await.map_err(|_| stopped())??;
        auth::check_live(session.as_ref(), claims)
    }
}

async fn serve(store: Arc<dyn Store>, mut queue: mpsc::Receiver<Lookup>) {
    let slots = Arc::new(Semaphore::new(READS_IN_FLIGHT));
    let mut batch = Vec::with_capacity(MAX_BATCH);
    loop {
        // A slot first, then whatever is waiting: while every slot is busy, lookups pile up for the next batch.
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
            return;
        };
        if queue.recv_many(&mut batch, MAX_BATCH).await == 0 {
            return;
        }
        let lookups = std::mem::replace(&mut batch, Vec::with_capacity(MAX_BATCH));
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            answer(store.as_ref(), lookups).await;
            drop(slot);
        });
    }
}

/// One store read per app in the batch (a batch rarely spans apps; when it does, the reads run
/// together), each lookup answered from it.
async fn answer(store: &dyn Store, lookups: Vec<Lookup>) {
    let mut by_app: HashMap<String, Vec<Lookup>> = HashMap::new();
    for lookup in lookups {
        by_app.entry(lookup.app_id.clone()).or_default().push(lookup);
    }
    futures_util::future::join_all(
        by_app
            .into_iter()
            .map(|(app_id, lookups)| answer_app(store, app_id, lookups)),
    )
    .await;
}

async fn answer_app(store: &dyn Store, app_id: String, lookups: Vec<Lookup>) {
    // Several connects of one session (tabs sharing a token, a renewal beside a reconnect) can share a
    // batch: the store is asked once per id, and each of them gets the session.
    let mut ids: Vec<String> = lookups.iter().map(|l| l.session_id.clone()).collect();
    ids.sort_unstable();
    ids.dedup();
    let read = tokio::time::timeout(READ_TIMEOUT, store.find_sessions(&app_id, &ids)).await;
    match read.unwrap_or_else(|_| Err(timed_out())) {
        Ok(found) => {
            let found: HashMap<String, Session> = found.into_iter().map(|s| (s.id.clone(), s)).collect();
            for lookup in lookups {
                let _ = lookup.answer.send(Ok(found.get(&lookup.session_id).cloned()));
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, sessions = ids.len(), "session lookup failed");
            for lookup in lookups {
                let _ = lookup.answer.send(Err(copy(&e)));
            }
        }
    }
}

fn timed_out() -> Error {
    Error::Internal(format!(
        "the session store did not answer within {} s",
        READ_TIMEOUT.as_secs()
    ))
}

/// The same failure for each connect that shared the read (errors are not `Clone`; the store's are).
fn copy(error: &Error) -> Error {
    match error {
        Error::Store(e) => Error::Store(e.clone()),
        other => Error::Internal(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::store::{MemoryStore, UserStore};

    fn claims(app_id: &str, user_id: &str, session_id: &str) -> Claims {
        Claims {
            sub: user_id.into(),
            app_id: app_id.into(),
            external_id: user_id.into(),
            jti: session_id.into(),
            iss: "caas".into(),
            aud: "caas-sdk".into(),
            iat: 0,
            exp: i64::MAX,
        }
    }

    #[tokio::test]
    async fn concurrent_connects_get_the_verdict_of_their_own_session() {
        let store = Arc::new(MemoryStore::new());
        let session = |i: usize| Session {
            id: format!("s{i}"),
            app_id: "app".into(),
            user_id: format!("u{i}"),
            created_at: 1,
            expires_at: i64::MAX,
            revoked_at: (i % 3 == 1).then_some(2),
            correlation_id: "test".into(),
        };
        let recorded: Vec<Session> = (0..300).filter(|i| i % 3 != 2).map(session).collect();
        store.insert_sessions(&recorded).await.unwrap();
        let lookups = Arc::new(SessionLookups::start(store));
        let mut checks = tokio::task::JoinSet::new();
        for i in 0..300 {
            let lookups = Arc::clone(&lookups);
            checks.spawn(async move {
                // Every fifth asks with another user's or another app's claims to a recorded session.
                let asked = match i % 5 {
                    3 => claims("app", "someone-else", &format!("s{i}")),
                    4 => claims("other-app", &format!("u{i}"), &format!("s{i}")),
                    _ => claims("app", &format!("u{i}"), &format!("s{i}")),
                };
                (i, lookups.require_live(&asked).await)
            });
        }
        while let Some(joined) = checks.join_next().await {
            let (i, verdict) = joined.unwrap();
            let expected_live = i % 3 == 0 && i % 5 < 3;
            match verdict {
                Ok(()) => assert!(expected_live, "session {i} admitted"),
                Err(Error::Unauthorized(reason)) => {
                    assert!(!expected_live, "session {i} refused: {reason}");
                    if i % 3 == 1 && i % 5 < 3 {
                        assert_eq!(reason, "session revoked");
                    }
                }
                Err(other) => panic!("session {i}: {other}"),
            }
        }
    }

    #[tokio::test]
    async fn connects_of_one_session_in_one_batch_are_all_admitted() {
        let store = Arc::new(MemoryStore::new());
        let shared = Session {
            id: "shared".into(),
            app_id: "app".into(),
            user_id: "u".into(),
            created_at: 1,
            expires_at: i64::MAX,
            revoked_at: None,
            correlation_id: "test".into(),
        };
        store.insert_session(&shared).await.unwrap();
        let lookups = Arc::new(SessionLookups::start(store));
        // Spawned before the batching task first runs (one thread): they land in one batch.
        let mut checks = tokio::task::JoinSet::new();
        for _ in 0..10 {
            let lookups = Arc::clone(&lookups);
            checks.spawn(async move { lookups.require_live(&claims("app", "u", "shared")).await });
        }
        while let Some(joined) = checks.join_next().await {
            joined.unwrap().expect("every tab of the session is admitted");
        }
    }
}
