//! Socket-node settings from `CAAS_SOCKET_*` environment variables.

use caas_shared::{Error, Result};
use std::time::Duration;

#[derive(Clone, Debug)]
pub struct NodeSettings {
    /// Threads of the node's runtime (`CAAS_SOCKET_WORKER_THREADS`, default one per CPU). On a host
    /// whose cores the node shares with Redis and the broker, fewer threads save the cross-thread
    /// wake-ups; see docs/benchmarks/send-path.md.
    pub worker_threads: Option<usize>,
    /// Address to listen on (`CAAS_SOCKET_BIND`, default `0.0.0.0:3002`).
    pub bind: String,
    /// Names this node in logs (`CAAS_NODE_ID`, default random).
    pub node_id: String,
    /// Connections beyond this wait for a free slot (`CAAS_SOCKET_MAX_CONNECTIONS`, default 100000).
    pub max_connections: usize,
    /// Bytes of frames (replies and events) queued for one client before it counts as too slow and is
    /// disconnected (`CAAS_SOCKET_SEND_QUEUE_BYTES`, default 1 MiB). The client then reconnects and
    /// resumes by `since_seq`. A node holds at most about this much per connection.
    pub send_queue_bytes: usize,
    /// Connections one user of one app may hold on this node (`CAAS_SOCKET_MAX_CONNECTIONS_PER_USER`,
    /// default 16); one more is refused with `too_many_connections`.
    pub max_connections_per_user: usize,
    /// Connections from one client address still in their handshake (`CAAS_SOCKET_MAX_HANDSHAKES_PER_IP`,
    /// default 64). One more evicts that address's oldest pending handshake rather than being refused,
    /// so idle handshakes cannot lock a real client out. Counts only the unauthenticated phase. The
    /// address is the TCP peer's, or behind a trusted proxy the one it forwarded.
    pub max_handshakes_per_ip: usize,
    /// Connections in their handshake on the whole node (`CAAS_SOCKET_MAX_HANDSHAKES`, default 10000,
    /// room for a reconnect storm); one more evicts the oldest pending handshake.
    pub max_handshakes: usize,
    /// Proxies whose `X-Forwarded-For` names the client (`CAAS_TRUSTED_PROXIES`, comma-separated CIDRs
    /// or addresses, default none): the load balancer's subnets. A connection from any other peer is
    /// counted under its own address whatever headers it sends.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// How often the node re-reads the sessions of its connections and closes those revoked
    /// (`CAAS_SOCKET_SESSION_RECHECK_MS`, default 30000): the bound on how long a revocation whose
    /// announcement was lost leaves a socket open.
    pub session_recheck: Duration,
    /// What one connection may ask for per second besides sends (`CAAS_SOCKET_SIGNALS_PER_SECOND`,
    /// `CAAS_SOCKET_REQUESTS_PER_SECOND`; 0 turns one off); see [`crate::budget`].
    pub rates: crate::budget::Rates,
    /// Conversations one connection may subscribe to (`CAAS_SOCKET_MAX_SUBSCRIPTIONS`, default 1000);
    /// one more is refused with `limit_exceeded`.
    pub max_subscriptions: usize,
    /// Time from TCP accept to an authenticated connection (`CAAS_SOCKET_HANDSHAKE_TIMEOUT_MS`, default
    /// 10000); a connection that has not finished the upgrade and authentication by then is closed.
    pub handshake_timeout: Duration,
    /// Largest accepted client frame in bytes (`CAAS_SOCKET_MAX_FRAME_BYTES`, default 65536).
    pub max_frame_bytes: usize,
    /// Time a client has to send its `auth` frame when the handshake carried no token.
    pub auth_timeout: Duration,
    /// Time connections get to close cleanly on shutdown.
    pub shutdown_grace: Duration,
    /// How often the node pings a Socket.IO client (`CAAS_SOCKETIO_PING_INTERVAL_MS`, default 25000,
    /// Socket.IO's own default); sent to the client in the Engine.IO open packet.
    pub ping_interval: Duration,
    /// How long a Socket.IO client has to answer a ping before it is disconnected
    /// (`CAAS_SOCKETIO_PING_TIMEOUT_MS`, default 20000).
    pub ping_timeout: Duration,
    /// How long a native `/ws` client may stay silent before the node sends it a WebSocket ping
    /// (`CAAS_SOCKET_PING_INTERVAL_MS`, default 25000); browsers and WebSocket libraries answer pings
    /// by themselves.
    pub native_ping_interval: Duration,
    /// How long a pinged native client has to send anything (its pong) before it is disconnected and
    /// goes offline (`CAAS_SOCKET_PING_TIMEOUT_MS`, default 20000).
    pub native_ping_timeout: Duration,
    /// Origins whose browser pages may long-poll `/socket.io/` (`CAAS_SOCKETIO_CORS_ORIGINS`, comma
    /// separated, default `*`: any). Tokens travel in the CONNECT packet, not in cookies, so no
    /// origin gets ambient credentials either way.
    pub cors_origins: Vec<String>,
    /// Socket.IO connection-state recovery (`CAAS_SOCKETIO_RECOVERY`, default `true`): the CONNECT
    /// answer carries a recovery id and every `message.new` an offset argument, and a client that
    /// reconnects within 2 minutes, to any node, gets what it missed and `socket.recovered === true`.
    pub socketio_recovery: bool,
    /// Whether Socket.IO clients also get message events under the replaced system's names
    /// (`message:new`, …; `CAAS_SOCKETIO_ORIGINAL_EVENTS`, default `true`). An app that listens on the
    /// native names only turns it off and halves what each delivery sends.
    pub socketio_original_events: bool,
}

