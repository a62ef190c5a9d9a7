//! The key directory in MongoDB: `key_devices`, `one_time_keys` (one document per key, so a claim is
//! one `findOneAndUpdate`; a claimed key stays as a tombstone for a day) and `fallback_keys`.

use super::{from_document, insert_many_idempotent, is_duplicate_key, number_of, to_document, MongoStore};
use crate::domain::model::{KeyDevice, StoredKey};
use crate::ports::store::{batch_of_one_device, InsertOutcome, KeyStore, Registration};
use crate::{Error, Result};
use async_trait::async_trait;
use mongodb::bson::{doc, Bson, DateTime, Document};
use mongodb::options::ReturnDocument;

/// A device's `_id`. Device ids have no colon, so the last one separates it from the user id.
fn device_doc_id(app_id: &str, user_id: &str, device_id: &str) -> String {
    format!("{app_id}:{user_id}:{device_id}")
}

fn device_filter(app_id: &str, user_id: &str, device_id: &str) -> Document {
    doc! {"app_id": app_id, "user_id": user_id, "device_id": device_id}
}

/// The device's keys of one algorithm.
fn algorithm_filter(app_id: &str, user_id: &str, device_id: &str, algorithm: &str) -> Document {
    doc! {"app_id": app_id, "user_id": user_id, "device_id": device_id, "algorithm": algorithm}
}

/// The device of `key` as registered with the Ed25519 key `signed_by`.
fn signer_filter(key: &StoredKey, signed_by: &str) -> Document {
    doc! {"_id": device_doc_id(&key.app_id, &key.user_id, &key.device_id), "app_id": &key.app_id, "ed25519": signed_by}
}

fn not_registered(device_id: &str) -> Error {
    Error::NotFound(format!(
        "device {device_id} is not registered with the key that signed these keys"
    ))
}

impl MongoStore {
    /// Reserves `count` consecutive upload numbers on the device (its `next_key_seq` counter) and
    /// returns the first; claims take the lowest number first, so "oldest" does not depend on clocks.
    async fn reserve_upload_seqs(&self, first: &StoredKey, signed_by: &str, count: usize) -> Result<i64> {
        let count = i64::try_from(count).map_err(|_| Error::Internal("too many keys".into()))?;
        let device = self
            .collection("key_devices")
            .find_one_and_update(signer_filter(first, signed_by), doc! {"$inc": {"next_key_seq": count}})
            .return_document(ReturnDocument::After)
            .await?
            .ok_or_else(|| not_registered(&first.device_id))?;
        let end = number_of(&device, "next_key_seq")
            .ok_or_else(|| Error::Internal("a device without its key counter".into()))?;
        Ok(end - count + 1)
    }

    async fn signer_registered(&self, key: &StoredKey, signed_by: &str) -> Result<bool> {
        let found = self
            .collection("key_devices")
            .find_one(signer_filter(key, signed_by))
            .await?;
        Ok(found.is_some())
    }

    /// Refuses keys whose id is stored (unclaimed, or a claimed key's tombstone) with other content;
    /// returns the stored ones that are identical.
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

    async fn count_unclaimed(&self, filter: Document) -> Result<u64> {
        let mut filter = filter;
        filter.insert("claimed_at", Bson::Null);
        Ok(self.collection("one_time_keys").count_documents(filter).await?)
    }
}

