//! Scenario 2, fan-out: C conversations of M members, S senders at a fixed rate each; deliveries/s,
//! send → receive latency (both timestamps taken in this process) and the server's CPU.

use super::client::{Flavor, Progress, Tally};
use super::fleet::{self, user_id};
use super::servers::{Programs, Server, Usage};
use super::Environment;
use crate::error::{BenchError, Result};
use crate::percentile;
use caas_shared::domain::model::{Conversation, ConversationKind, Member, Role};
use futures_util::stream::{self, StreamExt, TryStreamExt};
use serde::Serialize;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Clone, Debug, Serialize)]
pub struct FanOutSettings {
    pub name: String,
    pub conversations: usize,
    pub members: usize,
    pub senders: usize,
    /// Messages per second each sender sends.
    pub rate_per_sender: f64,
    pub seconds: f64,
}

impl FanOutSettings {
    pub fn offered_messages_per_sec(&self) -> f64 {
        self.senders as f64 * self.rate_per_sender
    }
}

#[derive(Debug, Serialize)]
pub struct FanOutResult {
    pub flavor: Flavor,
    pub scenario: String,
    pub connections: usize,
    pub sent: u64,
    pub acknowledged: u64,
    pub expected_deliveries: u64,
    pub deliveries: u64,
    pub errors: u64,
    pub messages_per_sec: f64,
    pub deliveries_per_sec: f64,
    pub latency_ms: Latency,
    /// Server CPU from the first send to the last delivery, in cores.
    pub server_cpu_cores: f64,
    /// The socket node's backends' CPU over the same time (none for Socket.IO, which has no backend).
    pub backend_cpu_cores: Vec<(String, f64)>,
    /// This load generator's own CPU over the same time: it shares the machine's cores with the servers.
    pub generator_cpu_cores: f64,
    /// Everything's CPU time per message sent (server, backends and the generator), in µs: on a machine
    /// whose cores are all busy, what bounds msgs/s.
    pub cpu_us_per_message: f64,
    pub server_rss_bytes: u64,
}

#[derive(Debug, Default, Serialize)]
pub struct Latency {
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
}

impl Latency {
    /// Percentiles of `samples_us` (sorted in place), in ms.
    pub fn of(samples_us: &mut [u32]) -> Self {
        samples_us.sort_unstable();
        let ms: Vec<f64> = samples_us.iter().map(|&us| f64::from(us) / 1000.0).collect();
        Self {
            p50: percentile(&ms, 50.0),
            p95: percentile(&ms, 95.0),
            p99: percentile(&ms, 99.0),
            max: ms.last().copied().unwrap_or(0.0),
        }
    }
}

/// Creates `conversations` groups of `members` users each (user i in group i / members) in the platform's
/// store (the socket node checks memberships there); the Socket.IO servers have no store and use plain
/// room names.
async fn create_conversations(env: &Environment, conversations: usize, members: usize) -> Result<Vec<String>> {
    let ids: Vec<String> = (0..conversations).map(|_| uuid::Uuid::now_v7().to_string()).collect();
    stream::iter(ids.iter().enumerate())
        .map(|(index, id)| async move {
            let member_ids: Vec<String> = (0..members).map(|m| user_id(index * members + m)).collect();
            let conversation = Conversation {
                id: id.clone(),
                app_id: env.app_id.clone(),
                kind: ConversationKind::Group,
                name: Some(format!("bench {index}")),
                created_by: member_ids[0].clone(),
                member_ids: member_ids.clone(),
                epoch: uuid::Uuid::new_v4().to_string(),
                created_at: caas_shared::now_ms(),
                correlation_id: format!("bench-{}", env.app_id),
            };
            // The first member created the conversation.
            let role = |position: usize| if position == 0 { Role::Owner } else { Role::Member };
            let members: Vec<Member> = member_ids
                .iter()
                .enumerate()
                .map(|(position, user)| Member::new(&conversation, user, role(position)))
                .collect();
            env.store.create_conversation(&conversation, &members).await.map(|_| ())
        })
        .buffer_unordered(16)
        .try_collect::<()>()
        .await?;
    Ok(ids)
}

