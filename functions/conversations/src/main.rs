//! Lambda entry point of the conversations function: wires config, the store, cache and bus, and the router.

use caas_shared::config::Config;
use caas_shared::{ports::bus, ports::cache, ports::store};
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    caas_shared::runtime::telemetry::init();
    let config = Config::from_env()?;
    let store = store::connect(&config.store_url, &config.store_database).await?;
    let cache = cache::connect(&config.cache_url).await?;
    let bus = bus::connect(&config.bus_url).await?;
    let api = conversations::ConversationsApi::new(store, cache, bus, &config);
    lambda_http::run(conversations::router(Arc::new(api))).await
}
