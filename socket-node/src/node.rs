//! The node: the drivers, the hub and the background relays, built once and shared by every
//! connection (centrifuge's `Node` owning its `Hub` and `Broker`).

use crate::config::NodeSettings;
use crate::handshakes::HandshakeBudget;
use crate::hub::Hub;
use crate::polling::PollingSessions;
use crate::relays;
use crate::shutdown::Shutdown;
use crate::tally::Tally;
use caas_shared::config::Config;
use caas_shared::ports::bus::Bus;
use caas_shared::ports::cache::Cache;
use caas_shared::ports::store::Store;
use caas_shared::services::auth::TokenSigner;
use caas_shared::services::conversations::Conversations;
use caas_shared::services::messages::{Messages, Notice};
use caas_shared::services::moderation::AppSettingsCache;
use caas_shared::services::session_lookups::SessionLookups;
use caas_shared::Result;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use tokio::sync::{broadcast, Semaphore};
use tokio::task::JoinSet;

pub struct Node {
    pub store: Arc<dyn Store>,
    pub cache: Arc<dyn Cache>,
    pub bus: Arc<dyn Bus>,
    pub signer: TokenSigner,
    pub hub: Arc<Hub>,
    pub settings: NodeSettings,
    /// Each app's settings as recently read, for the checks every send makes.
    pub app_settings: AppSettingsCache,
    /// The session check of every connect and renewal, batched across concurrent ones.
    pub sessions: SessionLookups,
    /// Connections per (app id, user id) on this node, capped by `max_connections_per_user`.
    pub user_connections: Tally<(String, String)>,
    /// One permit per connection (`max_connections`): the listener takes one per TCP connection, and a
    /// long-polling session one of its own, since it outlives the HTTP requests that serve it.
    pub connection_slots: Arc<Semaphore>,
    /// Socket.IO long-polling sessions by sid.
    pub polling: PollingSessions,
    /// Connections (and long-polling sessions) that have not authenticated yet, per client address
    /// (`max_handshakes_per_ip`) and in all (`max_handshakes`), the oldest evicted to make room.
    pub handshakes: HandshakeBudget,
    /// Fired once, when the node shuts down; see [`Shutdown`].
    notify_shutdown: broadcast::Sender<()>,
    /// The relays: topics tailed into the hub, the hub's own fan-in, presence renewal and sweep.
    background: Mutex<JoinSet<()>>,
}

impl Node {
    /// Builds a node on the given store, cache and bus (shared with other components in the embedded dev
    /// mode), connects its fan-out from `config`, and starts relaying acks, conversation changes and
    /// session revocations. Each topic is tailed from its end before this returns, so nothing produced
    /// afterwards is missed.
    pub async fn start(
        config: &Config,
        settings: NodeSettings,
        store: Arc<dyn Store>,
        cache: Arc<dyn Cache>,
        bus: Arc<dyn Bus>,
    ) -> Result<Arc<Self>> {
        let (notify_shutdown, _) = broadcast::channel(1);
        let shutdown = || Shutdown::new(notify_shutdown.subscribe());
        let (hub, inbox) = Hub::connect(&config.cache_url).await?;
        let mut background = JoinSet::new();
        background.spawn(relays::fan_in(Arc::clone(&hub), inbox, shutdown()));
        background.spawn(relays::acks(bus.as_ref(), Arc::clone(&hub), shutdown()).await?);
        background.spawn(relays::conversation_changes(bus.as_ref(), Arc::clone(&hub), shutdown()).await?);
        background.spawn(relays::revocations(bus.as_ref(), Arc::clone(&hub), shutdown()).await?);
        background.spawn(relays::presence_renewal(
            Arc::clone(&cache),
            Arc::clone(&hub),
            shutdown(),
        ));
        background.spawn(relays::presence_sweep(Arc::clone(&cache), Arc::clone(&hub), shutdown()));
        background.spawn(relays::session_recheck(
            Arc::clone(&store),
            Arc::clone(&hub),
            settings.session_recheck,
            shutdown(),
        ));
        Ok(Arc::new(Self {
            sessions: SessionLookups::start(Arc::clone(&store)),
            store,
            cache,
            bus,
            signer: TokenSigner::from_config(config),
            hub,
            app_settings: AppSettingsCache::default(),
            user_connections: Tally::default(),
            connection_slots: Arc::new(Semaphore::new(settings.max_connections)),
            polling: PollingSessions::default(),
            handshakes: HandshakeBudget::new(settings.max_handshakes_per_ip, settings.max_handshakes),
            settings,
            notify_shutdown,
            background: Mutex::new(background),
        }))
    }

    /// The address a connection's handshake counts against: the TCP peer's, or the one a trusted proxy
    /// forwarded (see [`crate::handshakes::client_address`]).
    pub fn client_address(&self, peer: IpAddr, forwarded_for: Option<&str>) -> IpAddr {
        crate::handshakes::client_address(peer, forwarded_for, &self.settings.trusted_proxies)
    }

    /// Whether `peer` is a trusted proxy, whose clients' addresses are known only from their requests.
    pub fn is_trusted_proxy(&self, peer: IpAddr) -> bool {
        self.settings.trusted_proxies.iter().any(|net| net.contains(&peer))
    }

    /// A listener for the node's shutdown.
    pub fn shutdown_listener(&self) -> Shutdown {
        Shutdown::new(self.notify_shutdown.subscribe())
    }

    /// Tells every connection and relay to stop.
    pub fn begin_shutdown(&self) {
        let _ = self.notify_shutdown.send(());
    }

    /// Waits for the relays to stop (after [`Self::begin_shutdown`]).
    pub async fn stop_relays(&self) {
        let mut background = std::mem::take(&mut *self.background.lock().expect("background lock"));
        while background.join_next().await.is_some() {}
    }

    pub fn conversations(&self) -> Conversations<'_> {
        Conversations {
            store: self.store.as_ref(),
            cache: self.cache.as_ref(),
            bus: self.bus.as_ref(),
        }
    }

    pub fn messages(&self) -> Messages<'_> {
        Messages {
            store: self.store.as_ref(),
            cache: self.cache.as_ref(),
            bus: self.bus.as_ref(),
            settings: &self.app_settings,
        }
    }

    /// Delivers a use case's notice to the conversation's subscribers on every node.
    pub async fn tell(&self, notice: Option<Notice>) -> Result<()> {
        match notice {
            Some(notice) => self.hub.publish(&notice.channel, &notice.frame).await,
            None => Ok(()),
        }
    }
}