/// The conversations of a run on `flavor`: created in the platform's store for the socket node, plain
/// room names for the Socket.IO servers.
pub async fn conversations_for(
    flavor: Flavor,
    env: &Environment,
    conversations: usize,
    members: usize,
) -> Result<Vec<String>> {
    match flavor {
        Flavor::Caas | Flavor::CaasSocketIo => create_conversations(env, conversations, members).await,
        Flavor::SocketIo | Flavor::SocketIoStack | Flavor::Floor | Flavor::FloorBackends => {
            Ok((0..conversations).map(|c| format!("room-{c}")).collect())
        }
    }
}

/// Sender i is a member of conversation i mod C (member i / C of it): its conversation and client index.
fn sender_slot(sender: usize, conversations: usize, members: usize) -> (usize, usize) {
    let conversation = sender % conversations;
    let member = (sender / conversations) % members;
    (conversation, conversation * members + member)
}

pub async fn run(
    flavor: Flavor,
    settings: &FanOutSettings,
    programs: &Programs,
    env: &Environment,
    backends: &[(String, u32)],
) -> Result<FanOutResult> {
    let server = Server::start(flavor, programs, 0).await?;
    let conversation_ids = conversations_for(flavor, env, settings.conversations, settings.members).await?;
    let users = settings.conversations * settings.members;
    let progress = Arc::new(Progress::default());
    let fleet = fleet::connect(
        flavor,
        &server.addrs,
        (&env.signer, env.store.as_ref()),
        &env.app_id,
        0..users,
        &progress,
    )
    .await?;
    if let Some(failure) = fleet.failures.first() {
        return Err(BenchError::Failed(format!(
            "{} of {users} connections failed, first: {failure}",
            fleet.failures.len()
        )));
    }
    let mut clients = fleet.clients;
    clients.sort_by_key(|(index, _)| *index);
    fleet::join_groups(&clients, &conversation_ids, settings.members).await?;
    // One unstamped message per sender first: the socket node caches memberships on first use, and a
    // steady-state chat service sends from warm caches.
    let sender_slots: Vec<(usize, usize)> = (0..settings.senders)
        .map(|sender| sender_slot(sender, settings.conversations, settings.members))
        .collect();
    for &(conversation, client) in &sender_slots {
        clients[client].1.send(&conversation_ids[conversation], None);
    }
    fleet::await_acks(&progress, settings.senders, "warm-up messages").await?;

    let period = Duration::from_secs_f64(1.0 / settings.rate_per_sender);
    let sends_each = (settings.seconds * settings.rate_per_sender).round() as u64;
    let clients = Arc::new(clients);
    let conversation_ids = Arc::new(conversation_ids);
    let before = server.usage()?;
    let generator_before = Usage::of(std::process::id())?;
    let backends_before = backends
        .iter()
        .map(|(_, pid)| Usage::of(*pid))
        .collect::<Result<Vec<_>>>()?;
    let started = Instant::now() + Duration::from_millis(100);
    let profiler = profile_system(flavor, settings, programs, &server.pids())?;
    let senders: Vec<_> = sender_slots
        .into_iter()
        .enumerate()
        .map(|(sender, (conversation, client))| {
            let (clients, conversation_ids) = (Arc::clone(&clients), Arc::clone(&conversation_ids));
            let offset = period.mul_f64(sender as f64 / settings.senders as f64);
            tokio::spawn(async move {
                let client = &clients[client].1;
                let mut sent = 0;
                for k in 0..sends_each {
                    let scheduled = started + offset + period * k as u32;
                    tokio::time::sleep_until(scheduled.into()).await;
                    if !client.send(&conversation_ids[conversation], Some(scheduled)) {
                        break;
                    }
                    sent += 1;
                }
                sent
            })
        })
        .collect();
    let mut sent = 0;
    for sender in senders {
        sent += sender
            .await
            .map_err(|e| BenchError::Failed(format!("sender task: {e}")))?;
    }
    let expected = sent * settings.members as u64;
    // Drain: until every delivery arrived, or nothing arrived for 5 s (then the missing ones are lost).
    let (mut seen, mut progress_at) = (progress.delivered.load(Ordering::Relaxed), Instant::now());
    while seen < expected && progress_at.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now_seen = progress.delivered.load(Ordering::Relaxed);
        if now_seen > seen {
            (seen, progress_at) = (now_seen, Instant::now());
        }
    }
    let after = server.usage()?;
    let generator_after = Usage::of(std::process::id())?;
    if let Some(mut profiler) = profiler {
        let _ = profiler.wait().await;
    }
    let backends_after = backends
        .iter()
        .map(|(_, pid)| Usage::of(*pid))
        .collect::<Result<Vec<_>>>()?;
    let backend_cpu_cores = backends
        .iter()
        .zip(backends_before.iter().zip(&backends_after))
        .map(|((name, _), (before, after))| (name.clone(), after.cores_since(before)))
        .collect();
    let cpu_seconds = (after.cpu_seconds - before.cpu_seconds)
        + (generator_after.cpu_seconds - generator_before.cpu_seconds)
        + backends_before
            .iter()
            .zip(&backends_after)
            .map(|(before, after)| after.cpu_seconds - before.cpu_seconds)
            .sum::<f64>();
    // Acks may trail the last delivery slightly.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let clients = Arc::try_unwrap(clients).map_err(|_| BenchError::Failed("senders still running".into()))?;
    let mut tally = Tally::default();
    for (_, client) in clients {
        tally.merge(client.finish().await);
    }
    server.stop().await;
    let window = tally
        .last_delivery
        .map_or(Duration::ZERO, |last| last.saturating_duration_since(started))
        .as_secs_f64()
        .max(1e-9);
    Ok(FanOutResult {
        flavor,
        scenario: settings.name.clone(),
        connections: users,
        sent,
        // The warm-up messages were acknowledged too.
        acknowledged: tally.acks.saturating_sub(settings.senders as u64),
        expected_deliveries: expected,
        deliveries: tally.deliveries,
        errors: tally.errors,
        messages_per_sec: sent as f64 / window,
        deliveries_per_sec: tally.deliveries as f64 / window,
        latency_ms: Latency::of(&mut tally.latencies_us),
        server_cpu_cores: after.cores_since(&before),
        backend_cpu_cores,
        generator_cpu_cores: generator_after.cores_since(&generator_before),
        cpu_us_per_message: cpu_seconds * 1e6 / sent.max(1) as f64,
        server_rss_bytes: after.rss_bytes,
    })
}

