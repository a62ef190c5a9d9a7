//! The key directory in the in-memory store: one lock makes each claim atomic, as `findOneAndDelete`
//! does in MongoDB.

use super::Change::{self, Changed, Unchanged};
use super::{DeviceKey, MemoryStore};
use crate::domain::model::{KeyDevice, StoredKey};
use crate::ports::store::{InsertOutcome, KeyStore, Registration};
use crate::{Error, Result};
use async_trait::async_trait;

fn device_key(app_id: &str, user_id: &str, device_id: &str) -> DeviceKey {
    (app_id.to_owned(), user_id.to_owned(), device_id.to_owned())
}

#[async_trait]
impl KeyStore for MemoryStore {
    async fn register_key_device(&self, device: &KeyDevice) -> Result<Registration> {
        self.write(|tables| {
            let key = device_key(&device.app_id, &device.user_id, &device.device_id);
            match tables.key_devices.get(&key) {
                Some(stored) if stored.identity_json == device.identity_json => Ok(Unchanged(Registration::Unchanged)),
                Some(_) => Err(Error::Conflict(format!(
                    "device {} is registered with other identity keys; delete it first",
                    device.device_id
                ))),
                None => {
                    tables.key_devices.insert(key, device.clone());
                    Ok(Changed(Registration::Registered))
                }
            }
        })
    }

    async fn find_key_device(&self, app_id: &str, user_id: &str, device_id: &str) -> Result<Option<KeyDevice>> {
        self.read(|tables| tables.key_devices.get(&device_key(app_id, user_id, device_id)).cloned())
    }

    async fn key_devices(&self, app_id: &str, user_ids: &[String]) -> Result<Vec<KeyDevice>> {
        // The map is ordered by (app, user, device): the answer's order comes with it.
        self.read(|tables| {
            tables
                .key_devices
                .values()
                .filter(|d| d.app_id == app_id && user_ids.contains(&d.user_id))
                .cloned()
                .collect()
        })
    }

    async fn count_key_devices(&self, app_id: &str, user_id: &str) -> Result<u64> {
        self.read(|tables| {
            tables
                .key_devices
                .values()
                .filter(|d| d.app_id == app_id && d.user_id == user_id)
                .count() as u64
        })
    }

    async fn delete_key_device(&self, app_id: &str, user_id: &str, device_id: &str) -> Result<bool> {
        self.write(|tables| {
            let key = device_key(app_id, user_id, device_id);
            if tables.key_devices.remove(&key).is_none() {
                return Ok(Unchanged(false));
            }
            tables.one_time_keys.remove(&key);
            tables
                .fallback_keys
                .retain(|(app, user, device, _), _| (app, user, device) != (&key.0, &key.1, &key.2));
            Ok(Changed(true))
        })
    }

    async fn add_one_time_keys(&self, keys: &[StoredKey]) -> Result<InsertOutcome> {
        let Some(first) = keys.first() else {
            return Ok(InsertOutcome::default());
        };
        let key = device_key(&first.app_id, &first.user_id, &first.device_id);
        if keys
            .iter()
            .any(|k| device_key(&k.app_id, &k.user_id, &k.device_id) != key)
        {
            return Err(Error::Internal("one-time keys of several devices in one upload".into()));
        }
        self.write(|tables| {
            if !tables.key_devices.contains_key(&key) {
                return Err(Error::NotFound(format!("device {} is not registered", key.2)));
            }
            let pool = tables.one_time_keys.entry(key).or_default();
            let mut outcome = InsertOutcome::default();
            let mut fresh: Vec<&StoredKey> = Vec::new();
            for new in keys {
                let same_id = |k: &&StoredKey| k.algorithm == new.algorithm && k.key_id == new.key_id;
                match pool
                    .iter()
                    .find(same_id)
                    .or_else(|| fresh.iter().copied().find(same_id))
                {
                    Some(stored) if stored.object_json == new.object_json => outcome.duplicates += 1,
                    Some(_) => {
                        return Err(Error::Conflict(format!(
                            "one-time key {} is stored with other content",
                            new.name()
                        )))
                    }
                    None => fresh.push(new),
                }
            }
            outcome.inserted = fresh.len();
            pool.extend(fresh.into_iter().cloned());
            Ok(Change::when(outcome.inserted > 0, outcome))
        })
    }

    async fn count_one_time_keys(&self, app_id: &str, user_id: &str, device_id: &str) -> Result<u64> {
        self.read(|tables| {
            tables
                .one_time_keys
                .get(&device_key(app_id, user_id, device_id))
                .map_or(0, |pool| pool.len() as u64)
        })
    }

    async fn claim_one_time_key(
        &self,
        app_id: &str,
        user_id: &str,
        device_id: &str,
        algorithm: &str,
    ) -> Result<Option<StoredKey>> {
        self.write(|tables| {
            let Some(pool) = tables.one_time_keys.get_mut(&device_key(app_id, user_id, device_id)) else {
                return Ok(Unchanged(None));
            };
            match pool.iter().position(|k| k.algorithm == algorithm) {
                Some(oldest) => Ok(Changed(Some(pool.remove(oldest)))),
                None => Ok(Unchanged(None)),
            }
        })
    }

    async fn put_fallback_key(&self, key: &StoredKey) -> Result<()> {
        self.write(|tables| {
            let id = (
                key.app_id.clone(),
                key.user_id.clone(),
                key.device_id.clone(),
                key.algorithm.clone(),
            );
            tables.fallback_keys.insert(id, key.clone());
            Ok(Changed(()))
        })
    }

    async fn find_fallback_key(
        &self,
        app_id: &str,
        user_id: &str,
        device_id: &str,
        algorithm: &str,
    ) -> Result<Option<StoredKey>> {
        let id = (
            app_id.to_owned(),
            user_id.to_owned(),
            device_id.to_owned(),
            algorithm.to_owned(),
        );
        self.read(|tables| tables.fallback_keys.get(&id).cloned())
    }

    async fn delete_user_keys(&self, app_id: &str, user_id: &str) -> Result<u64> {
        self.write(|tables| {
            let of_user = |app: &String, user: &String| app == app_id && user == user_id;
            let before = tables.key_devices.len() + tables.fallback_keys.len();
            let one_time: usize = tables
                .one_time_keys
                .iter()
                .filter(|((app, user, _), _)| of_user(app, user))
                .map(|(_, pool)| pool.len())
                .sum();
            tables.key_devices.retain(|(app, user, _), _| !of_user(app, user));
            tables.one_time_keys.retain(|(app, user, _), _| !of_user(app, user));
            tables.fallback_keys.retain(|(app, user, _, _), _| !of_user(app, user));
            let deleted = (before - tables.key_devices.len() - tables.fallback_keys.len() + one_time) as u64;
            Ok(Change::when(deleted > 0, deleted))
        })
    }
}
