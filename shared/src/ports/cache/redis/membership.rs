//! Cached conversations and member sets in Redis.

use super::{conversation_tag, RedisCache};
use crate::ports::cache::{MembershipCache, MEMBERSHIP_TTL};
use crate::Result;
use async_trait::async_trait;
use redis::AsyncCommands;

#[async_trait]
impl MembershipCache for RedisCache {
    async fn cached_conversation(&self, app_id: &str, conversation_id: &str) -> Result<Option<String>> {
        let key = format!("{}:conversation", conversation_tag(app_id, conversation_id));
        Ok(self.conn().get(key).await?)
    }

    async fn cache_conversation(&self, app_id: &str, conversation_id: &str, json: &str) -> Result<()> {
        let key = format!("{}:conversation", conversation_tag(app_id, conversation_id));
        let _: () = self.conn().set_ex(key, json, MEMBERSHIP_TTL.as_secs()).await?;
        Ok(())
    }

    async fn cached_members(&self, app_id: &str, conversation_id: &str) -> Result<Option<Vec<String>>> {
        let key = format!("{}:members", conversation_tag(app_id, conversation_id));
        let members: Vec<String> = self.conn().smembers(key).await?;
        Ok(if members.is_empty() { None } else { Some(members) })
    }

    async fn is_member(&self, app_id: &str, conversation_id: &str, user_id: &str) -> Result<Option<bool>> {
        let key = format!("{}:members", conversation_tag(app_id, conversation_id));
        let (cached, member): (bool, bool) = redis::pipe()
            .exists(&key)
            .sismember(&key, user_id)
            .query_async(&mut self.conn())
            .await?;
        Ok(cached.then_some(member))
    }

    async fn cache_members(&self, app_id: &str, conversation_id: &str, members: &[String]) -> Result<()> {
        let key = format!("{}:members", conversation_tag(app_id, conversation_id));
        let mut pipe = redis::pipe();
        pipe.atomic().del(&key);
        // An empty set cannot be stored in Redis: no key means "not cached", and the next read goes to
        // the store.
        if !members.is_empty() {
            pipe.sadd(&key, members).expire(&key, MEMBERSHIP_TTL.as_secs() as i64);
        }
        let _: () = pipe.query_async(&mut self.conn()).await?;
        Ok(())
    }

    async fn forget_conversation(&self, app_id: &str, conversation_id: &str) -> Result<()> {
        let tag = conversation_tag(app_id, conversation_id);
        // One hash tag: both keys live in one slot, so one DEL on a cluster too.
        let _: () = self
            .conn()
            .del(&[format!("{tag}:members"), format!("{tag}:conversation")])
            .await?;
        Ok(())
    }
}
