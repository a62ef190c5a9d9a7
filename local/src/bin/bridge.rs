//! Runs the Kafka-triggered functions locally against the bus and store named by `CAAS_BUS_URL` and
//! `CAAS_STORE_URL`.

use caas_shared::config::Config;
use caas_shared::events::topics;
use caas_shared::{bus, store};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    caas_shared::telemetry::init();
    let config = Config::from_env()?;
    let store = store::connect(&config.store_url, &config.store_database).await?;
    let bus = bus::connect(&config.bus_url).await?;
    bus.ensure_topics(&topics::ALL).await?;
    caas_local::run_functions(&config, store, bus, caas_shared::shutdown_signal()).await?;
    Ok(())
}
