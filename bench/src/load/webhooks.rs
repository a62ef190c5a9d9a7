//! Scenario 4, webhooks: events per second from `caas.messages` to a customer's endpoint — recorded in
//! the app's event log and queued by the deliver-webhooks function, then signed and POSTed by the worker
//! to a local receiver that answers 204 at once. Both halves run as the bridge runs them (the worker
//! woken by the function), so the figure is the pipeline's, ingest and delivery overlapping.
//!
//! The send path is not in it because it has nothing to measure: the socket node reads no webhook
//! setting and publishes nothing more when an app has endpoints; deliver-webhooks is one more consumer
//! group on the topic the node already writes.

use super::persist::{drain, messages, produce};
use super::Environment;
use crate::error::{BenchError, Result};
use caas_shared::domain::sealing::SealingKey;
use caas_shared::ports::store::{MemoryStore, Store};
use caas_shared::ports::webhook_transport::HttpTransport;
use caas_shared::runtime::kafka_function::KafkaFunction;
use caas_shared::services::webhooks::{NewEndpoint, WebhookAdmin};
use serde::Serialize;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Clone, Debug, Serialize)]
pub struct WebhookSettings {
    pub events: usize,
}

#[derive(Debug, Serialize)]
pub struct WebhookResult {
    pub events: usize,
    /// The same pipeline on the in-memory store, then on the stack's MongoDB server: the first shows what
    /// the pipeline itself (Kafka, signing, HTTP) allows, the second what the database leaves of it.
    pub runs: Vec<WebhookRun>,
}

#[derive(Debug, Serialize)]
pub struct WebhookRun {
    /// The store the event log and the delivery queue were kept in.
    pub store: String,
    /// Events recorded in the log and queued, per second (deliver-webhooks).
    pub recorded_per_sec: f64,
    /// Events POSTed and answered, per second, from the first record consumed to the last answer.
    pub delivered_per_sec: f64,
    pub delivered: usize,
}

/// A receiver on a free loopback port that counts the POSTs it answers (204 at once); its URL.
async fn receiver(received: Arc<AtomicUsize>) -> Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/hook", listener.local_addr()?);
    let router = axum::Router::new().route(
        "/hook",
        axum::routing::post(move || {
            received.fetch_add(1, Ordering::Relaxed);
            async { axum::http::StatusCode::NO_CONTENT }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, router).await });
    Ok(url)
}

pub async fn run(settings: &WebhookSettings, env: &Environment) -> Result<WebhookResult> {
    let memory: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let app = env
        .store
        .find_app(&env.app_id)
        .await?
        .ok_or_else(|| BenchError::Failed(format!("the benchmark's app {} is missing", env.app_id)))?;
    memory.insert_app(&app).await?;
    let mut runs = vec![run_on(settings, env, "in-memory", memory).await?];
    let database = "the stack's MongoDB-protocol server".to_owned();
    runs.push(run_on(settings, env, &database, env.store.clone()).await?);
    Ok(WebhookResult {
        events: settings.events,
        runs,
    })
}

/// One pass of `settings.events` records through deliver-webhooks and the worker on `store`.
async fn run_on(
    settings: &WebhookSettings,
    env: &Environment,
    label: &str,
    store: Arc<dyn Store>,
) -> Result<WebhookRun> {
    let received = Arc::new(AtomicUsize::new(0));
    let url = receiver(Arc::clone(&received)).await?;
    let key = SealingKey::from_base64(&SealingKey::generate_base64())?;
    let admin = WebhookAdmin {
        store: store.as_ref(),
        key: &key,
        allow_loopback_http: true,
    };
    let endpoint = NewEndpoint {
        url,
        event_types: vec!["message.new".into()],
        description: "load bench".into(),
        enabled: true,
    };
    admin
        .create(&env.app_id, endpoint, caas_shared::now_ms(), "bench-webhooks")
        .await?;

    let bus_handle = caas_shared::ports::bus::connect(&env.config.bus_url).await?;
    let bus = bus_handle.as_ref();
    let topic = format!("caas.bench.webhooks.{}", uuid::Uuid::new_v4().simple());
    bus.ensure_topics(&caas_shared::domain::events::topics::ALL).await?;
    bus.ensure_topics(&[topic.as_str()]).await?;
    produce(bus, &topic, &messages(env, settings.events)).await?;

    let cache = caas_shared::ports::cache::connect(&env.config.cache_url).await?;
    let queued = Arc::new(tokio::sync::Notify::new());
    let function = deliver_webhooks::DeliverWebhooks::new(store.clone(), cache, Arc::clone(&queued));
    let worker = deliver_webhooks::Worker {
        store: store.clone(),
        bus: Arc::clone(&bus_handle),
        key,
        transport: Arc::new(HttpTransport::new(true)?),
        schedule: caas_shared::domain::webhooks::retry::DEFAULT_SCHEDULE.to_vec(),
        retention: caas_shared::services::webhook_events::DEFAULT_RETENTION,
    };
    let limit = Duration::from_secs(600);
    let started = Instant::now();
    let all_received = async {
        while received.load(Ordering::Relaxed) < settings.events && started.elapsed() < limit {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    let function = &function;
    // The records come from a topic of the benchmark's own; the function reads them as the
    // `caas.messages` records they are.
    let ingest = drain(bus, &topic, settings.events, limit, |mut event| async move {
        for record in event.records.values_mut().flatten() {
            record.topic = Some(caas_shared::domain::events::topics::MESSAGES.into());
        }
        function.handle(&event).await.map(|report| report.ingested.events)
    });
    let (ingested, _) = tokio::join!(ingest, worker.run(&queued, all_received));
    let (recorded, recorded_seconds) = ingested?;
    let delivered = received.load(Ordering::Relaxed);
    let delivered_seconds = started.elapsed().as_secs_f64();
    if delivered < settings.events {
        return Err(BenchError::Failed(format!(
            "{delivered} of {} webhook events delivered within {} s ({recorded} recorded)",
            settings.events,
            limit.as_secs()
        )));
    }
    Ok(WebhookRun {
        store: label.to_owned(),
        recorded_per_sec: recorded as f64 / recorded_seconds,
        delivered_per_sec: delivered as f64 / delivered_seconds,
        delivered,
    })
}
