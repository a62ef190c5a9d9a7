//! Socket-node settings from `CAAS_SOCKET_*` environment variables.

use caas_shared::{Error, Result};
use std::time::Duration;

#[derive(Clone, Debug)]
pub struct NodeSettings {
    /// Address to listen on (`CAAS_SOCKET_BIND`, default `0.0.0.0:3002`).
    pub bind: String,
    /// Names this node in logs (`CAAS_NODE_ID`, default random).
    pub node_id: String,
    /// Connections beyond this wait for a free slot (`CAAS_SOCKET_MAX_CONNECTIONS`, default 100000).
    pub max_connections: usize,
    /// Frames queued for one client before it counts as too slow and is disconnected
    /// (`CAAS_SOCKET_SEND_QUEUE`, default 1024). The client then reconnects and resumes by `since_seq`.
    pub send_queue: usize,
    /// Largest accepted client frame in bytes (`CAAS_SOCKET_MAX_FRAME_BYTES`, default 65536).
    pub max_frame_bytes: usize,
    /// Time a client has to send its `auth` frame when the handshake carried no token.
    pub auth_timeout: Duration,
    /// Time connections get to close cleanly on shutdown.
    pub shutdown_grace: Duration,
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
            send_queue: number("CAAS_SOCKET_SEND_QUEUE", 1024)?,
            max_frame_bytes: number("CAAS_SOCKET_MAX_FRAME_BYTES", 64 * 1024)?,
            auth_timeout: Duration::from_secs(5),
            shutdown_grace: Duration::from_secs(10),
        })
    }
}
