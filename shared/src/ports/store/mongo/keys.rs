//! The key directory in MongoDB: `key_devices`, `one_time_keys` (one document per key, so a claim is
//! one `findOneAndDelete`) and `fallback_keys`.

use super::{from_document, insert_many_idempotent, is_duplicate_key, to_document, MongoStore};
use crate::domain::model::{KeyDevice, StoredKey};
use crate::ports::store::{InsertOutcome, KeyStore, Registration};
use crate::{Error, Result};
use async_trait::async_trait;
use mongodb::bson::{doc, Bson, Document};
use mongodb::options::ReturnDocument;

/// A device's `_id`. Device ids have no colon, so the last one separates it from the user id.
fn device_doc_id(app_id: &str, user_id: &str, device_id: &str) -> String {
    format!("{app_id}:{user_id}:{device_id}")
}

fn device_filter(app_id: &str, user_id: &str, device_id: &str) -> Document {
    doc! {"app_id": app_id, "user_id": user_id, "device_id": device_id}
}

impl MongoStore {
    /// Reserves `count` consecutive upload numbers on the device (its `next_key_seq` counter) and
    /// returns the first; claims take the lowest number first, so "oldest" does not depend on clocks.
    async fn reserve_upload_seqs(&self, app_id: &str, user_id: &str, device_id: &str, count: usize) -> Result<i64> {
        let count = i64::try_from(count).map_err(|_| Error::Internal("too many keys".into()))?;
        let device = self
            .collection("key_devices")
            .find_one_and_update(
                doc! {"_id": device_doc_id(app_id, user_id, device_id), "app_id": app_id},
                doc! {"$inc": {"next_key_seq": count}},
            )
            .return_document(ReturnDocument::After)
            .await?
            .ok_or_else(|| Error::NotFound(format!("device {device_id} is not registered")))?;
        let end = match device.get("next_key_seq") {
            Some(Bson::Int64(n)) => *n,
            Some(Bson::Int32(n)) => i64::from(*n),
            _ => return Err(Error::Internal("a device without its key counter".into())),
        };
        Ok(end - count + 1)
    }

    /// Refuses keys whose id is stored with other content; returns the stored ones that are identical.
    async fn stored_twins(&self, keys: &[StoredKey]) -> Result<Vec<StoredKey>> {
        let first = &keys[0];
        let ids: Vec<&str> = keys.iter().map(|k| k.key_id.as_str()).collect();
        let mut filter = device_filter(&first.app_id, &first.user_id, &first.device_id);
        filter.insert("key_id", doc! {"$in": ids});
        let stored: Vec<StoredKey> = self
            .find_all("one_time_keys", filter, doc! {"_id": 1}, usize::MAX)
            .await?;
        for key in &stored {
            let uploaded = keys
                .iter()
                .find(|k| k.algorithm == key.algorithm && k.key_id == key.key_id);
            if uploaded.is_some_and(|k| k.object_json != key.object_json) {
                return Err(Error::Conflict(format!(
                    "one-time key {} is stored with other content",
                    key.name()
                )));
            }
        }
        Ok(stored)
    }
}

