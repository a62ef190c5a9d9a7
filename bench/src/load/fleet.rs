//! Opening many client connections: tokens for numbered users, bounded concurrency, loopback source
//! addresses spread over 127.0.0.1–127.0.0.250.

use super::client::{self, Client, Flavor, Progress};
use crate::error::{BenchError, Result};
use caas_shared::ports::store::Store;
use caas_shared::services::auth::{self, TokenSigner};
use futures_util::stream::{self, StreamExt, TryStreamExt};
use std::net::{Ipv4Addr, SocketAddr};
use std::ops::Range;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Connection attempts (and joins) in flight at once.
pub const CONNECT_CONCURRENCY: usize = 256;
/// Sessions recorded with one store write before connecting (a journaled write per session made seeding
/// 100,000 users take half an hour on the test stack's MongoDB).
const SESSION_BATCH: usize = 2_000;

pub fn user_id(index: usize) -> String {
    format!("u{index}")
}

/// The loopback address user `index` connects from.
pub fn source_address(index: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, 1 + (index % 250) as u8)
}

/// The connections of one batch of users, and how the connecting went.
pub struct Fleet {
    /// `(user index, client)`, in no particular order.
    pub clients: Vec<(usize, Client)>,
    pub failures: Vec<String>,
    pub elapsed: Duration,
}

/// Connects users `users` of `app_id` to `servers` (user i to server i mod the count); for the socket
/// node, each with a new session recorded in `store` first (it accepts tokens of recorded sessions only;
/// the Socket.IO servers check the signature alone).
pub async fn connect(
    flavor: Flavor,
    servers: &[SocketAddr],
    (signer, store): (&TokenSigner, &dyn Store),
    app_id: &str,
    users: Range<usize>,
    progress: &Arc<Progress>,
) -> Result<Fleet> {
    let tokens = issue_tokens(flavor, (signer, store), app_id, users).await?;
    Ok(open(flavor, servers, tokens, CONNECT_CONCURRENCY, progress).await)
}

/// Opens one connection per `(user index, token)`, `concurrency` attempts in flight at once, user i to
/// server i mod the count.
pub async fn open(
    flavor: Flavor,
    servers: &[SocketAddr],
    tokens: Vec<(usize, String)>,
    concurrency: usize,
    progress: &Arc<Progress>,
) -> Fleet {
    let protocol = flavor.protocol();
    let started = Instant::now();
    let outcomes: Vec<_> = stream::iter(tokens)
        .map(|(index, token)| async move {
            let server = servers[index % servers.len()];
            let connected =
                client::connect(protocol, server, source_address(index), &token, Arc::clone(progress)).await;
            (index, connected)
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let elapsed = started.elapsed();
    let mut fleet = Fleet {
        clients: Vec::with_capacity(outcomes.len()),
        failures: Vec::new(),
        elapsed,
    };
    for (index, outcome) in outcomes {
        match outcome {
            Ok(client) => fleet.clients.push((index, client)),
            Err(e) => fleet.failures.push(format!("user {index}: {e}")),
        }
    }
    fleet
}

/// One token per user, in `users` order.
pub async fn issue_tokens(
    flavor: Flavor,
    (signer, store): (&TokenSigner, &dyn Store),
    app_id: &str,
    users: Range<usize>,
) -> Result<Vec<(usize, String)>> {
    let indexes: Vec<usize> = users.collect();
    let mut tokens = Vec::with_capacity(indexes.len());
    for batch in indexes.chunks(SESSION_BATCH) {
        let ids: Vec<(String, String)> = batch.iter().map(|&i| (user_id(i), user_id(i))).collect();
        let issued = if flavor.protocol() != super::client::Protocol::SocketIo && !flavor.is_floor() {
            auth::start_sessions(signer, store, app_id, &ids, "load-bench").await?
        } else {
            ids.iter()
                .map(|(user, external)| signer.issue(app_id, user, external))
                .collect::<caas_shared::Result<_>>()?
        };
        tokens.extend(batch.iter().copied().zip(issued.into_iter().map(|t| t.token)));
    }
    Ok(tokens)
}

/// Joins client i to conversation `conversation_ids[i / members]` and waits for every confirmation.
pub async fn join_groups(clients: &[(usize, Client)], conversation_ids: &[String], members: usize) -> Result<()> {
    stream::iter(clients)
        .map(|(index, client)| client.join(&conversation_ids[index / members], None))
        .buffer_unordered(CONNECT_CONCURRENCY)
        .try_collect::<()>()
        .await
}

/// Waits until `count` sends were acknowledged, at most 120 s (`what` names them in the error).
pub async fn await_acks(progress: &Progress, count: usize, what: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    while progress.acknowledged.load(Ordering::Relaxed) < count as u64 {
        if Instant::now() > deadline {
            return Err(BenchError::Failed(format!("{what} were not acknowledged within 120 s")));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}
