//! Runs the Kafka-triggered functions locally against the bus, store and search index named by
//! `CAAS_BUS_URL`, `CAAS_STORE_URL` and `CAAS_SEARCH_DIR`.

use caas_local::Platform;
use caas_shared::config::Config;
use caas_shared::domain::events::topics;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    caas_shared::runtime::telemetry::init();
    let platform = Platform::connect(Config::from_env()?, false).await?;
    platform.bus.ensure_topics(&topics::ALL).await?;
    caas_local::run_functions(&platform, caas_shared::runtime::shutdown_signal()).await?;
    Ok(())
}
