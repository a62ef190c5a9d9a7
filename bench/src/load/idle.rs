//! Scenario 1, idle connections: N authenticated connections held open; the servers' resident memory
//! per connection and the connect rate. Clients run in worker processes (`load-bench hold`), servers in
//! their own, so no process needs more file descriptors than the machine's per-process limit allows.

use super::client::Flavor;
use super::servers::{Programs, Server};
use crate::error::{BenchError, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

#[derive(Clone, Debug, Serialize)]
pub struct IdleSettings {
    pub connections: usize,
    /// Most connections one server or worker process holds (below the open-files limit).
    pub per_process: usize,
}

/// What a `hold` worker reports once its connections are open.
#[derive(Debug, Serialize, Deserialize)]
pub struct HoldReport {
    pub connected: usize,
    pub failed: usize,
    pub seconds: f64,
    pub first_failure: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct IdleResult {
    pub flavor: Flavor,
    pub servers: usize,
    pub connections: usize,
    pub failed: usize,
    pub connect_seconds: f64,
    pub connects_per_sec: f64,
    /// Resident memory of all servers before any client connected, and with every connection open.
    pub rss_before_bytes: u64,
    pub rss_after_bytes: u64,
    pub rss_per_connection_bytes: f64,
}

/// Runs the idle scenario against `flavor`, with `hold` workers started from `worker_binary`.
pub async fn run(
    flavor: Flavor,
    settings: &IdleSettings,
    programs: &Programs,
    worker_binary: &Path,
    app_id: &str,
) -> Result<IdleResult> {
    let processes = settings.connections.div_ceil(settings.per_process).max(1);
    let mut servers = Vec::with_capacity(processes);
    for index in 0..processes {
        servers.push(Server::start(flavor, programs, index).await?);
    }
    // Let the servers finish starting (connections to Redis, Kafka metadata) before the baseline.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before: u64 = servers
        .iter()
        .map(|s| s.usage().map(|u| u.rss_bytes))
        .sum::<Result<u64>>()?;
    let mut workers = Vec::with_capacity(processes);
    for (index, server) in servers.iter().enumerate() {
        let first = index * settings.per_process;
        let last = ((index + 1) * settings.per_process).min(settings.connections);
        let mut child = Command::new(worker_binary)
            .envs(programs.env.iter().cloned())
            .args(["hold", flavor.name(), &server.addrs[0].to_string(), app_id])
            .args([first.to_string(), last.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let lines = BufReader::new(child.stdout.take().expect("piped")).lines();
        workers.push((child, lines));
    }
    let mut total = HoldReport {
        connected: 0,
        failed: 0,
        seconds: 0.0,
        first_failure: None,
    };
    for (_, lines) in &mut workers {
        let line = lines
            .next_line()
            .await?
            .ok_or_else(|| BenchError::Failed("a hold worker exited without reporting".into()))?;
        let report: HoldReport = serde_json::from_str(&line)?;
        total.connected += report.connected;
        total.failed += report.failed;
        total.seconds = total.seconds.max(report.seconds);
        total.first_failure = total.first_failure.or(report.first_failure);
    }
    // Allocations settle (presence writes, subscription confirmations) before the reading.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after: u64 = servers
        .iter()
        .map(|s| s.usage().map(|u| u.rss_bytes))
        .sum::<Result<u64>>()?;
    for (mut child, _) in workers {
        drop(child.stdin.take());
        let _ = tokio::time::timeout(Duration::from_secs(30), child.wait()).await;
    }
    for server in servers {
        server.stop().await;
    }
    if let Some(failure) = &total.first_failure {
        tracing::warn!(failed = total.failed, first = %failure, "some idle connections failed");
    }
    Ok(IdleResult {
        flavor,
        servers: processes,
        connections: total.connected,
        failed: total.failed,
        connect_seconds: total.seconds,
        connects_per_sec: total.connected as f64 / total.seconds.max(1e-9),
        rss_before_bytes: before,
        rss_after_bytes: after,
        rss_per_connection_bytes: after.saturating_sub(before) as f64 / total.connected.max(1) as f64,
    })
}

pub fn parse_flavor(arg: &str) -> Result<Flavor> {
    [
        Flavor::Caas,
        Flavor::CaasSocketIo,
        Flavor::SocketIo,
        Flavor::SocketIoStack,
        Flavor::Floor,
        Flavor::FloorBackends,
    ]
    .into_iter()
    .find(|flavor| flavor.name() == arg)
    .ok_or_else(|| {
        BenchError::Failed(format!(
            "unknown server kind {arg:?} (caas, caas-socketio, socketio, socketio-stack, floor or floor-backends)"
        ))
    })
}
