//! `load-bench [--smoke] [--only idle,fanout,persist] [--connections N] [--scale F] [--out PREFIX] [--logs DIR]
//! [--socket-node PATH]`: starts socket nodes and Socket.IO servers,
//! loads both with the same scenarios, prints the Markdown report and writes PREFIX.json and PREFIX.md.
//! Needs the platform's `CAAS_*` variables (see `bench/load.sh`, which starts everything and runs this).
//!
//! `load-bench hold KIND ADDR APP FIRST END` is the worker the idle scenario starts: it opens the
//! connections of users FIRST..END, prints one JSON line, and holds them until its stdin closes.

use caas_bench::error::{BenchError, Result};
use caas_bench::load::{self, idle, servers::Programs, Environment, Plan};
use caas_shared::config::Config;
use std::path::PathBuf;

/// Connections one process may hold: the open-files limit, less room for the process's own files.
fn per_process_limit() -> usize {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    let open_files = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))
        .and_then(|line| line.split_whitespace().nth(3)?.parse::<usize>().ok())
        .unwrap_or(1024);
    open_files.saturating_sub(1_000).clamp(100, 50_000)
}

#[tokio::main]
async fn main() -> Result<()> {
    caas_shared::runtime::telemetry::init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("hold") {
        return hold(&args[1..]).await;
    }
    // Tokens are signed here and checked by the servers: all must share one secret.
    let jwt_secret = std::env::var("CAAS_JWT_SECRET")
        .ok()
        .filter(|secret| !secret.is_empty())
        .unwrap_or_else(caas_shared::services::auth::generate_secret);
    let config = Config::from_lookup(|key| match key {
        "CAAS_JWT_SECRET" => Some(jwt_secret.clone()),
        _ => std::env::var(key).ok(),
    })?;
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let here = std::env::current_exe()?;
    let mut plan = Plan::full(per_process_limit());
    let mut out: Option<PathBuf> = None;
    let mut only: Option<String> = None;
    let mut scale = 1.0_f64;
    let mut programs = Programs {
        socket_node: here.with_file_name("socket-node"),
        floor_relay: here.with_file_name("floor-relay"),
        socketio_server: repo.join("bench/socketio/server.js"),
        socketio_modules: std::env::var_os("CAAS_SOCKETIO_MODULES")
            .map_or_else(|| tools_dir().join("socketio/node_modules"), PathBuf::from),
        log_dir: std::env::temp_dir().join(format!("caas-load-bench-{}", std::process::id())),
        env: vec![("CAAS_JWT_SECRET".into(), jwt_secret.clone())],
        // The Socket.IO stack runs on the socket node's own Redis and broker, when they are real ones.
        socketio_stack_backends: config
            .cache_url
            .starts_with("redis://")
            .then(|| config.bus_url.strip_prefix("kafka://"))
            .flatten()
            .map(|brokers| (config.cache_url.clone(), brokers.to_owned())),
    };
    let mut args = args.into_iter();
    while let Some(flag) = args.next() {
        let mut value = || {
            args.next()
                .ok_or_else(|| BenchError::Failed(format!("{flag} needs a value")))
        };
        match flag.as_str() {
            "--smoke" => plan = Plan::smoke(),
            "--out" => out = Some(PathBuf::from(value()?)),
            "--connections" => {
                let connections = value()?
                    .parse()
                    .map_err(|_| BenchError::Failed("--connections N".into()))?;
                if let Some(idle) = &mut plan.idle {
                    idle.connections = connections;
                }
            }
            "--only" => only = Some(value()?),
            // Multiplies every fan-out sender's rate (to find where latency starts to climb).
            "--scale" => scale = value()?.parse().map_err(|_| BenchError::Failed("--scale F".into()))?,
            // Another socket-node command, e.g. a wrapper script that runs it under a profiler.
            "--socket-node" => programs.socket_node = PathBuf::from(value()?),
            "--logs" => programs.log_dir = PathBuf::from(value()?),
            other => return Err(BenchError::Failed(format!("unknown argument {other:?}"))),
        }
    }
    for settings in &mut plan.fan_out {
        settings.rate_per_sender *= scale;
    }
    if let Ok(pattern) = std::env::var("CAAS_BENCH_SCENARIO") {
        plan.fan_out.retain(|settings| settings.name.contains(&pattern));
    }
    if let Some(wanted) = only {
        plan.only(&wanted.split(',').collect::<Vec<_>>());
    }
    let env = Environment::connect(config).await?;
    let report = load::run(&plan, &programs, &here, &env).await?;
    let markdown = report.markdown();
    println!("{markdown}");
    if let Some(prefix) = out {
        let path = prefix.with_extension("md");
        // What people wrote under the marker (profiles, analysis) survives a new run.
        let kept = std::fs::read_to_string(&path)
            .ok()
            .and_then(|old| old.find(HAND_WRITTEN).map(|at| old[at..].to_owned()))
            .unwrap_or_default();
        std::fs::write(&path, format!("{markdown}\n{kept}"))?;
        std::fs::write(prefix.with_extension("json"), serde_json::to_string_pretty(&report)?)?;
    }
    Ok(())
}

/// Starts the part of the Markdown report that people write; a new run keeps it.
const HAND_WRITTEN: &str = "<!-- written by hand below this line; bench/load.sh keeps it -->";

/// Where `local/stack.sh install` puts tools, socket.io included.
fn tools_dir() -> PathBuf {
    std::env::var_os("CAAS_TOOLS_DIR").map_or_else(
        || PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into())).join(".cache/caas/tools"),
        PathBuf::from,
    )
}

async fn hold(args: &[String]) -> Result<()> {
    let [kind, addr, app_id, first, end] = args else {
        return Err(BenchError::Failed(
            "usage: load-bench hold KIND ADDR APP FIRST END".into(),
        ));
    };
    let number = |v: &str| {
        v.parse::<usize>()
            .map_err(|_| BenchError::Failed(format!("not a number: {v}")))
    };
    let flavor = idle::parse_flavor(kind)?;
    let addr = addr
        .parse()
        .map_err(|_| BenchError::Failed(format!("not an address: {addr}")))?;
    let config = Config::from_env()?;
    let signer = caas_shared::services::auth::TokenSigner::from_config(&config);
    let store = caas_shared::ports::store::connect(&config.store_url, &config.store_database).await?;
    let progress = Default::default();
    let fleet = load::fleet::connect(
        flavor,
        &[addr],
        (&signer, store.as_ref()),
        app_id,
        number(first)?..number(end)?,
        &progress,
    )
    .await?;
    let report = idle::HoldReport {
        connected: fleet.clients.len(),
        failed: fleet.failures.len(),
        seconds: fleet.elapsed.as_secs_f64(),
        first_failure: fleet.failures.first().cloned(),
    };
    println!("{}", serde_json::to_string(&report)?);
    // Hold every connection until the benchmark closes our stdin.
    let mut sink = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(&mut tokio::io::stdin(), &mut sink).await?;
    drop(fleet);
    Ok(())
}
