//! The key-directory part of the store port: devices, their one-time keys and their fallback keys.

use super::InsertOutcome;
use crate::domain::model::{KeyDevice, StoredKey};
use crate::{Error, Result};
use async_trait::async_trait;
use std::time::Duration;

/// How long a claimed one-time key is remembered after it was handed out: an upload retried meanwhile
/// (its answer was lost) finds the key already stored and cannot put it back into the pool, where a
/// second claimer would get it.
pub const CLAIMED_KEY_MEMORY: Duration = Duration::from_secs(24 * 3600);

/// What [`KeyStore::register_key_device`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Registration {
    /// The device is new.
    Registered,
    /// The same identity was already stored: nothing changed.
    Unchanged,
}

/// The end-to-end-encryption key directory: devices with their identity keys, one-time keys handed out
/// once each, and one fallback key per device and algorithm.
///
/// Keys are stored only for a device registered with the Ed25519 key that signed them (`signed_by`): a
/// key uploaded while its device is deleted, or deleted and registered again with other keys, is not
/// kept.
#[async_trait]
pub trait KeyStore: Send + Sync {
    /// Registers a device. `Conflict` when the user already has this device with other identity keys;
    /// `LimitExceeded` when the user already has `max_devices` devices.
    async fn register_key_device(&self, device: &KeyDevice, max_devices: u64) -> Result<Registration>;
    /// The device; `None` when the user has no such device in this app.
    async fn find_key_device(&self, app_id: &str, user_id: &str, device_id: &str) -> Result<Option<KeyDevice>>;
    /// The devices of `user_ids`, ordered by user id, then device id.
    async fn key_devices(&self, app_id: &str, user_ids: &[String]) -> Result<Vec<KeyDevice>>;
    /// Deletes the device, then its one-time and fallback keys; `false` when there was no such device
    /// (its keys, if any were left, are deleted all the same).
    async fn delete_key_device(&self, app_id: &str, user_id: &str, device_id: &str) -> Result<bool>;
    /// Adds one-time keys (all of one device, registered with `signed_by`; else `NotFound`) in the given
    /// order, which is the order they are claimed in. A key id already stored — unclaimed, or claimed
    /// within [`CLAIMED_KEY_MEMORY`] — with the same object is a duplicate, not an error; with another
    /// object it is a `Conflict`. `LimitExceeded` when the new keys would leave the device more than
    /// `max_unclaimed` unclaimed keys. Both are checked before anything is added, except that a
    /// concurrent upload of the same id with other content may leave this upload's other keys stored.
    async fn add_one_time_keys(&self, signed_by: &str, max_unclaimed: u64, keys: &[StoredKey])
        -> Result<InsertOutcome>;
    /// The device's unclaimed one-time keys.
    async fn count_one_time_keys(&self, app_id: &str, user_id: &str, device_id: &str) -> Result<u64>;
    /// Hands out the device's oldest unclaimed one-time key of `algorithm`; `None` when the pool is empty.
    /// However many callers claim at once, each key goes to one of them only.
    async fn claim_one_time_key(
        &self,
        app_id: &str,
        user_id: &str,
        device_id: &str,
        algorithm: &str,
    ) -> Result<Option<StoredKey>>;
    /// Stores the fallback key of a device registered with `signed_by` (else `NotFound`) for its
    /// algorithm, replacing the one before.
    async fn put_fallback_key(&self, signed_by: &str, key: &StoredKey) -> Result<()>;
    /// The device's fallback key of `algorithm` (it stays when handed out).
    async fn find_fallback_key(
        &self,
        app_id: &str,
        user_id: &str,
        device_id: &str,
        algorithm: &str,
    ) -> Result<Option<StoredKey>>;
    /// Deletes every device, then every one-time and fallback key of the user (erasure); returns how
    /// many devices and unclaimed keys went.
    async fn delete_user_keys(&self, app_id: &str, user_id: &str) -> Result<u64>;
}

/// The first key of an upload's batch, which must be all of one device (the use case builds it so);
/// `None` for an empty batch.
pub(super) fn batch_of_one_device(keys: &[StoredKey]) -> Result<Option<&StoredKey>> {
    let Some(first) = keys.first() else {
        return Ok(None);
    };
    if keys.iter().any(|key| key.device() != first.device()) {
        return Err(Error::Internal("one-time keys of several devices in one upload".into()));
    }
    Ok(Some(first))
}
