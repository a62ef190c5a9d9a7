//! Presence in Redis.

use super::RedisCache;
use crate::ports::cache::{PresenceCache, PresenceHolder, PRESENCE_TTL};
use crate::Result;
use async_trait::async_trait;
use futures_util::future::try_join_all;
use redis::AsyncCommands;

/// Connections renewed per pipeline: large enough to make renewal a few round trips per node, small
/// enough that one pipeline does not hold Redis for long.
const RENEWALS_PER_PIPELINE: usize = 1000;

/// Per user: a sorted set of live connections scored by when their presence lapses.
fn presence_key(app_id: &str, user_id: &str) -> String {
    format!("caas:presence:{{{app_id}:{user_id}}}")
}

#[async_trait]
impl PresenceCache for RedisCache {
    async fn presence_touch(&self, app_id: &str, user_id: &str, holder: &str) -> Result<()> {
        let key = presence_key(app_id, user_id);
        let expires = crate::now_ms() + PRESENCE_TTL.as_millis() as i64;
        let _: () = redis::pipe()
            .zadd(&key, holder, expires)
            .expire(&key, PRESENCE_TTL.as_secs() as i64)
            .query_async(&mut self.conn())
            .await?;
        Ok(())
    }

    async fn presence_renew(&self, live: &[PresenceHolder]) -> Result<()> {
        let expires = crate::now_ms() + PRESENCE_TTL.as_millis() as i64;
        let renew = |pipe: &mut redis::Pipeline, one: &PresenceHolder| {
            let key = presence_key(&one.app_id, &one.user_id);
            pipe.zadd(&key, &one.holder, expires)
                .ignore()
                .expire(&key, PRESENCE_TTL.as_secs() as i64)
                .ignore();
        };
        for chunk in live.chunks(RENEWALS_PER_PIPELINE) {
            if self.connection.is_cluster() {
                // Each user's key is in its own slot, which a cluster pipeline cannot span: one small
                // pipeline per user, all in flight at once (each node's connection still batches them).
                try_join_all(chunk.iter().map(|one| {
                    let mut pipe = redis::pipe();
                    renew(&mut pipe, one);
                    let mut connection = self.conn();
                    async move { pipe.query_async::<()>(&mut connection).await }
                }))
                .await?;
            } else {
                let mut pipe = redis::pipe();
                for one in chunk {
                    renew(&mut pipe, one);
                }
                let _: () = pipe.query_async(&mut self.conn()).await?;
            }
        }
        Ok(())
    }

    async fn presence_drop(&self, app_id: &str, user_id: &str, holder: &str) -> Result<bool> {
        let key = presence_key(app_id, user_id);
        let (_, live): ((), usize) = redis::pipe()
            .zrem(&key, holder)
            .zcount(&key, crate::now_ms(), "+inf")
            .query_async(&mut self.conn())
            .await?;
        Ok(live > 0)
    }

    async fn online(&self, app_id: &str, user_ids: &[String]) -> Result<Vec<bool>> {
        if user_ids.is_empty() {
            return Ok(Vec::new());
        }
        let now = crate::now_ms();
        let counts: Vec<usize> = if self.connection.is_cluster() {
            // One slot per user (see `presence_renew`).
            try_join_all(user_ids.iter().map(|user_id| {
                let mut connection = self.conn();
                let key = presence_key(app_id, user_id);
                async move { connection.zcount(key, now, "+inf").await }
            }))
            .await?
        } else {
            let mut pipe = redis::pipe();
            for user_id in user_ids {
                pipe.zcount(presence_key(app_id, user_id), now, "+inf");
            }
            pipe.query_async(&mut self.conn()).await?
        };
        Ok(counts.into_iter().map(|live| live > 0).collect())
    }
}
