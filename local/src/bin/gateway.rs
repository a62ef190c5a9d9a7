//! The local API gateway: every HTTP function on its `/api/v1/...` route at one port
//! (`CAAS_GATEWAY_BIND`, default `127.0.0.1:3000`).

use caas_shared::config::Config;
use caas_shared::events::topics;
use caas_shared::{bus, cache, store};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    caas_shared::telemetry::init();
    let config = Config::from_env()?;
    let bind = std::env::var("CAAS_GATEWAY_BIND").unwrap_or_else(|_| "127.0.0.1:3000".into());
    let store = store::connect(&config.store_url, &config.store_database).await?;
    let cache = cache::connect(&config.redis_socket_url).await?;
    let bus = bus::connect(&config.bus_url).await?;
    bus.ensure_topics(&topics::ALL).await?;
    let listener = tokio::net::TcpListener::bind(&bind).await?;
    tracing::info!(addr = %listener.local_addr()?, "gateway listening");
    axum::serve(listener, caas_local::gateway(&config, store, cache, bus))
        .with_graceful_shutdown(caas_shared::shutdown_signal())
        .await?;
    Ok(())
}
