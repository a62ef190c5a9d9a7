//! The key directory's use cases (issue 22): devices publish their public keys, users they share a
//! conversation with query them and claim one-time keys to start encrypted sessions. The server only
//! relays signed public material; the rules on what a device may publish are in [`crate::domain::keys`].
//!
//! Tenancy: everything is scoped to the caller's app, and a caller may query or claim the keys of a
//! user only when the two share a conversation (or it is the caller): the directory is never a public
//! list of an app's users.

use super::conversations::{require_id, Caller};
use crate::domain::events::{topics, EventHeaders, KeyNotice};
use crate::domain::keys::{canonical_json, check_device_id, ed25519_key, DeviceIdentity, SignedKey};
use crate::domain::model::{KeyDevice, StoredKey};
use crate::ports::bus::Bus;
use crate::ports::store::{Registration, Store};
use crate::{now_ms, Error, Result};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet};

pub use crate::domain::keys::SIGNED_CURVE25519;
/// Most one-time and fallback keys in one upload.
pub const MAX_KEYS_PER_UPLOAD: usize = 100;
/// Most devices a user may register.
pub const MAX_DEVICES_PER_USER: u64 = 32;
/// Most unclaimed one-time keys a device may hold.
pub const MAX_ONE_TIME_KEYS_PER_DEVICE: u64 = 1_000;
/// Most users in one query, and most devices in one claim.
pub const MAX_USERS_PER_REQUEST: usize = 100;
/// Below this many unclaimed one-time keys, a claim tells the device (`keys.low`).
pub const LOW_KEYS_THRESHOLD: u64 = 10;
/// Conversations whose members hear of a user's device list changing (the newest ones).
pub const MAX_CONVERSATIONS_TOLD: usize = 1_000;
/// Recipients per `device_list.changed` record on the bus.
const RECIPIENTS_PER_RECORD: usize = 1_000;

/// `PUT /keys/devices/{device_id}`: a device's identity (on first upload) and keys, as in Matrix's
/// `/keys/upload`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Upload {
    /// The device's self-signed identity; needed on the device's first upload.
    #[serde(default)]
    pub device_keys: Option<Value>,
    /// `{"signed_curve25519:<id>": {key, signatures}}`.
    #[serde(default)]
    pub one_time_keys: Map<String, Value>,
    /// `{"signed_curve25519:<id>": {key, fallback: true, signatures}}`: replaces the device's fallback key.
    #[serde(default)]
    pub fallback_keys: Map<String, Value>,
}

/// What an upload left on the device.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Uploaded {
    /// The device uploaded.
    pub device_id: String,
    /// Whether this upload registered the device.
    pub registered: bool,
    /// Unclaimed one-time keys by algorithm.
    pub one_time_key_counts: BTreeMap<String, u64>,
    /// Whether the device has a fallback key.
    pub fallback: bool,
}

/// `POST /keys/claim`: `{one_time_keys: {user_id: {device_id or "*": "signed_curve25519"}}}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Claim {
    /// Which devices to claim a key of, by user.
    pub one_time_keys: BTreeMap<String, BTreeMap<String, String>>,
}

/// What one device's claim gave.
enum Claimed {
    /// A one-time key, or the fallback key (`fallback`).
    Key { key: StoredKey, fallback: bool },
    /// Nothing: `no_keys` (a device without keys) or `unknown_device`.
    Nothing { code: &'static str },
}

/// What claims cost callers and the users claimed from, a minute, per function instance: devices one
/// caller may claim keys of (`CAAS_KEYS_CLAIMS_PER_CALLER_PER_MINUTE`, default 100), and claims on one
/// user's devices from all callers (`CAAS_KEYS_CLAIMS_ON_USER_PER_MINUTE`, default 60: a contact cannot
/// drain someone's one-time keys faster than their devices replenish them). Checked before anything is
/// read; over budget is `rate_limited` with the time left in the minute.
pub struct ClaimBudget {
    windows: crate::services::windows::FixedWindows,
    per_caller: u32,
    on_user: u32,
}

impl ClaimBudget {
    /// A budget of `per_caller` devices a minute per caller and `on_user` claims a minute per user.
    pub fn new(per_caller: u32, on_user: u32) -> Self {
        Self {
            windows: crate::services::windows::FixedWindows::new(std::time::Duration::from_secs(60)),
            per_caller,
            on_user,
        }
    }

    /// The budget `config` sets.
    pub fn from_config(config: &crate::config::Config) -> Self {
        Self::new(
            config.key_claims_per_caller_per_minute,
            config.key_claims_on_user_per_minute,
        )
    }

