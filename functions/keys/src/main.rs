//! Lambda entry point of the keys function: wires config, the store and bus, and the router.

use caas_shared::config::Config;
use caas_shared::{ports::bus, ports::store};
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    caas_shared::runtime::telemetry::init();
    let config = Config::from_env()?;
    let store = store::connect(&config.store_url, &config.store_database).await?;
    let bus = bus::connect(&config.bus_url).await?;
    let api = keys::KeysApi::new(store, bus, &config);
    lambda_http::run(keys::router(Arc::new(api))).await
}
