//! The load benchmark: the socket node as users load it, side by side with a Socket.IO 4 server doing
//! the seed's job (token check, room join, broadcast), plus the persistence path into MongoDB.
//! Everything runs on loopback and every run is bounded in count and time.

pub mod client;
pub mod fanout;
pub mod fleet;
pub mod idle;
pub mod persist;
pub mod report;
pub mod servers;
pub mod storm;
pub mod webhooks;

use caas_shared::config::Config;
use caas_shared::domain::model::App;
use caas_shared::ports::bus::Bus;
use caas_shared::ports::store::Store;
use caas_shared::services::auth::TokenSigner;
use client::Flavor;
use std::sync::Arc;

/// The platform the socket node runs on (from the same `CAAS_*` variables), and the app under load.
pub struct Environment {
    pub config: Config,
    pub store: Arc<dyn Store>,
    pub bus: Arc<dyn Bus>,
    pub signer: TokenSigner,
    /// A fresh app per run, so runs never see each other's data.
    pub app_id: String,
    /// The socket node's own backends (Redis, the Kafka broker) by name and process id, from
    /// `CAAS_BENCH_BACKEND_PIDS=redis:123,tansu:456`: their CPU is part of what a message costs us.
    pub backends: Vec<(String, u32)>,
    /// The `local/stack.sh` folder of the stack (`CAAS_BENCH_STACK_DIR`), when the benchmark may restart
    /// its Redis and broker between scenarios.
    pub stack_dir: Option<std::path::PathBuf>,
}

impl Environment {
    pub async fn connect(config: Config) -> crate::error::Result<Self> {
        let store = caas_shared::ports::store::connect(&config.store_url, &config.store_database).await?;
        let bus = caas_shared::ports::bus::connect(&config.bus_url).await?;
        let signer = TokenSigner::from_config(&config);
        let app_id = format!("bench-{}", uuid::Uuid::new_v4().simple());
        // The node reads the app's settings on every send (cached). The bench mints tokens itself, so
        // the app has no usable secret; it measures capacity, so it keeps the default: no rate limits.
        let app = App::new(
            app_id.clone(),
            "load-bench".into(),
            String::new(),
            caas_shared::now_ms(),
            "load-bench".into(),
        );
        store.insert_app(&app).await?;
        let backends = std::env::var("CAAS_BENCH_BACKEND_PIDS")
            .unwrap_or_default()
            .split(',')
            .filter_map(|entry| {
                let (name, pid) = entry.split_once(':')?;
                Some((name.to_owned(), pid.parse().ok()?))
            })
            .collect();
        Ok(Self {
            config,
            store,
            bus,
            signer,
            app_id,
            backends,
            stack_dir: std::env::var_os("CAAS_BENCH_STACK_DIR").map(Into::into),
        })
    }

    /// [`Self::fresh_backends`] for a server that uses them (the socket node and the Socket.IO stack);
    /// none for plain Socket.IO.
    pub fn fresh_backends_for(&self, flavor: Flavor) -> crate::error::Result<Vec<(String, u32)>> {
        match flavor {
            Flavor::Caas | Flavor::CaasSocketIo | Flavor::SocketIoStack | Flavor::FloorBackends => {
                self.fresh_backends()
            }
            Flavor::SocketIo | Flavor::Floor => Ok(Vec::new()),
        }
    }

    /// Restarts the socket node's backends (Redis and the Kafka broker, both in memory) so a scenario
    /// starts on empty ones rather than on what earlier scenarios left; returns their new process ids.
    /// Without a stack folder, the backends as they are.
    pub fn fresh_backends(&self) -> crate::error::Result<Vec<(String, u32)>> {
        let Some(dir) = &self.stack_dir else {
            return Ok(self.backends.clone());
        };
        let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../local/stack.sh");
        for (name, _) in &self.backends {
            let status = std::process::Command::new("bash")
                .arg(&script)
                .arg("restart")
                .arg(dir)
                .arg(name)
                .stdout(std::process::Stdio::null())
                .status()?;
            if !status.success() {
                return Err(crate::error::BenchError::Failed(format!("restarting {name} failed")));
            }
        }
        let pids = std::fs::read_to_string(dir.join("pids"))?;
        Ok(self
            .backends
            .iter()
            .filter_map(|(name, _)| {
                let pid = pids.lines().find_map(|line| line.strip_prefix(&format!("{name} ")))?;
                Some((name.clone(), pid.trim().parse().ok()?))
            })
            .collect())
    }
}

/// What one whole run measures (a scenario left out is `None` or empty).
#[derive(Clone, Debug, serde::Serialize)]
pub struct Plan {
    pub idle: Option<idle::IdleSettings>,
    pub fan_out: Vec<fanout::FanOutSettings>,
    pub storm: Option<storm::StormSettings>,
    pub persist: Option<persist::PersistSettings>,
    pub webhooks: Option<webhooks::WebhookSettings>,
}