    /// Takes the claim's devices from the caller's budget and each claimed user's, or refuses it whole.
    pub fn take(&self, caller: Caller<'_>, claim: &Claim) -> Result<()> {
        let caller_key = format!("caller:{}:{}", caller.app_id, caller.user_id);
        let devices: u32 = claim.one_time_keys.values().map(|d| d.len() as u32).sum();
        let over = |key: &str, n: u32, limit: u32, whose: String| -> Result<()> {
            let (count, left) = self.windows.count(key);
            if count.saturating_add(n) > limit {
                return Err(Error::RateLimited {
                    message: format!("too many key claims {whose}; at most {limit} devices a minute"),
                    retry_after_ms: i64::try_from(left.as_millis()).unwrap_or(i64::MAX).max(1),
                });
            }
            Ok(())
        };
        over(&caller_key, devices, self.per_caller, "by you".into())?;
        for (user_id, wanted) in &claim.one_time_keys {
            let key = format!("target:{}:{user_id}", caller.app_id);
            over(&key, wanted.len() as u32, self.on_user, format!("on {user_id}"))?;
        }
        self.windows.add(&caller_key, devices);
        for (user_id, wanted) in &claim.one_time_keys {
            self.windows
                .add(&format!("target:{}:{user_id}", caller.app_id), wanted.len() as u32);
        }
        Ok(())
    }
}

/// The key directory's use cases over the store and the bus.
pub struct Keys<'a> {
    /// Where devices and keys are stored.
    pub store: &'a dyn Store,
    /// Where the notices for socket nodes go.
    pub bus: &'a dyn Bus,
}

/// A stored signed object as the JSON clients get.
fn object_of(json: &str) -> Result<Value> {
    serde_json::from_str(json).map_err(|e| Error::Internal(format!("a stored key object is not JSON: {e}")))
}

