//! Lambda entry point of the media function: wires config, the store, the blob store and the router.

use caas_shared::config::Config;
use caas_shared::{ports::blob, ports::store};
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    caas_shared::runtime::telemetry::init();
    let config = Config::from_env()?;
    let store = store::connect(&config.store_url, &config.store_database).await?;
    let api = media::MediaApi::new(store, blob::connect(&config).await?, &config);
    lambda_http::run(media::router(Arc::new(api))).await
}
