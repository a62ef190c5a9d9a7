//! The key-directory part of the store port: devices, their one-time keys and their fallback keys.

use super::InsertOutcome;
use crate::domain::model::{KeyDevice, StoredKey};
use crate::Result;
use async_trait::async_trait;

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
#[async_trait]
pub trait KeyStore: Send + Sync {
    /// Registers a device. `Conflict` when the user already has this device with other identity keys.
    async fn register_key_device(&self, device: &KeyDevice) -> Result<Registration>;
    /// The device; `None` when the user has no such device in this app.
    async fn find_key_device(&self, app_id: &str, user_id: &str, device_id: &str) -> Result<Option<KeyDevice>>;
    /// The devices of `user_ids`, ordered by user id, then device id.
    async fn key_devices(&self, app_id: &str, user_ids: &[String]) -> Result<Vec<KeyDevice>>;
    /// How many devices the user has registered.
    async fn count_key_devices(&self, app_id: &str, user_id: &str) -> Result<u64>;
    /// Deletes the device with its one-time and fallback keys; `false` when there was no such device.
    async fn delete_key_device(&self, app_id: &str, user_id: &str, device_id: &str) -> Result<bool>;
    /// Adds one-time keys (all of one registered device) in the given order, which is the order they are
    /// claimed in. A key id already stored with the same object is a duplicate, not an error; one stored
    /// with another object is a `Conflict`, checked before anything is added. `NotFound` when the device
    /// is not registered.
    async fn add_one_time_keys(&self, keys: &[StoredKey]) -> Result<InsertOutcome>;
    /// The device's unclaimed one-time keys.
    async fn count_one_time_keys(&self, app_id: &str, user_id: &str, device_id: &str) -> Result<u64>;
    /// Removes and returns the device's oldest unclaimed one-time key of `algorithm`; `None` when the pool
    /// is empty. However many callers claim at once, each key goes to one of them only.
    async fn claim_one_time_key(
        &self,
        app_id: &str,
        user_id: &str,
        device_id: &str,
        algorithm: &str,
    ) -> Result<Option<StoredKey>>;
    /// Stores the device's fallback key for its algorithm, replacing the one before.
    async fn put_fallback_key(&self, key: &StoredKey) -> Result<()>;
    /// The device's fallback key of `algorithm` (it stays when handed out).
    async fn find_fallback_key(
        &self,
        app_id: &str,
        user_id: &str,
        device_id: &str,
        algorithm: &str,
    ) -> Result<Option<StoredKey>>;
    /// Deletes every device, one-time key and fallback key of the user (erasure); returns how many
    /// records went.
    async fn delete_user_keys(&self, app_id: &str, user_id: &str) -> Result<u64>;
}