impl Plan {
    /// The full run: the sizes, bounded by what one process may open here.
    pub fn full(per_process: usize) -> Self {
        Self {
            idle: Some(idle::IdleSettings {
                connections: 100_000,
                per_process,
            }),
            // The rates measure capacity (a saturated server's deliveries/s; its latency then is
            // queueing); the last scenario is a load both servers sustain, for latency.
            fan_out: vec![
                fanout::FanOutSettings {
                    name: "broadcast: 100 groups × 100 members, 4,000 msgs/s offered".into(),
                    conversations: 100,
                    members: 100,
                    senders: 100,
                    rate_per_sender: 40.0,
                    seconds: 5.0,
                },
                fanout::FanOutSettings {
                    name: "chat: 2,000 groups × 5 members, 40,000 msgs/s offered".into(),
                    conversations: 2_000,
                    members: 5,
                    senders: 2_000,
                    rate_per_sender: 20.0,
                    seconds: 5.0,
                },
                fanout::FanOutSettings {
                    name: "chat: 2,000 groups × 5 members, 5,000 msgs/s".into(),
                    conversations: 2_000,
                    members: 5,
                    senders: 2_000,
                    rate_per_sender: 2.5,
                    seconds: 10.0,
                },
                fanout::FanOutSettings {
                    name: "chat: 2,000 groups × 5 members, 1,000 msgs/s".into(),
                    conversations: 2_000,
                    members: 5,
                    senders: 2_000,
                    rate_per_sender: 0.5,
                    seconds: 10.0,
                },
            ],
            // One node and one load-generator process hold every client: below the 20,000 files a process
            // may open here.
            storm: Some(storm::StormSettings {
                name: "reconnect storm: 15,000 clients in groups of 5".into(),
                clients: 15_000,
                members: 5,
                concurrency: 2_000,
            }),
            persist: Some(persist::PersistSettings {
                messages: 20_000,
                naive_seconds: 15.0,
            }),
            webhooks: Some(webhooks::WebhookSettings { events: 5_000 }),
        }
    }

    /// A few seconds, small sizes: keeps the tool from rotting in CI.
    pub fn smoke() -> Self {
        Self {
            idle: Some(idle::IdleSettings {
                connections: 200,
                per_process: 100,
            }),
            fan_out: vec![fanout::FanOutSettings {
                name: "smoke: 4 groups × 5 members, 40 msgs/s".into(),
                conversations: 4,
                members: 5,
                senders: 4,
                rate_per_sender: 10.0,
                seconds: 1.0,
            }],
            storm: Some(storm::StormSettings {
                name: "smoke: reconnect storm, 40 clients in groups of 5".into(),
                clients: 40,
                members: 5,
                concurrency: 40,
            }),
            persist: Some(persist::PersistSettings {
                messages: 200,
                naive_seconds: 2.0,
            }),
            webhooks: Some(webhooks::WebhookSettings { events: 200 }),
        }
    }

    /// Keeps only the scenarios named in `wanted` (`idle`, `fanout`, `storm`, `persist`, `webhooks`).
    pub fn only(&mut self, wanted: &[&str]) {
        if !wanted.contains(&"idle") {
            self.idle = None;
        }
        if !wanted.contains(&"fanout") {
            self.fan_out.clear();
        }
        if !wanted.contains(&"storm") {
            self.storm = None;
        }
        if !wanted.contains(&"persist") {
            self.persist = None;
        }
        if !wanted.contains(&"webhooks") {
            self.webhooks = None;
        }
    }
}

/// Runs every planned scenario: idle against the socket node and plain Socket.IO, fan-out and the
/// reconnect storm against those and the Socket.IO stack, then the persistence comparison.
pub async fn run(
    plan: &Plan,
    programs: &servers::Programs,
    worker_binary: &std::path::Path,
    env: &Environment,
) -> crate::error::Result<report::LoadReport> {
    // `CAAS_BENCH_SERVERS=caas,socketio` (names as in `Flavor::name`) runs those servers only, for
    // profiling one change at a time.
    let only = std::env::var("CAAS_BENCH_SERVERS").unwrap_or_default();
    let mut flavors = vec![Flavor::Caas, Flavor::CaasSocketIo, Flavor::SocketIo, Flavor::Floor];
    if programs.socketio_stack_backends.is_some() {
        flavors.extend([Flavor::SocketIoStack, Flavor::FloorBackends]);
    }
    flavors.retain(|flavor| only.is_empty() || only.split(',').any(|name| name == flavor.name()));
    let mut report = report::LoadReport::new(plan.clone());
    if let Some(settings) = &plan.idle {
        // The stack's idle connections cost what plain Socket.IO's do.
        // The floors are for the send path: their idle memory is no target.
        for &flavor in flavors
            .iter()
            .filter(|flavor| **flavor != Flavor::SocketIoStack && !flavor.is_floor())
        {
            tracing::info!(server = flavor.label(), "idle connections");
            report
                .idle
                .push(idle::run(flavor, settings, programs, worker_binary, &env.app_id).await?);
        }
    }
    for settings in &plan.fan_out {
        for &flavor in &flavors {
            tracing::info!(server = flavor.label(), scenario = %settings.name, "fan-out");
            let backends = env.fresh_backends_for(flavor)?;
            report
                .fan_out
                .push(fanout::run(flavor, settings, programs, env, &backends).await?);
        }
    }
    if let Some(settings) = &plan.storm {
        // Socket.IO clients resubscribe through the same requests as native ones; the floors have no
        // resubscription worth measuring.
        for &flavor in flavors
            .iter()
            .filter(|flavor| **flavor != Flavor::CaasSocketIo && !flavor.is_floor())
        {
            tracing::info!(server = flavor.label(), scenario = %settings.name, "reconnect storm");
            env.fresh_backends_for(flavor)?;
            report.storm.push(storm::run(flavor, settings, programs, env).await?);
        }
    }
    if let Some(settings) = &plan.persist {
        tracing::info!("persistence");
        env.fresh_backends()?;
        report.persist = Some(persist::run(settings, env).await?);
    }
    if let Some(settings) = &plan.webhooks {
        tracing::info!("webhooks");
        env.fresh_backends()?;
        report.webhooks = Some(webhooks::run(settings, env).await?);
    }
    Ok(report)
}
