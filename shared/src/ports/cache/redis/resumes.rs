//! Resume records in Redis: one string per record, expiring.

use super::RedisCache;
use crate::ports::cache::ResumeCache;
use crate::Result;
use async_trait::async_trait;
use redis::AsyncCommands;
use std::time::Duration;

fn resume_key(app_id: &str, pid: &str) -> String {
    format!("caas:{{{app_id}}}:resume:{pid}")
}

#[async_trait]
impl ResumeCache for RedisCache {
    async fn save_resume(&self, app_id: &str, pid: &str, record: &str, ttl: Duration) -> Result<()> {
        let millis = ttl.as_millis().max(1) as u64;
        let _: () = self.conn().pset_ex(resume_key(app_id, pid), record, millis).await?;
        Ok(())
    }

    async fn load_resume(&self, app_id: &str, pid: &str) -> Result<Option<String>> {
        Ok(self.conn().get(resume_key(app_id, pid)).await?)
    }
}