#[async_trait]
impl KeyStore for MongoStore {
    async fn register_key_device(&self, device: &KeyDevice, max_devices: u64) -> Result<Registration> {
        let same_or_conflict = |stored: KeyDevice| {
            if stored.identity_json == device.identity_json {
                Ok(Registration::Unchanged)
            } else {
                Err(Error::Conflict(format!(
                    "device {} is registered with other identity keys; delete it first",
                    device.device_id
                )))
            }
        };
        let (app_id, user_id) = (&device.app_id, &device.user_id);
        if let Some(stored) = self.find_key_device(app_id, user_id, &device.device_id).await? {
            return same_or_conflict(stored);
        }
        // Counted, then inserted: concurrent registrations of new devices may pass the cap by a few.
        let devices = self
            .collection("key_devices")
            .count_documents(doc! {"app_id": app_id, "user_id": user_id})
            .await?;
        if devices >= max_devices {
            return Err(Error::LimitExceeded(format!(
                "a user has at most {max_devices} devices; delete one first"
            )));
        }
        let mut document = to_document(device)?;
        document.insert("_id", device_doc_id(app_id, user_id, &device.device_id));
        document.insert("next_key_seq", 0_i64);
        match self.collection("key_devices").insert_one(document).await {
            Ok(_) => Ok(Registration::Registered),
            Err(e) if is_duplicate_key(&e) => match self.find_key_device(app_id, user_id, &device.device_id).await? {
                Some(stored) => same_or_conflict(stored),
                None => Err(Error::Conflict(format!(
                    "device {} changed meanwhile; retry",
                    device.device_id
                ))),
            },
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

    async fn delete_key_device(&self, app_id: &str, user_id: &str, device_id: &str) -> Result<bool> {
        let filter = device_filter(app_id, user_id, device_id);
        // The device first: an upload that checks for it after storing its keys then finds it gone
        // and takes its keys back, so no key outlives its device.
        let deleted = self.collection("key_devices").delete_one(filter.clone()).await?;
        self.collection("one_time_keys").delete_many(filter.clone()).await?;
        self.collection("fallback_keys").delete_many(filter).await?;
        Ok(deleted.deleted_count > 0)
    }

    async fn add_one_time_keys(
        &self,
        signed_by: &str,
        max_unclaimed: u64,
        keys: &[StoredKey],
    ) -> Result<InsertOutcome> {
        let Some(first) = batch_of_one_device(keys)? else {
            return Ok(InsertOutcome::default());
        };
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
            if !self.signer_registered(first, signed_by).await? {
                return Err(not_registered(&first.device_id));
            }
            return Ok(InsertOutcome {
                inserted: 0,
                duplicates: keys.len(),
            });
        }
        // Counted, then inserted: concurrent uploads to one device may pass the cap by a batch.
        let device = device_filter(&first.app_id, &first.user_id, &first.device_id);
        let unclaimed = self.count_unclaimed(device.clone()).await?;
        if unclaimed + fresh.len() as u64 > max_unclaimed {
            return Err(Error::LimitExceeded(format!(
                "a device holds at most {max_unclaimed} unclaimed one-time keys; it has {unclaimed}"
            )));
        }
        let first_seq = self.reserve_upload_seqs(first, signed_by, fresh.len()).await?;
        let documents = fresh
            .iter()
            .zip(first_seq..)
            .map(|(key, seq)| {
                let mut document = to_document(*key)?;
                document.insert("uploaded_seq", seq);
                document.insert("claimed_at", Bson::Null);
                // Which registration the key was stored for, so a take-back touches only its own keys.
                document.insert("signed_by", signed_by);
                Ok(document)
            })
            .collect::<Result<Vec<_>>>()?;
        let mut outcome = insert_many_idempotent(&self.collection("one_time_keys"), documents).await?;
        if !self.signer_registered(first, signed_by).await? {
            // The device was deleted (or registered anew) while the keys went in: take them back.
            let mut ours = device;
            ours.insert("signed_by", signed_by);
            ours.insert(
                "uploaded_seq",
                doc! {"$gte": first_seq, "$lt": first_seq + fresh.len() as i64},
            );
            self.collection("one_time_keys").delete_many(ours).await?;
            return Err(not_registered(&first.device_id));
        }
        if outcome.duplicates > 0 {
            // A concurrent upload stored some of the same ids first: refuse if its content differs.
            self.stored_twins(keys).await?;
        }
        outcome.duplicates += keys.len() - fresh.len();
        Ok(outcome)
    }

    async fn count_one_time_keys(&self, app_id: &str, user_id: &str, device_id: &str) -> Result<u64> {
        // Every one-time key is `signed_curve25519`: naming it lets the count use the claim's index.
        let filter = algorithm_filter(app_id, user_id, device_id, crate::domain::keys::SIGNED_CURVE25519);
        self.count_unclaimed(filter).await
    }

    async fn claim_one_time_key(
        &self,
        app_id: &str,
        user_id: &str,
        device_id: &str,
        algorithm: &str,
    ) -> Result<Option<StoredKey>> {
        let mut filter = algorithm_filter(app_id, user_id, device_id, algorithm);
        filter.insert("claimed_at", Bson::Null);
        // One atomic step takes the oldest unclaimed key: concurrent claims each take another one. The
        // claimed key stays as a tombstone (expired by the `claimed_at` TTL index).
        self.collection("one_time_keys")
            .find_one_and_update(filter, doc! {"$set": {"claimed_at": DateTime::now()}})
            .sort(doc! {"uploaded_seq": 1})
            .return_document(ReturnDocument::Before)
            .await?
            .map(from_document)
            .transpose()
    }

    async fn put_fallback_key(&self, signed_by: &str, key: &StoredKey) -> Result<()> {
        if !self.signer_registered(key, signed_by).await? {
            return Err(not_registered(&key.device_id));
        }
        let id = format!(
            "{}:{}",
            device_doc_id(&key.app_id, &key.user_id, &key.device_id),
            key.algorithm
        );
        let mut document = to_document(key)?;
        document.insert("_id", &id);
        document.insert("signed_by", signed_by);
        let fallback_keys = self.collection("fallback_keys");
        // Replaces only a key of the same registration: a stale upload of a deleted registration must
        // not overwrite the key of the device registered since (its upsert then hits the `_id`).
        let ours = doc! {"_id": &id, "signed_by": signed_by};
        match fallback_keys
            .replace_one(ours.clone(), document.clone())
            .upsert(true)
            .await
        {
            Ok(_) => {}
            Err(e) if is_duplicate_key(&e) => {
                // Another registration's key holds the place: this one replaces it only if it is the
                // device's registration now (the other is then a leftover).
                if !self.signer_registered(key, signed_by).await? {
                    return Err(not_registered(&key.device_id));
                }
                fallback_keys.replace_one(doc! {"_id": &id}, document).await?;
            }
            Err(e) => return Err(e.into()),
        }
        if !self.signer_registered(key, signed_by).await? {
            // Deleted meanwhile: the device's deletion may have run before this key went in.
            fallback_keys.delete_one(ours).await?;
            return Err(not_registered(&key.device_id));
        }
        Ok(())
    }

    async fn find_fallback_key(
        &self,
        app_id: &str,
        user_id: &str,
        device_id: &str,
        algorithm: &str,
    ) -> Result<Option<StoredKey>> {
        self.find_one_in("fallback_keys", algorithm_filter(app_id, user_id, device_id, algorithm))
            .await
    }

    async fn delete_user_keys(&self, app_id: &str, user_id: &str) -> Result<u64> {
        let filter = doc! {"app_id": app_id, "user_id": user_id};
        // Devices first, for the same reason as in `delete_key_device`.
        let mut deleted = self
            .collection("key_devices")
            .delete_many(filter.clone())
            .await?
            .deleted_count;
        deleted += self.count_unclaimed(filter.clone()).await?;
        self.collection("one_time_keys").delete_many(filter.clone()).await?;
        deleted += self
            .collection("fallback_keys")
            .delete_many(filter)
            .await?
            .deleted_count;
        Ok(deleted)
    }
}
