//! Socket node entry point: wires config, drivers and the listener; stops on SIGTERM or Ctrl-C.

use caas_shared::config::Config;
use caas_shared::domain::events::topics;
use caas_shared::{ports::bus, ports::cache, ports::store};
use socket_node::config::NodeSettings;
use socket_node::{server::Listener, Node};

/// Every frame, Redis reply and Kafka record is a handful of short-lived allocations; under load glibc
/// malloc spent a quarter of the node's CPU on them (docs/benchmarks/load.md), mimalloc's per-thread
/// free lists a fraction of that.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let settings = NodeSettings::from_env()?;
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = settings.worker_threads {
        runtime.worker_threads(threads);
    }
    runtime.enable_all().build()?.block_on(serve(settings))
}

async fn serve(settings: NodeSettings) -> Result<(), Box<dyn std::error::Error>> {
    caas_shared::runtime::telemetry::init();
    let config = Config::from_env()?;
    let store = store::connect(&config.store_url, &config.store_database).await?;
    let cache = cache::connect(&config.cache_url).await?;
    let bus = bus::connect(&config.bus_url).await?;
    bus.ensure_topics(&topics::ALL).await?;
    let node = Node::start(&config, settings.clone(), store, cache, bus).await?;
    let listener = tokio::net::TcpListener::bind(&settings.bind).await?;
    tracing::info!(addr = %listener.local_addr()?, node_id = %settings.node_id, "socket node listening");
    Listener { node, listener }
        .run(caas_shared::runtime::shutdown_signal())
        .await;
    Ok(())
}
