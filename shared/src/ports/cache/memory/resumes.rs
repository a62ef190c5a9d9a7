//! Resume records in memory.

use super::MemoryCache;
use crate::ports::cache::ResumeCache;
use crate::Result;
use async_trait::async_trait;
use std::time::{Duration, Instant};

#[async_trait]
impl ResumeCache for MemoryCache {
    async fn save_resume(&self, app_id: &str, pid: &str, record: &str, ttl: Duration) -> Result<()> {
        let mut entries = self.entries()?;
        let now = Instant::now();
        entries.resumes.retain(|_, (_, expires)| *expires > now);
        entries
            .resumes
            .insert((app_id.to_owned(), pid.to_owned()), (record.to_owned(), now + ttl));
        Ok(())
    }

    async fn load_resume(&self, app_id: &str, pid: &str) -> Result<Option<String>> {
        let entries = self.entries()?;
        Ok(entries
            .resumes
            .get(&(app_id.to_owned(), pid.to_owned()))
            .filter(|(_, expires)| *expires > Instant::now())
            .map(|(record, _)| record.clone()))
    }
}