/// A boolean setting, `true` unless set to `false` (or `0`).
fn flag(get: &impl Fn(&str) -> Option<String>, key: &str) -> Result<bool> {
    match get(key).as_deref() {
        None | Some("true" | "1") => Ok(true),
        Some("false" | "0") => Ok(false),
        Some(_) => Err(Error::Config(format!("{key} must be true or false"))),
    }
}

/// Parses `CAAS_TRUSTED_PROXIES`: CIDRs (`10.0.0.0/16`) or single addresses, comma separated.
fn trusted_proxies(value: Option<&str>) -> Result<Vec<ipnet::IpNet>> {
    let entries = value
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty());
    entries
        .map(|entry| {
            entry
                .parse::<ipnet::IpNet>()
                .or_else(|_| entry.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| Error::Config(format!("CAAS_TRUSTED_PROXIES: {entry:?} is not a CIDR or an address")))
        })
        .collect()
}

impl NodeSettings {
    pub fn from_env() -> Result<Self> {
        Self::from_lookup(|key| std::env::var(key).ok())
    }

    /// Reads the settings through `lookup` (as [`caas_shared::config::Config::from_lookup`]).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let get = |key: &str| lookup(key).filter(|v| !v.is_empty());
        let number = |key: &str, default: usize| -> Result<usize> {
            get(key).map_or(Ok(default), |v| {
                v.parse().map_err(|_| Error::Config(format!("{key} must be a number")))
            })
        };
        Ok(Self {
            bind: get("CAAS_SOCKET_BIND").unwrap_or_else(|| "0.0.0.0:3002".into()),
            node_id: get("CAAS_NODE_ID").unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string()),
            max_connections: number("CAAS_SOCKET_MAX_CONNECTIONS", 100_000)?,
            send_queue_bytes: number("CAAS_SOCKET_SEND_QUEUE_BYTES", 1024 * 1024)?,
            max_connections_per_user: number("CAAS_SOCKET_MAX_CONNECTIONS_PER_USER", 16)?,
            max_handshakes_per_ip: number("CAAS_SOCKET_MAX_HANDSHAKES_PER_IP", 64)?,
            max_handshakes: number("CAAS_SOCKET_MAX_HANDSHAKES", 10_000)?,
            trusted_proxies: trusted_proxies(get("CAAS_TRUSTED_PROXIES").as_deref())?,
            session_recheck: Duration::from_millis(number("CAAS_SOCKET_SESSION_RECHECK_MS", 30_000)?.max(100) as u64),
            rates: crate::budget::Rates {
                signals_per_second: number("CAAS_SOCKET_SIGNALS_PER_SECOND", 5)? as f32,
                requests_per_second: number("CAAS_SOCKET_REQUESTS_PER_SECOND", 20)? as f32,
            },
            max_subscriptions: number("CAAS_SOCKET_MAX_SUBSCRIPTIONS", 1000)?,
            handshake_timeout: Duration::from_millis(number("CAAS_SOCKET_HANDSHAKE_TIMEOUT_MS", 10_000)? as u64),
            max_frame_bytes: number("CAAS_SOCKET_MAX_FRAME_BYTES", 64 * 1024)?,
            auth_timeout: Duration::from_secs(5),
            shutdown_grace: Duration::from_secs(10),
            ping_interval: Duration::from_millis(number("CAAS_SOCKETIO_PING_INTERVAL_MS", 25_000)? as u64),
            ping_timeout: Duration::from_millis(number("CAAS_SOCKETIO_PING_TIMEOUT_MS", 20_000)? as u64),
            native_ping_interval: Duration::from_millis(number("CAAS_SOCKET_PING_INTERVAL_MS", 25_000)?.max(100) as u64),
            native_ping_timeout: Duration::from_millis(number("CAAS_SOCKET_PING_TIMEOUT_MS", 20_000)?.max(100) as u64),
            cors_origins: get("CAAS_SOCKETIO_CORS_ORIGINS")
                .unwrap_or_else(|| "*".into())
                .split(',')
                .map(|origin| origin.trim().to_owned())
                .filter(|origin| !origin.is_empty())
                .collect(),
            socketio_recovery: flag(&get, "CAAS_SOCKETIO_RECOVERY")?,
            socketio_original_events: flag(&get, "CAAS_SOCKETIO_ORIGINAL_EVENTS")?,
            worker_threads: match number("CAAS_SOCKET_WORKER_THREADS", 0)? {
                0 => None,
                threads => Some(threads),
            },
        })
    }
}
