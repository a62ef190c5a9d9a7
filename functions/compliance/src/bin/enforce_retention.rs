//! Lambda entry point of the scheduled retention run: an EventBridge Schedule invokes it (the event's
//! content is not needed); it applies every app's retention policy.

use caas_shared::config::Config;
use caas_shared::domain::correlation::CorrelationId;
use caas_shared::{ports::blob, ports::bus, ports::store};
use compliance::retention::Retention;
use lambda_runtime::{service_fn, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    caas_shared::runtime::telemetry::init();
    let config = Config::from_env()?;
    let store = store::connect(&config.store_url, &config.store_database).await?;
    let bus = bus::connect(&config.bus_url).await?;
    let blobs = blob::connect(&config).await?;
    let retention = Retention {
        store: store.as_ref(),
        bus: bus.as_ref(),
        blobs: blobs.as_ref(),
    };
    let retention = &retention;
    lambda_runtime::run(service_fn(move |_: LambdaEvent<serde_json::Value>| async move {
        let correlation_id = CorrelationId::generate();
        let reports = retention.run(None, correlation_id.as_str()).await?;
        Ok::<_, lambda_runtime::Error>(serde_json::json!({"apps": reports}))
    }))
    .await
}
