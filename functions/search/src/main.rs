//! Lambda entry point of the search function: wires config, the store, the index directory and the router.

use caas_shared::config::Config;
use caas_shared::ports::search::SearchIndex;
use caas_shared::ports::store;
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    caas_shared::runtime::telemetry::init();
    let config = Config::from_env()?;
    let store = store::connect(&config.store_url, &config.store_database).await?;
    let index = SearchIndex::open(Some(config.required_search_dir()?))?;
    let api = search::SearchApi::new(store, index, &config);
    lambda_http::run(search::router(Arc::new(api))).await
}
