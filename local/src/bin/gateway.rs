//! The local API gateway: every HTTP function on its `/api/v1/...` route at one port
//! (`CAAS_GATEWAY_BIND`, default `127.0.0.1:3000`).

use caas_local::Platform;
use caas_shared::config::Config;
use caas_shared::domain::events::topics;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    caas_shared::runtime::telemetry::init();
    let platform = Platform::connect(Config::from_env()?, false).await?;
    platform.bus.ensure_topics(&topics::ALL).await?;
    let listener = tokio::net::TcpListener::bind(&platform.config.gateway_bind).await?;
    tracing::info!(addr = %listener.local_addr()?, "gateway listening");
    axum::serve(
        listener,
        // The peer address is the caller's source for the token endpoint's failure limits.
        caas_local::gateway(&platform, caas_local::demo::DemoApp::from_env())
            .into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(caas_shared::runtime::shutdown_signal())
    .await?;
    Ok(())
}