impl Keys<'_> {
    /// Registers the device (first upload), adds one-time keys and replaces the fallback key.
    pub async fn upload(&self, caller: Caller<'_>, device_id: &str, upload: Upload) -> Result<Uploaded> {
        check_device_id(device_id)?;
        let key_count = upload.one_time_keys.len() + upload.fallback_keys.len();
        if key_count > MAX_KEYS_PER_UPLOAD {
            return Err(Error::Validation(format!(
                "at most {MAX_KEYS_PER_UPLOAD} one-time and fallback keys per upload, got {key_count}"
            )));
        }
        if upload.fallback_keys.len() > 1 {
            return Err(Error::Validation(format!(
                "a device has one fallback key ({SIGNED_CURVE25519}); got {}",
                upload.fallback_keys.len()
            )));
        }
        let named_identity = upload.device_keys.is_some();
        let (device, registered) = match upload.device_keys {
            Some(identity) => self.register(caller, device_id, identity).await?,
            None => match self
                .store
                .find_key_device(caller.app_id, caller.user_id, device_id)
                .await?
            {
                Some(device) => (device, false),
                None => {
                    return Err(Error::NotFound(format!(
                        "device {device_id} is not registered: upload its device_keys first"
                    )))
                }
            },
        };
        let signing_key = ed25519_key(&device.ed25519)?;
        let stored = |name: &String, object: &Value, fallback: bool| -> Result<StoredKey> {
            let key = SignedKey::check(caller.user_id, device_id, &signing_key, name, object.clone(), fallback)?;
            Ok(StoredKey {
                app_id: caller.app_id.to_owned(),
                user_id: caller.user_id.to_owned(),
                device_id: device_id.to_owned(),
                algorithm: key.algorithm,
                key_id: key.key_id,
                object_json: canonical_json(&Value::Object(key.object))?,
                correlation_id: caller.correlation_id.to_owned(),
            })
        };
        // Every key is checked before any is stored: one bad signature refuses the whole upload.
        let one_time: Vec<StoredKey> = upload
            .one_time_keys
            .iter()
            .map(|(name, object)| stored(name, object, false))
            .collect::<Result<_>>()?;
        let fallback: Vec<StoredKey> = upload
            .fallback_keys
            .iter()
            .map(|(name, object)| stored(name, object, true))
            .collect::<Result<_>>()?;
        if !one_time.is_empty() {
            self.store
                .add_one_time_keys(&device.ed25519, MAX_ONE_TIME_KEYS_PER_DEVICE, &one_time)
                .await?;
        }
        for key in &fallback {
            self.store.put_fallback_key(&device.ed25519, key).await?;
        }
        // Announced again when a registration is retried: the first attempt may have stored the
        // device and failed before its announcement went out.
        if named_identity {
            self.announce_device_change(caller).await?;
        }
        let count = self
            .store
            .count_one_time_keys(caller.app_id, caller.user_id, device_id)
            .await?;
        let has_fallback = self
            .store
            .find_fallback_key(caller.app_id, caller.user_id, device_id, SIGNED_CURVE25519)
            .await?
            .is_some();
        Ok(Uploaded {
            device_id: device_id.to_owned(),
            registered,
            one_time_key_counts: BTreeMap::from([(SIGNED_CURVE25519.to_owned(), count)]),
            fallback: has_fallback,
        })
    }

    /// Checks and stores the device's identity; `(device, true)` when it is new.
    async fn register(&self, caller: Caller<'_>, device_id: &str, identity: Value) -> Result<(KeyDevice, bool)> {
        let identity = DeviceIdentity::check(caller.user_id, device_id, identity)?;
        let device = KeyDevice {
            app_id: caller.app_id.to_owned(),
            user_id: caller.user_id.to_owned(),
            device_id: device_id.to_owned(),
            ed25519: identity.ed25519,
            curve25519: identity.curve25519,
            identity_json: canonical_json(&Value::Object(identity.object))?,
            created_at: now_ms(),
            correlation_id: caller.correlation_id.to_owned(),
        };
        let registration = self.store.register_key_device(&device, MAX_DEVICES_PER_USER).await?;
        Ok((device, registration == Registration::Registered))
    }

    /// The caller's devices with their identities.
    pub async fn devices(&self, caller: Caller<'_>) -> Result<Value> {
        let devices = self
            .store
            .key_devices(caller.app_id, &[caller.user_id.to_owned()])
            .await?;
        let mut listed = Vec::with_capacity(devices.len());
        for device in devices {
            let count = self
                .store
                .count_one_time_keys(caller.app_id, caller.user_id, &device.device_id)
                .await?;
            listed.push(json!({
                "device_id": device.device_id,
                "keys": object_of(&device.identity_json)?,
                "created_at": device.created_at,
                "one_time_key_counts": {SIGNED_CURVE25519: count},
            }));
        }
        Ok(json!({"devices": listed}))
    }

    /// Deletes one of the caller's devices with its keys; `NotFound` when there is no such device.
    pub async fn delete_device(&self, caller: Caller<'_>, device_id: &str) -> Result<()> {
        check_device_id(device_id)?;
        let deleted = self
            .store
            .delete_key_device(caller.app_id, caller.user_id, device_id)
            .await?;
        // Announced even when the device was already gone: a first attempt may have deleted it and
        // failed before its announcement went out.
        self.announce_device_change(caller).await?;
        if !deleted {
            return Err(Error::NotFound(format!("device {device_id} not found")));
        }
        Ok(())
    }

    /// Which of `user_ids` the caller may see: those it shares a conversation with, and itself.
    async fn visible(&self, caller: Caller<'_>, user_ids: &[String]) -> Result<BTreeSet<String>> {
        let mut visible: BTreeSet<String> = self
            .store
            .contacts(caller.app_id, caller.user_id, user_ids)
            .await?
            .into_iter()
            .collect();
        if user_ids.iter().any(|id| id == caller.user_id) {
            visible.insert(caller.user_id.to_owned());
        }
        Ok(visible)
    }

    /// The identities of the devices of every visible user among `user_ids`; the others are listed in
    /// `not_visible`, whether or not they exist.
    pub async fn query(&self, caller: Caller<'_>, user_ids: &[String]) -> Result<Value> {
        if user_ids.is_empty() || user_ids.len() > MAX_USERS_PER_REQUEST {
            return Err(Error::Validation(format!(
                "user_ids lists 1 to {MAX_USERS_PER_REQUEST} users"
            )));
        }
        for user_id in user_ids {
            require_id("user_ids[]", user_id)?;
        }
        let wanted: BTreeSet<String> = user_ids.iter().cloned().collect();
        let wanted: Vec<String> = wanted.into_iter().collect();
        let visible = self.visible(caller, &wanted).await?;
        let visible_ids: Vec<String> = visible.iter().cloned().collect();
        let mut device_keys: BTreeMap<String, Map<String, Value>> =
            visible.iter().map(|user| (user.clone(), Map::new())).collect();
        for device in self.store.key_devices(caller.app_id, &visible_ids).await? {
            let identity = object_of(&device.identity_json)?;
            device_keys
                .entry(device.user_id)
                .or_default()
                .insert(device.device_id, identity);
        }
        let not_visible: Vec<&String> = wanted.iter().filter(|user| !visible.contains(*user)).collect();
        Ok(json!({"device_keys": device_keys, "not_visible": not_visible}))
    }

    /// Hands out one one-time key per requested device, oldest first and never twice, or the device's
    /// fallback key when its pool is empty (listed in `fallback_used`). Devices that cannot be served
    /// are listed in `failures` with the reason.
    pub async fn claim(&self, caller: Caller<'_>, claim: Claim) -> Result<Value> {
        if claim.one_time_keys.len() > MAX_USERS_PER_REQUEST {
            return Err(Error::Validation(format!(
                "one_time_keys names at most {MAX_USERS_PER_REQUEST} users"
            )));
        }
        let mut wanted: Vec<(String, String)> = Vec::new();
        for (user_id, devices) in &claim.one_time_keys {
            require_id("user id", user_id)?;
            for (device_id, algorithm) in devices {
                if device_id != "*" {
                    check_device_id(device_id)?;
                }
                if algorithm != SIGNED_CURVE25519 {
                    return Err(Error::Validation(format!(
                        "one-time keys are {SIGNED_CURVE25519}, not {algorithm:?}"
                    )));
                }
                wanted.push((user_id.clone(), device_id.clone()));
            }
        }
        if wanted.is_empty() || wanted.len() > MAX_USERS_PER_REQUEST {
            return Err(Error::Validation(format!(
                "one_time_keys names 1 to {MAX_USERS_PER_REQUEST} devices"
            )));
        }
        let users: Vec<String> = claim.one_time_keys.keys().cloned().collect();
        let visible = self.visible(caller, &users).await?;
        let mut failures = Vec::new();
        let mut targets: Vec<(String, String)> = Vec::new();
        for (user_id, device_id) in wanted {
            if !visible.contains(&user_id) {
                failures.push(json!({"user_id": user_id, "device_id": device_id, "code": "not_visible"}));
            } else if device_id == "*" {
                let devices = self
                    .store
                    .key_devices(caller.app_id, std::slice::from_ref(&user_id))
                    .await?;
                targets.extend(devices.into_iter().map(|d| (user_id.clone(), d.device_id)));
            } else {
                targets.push((user_id, device_id));
            }
        }
        targets.sort();
        targets.dedup();
        if targets.len() > MAX_USERS_PER_REQUEST {
            return Err(Error::Validation(format!(
                "a claim reaches at most {MAX_USERS_PER_REQUEST} devices; this one reaches {}",
                targets.len()
            )));
        }
        let mut handed: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
        let mut fallback_used = Vec::new();
        for (user_id, device_id) in targets {
            // A key taken from the store must reach the caller: a failure on a later device is reported
            // for that device (with the error's code) instead of failing the request and losing this one.
            match self.claim_one(caller, &user_id, &device_id).await {
                Ok(Claimed::Key { key, fallback }) => match object_of(&key.object_json) {
                    Ok(object) => {
                        if fallback {
                            fallback_used.push(json!({"user_id": user_id, "device_id": device_id}));
                        }
                        let named = Map::from_iter([(key.name(), object)]);
                        handed
                            .entry(user_id)
                            .or_default()
                            .insert(device_id, Value::Object(named));
                    }
                    Err(e) => {
                        tracing::error!(error = %e, %user_id, %device_id, "a stored key is not JSON");
                        failures.push(json!({"user_id": user_id, "device_id": device_id, "code": e.code()}));
                    }
                },
                Ok(Claimed::Nothing { code }) => {
                    failures.push(json!({"user_id": user_id, "device_id": device_id, "code": code}));
                }
                Err(e) => {
                    tracing::warn!(error = %e, %user_id, %device_id, "claiming a key failed");
                    failures.push(json!({"user_id": user_id, "device_id": device_id, "code": e.code()}));
                }
            }
        }
        Ok(json!({"one_time_keys": handed, "fallback_used": fallback_used, "failures": failures}))
    }

    /// Claims one key of the device: its oldest one-time key, else its fallback key.
    async fn claim_one(&self, caller: Caller<'_>, user_id: &str, device_id: &str) -> Result<Claimed> {
        let app_id = caller.app_id;
        if let Some(key) = self
            .store
            .claim_one_time_key(app_id, user_id, device_id, SIGNED_CURVE25519)
            .await?
        {
            self.tell_if_low(caller, user_id, device_id).await;
            return Ok(Claimed::Key { key, fallback: false });
        }
        if let Some(key) = self
            .store
            .find_fallback_key(app_id, user_id, device_id, SIGNED_CURVE25519)
            .await?
        {
            // The pool is empty: the device is told on every such claim until it uploads more.
            self.tell_if_low(caller, user_id, device_id).await;
            return Ok(Claimed::Key { key, fallback: true });
        }
        let known = self.store.find_key_device(app_id, user_id, device_id).await?.is_some();
        Ok(Claimed::Nothing {
            code: if known { "no_keys" } else { "unknown_device" },
        })
    }

    /// Erasure: deletes every device and key of `user` and tells their contacts the devices are gone;
    /// returns how many records went.
    pub async fn erase(&self, user: Caller<'_>) -> Result<u64> {
        let deleted = self.store.delete_user_keys(user.app_id, user.user_id).await?;
        // Always, so a repeated erasure also repeats an announcement that may have failed.
        self.announce_device_change(user).await?;
        Ok(deleted)
    }

    /// What a data export lists of `user`'s keys: each device's public identity keys and how many
    /// unclaimed one-time keys it holds (public keys only; the server holds nothing else).
    pub async fn export(&self, user: Caller<'_>) -> Result<Vec<Value>> {
        let mut exported = Vec::new();
        for device in self.store.key_devices(user.app_id, &[user.user_id.to_owned()]).await? {
            let unclaimed = self
                .store
                .count_one_time_keys(user.app_id, user.user_id, &device.device_id)
                .await?;
            let fallback = self
                .store
                .find_fallback_key(user.app_id, user.user_id, &device.device_id, SIGNED_CURVE25519)
                .await?;
            exported.push(json!({
                "device_id": device.device_id,
                "ed25519": device.ed25519,
                "curve25519": device.curve25519,
                "identity": object_of(&device.identity_json)?,
                "created_at": device.created_at,
                "unclaimed_one_time_keys": unclaimed,
                "fallback_key": fallback.map(|key| object_of(&key.object_json)).transpose()?,
            }));
        }
        Ok(exported)
    }

    /// Tells the device's connections when a claim left it fewer than [`LOW_KEYS_THRESHOLD`] one-time
    /// keys. Best effort: the claim has happened, and its key must reach the caller.
    async fn tell_if_low(&self, caller: Caller<'_>, user_id: &str, device_id: &str) {
        let told = async {
            let count = self
                .store
                .count_one_time_keys(caller.app_id, user_id, device_id)
                .await?;
            if count >= LOW_KEYS_THRESHOLD {
                return Ok(());
            }
            let notice = KeyNotice::KeysLow {
                app_id: caller.app_id.to_owned(),
                user_id: user_id.to_owned(),
                device_id: device_id.to_owned(),
                count,
                correlation_id: caller.correlation_id.to_owned(),
            };
            let headers = EventHeaders::new(caller.app_id, "keys.low", caller.correlation_id);
            self.bus
                .publish_json(topics::CONVERSATIONS, user_id, &headers, &notice)
                .await
        };
        if let Err(e) = told.await {
            tracing::warn!(error = %e, %user_id, %device_id, "keys.low not sent");
        }
    }

    /// Tells the members of the caller's conversations (and the caller's other devices) that its device
    /// list changed, so their clients query it again.
    async fn announce_device_change(&self, caller: Caller<'_>) -> Result<()> {
        let conversations = self
            .store
            .list_conversations(caller.app_id, caller.user_id, MAX_CONVERSATIONS_TOLD)
            .await?;
        let mut recipients: BTreeSet<String> = conversations.into_iter().flat_map(|c| c.member_ids).collect();
        recipients.insert(caller.user_id.to_owned());
        let recipients: Vec<String> = recipients.into_iter().collect();
        let headers = EventHeaders::new(caller.app_id, "device_list.changed", caller.correlation_id);
        for chunk in recipients.chunks(RECIPIENTS_PER_RECORD) {
            let notice = KeyNotice::DeviceListChanged {
                app_id: caller.app_id.to_owned(),
                user_id: caller.user_id.to_owned(),
                recipients: chunk.to_vec(),
                correlation_id: caller.correlation_id.to_owned(),
            };
            self.bus
                .publish_json(topics::CONVERSATIONS, caller.user_id, &headers, &notice)
                .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "keys_tests.rs"]
mod tests;
