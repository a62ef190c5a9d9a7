//! Lambda entry point of persist-messages: wires config, the store, the bus and the handler.

use caas_shared::config::Config;
use caas_shared::runtime::kafka_function::run_kafka_function;
use caas_shared::{ports::bus, ports::store};
use persist_messages::PersistMessages;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    caas_shared::runtime::telemetry::init();
    let config = Config::from_env()?;
    let store = store::connect(&config.store_url, &config.store_database).await?;
    run_kafka_function(PersistMessages::new(store, bus::connect(&config.bus_url).await?)).await
}