/// With `CAAS_BENCH_PERF_SECONDS=N`, records the whole machine (`perf record -a -g`, cpu-clock) for the
/// first N seconds of the measured load, into `perf-<server>-<scenario>.data` in the log directory: the
/// profile shows where the node, Redis, the broker and this load generator spend the cores they share.
/// With `CAAS_BENCH_PERF_DWARF=1` as well, records only the server's processes, with DWARF call graphs
/// (the release build keeps no frame pointers, so `-g` alone cannot say who called what).
fn profile_system(
    flavor: Flavor,
    settings: &FanOutSettings,
    programs: &Programs,
    server_pids: &[u32],
) -> Result<Option<tokio::process::Child>> {
    let Some(seconds) = std::env::var("CAAS_BENCH_PERF_SECONDS").ok().filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    let scenario: String = settings.name.chars().take_while(|c| *c != ':').collect();
    let file = programs
        .log_dir
        .join(format!("perf-{}-{scenario}-{}.data", flavor.name(), settings.senders));
    std::fs::create_dir_all(&programs.log_dir)?;
    let mut perf = tokio::process::Command::new("perf");
    perf.args(["record", "-F", "997", "-e", "cpu-clock", "-o"]).arg(&file);
    if std::env::var("CAAS_BENCH_PERF_DWARF").is_ok_and(|v| v == "1") {
        let pids: Vec<String> = server_pids.iter().map(u32::to_string).collect();
        perf.args(["--call-graph", "dwarf,16384", "-p", &pids.join(",")]);
    } else {
        perf.args(["-a", "-g"]);
    }
    let child = perf
        .args(["--", "sleep", &seconds])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    Ok(Some(child))
}
