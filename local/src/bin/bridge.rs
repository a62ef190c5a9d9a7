//! Runs the Kafka-triggered functions locally: persist-messages on `caas.messages`.

use caas_local::bridge::{self, BatchPolicy};
use caas_shared::bus::{self, KafkaBus};
use caas_shared::config::Config;
use caas_shared::events::topics;
use caas_shared::store::MongoStore;
use persist_messages::PersistMessages;
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    caas_shared::telemetry::init();
    let config = Config::from_env()?;
    let brokers = config.kafka_brokers()?;
    bus::ensure_topics(&brokers, 3).await?;
    let store = Arc::new(MongoStore::connect(&config.store_url, &config.store_database).await?);
    let persist = PersistMessages::new(store, KafkaBus::connect(&brokers)?);
    let persist = &persist;
    bridge::run(
        &brokers,
        topics::MESSAGES,
        &config.consumer_group("persist-messages"),
        BatchPolicy::default(),
        |event| async move { persist.handle(&event).await },
        caas_local::shutdown_signal(),
    )
    .await?;
    Ok(())
}
