//! The end-to-end-encryption key directory's records: public key material only (see
//! [`crate::domain::keys`] for the rules an upload is checked against).

use serde::{Deserialize, Serialize};

/// A user's device in the key directory, with its checked, self-signed identity keys.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct KeyDevice {
    /// The app the device's user belongs to.
    pub app_id: String,
    /// The platform user id of the device's owner.
    pub user_id: String,
    /// The device, as the client named it (unique per user).
    pub device_id: String,
    /// The device's Ed25519 signing key (unpadded base64): it signs the device's one-time and fallback keys.
    pub ed25519: String,
    /// The device's Curve25519 identity key (unpadded base64).
    pub curve25519: String,
    /// The signed identity object as uploaded, in canonical JSON: handed out unchanged, and compared
    /// byte for byte when the device is uploaded again.
    pub identity_json: String,
    /// When the device was registered, Unix ms.
    pub created_at: i64,
    /// The correlation id of the request that registered it.
    pub correlation_id: String,
}

/// A one-time or fallback key of a device, as stored: signed by the device, handed out unchanged.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct StoredKey {
    /// The app the device's user belongs to.
    pub app_id: String,
    /// The platform user id of the device's owner.
    pub user_id: String,
    /// The device the key belongs to.
    pub device_id: String,
    /// The key's algorithm (`signed_curve25519`).
    pub algorithm: String,
    /// The key's id, unique per device and algorithm.
    pub key_id: String,
    /// The signed key object (`{key, fallback?, signatures}`) in canonical JSON.
    pub object_json: String,
    /// The correlation id of the upload that stored it.
    pub correlation_id: String,
}

impl StoredKey {
    /// The name clients use for the key: `<algorithm>:<key id>`.
    pub fn name(&self) -> String {
        format!("{}:{}", self.algorithm, self.key_id)
    }

    /// The device the key belongs to: `(app_id, user_id, device_id)`.
    pub fn device(&self) -> (&str, &str, &str) {
        (&self.app_id, &self.user_id, &self.device_id)
    }
}
