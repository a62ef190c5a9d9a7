//! Where the Redis drivers (cache and fan-out) connect: one server (`redis://host:port`) or a Redis
//! Cluster (`redis+cluster://host:port,host:port,…`, any reachable masters as seeds; the cluster's own
//! topology is discovered from them). Both are one connection type to the drivers, so their commands
//! are written once; the few that behave differently on a cluster ask [`RedisConnection::is_cluster`].

use crate::{Error, Result};
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, Value};
use std::time::Duration;

/// The scheme that names a Redis Cluster by its seed nodes.
pub const CLUSTER_SCHEME: &str = "redis+cluster://";

/// Whether `url` is one the Redis drivers take.
pub fn is_redis_url(url: &str) -> bool {
    url.starts_with("redis://") || url.starts_with("rediss://") || url.starts_with(CLUSTER_SCHEME)
}

/// The seed node URLs of a `redis+cluster://[user:password@]host:port,host:port[/]` URL, each as a
/// plain `redis://` URL carrying the credentials; `None` for any other URL.
pub fn cluster_seeds(url: &str) -> Option<Result<Vec<String>>> {
    let rest = url.strip_prefix(CLUSTER_SCHEME)?;
    let rest = rest.trim_end_matches('/');
    let (credentials, hosts) = match rest.rsplit_once('@') {
        Some((credentials, hosts)) => (format!("{credentials}@"), hosts),
        None => (String::new(), rest),
    };
    let seeds: Vec<String> = hosts
        .split(',')
        .map(str::trim)
        .filter(|host| !host.is_empty())
        .map(|host| format!("redis://{credentials}{host}"))
        .collect();
    Some(if seeds.is_empty() || hosts.contains(['/', '?']) {
        Err(Error::Config(format!(
            "a Redis Cluster URL is {CLUSTER_SCHEME}[user:password@]host:port[,host:port…], got {url}"
        )))
    } else {
        Ok(seeds)
    })
}

/// How long a command to a single server may wait for its answer. The client's default (500 ms) is
/// shorter than a command can queue on a node at full load: the load benchmark's saturated chat lost
/// about one live `message.new` in 10,000 to it (the publish of an accepted message timed out while
/// queued). A dead server is found by the connection itself; this only bounds a hung one.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);

/// A reconnecting connection to the single server `client` names, answers awaited up to
/// [`RESPONSE_TIMEOUT`].
pub async fn server_connection(client: redis::Client) -> Result<ConnectionManager> {
    let config = ConnectionManagerConfig::new().set_response_timeout(Some(RESPONSE_TIMEOUT));
    Ok(ConnectionManager::new_with_config(client, config).await?)
}

/// A builder for the cluster named by `seeds` with the settings both drivers share.
pub fn cluster_builder(seeds: Vec<String>) -> ClusterClientBuilder {
    // Each command is retried on MOVED/ASK and on a lost node while the topology is rediscovered.
    ClusterClientBuilder::new(seeds).retries(6)
}

/// One reconnecting connection to a Redis server or a Redis Cluster; cheap to clone, clones share it.
#[derive(Clone)]
pub enum RedisConnection {
    /// One server, through a connection that reconnects itself.
    Server(ConnectionManager),
    /// A cluster: one multiplexed connection per master, routed by slot, following slot moves.
    Cluster(ClusterConnection),
}

impl RedisConnection {
    /// Connects to the server or cluster `url` names (failing with a `Cache` error when it is
    /// unreachable, a `Config` error when the URL is malformed).
    pub async fn connect(url: &str) -> Result<Self> {
        match cluster_seeds(url) {
            Some(seeds) => {
                let client = cluster_builder(seeds?).build()?;
                Ok(Self::Cluster(client.get_async_connection().await?))
            }
            None => Ok(Self::Server(server_connection(redis::Client::open(url)?).await?)),
        }
    }

    /// A cluster refuses a pipeline whose keys are in different slots: callers that batch many
    /// unrelated keys send them one slot at a time there.
    pub fn is_cluster(&self) -> bool {
        matches!(self, Self::Cluster(_))
    }
}

impl ConnectionLike for RedisConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Server(connection) => connection.req_packed_command(cmd),
            Self::Cluster(connection) => connection.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Server(connection) => connection.req_packed_commands(pipeline, offset, count),
            Self::Cluster(connection) => connection.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Server(connection) => connection.get_db(),
            Self::Cluster(connection) => connection.get_db(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_urls_name_their_seed_nodes() {
        assert!(cluster_seeds("redis://127.0.0.1:6379").is_none());
        assert_eq!(
            cluster_seeds("redis+cluster://127.0.0.1:7000,127.0.0.1:7001/")
                .unwrap()
                .unwrap(),
            ["redis://127.0.0.1:7000", "redis://127.0.0.1:7001"]
        );
        assert_eq!(
            cluster_seeds("redis+cluster://user:p%40ss@h1:1, h2:2")
                .unwrap()
                .unwrap(),
            ["redis://user:p%40ss@h1:1", "redis://user:p%40ss@h2:2"]
        );
        assert!(matches!(cluster_seeds("redis+cluster://"), Some(Err(Error::Config(_)))));
        assert!(matches!(
            cluster_seeds("redis+cluster://h:1/0?x=1"),
            Some(Err(Error::Config(_)))
        ));
        assert!(is_redis_url("redis+cluster://h:1") && is_redis_url("rediss://h") && !is_redis_url("memory://"));
    }
}
