//! Local development tools: the gateway that serves every HTTP function on one port, the bridge that
//! feeds bus records to Kafka-triggered functions the way AWS's event source mapping does, and the
//! embedded dev mode that runs both with a socket node in one process.

pub mod bridge;

use caas_shared::bus::Bus;
use caas_shared::cache::Cache;
use caas_shared::config::Config;
use caas_shared::events::topics;
use caas_shared::store::Store;
use caas_shared::Result;
use std::future::Future;
use std::sync::Arc;

/// Every HTTP function mounted on its `/api/v1/...` routes, as API Gateway does when deployed.
pub fn gateway(config: &Config, store: Arc<dyn Store>, cache: Arc<dyn Cache>, bus: Arc<dyn Bus>) -> axum::Router {
    let auth = auth::AuthService::new(Arc::clone(&store), config);
    let conversations = conversations::ConversationsApi::new(store, cache, bus, config);
    caas_shared::http::finish_router(auth::routes(Arc::new(auth)).merge(conversations::routes(Arc::new(conversations))))
}

/// Feeds every Kafka-triggered function from its topic, one consumer group per function, until
/// `shutdown` resolves; each in-flight batch finishes (and is committed) first.
pub async fn run_functions(
    config: &Config,
    store: Arc<dyn Store>,
    bus: Arc<dyn Bus>,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    let policy = bridge::BatchPolicy::from_env()?;
    let persist_messages = persist_messages::PersistMessages::new(Arc::clone(&store), Arc::clone(&bus));
    let persist_conversations = persist_conversations::PersistConversations::new(store);
    let (persist_messages, persist_conversations) = (&persist_messages, &persist_conversations);
    // Every function stops on the same signal, and a bridge that gives up stops the others.
    let stop = StopSignal::new();
    let signal = stop.trigger_on(shutdown);
    let (messages_group, conversations_group) = (
        config.consumer_group("persist-messages"),
        config.consumer_group("persist-conversations"),
    );
    let (messages, conversations, ()) = tokio::join!(
        stop.trigger_after(bridge::run(
            bus.as_ref(),
            topics::MESSAGES,
            &messages_group,
            policy.clone(),
            |event| async move { persist_messages.handle(&event).await },
            stop.wait(),
        )),
        stop.trigger_after(bridge::run(
            bus.as_ref(),
            topics::MESSAGES,
            &conversations_group,
            policy.clone(),
            |event| async move { persist_conversations.handle(&event).await },
            stop.wait(),
        )),
        signal,
    );
    messages.and(conversations)
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
