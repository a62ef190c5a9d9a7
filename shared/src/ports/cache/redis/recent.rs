//! The recent window in Redis: one sorted set per conversation, scored by seq.

use super::{conversation_tag, RedisCache};
use crate::ports::cache::{RecentSlice, RecentWindow, RECENT_MESSAGES, RECENT_TTL};
use crate::{Error, Result};
use async_trait::async_trait;
use redis::AsyncCommands;

#[async_trait]
impl RecentWindow for RedisCache {
    async fn remember_recent(&self, app_id: &str, conversation_id: &str, seq: i64, payload: &str) -> Result<()> {
        let key = format!("{}:recent", conversation_tag(app_id, conversation_id));
        let _: () = redis::pipe()
            .atomic()
            .zrembyscore(&key, seq, seq)
            // Members of a sorted set are unique: two messages with equal text must not collapse.
            .zadd(&key, format!("{seq}|{payload}"), seq)
            .zremrangebyrank(&key, 0, -(RECENT_MESSAGES as isize) - 1)
            .expire(&key, RECENT_TTL.as_secs() as i64)
            .query_async(&mut self.conn())
            .await?;
        Ok(())
    }

    async fn recent_in(&self, app_id: &str, conversation_id: &str, slice: RecentSlice) -> Result<Vec<(i64, String)>> {
        let key = format!("{}:recent", conversation_tag(app_id, conversation_id));
        let low = format!("({}", slice.after_seq);
        let high = slice
            .before_seq
            .map_or_else(|| "+inf".to_owned(), |before| format!("({before}"));
        let limit = isize::try_from(slice.limit).unwrap_or(isize::MAX);
        let mut members: Vec<String> = match slice.newest {
            false => self.conn().zrangebyscore_limit(key, low, high, 0, limit).await?,
            true => self.conn().zrevrangebyscore_limit(key, high, low, 0, limit).await?,
        };
        if slice.newest {
            members.reverse();
        }
        members
            .into_iter()
            .map(|member| {
                let (seq, payload) = member
                    .split_once('|')
                    .ok_or_else(|| Error::Internal("malformed recent message".into()))?;
                let seq = seq
                    .parse()
                    .map_err(|_| Error::Internal("malformed recent message seq".into()))?;
                Ok((seq, payload.to_owned()))
            })
            .collect()
    }
}
