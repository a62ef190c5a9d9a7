//! Scenario 3, reconnect storm: N clients in groups are connected and subscribed, then all drop at once
//! (as when the node they were on dies) and reconnect at once with the tokens they hold, each resuming
//! its conversation (`since_seq` on the socket node, which replays what came after it). Measures the time
//! until every client is subscribed again, and each client's reconnect → resubscribed time.

use super::client::{self, Client, Flavor, Progress};
use super::fanout::{conversations_for, Latency};
use super::fleet::{self, source_address};
use super::servers::{Programs, Server};
use super::Environment;
use crate::error::{BenchError, Result};
use futures_util::stream::{self, StreamExt};
use serde::Serialize;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Clone, Debug, Serialize)]
pub struct StormSettings {
    pub name: String,
    pub clients: usize,
    /// Members per conversation (client i is in conversation i / members).
    pub members: usize,
    /// Reconnect attempts in flight at once: a storm of real clients does not queue politely, so this is
    /// as many as one load-generator process can keep open without running out of loopback ports.
    pub concurrency: usize,
}

#[derive(Debug, Serialize)]
pub struct StormResult {
    pub flavor: Flavor,
    pub scenario: String,
    pub clients: usize,
    pub resubscribed: usize,
    pub failed: usize,
    pub first_failure: Option<String>,
    /// From the moment every client dropped until the last one was subscribed again.
    pub all_resubscribed_seconds: f64,
    pub resubscribes_per_sec: f64,
    /// Each client's reconnect → subscription confirmed, in ms.
    pub per_client_ms: Latency,
    pub server_cpu_cores: f64,
}

pub async fn run(
    flavor: Flavor,
    settings: &StormSettings,
    programs: &Programs,
    env: &Environment,
) -> Result<StormResult> {
    let server = Server::start(flavor, programs, 0).await?;
    let conversations = settings.clients.div_ceil(settings.members);
    let conversation_ids = conversations_for(flavor, env, conversations, settings.members).await?;
    let tokens = fleet::issue_tokens(
        flavor,
        (&env.signer, env.store.as_ref()),
        &env.app_id,
        0..settings.clients,
    )
    .await?;
    // Before the storm: everyone connected and subscribed, and one message in each conversation that
    // the resuming clients' replay returns.
    let progress = Arc::new(Progress::default());
    let fleet = fleet::open(
        flavor,
        &server.addrs,
        tokens.clone(),
        fleet::CONNECT_CONCURRENCY,
        &progress,
    )
    .await;
    if let Some(failure) = fleet.failures.first() {
        return Err(BenchError::Failed(format!(
            "{} of {} connections failed before the storm, first: {failure}",
            fleet.failures.len(),
            settings.clients
        )));
    }
    let clients = fleet.clients;
    fleet::join_groups(&clients, &conversation_ids, settings.members).await?;
    for (index, client) in &clients {
        if index % settings.members == 0 {
            client.send(&conversation_ids[index / settings.members], None);
        }
    }
    fleet::await_acks(&progress, conversations, "pre-storm messages").await?;

    // The storm: every connection drops, then every client reconnects at once.
    stream::iter(clients)
        .for_each_concurrent(None, |(_, client)| async move {
            client.finish().await;
        })
        .await;
    let before = server.usage()?;
    let started = Instant::now();
    let conversation_ids = &conversation_ids;
    let since_seq = (flavor.protocol() != super::client::Protocol::SocketIo).then_some(0);
    let outcomes: Vec<Result<(Duration, Client)>> = stream::iter(tokens)
        .map(|(index, token)| {
            let (addr, progress) = (server.addrs[index % server.addrs.len()], Arc::clone(&progress));
            async move {
                let attempt = Instant::now();
                let client = client::connect(flavor.protocol(), addr, source_address(index), &token, progress).await?;
                client
                    .join(&conversation_ids[index / settings.members], since_seq)
                    .await?;
                Ok((attempt.elapsed(), client))
            }
        })
        .buffer_unordered(settings.concurrency)
        .collect()
        .await;
    let all_resubscribed = started.elapsed();
    let after = server.usage()?;
    let mut per_client_us = Vec::with_capacity(outcomes.len());
    let mut failures = Vec::new();
    let mut resumed = Vec::with_capacity(outcomes.len());
    for outcome in outcomes {
        match outcome {
            Ok((took, client)) => {
                per_client_us.push(took.as_micros().min(u128::from(u32::MAX)) as u32);
                resumed.push(client);
            }
            Err(e) => failures.push(e.to_string()),
        }
    }
    stream::iter(resumed)
        .for_each_concurrent(None, |client| async move {
            client.finish().await;
        })
        .await;
    server.stop().await;
    Ok(StormResult {
        flavor,
        scenario: settings.name.clone(),
        clients: settings.clients,
        resubscribed: per_client_us.len(),
        failed: failures.len(),
        first_failure: failures.into_iter().next(),
        all_resubscribed_seconds: all_resubscribed.as_secs_f64(),
        resubscribes_per_sec: per_client_us.len() as f64 / all_resubscribed.as_secs_f64().max(1e-9),
        per_client_ms: Latency::of(&mut per_client_us),
        server_cpu_cores: after.cores_since(&before),
    })
}
