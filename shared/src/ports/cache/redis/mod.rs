//! The Redis driver of the cache port.
//!
//! Keys of one conversation share a hash tag (`{app:conversation}`) so the claim script touches a
//! single slot and stays atomic on Redis Cluster too.

mod membership;
mod presence;
mod recent;
mod restrictions;
mod resumes;
mod sequences;

use crate::ports::redis_target::RedisConnection;
use crate::Result;

fn conversation_tag(app_id: &str, conversation_id: &str) -> String {
    format!("caas:{{{app_id}:{conversation_id}}}")
}

/// The Redis driver of the cache port (`redis://…`, `rediss://…`, or a Redis Cluster as
/// `redis+cluster://host:port,…`); cheap to clone, all clones share one reconnecting connection.
#[derive(Clone)]
pub struct RedisCache {
    connection: RedisConnection,
    send_script: redis::Script,
    remember_script: redis::Script,
    mirror_reservation_script: redis::Script,
    gate_script: redis::Script,
    mirror_one_script: redis::Script,
    mirror_all_script: redis::Script,
}

impl RedisCache {
    /// Connects to the Redis server or cluster at `url` (failing with a `Cache` error when it is
    /// unreachable).
    pub async fn connect(url: &str) -> Result<Self> {
        Ok(Self {
            connection: RedisConnection::connect(url).await?,
            send_script: redis::Script::new(sequences::SEND_SCRIPT),
            remember_script: redis::Script::new(recent::REMEMBER_SCRIPT),
            mirror_reservation_script: redis::Script::new(sequences::MIRROR_RESERVATION_SCRIPT),
            gate_script: redis::Script::new(restrictions::GATE_SCRIPT),
            mirror_one_script: redis::Script::new(restrictions::MIRROR_ONE_SCRIPT),
            mirror_all_script: redis::Script::new(restrictions::MIRROR_ALL_SCRIPT),
        })
    }

    fn conn(&self) -> RedisConnection {
        self.connection.clone()
    }
}
