//! Lambda entry point of the compliance function: wires config, the store, cache, bus and blob store,
//! and the router.

use caas_shared::config::Config;
use caas_shared::{ports::blob, ports::bus, ports::cache, ports::store};
use compliance::ComplianceApi;
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    caas_shared::runtime::telemetry::init();
    let config = Config::from_env()?;
    let store = store::connect(&config.store_url, &config.store_database).await?;
    let cache = cache::connect(&config.cache_url).await?;
    let bus = bus::connect(&config.bus_url).await?;
    let api = ComplianceApi::new(store, cache, bus, blob::connect(&config).await?, &config);
    lambda_http::run(compliance::router(Arc::new(api))).await
}