#[async_trait]
impl KeyStore for MongoStore {
    async fn register_key_device(&self, device: &KeyDevice) -> Result<Registration> {
        let mut document = to_document(device)?;
        let id = device_doc_id(&device.app_id, &device.user_id, &device.device_id);
        document.insert("_id", &id);
        document.insert("next_key_seq", 0_i64);
        match self.collection("key_devices").insert_one(document).await {
            Ok(_) => Ok(Registration::Registered),
            Err(e) if is_duplicate_key(&e) => {
                let stored = self
                    .find_key_device(&device.app_id, &device.user_id, &device.device_id)
                    .await?;
                match stored {
                    Some(stored) if stored.identity_json == device.identity_json => Ok(Registration::Unchanged),
                    _ => Err(Error::Conflict(format!(
                        "device {} is registered with other identity keys; delete it first",
                        device.device_id
                    ))),
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn find_key_device(&self, app_id: &str, user_id: &str, device_id: &str) -> Result<Option<KeyDevice>> {
        self.find_one_in("key_devices", device_filter(app_id, user_id, device_id))
            .await
    }

    async fn key_devices(&self, app_id: &str, user_ids: &[String]) -> Result<Vec<KeyDevice>> {
        let filter = doc! {"app_id": app_id, "user_id": {"$in": user_ids}};
        self.find_all("key_devices", filter, doc! {"user_id": 1, "device_id": 1}, usize::MAX)
            .await
    }

    async fn count_key_devices(&self, app_id: &str, user_id: &str) -> Result<u64> {
        let filter = doc! {"app_id": app_id, "user_id": user_id};
        Ok(self.collection("key_devices").count_documents(filter).await?)
    }

    async fn delete_key_device(&self, app_id: &str, user_id: &str, device_id: &str) -> Result<bool> {
        let filter = device_filter(app_id, user_id, device_id);
        let deleted = self.collection("key_devices").delete_one(filter.clone()).await?;
        // The keys go even when the device was already gone: a delete that failed half-way is finished.
        self.collection("one_time_keys").delete_many(filter.clone()).await?;
        self.collection("fallback_keys").delete_many(filter).await?;
        Ok(deleted.deleted_count > 0)
    }

    async fn add_one_time_keys(&self, keys: &[StoredKey]) -> Result<InsertOutcome> {
        let Some(first) = keys.first() else {
            return Ok(InsertOutcome::default());
        };
        if keys
            .iter()
            .any(|k| (&k.app_id, &k.user_id, &k.device_id) != (&first.app_id, &first.user_id, &first.device_id))
        {
            return Err(Error::Internal("one-time keys of several devices in one upload".into()));
        }
        let stored = self.stored_twins(keys).await?;
        let fresh: Vec<&StoredKey> = keys
            .iter()
            .filter(|k| {
                !stored
                    .iter()
                    .any(|s| s.algorithm == k.algorithm && s.key_id == k.key_id)
            })
            .collect();
        if fresh.is_empty() {
            if self
                .find_key_device(&first.app_id, &first.user_id, &first.device_id)
                .await?
                .is_none()
            {
                return Err(Error::NotFound(format!("device {} is not registered", first.device_id)));
            }
            return Ok(InsertOutcome {
                inserted: 0,
                duplicates: keys.len(),
            });
        }
        let first_seq = self
            .reserve_upload_seqs(&first.app_id, &first.user_id, &first.device_id, fresh.len())
            .await?;
        let documents = fresh
            .iter()
            .zip(first_seq..)
            .map(|(key, seq)| {
                let mut document = to_document(*key)?;
                document.insert("uploaded_seq", seq);
                Ok(document)
            })
            .collect::<Result<Vec<_>>>()?;
        let mut outcome = insert_many_idempotent(&self.collection("one_time_keys"), documents).await?;
        if outcome.duplicates > 0 {
            // A concurrent upload stored some of the same ids first: refuse if its content differs.
            self.stored_twins(keys).await?;
        }
        outcome.duplicates += keys.len() - fresh.len();
        Ok(outcome)
    }

    async fn count_one_time_keys(&self, app_id: &str, user_id: &str, device_id: &str) -> Result<u64> {
        Ok(self
            .collection("one_time_keys")
            .count_documents(device_filter(app_id, user_id, device_id))
            .await?)
    }

    async fn claim_one_time_key(
        &self,
        app_id: &str,
        user_id: &str,
        device_id: &str,
        algorithm: &str,
    ) -> Result<Option<StoredKey>> {
        let mut filter = device_filter(app_id, user_id, device_id);
        filter.insert("algorithm", algorithm);
        self.collection("one_time_keys")
            .find_one_and_delete(filter)
            .sort(doc! {"uploaded_seq": 1})
            .await?
            .map(from_document)
            .transpose()
    }

    async fn put_fallback_key(&self, key: &StoredKey) -> Result<()> {
        let id = format!(
            "{}:{}",
            device_doc_id(&key.app_id, &key.user_id, &key.device_id),
            key.algorithm
        );
        let mut document = to_document(key)?;
        document.insert("_id", &id);
        self.collection("fallback_keys")
            .replace_one(doc! {"_id": &id}, document)
            .upsert(true)
            .await?;
        Ok(())
    }

    async fn find_fallback_key(
        &self,
        app_id: &str,
        user_id: &str,
        device_id: &str,
        algorithm: &str,
    ) -> Result<Option<StoredKey>> {
        let mut filter = device_filter(app_id, user_id, device_id);
        filter.insert("algorithm", algorithm);
        self.find_one_in("fallback_keys", filter).await
    }

    async fn delete_user_keys(&self, app_id: &str, user_id: &str) -> Result<u64> {
        let filter = doc! {"app_id": app_id, "user_id": user_id};
        let mut deleted = 0;
        for collection in ["one_time_keys", "fallback_keys", "key_devices"] {
            deleted += self
                .collection(collection)
                .delete_many(filter.clone())
                .await?
                .deleted_count;
        }
        Ok(deleted)
    }
}
