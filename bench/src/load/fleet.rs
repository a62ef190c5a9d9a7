//! Opening many client connections: tokens for numbered users, bounded concurrency, loopback source
//! addresses spread over 127.0.0.1–127.0.0.250.

use super::client::{self, Client, Flavor, Progress};
use crate::error::Result;
use caas_shared::ports::store::Store;
use caas_shared::services::auth::{self, TokenSigner};
use futures_util::stream::{self, StreamExt};
use std::net::{Ipv4Addr, SocketAddr};
use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Connection attempts in flight at once.
const CONNECT_CONCURRENCY: usize = 256;
/// Session records written to the store at once before connecting.
const SESSION_CONCURRENCY: usize = 64;

pub fn user_id(index: usize) -> String {
    format!("u{index}")
}

fn source_address(index: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, 1 + (index % 250) as u8)
}

/// The connections of one batch of users, and how the connecting went.
pub struct Fleet {
    /// `(user index, client)`, in no particular order.
    pub clients: Vec<(usize, Client)>,
    pub failures: Vec<String>,
    pub elapsed: Duration,
}

/// Connects users `users` of `app_id` to `server`, each with a new session recorded in `store` (the
/// socket node accepts tokens of recorded sessions only).
pub async fn connect(
    flavor: Flavor,
    server: SocketAddr,
    (signer, store): (&TokenSigner, &dyn Store),
    app_id: &str,
    users: Range<usize>,
    progress: &Arc<Progress>,
) -> Result<Fleet> {
    let tokens: Vec<(usize, String)> = stream::iter(users)
        .map(|index| async move {
            let user = user_id(index);
            let session = auth::start_session(signer, store, (app_id, &user, &user), "load-bench").await?;
            Ok((index, session.token))
        })
        .buffer_unordered(SESSION_CONCURRENCY)
        .collect::<Vec<Result<_>>>()
        .await
        .into_iter()
        .collect::<Result<_>>()?;
    let started = Instant::now();
    let outcomes: Vec<_> = stream::iter(tokens)
        .map(|(index, token)| async move {
            let connected = client::connect(flavor, server, source_address(index), &token, Arc::clone(progress)).await;
            (index, connected)
        })
        .buffer_unordered(CONNECT_CONCURRENCY)
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
    Ok(fleet)
}
