//! Local development tools: the gateway that serves every HTTP function on one port, the bridge that
//! feeds bus records to Kafka-triggered functions the way AWS's event source mapping does, and the
//! embedded dev mode that runs both with a socket node in one process.

pub mod bridge;
pub mod demo;

use caas_shared::config::Config;
use caas_shared::ports::blob::{self, local::LocalBlobs, Blobs};
use caas_shared::ports::bus::Bus;
use caas_shared::ports::cache::Cache;
use caas_shared::ports::search::SearchIndex;
use caas_shared::ports::store::Store;
use caas_shared::runtime::kafka_function::KafkaFunction;
use caas_shared::Result;
use caas_shared::{ports::bus, ports::cache, ports::store};
use std::future::Future;
use std::sync::Arc;

/// Every HTTP function mounted on its `/api/v1/...` routes, as API Gateway does when deployed, and the
/// demo chat page at `/demo` (signing users into `demo_app`, when there is one).
pub fn gateway(platform: &Platform, demo_app: Option<demo::DemoApp>) -> axum::Router {
    let Platform {
        config,
        store,
        cache,
        bus,
        search,
        blobs,
        local_blobs,
    } = platform;
    let auth = auth::AuthService::new(Arc::clone(store), Arc::clone(bus), config);
    let conversations =
        conversations::ConversationsApi::new(Arc::clone(store), Arc::clone(cache), Arc::clone(bus), config);
    let search = search::SearchApi::new(Arc::clone(store), Arc::clone(search), config);
    let media = media::MediaApi::new(Arc::clone(store), Arc::clone(blobs), config);
    let compliance = compliance::ComplianceApi::new(
        Arc::clone(store),
        Arc::clone(cache),
        Arc::clone(bus),
        Arc::clone(blobs),
        config,
    );
    let keys = keys::KeysApi::new(Arc::clone(store), Arc::clone(bus), config);
    let mut routes = auth::routes(Arc::new(auth))
        .merge(conversations::routes(Arc::new(conversations)))
        .merge(search::routes(Arc::new(search)))
        .merge(media::routes(Arc::new(media)))
        .merge(compliance::routes(Arc::new(compliance)))
        .merge(keys::routes(Arc::new(keys)));
    if let Some(local) = local_blobs {
        // Stands in for S3's presigned URLs when blobs live in a local directory.
        routes = routes.merge(caas_shared::ports::blob::local::routes(Arc::clone(local)));
    }
    let api = caas_shared::runtime::http::finish_router(routes.clone());
    routes = routes.merge(demo::routes(api, Arc::clone(store), demo_app));
    caas_shared::runtime::http::finish_router(routes)
}

/// Writes a secret readable by its owner only (created so: never world-readable, not even briefly).
pub fn write_private(path: &std::path::Path, secret: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)?.write_all(secret.as_bytes())
}

/// The configuration and the backends every local entry point (gateway, bridge, dev mode) shares.
#[derive(Clone)]
pub struct Platform {
    pub config: Config,
    pub store: Arc<dyn Store>,
    pub cache: Arc<dyn Cache>,
    pub bus: Arc<dyn Bus>,
    pub search: Arc<SearchIndex>,
    pub blobs: Arc<dyn Blobs>,
    /// Set when blobs live in a local directory: the gateway then serves their URLs.
    pub local_blobs: Option<Arc<LocalBlobs>>,
}

impl Platform {
    /// Connects to what `config` names; the search index lives in `CAAS_SEARCH_DIR`, or in memory
    /// when `search_in_memory` allows it (the dev mode without a data directory).
    pub async fn connect(config: Config, search_in_memory: bool) -> Result<Self> {
        let search = match (&config.search_dir, search_in_memory) {
            (None, true) => SearchIndex::open(None)?,
            _ => SearchIndex::open(Some(config.required_search_dir()?))?,
        };
        let local_blobs = LocalBlobs::from_config(&config)?.map(Arc::new);
        let blobs: Arc<dyn Blobs> = match &local_blobs {
            Some(local) => Arc::clone(local) as Arc<dyn Blobs>,
            None => blob::connect(&config).await?,
        };
        Ok(Self {
            blobs,
            local_blobs,
            store: store::connect(&config.store_url, &config.store_database).await?,
            cache: cache::connect(&config.cache_url).await?,
            bus: bus::connect(&config.bus_url).await?,
            search,
            config,
        })
    }
}

