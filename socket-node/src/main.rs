//! Socket node entry point: wires config, drivers and the listener; stops on SIGTERM or Ctrl-C.

use caas_shared::auth::TokenSigner;
use caas_shared::bus::{self, KafkaBus};
use caas_shared::cache::RedisCache;
use caas_shared::config::Config;
use caas_shared::store::MongoStore;
use socket_node::config::NodeSettings;
use socket_node::{acks, hub::Hub, server::Listener, Node};
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    caas_shared::telemetry::init();
    let config = Config::from_env()?;
    let settings = NodeSettings::from_env()?;
    let brokers = config.kafka_brokers()?;
    bus::ensure_topics(&brokers, 3).await?;
    let hub = Hub::connect_redis(&config.redis_socket_url).await?;
    acks::start(&brokers, &settings.node_id, Arc::clone(&hub)).await?;
    let node = Arc::new(Node {
        store: Arc::new(MongoStore::connect(&config.store_url, &config.store_database).await?),
        cache: Arc::new(RedisCache::connect(&config.redis_socket_url).await?),
        bus: KafkaBus::connect(&brokers)?,
        signer: TokenSigner::from_config(&config),
        hub,
        settings: settings.clone(),
    });
    let listener = tokio::net::TcpListener::bind(&settings.bind).await?;
    tracing::info!(addr = %listener.local_addr()?, node_id = %settings.node_id, "socket node listening");
    Listener { node, listener }.run(shutdown_signal()).await;
    Ok(())
}

async fn shutdown_signal() {
    let mut terminate =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("installing SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
}
