//! Lambda entry point of webhook-worker, invoked by the template's schedule every minute: delivers the
//! due webhook deliveries for `CAAS_WEBHOOK_WORKER_SECS` (default 50), polling the queue, then
//! finishes the attempts in flight (at most the 10 s delivery timeout) and returns what it did. Runs
//! overlap harmlessly: deliveries are leased, so two runs never attempt the same one.

use caas_shared::config::Config;
use caas_shared::ports::webhook_transport::HttpTransport;
use caas_shared::ports::{bus, store};
use caas_shared::Error;
use deliver_webhooks::Worker;
use lambda_runtime::{service_fn, LambdaEvent};
use std::time::Duration;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    caas_shared::runtime::telemetry::init();
    let config = Config::from_env()?;
    let run_for = match std::env::var("CAAS_WEBHOOK_WORKER_SECS") {
        Ok(secs) => secs
            .parse::<u64>()
            .ok()
            .filter(|secs| (1..=800).contains(secs))
            .ok_or_else(|| Error::Config("CAAS_WEBHOOK_WORKER_SECS must be 1 to 800 seconds".into()))?,
        Err(_) => 50,
    };
    let worker = Worker {
        store: store::connect(&config.store_url, &config.store_database).await?,
        bus: bus::connect(&config.bus_url).await?,
        key: config.sealing_key()?,
        transport: std::sync::Arc::new(HttpTransport::new(config.webhooks_allow_loopback_http)?),
        schedule: config.webhook_retry_schedule.clone(),
        retention: config.webhook_retention,
    };
    let worker = &worker;
    let queued = &tokio::sync::Notify::new();
    lambda_runtime::run(service_fn(move |_: LambdaEvent<serde_json::Value>| async move {
        let report = worker
            .run(queued, tokio::time::sleep(Duration::from_secs(run_for)))
            .await;
        tracing::info!(report = %serde_json::json!(report), "webhook worker run finished");
        Ok::<_, lambda_runtime::Error>(report)
    }))
    .await
}