/// Feeds every Kafka-triggered function from its topic, one consumer group per function, until
/// `shutdown` resolves; each in-flight batch finishes (and is committed) first.
pub async fn run_functions(platform: &Platform, shutdown: impl Future<Output = ()>) -> Result<()> {
    let policy = bridge::BatchPolicy::from_config(&platform.config);
    let persist_messages =
        persist_messages::PersistMessages::new(Arc::clone(&platform.store), Arc::clone(&platform.bus));
    let persist_conversations = persist_conversations::PersistConversations::new(Arc::clone(&platform.store));
    let index_messages = index_messages::IndexMessages::new(Arc::clone(&platform.search));
    let write_audit = write_audit::WriteAudit::new(Arc::clone(&platform.store));
    let webhooks_queued = Arc::new(tokio::sync::Notify::new());
    let deliver_webhooks = deliver_webhooks::DeliverWebhooks::new(
        Arc::clone(&platform.store),
        Arc::clone(&platform.cache),
        Arc::clone(&webhooks_queued),
    );
    // Every function stops on the same signal, and a bridge that gives up stops the others.
    let stop = StopSignal::new();
    let feed = (platform, &policy, &stop);
    let (messages, conversations, indexing, audit, webhooks, delivery, retention, ()) = tokio::join!(
        feed_function(feed, &persist_messages),
        feed_function(feed, &persist_conversations),
        feed_function(feed, &index_messages),
        feed_function(feed, &write_audit),
        feed_function(feed, &deliver_webhooks),
        deliver_webhooks_until(platform, &webhooks_queued, &stop),
        stop.trigger_after(enforce_retention(platform, stop.wait())),
        stop.trigger_on(shutdown),
    );
    messages
        .and(conversations)
        .and(indexing)
        .and(audit)
        .and(webhooks)
        .and(delivery)
        .and(retention)
}

/// What the template's scheduled webhook-worker does when deployed, without pause: delivers queued
/// webhook events until `stop`, woken at once when the function in this process queues some, and
/// purges what retention let go of every hour. Without `CAAS_SECRETS_KEY` no endpoint can exist, and
/// nothing runs.
async fn deliver_webhooks_until(platform: &Platform, queued: &tokio::sync::Notify, stop: &StopSignal) -> Result<()> {
    let Ok(key) = platform.config.sealing_key() else {
        tracing::info!("webhooks are off: no CAAS_SECRETS_KEY");
        return Ok(());
    };
    let worker = deliver_webhooks::Worker {
        store: Arc::clone(&platform.store),
        bus: Arc::clone(&platform.bus),
        key,
        transport: Arc::new(caas_shared::ports::webhook_transport::HttpTransport::new(
            platform.config.webhooks_allow_loopback_http,
        )?),
        schedule: platform.config.webhook_retry_schedule.clone(),
        retention: platform.config.webhook_retention,
    };
    const PURGE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(3600);
    while !*stop.sender.borrow() {
        let stopped = stop.wait();
        let run_ends = async {
            tokio::select! {
                _ = tokio::time::sleep(PURGE_INTERVAL) => {}
                _ = stopped => {}
            }
        };
        worker.run(queued, run_ends).await;
    }
    Ok(())
}

/// One function fed from its topic by its own consumer group until the shared stop.
async fn feed_function<F: KafkaFunction>(
    (platform, policy, stop): (&Platform, &bridge::BatchPolicy, &StopSignal),
    function: &F,
) -> Result<()> {
    let group = platform.config.consumer_group(F::NAME);
    let bus = platform.bus.as_ref();
    stop.trigger_after(bridge::run_function(bus, function, &group, policy.clone(), stop.wait()))
        .await
}

/// What the template's Schedule does when deployed: applies every app's retention policy every
/// `CAAS_RETENTION_INTERVAL_SECS` (default 3600), the first time one interval after start.
async fn enforce_retention(platform: &Platform, stop: impl Future<Output = ()>) -> Result<()> {
    let retention = compliance::retention::Retention {
        store: platform.store.as_ref(),
        bus: platform.bus.as_ref(),
        blobs: platform.blobs.as_ref(),
    };
    let mut ticks = tokio::time::interval(platform.config.retention_interval);
    ticks.tick().await;
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => return Ok(()),
            _ = ticks.tick() => {
                let correlation_id = caas_shared::domain::correlation::CorrelationId::generate();
                // A failed run is retried at the next tick, like a failed scheduled invocation.
                if let Err(e) = retention.run(None, correlation_id.as_str()).await {
                    tracing::error!(error = %e, %correlation_id, "scheduled retention run failed");
                }
            }
        }
    }
}

/// One stop shared by several long-running parts: any of them may trigger it, all of them wait on it.
#[derive(Clone)]
pub struct StopSignal {
    sender: Arc<tokio::sync::watch::Sender<bool>>,
}

impl Default for StopSignal {
    fn default() -> Self {
        Self::new()
    }
}

impl StopSignal {
    pub fn new() -> Self {
        Self {
            sender: Arc::new(tokio::sync::watch::channel(false).0),
        }
    }

    pub fn trigger(&self) {
        self.sender.send_replace(true);
    }

    /// Resolves once the stop has been triggered (at once if it already was).
    pub fn wait(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut stopped = self.sender.subscribe();
        async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        }
    }

    /// Runs `part` and triggers the stop when it ends, whatever the reason.
    pub async fn trigger_after<T>(&self, part: impl Future<Output = T>) -> T {
        let output = part.await;
        self.trigger();
        output
    }

    /// Triggers the stop when `outside` resolves (a signal); ends as soon as the stop is triggered.
    pub async fn trigger_on(&self, outside: impl Future<Output = ()>) {
        tokio::select! {
            _ = outside => self.trigger(),
            _ = self.wait() => {}
        }
    }
}
