//! The key directory in the in-memory store: one lock makes each claim atomic, as `findOneAndUpdate`
//! does in MongoDB.

use super::Change::{self, Changed, Unchanged};
use super::{DeviceKey, MemoryStore, Tables};
use crate::domain::model::{KeyDevice, StoredKey};
use crate::ports::store::CLAIMED_KEY_MEMORY;
use crate::ports::store::{batch_of_one_device, InsertOutcome, KeyStore, Registration};
use crate::{now_ms, Error, Result};
use async_trait::async_trait;

fn device_key(app_id: &str, user_id: &str, device_id: &str) -> DeviceKey {
    (app_id.to_owned(), user_id.to_owned(), device_id.to_owned())
}

/// Where a device's fallback key of one algorithm is kept.
fn fallback_id(app_id: &str, user_id: &str, device_id: &str, algorithm: &str) -> (String, String, String, String) {
    (
        app_id.to_owned(),
        user_id.to_owned(),
        device_id.to_owned(),
        algorithm.to_owned(),
    )
}

fn of_device(key: &StoredKey) -> DeviceKey {
    device_key(&key.app_id, &key.user_id, &key.device_id)
}

impl Tables {
    /// `NotFound` unless the device is registered with the Ed25519 key `signed_by`.
    fn require_signer(&self, device: &DeviceKey, signed_by: &str) -> Result<()> {
        match self.key_devices.get(device) {
            Some(stored) if stored.ed25519 == signed_by => Ok(()),
            _ => Err(Error::NotFound(format!(
                "device {} is not registered with the key that signed these keys",
                device.2
            ))),
        }
    }

    /// Forgets everything of the device but the device itself; returns how many unclaimed and fallback
    /// keys went, and whether anything went (tombstones included).
    fn drop_device_keys(&mut self, device: &DeviceKey) -> (usize, bool) {
        let unclaimed = self.one_time_keys.remove(device).map_or(0, |pool| pool.len());
        let tombstones = self
            .claimed_keys
            .remove(device)
            .is_some_and(|claimed| !claimed.is_empty());
        let before = self.fallback_keys.len();
        self.fallback_keys
            .retain(|(app, user, id, _), _| (app, user, id) != (&device.0, &device.1, &device.2));
        let counted = unclaimed + before - self.fallback_keys.len();
        (counted, counted > 0 || tombstones)
    }
}

#[async_trait]
impl KeyStore for MemoryStore {
    async fn register_key_device(&self, device: &KeyDevice, max_devices: u64) -> Result<Registration> {
        self.write(|tables| {
            let key = device_key(&device.app_id, &device.user_id, &device.device_id);
            match tables.key_devices.get(&key) {
                Some(stored) if stored.identity_json == device.identity_json => Ok(Unchanged(Registration::Unchanged)),
                Some(_) => Err(Error::Conflict(format!(
                    "device {} is registered with other identity keys; delete it first",
                    device.device_id
                ))),
                None => {
                    let devices = tables
                        .key_devices
                        .values()
                        .filter(|d| d.app_id == device.app_id && d.user_id == device.user_id)
                        .count() as u64;
                    if devices >= max_devices {
                        return Err(Error::LimitExceeded(format!(
                            "a user has at most {max_devices} devices; delete one first"
                        )));
                    }
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

    async fn delete_key_device(&self, app_id: &str, user_id: &str, device_id: &str) -> Result<bool> {
        self.write(|tables| {
            let key = device_key(app_id, user_id, device_id);
            let existed = tables.key_devices.remove(&key).is_some();
            let (_, keys_went) = tables.drop_device_keys(&key);
            Ok(Change::when(existed || keys_went, existed))
        })
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
        let device = of_device(first);
        self.write(|tables| {
            tables.require_signer(&device, signed_by)?;
            let pool = tables.one_time_keys.get(&device).map(Vec::as_slice).unwrap_or_default();
            // Tombstones older than the memory count no more, as MongoDB's TTL index drops them.
            let forget_before = now_ms() - CLAIMED_KEY_MEMORY.as_millis() as i64;
            let claimed = tables.claimed_keys.get(&device).map(Vec::as_slice).unwrap_or_default();
            let claimed = claimed.iter().filter(|(_, claimed_at)| *claimed_at >= forget_before);
            let mut outcome = InsertOutcome::default();
            let mut fresh: Vec<&StoredKey> = Vec::new();
            for new in keys {
                let same_id = |k: &&StoredKey| k.algorithm == new.algorithm && k.key_id == new.key_id;
                let stored = pool
                    .iter()
                    .chain(claimed.clone().map(|(key, _)| key))
                    .find(same_id)
                    .or_else(|| fresh.iter().copied().find(same_id));
                match stored {
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
            if (pool.len() + fresh.len()) as u64 > max_unclaimed {
                return Err(Error::LimitExceeded(format!(
                    "a device holds at most {max_unclaimed} unclaimed one-time keys; it has {}",
                    pool.len()
                )));
            }
            outcome.inserted = fresh.len();
            let fresh: Vec<StoredKey> = fresh.into_iter().cloned().collect();
            tables.one_time_keys.entry(device).or_default().extend(fresh);
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
        let device = device_key(app_id, user_id, device_id);
        let now = now_ms();
        self.write(|tables| {
            let Some(pool) = tables.one_time_keys.get_mut(&device) else {
                return Ok(Unchanged(None));
            };
            let Some(oldest) = pool.iter().position(|k| k.algorithm == algorithm) else {
                return Ok(Unchanged(None));
            };
            let key = pool.remove(oldest);
            let claimed = tables.claimed_keys.entry(device).or_default();
            let forget_before = now - CLAIMED_KEY_MEMORY.as_millis() as i64;
            claimed.retain(|(_, claimed_at)| *claimed_at >= forget_before);
            claimed.push((key.clone(), now));
            Ok(Changed(Some(key)))
        })
    }

    async fn put_fallback_key(&self, signed_by: &str, key: &StoredKey) -> Result<()> {
        self.write(|tables| {
            tables.require_signer(&of_device(key), signed_by)?;
            let id = fallback_id(&key.app_id, &key.user_id, &key.device_id, &key.algorithm);
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
        let id = fallback_id(app_id, user_id, device_id, algorithm);
        self.read(|tables| tables.fallback_keys.get(&id).cloned())
    }

    async fn delete_user_keys(&self, app_id: &str, user_id: &str) -> Result<u64> {
        self.write(|tables| {
            let devices: Vec<DeviceKey> = tables
                .key_devices
                .keys()
                .chain(tables.one_time_keys.keys())
                .chain(tables.claimed_keys.keys())
                .filter(|(app, user, _)| app == app_id && user == user_id)
                .cloned()
                .chain(
                    tables
                        .fallback_keys
                        .keys()
                        .filter(|(app, user, _, _)| app == app_id && user == user_id)
                        .map(|(app, user, device, _)| (app.clone(), user.clone(), device.clone())),
                )
                .collect();
            let (mut deleted, mut changed) = (0, false);
            for device in devices {
                let existed = tables.key_devices.remove(&device).is_some();
                let (keys, keys_went) = tables.drop_device_keys(&device);
                deleted += usize::from(existed) + keys;
                changed |= existed || keys_went;
            }
            Ok(Change::when(changed, deleted as u64))
        })
    }
}
