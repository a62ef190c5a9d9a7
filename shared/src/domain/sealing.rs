//! Secrets the platform must read back to use them — webhook signing secrets, and push providers' keys
//! after them — are stored sealed with a key the deployment supplies (`CAAS_SECRETS_KEY`, 32 bytes in
//! base64; Secrets Manager in the template, a variable or file locally), never in the clear. Secrets the
//! platform only checks (app secrets) are hashed instead.
//!
//! AES-256-GCM (ring, the AEAD most deployments already have in their TLS stack), a random 96-bit nonce
//! per seal, and the record's identity as associated data, so a sealed value copied into another record
//! does not open there. Sealed form: `v1.<base64 of nonce ‖ ciphertext ‖ tag>`.

use crate::{Error, Result};
use base64::Engine;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};

const VERSION: &str = "v1.";

/// The deployment's sealing key.
pub struct SealingKey(LessSafeKey);

impl std::fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealingKey(…)")
    }
}

impl SealingKey {
    /// The key from its base64 form (32 bytes once decoded).
    pub fn from_base64(encoded: &str) -> Result<Self> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .map_err(|_| Error::Config("CAAS_SECRETS_KEY must be base64".into()))?;
        let unbound = UnboundKey::new(&AES_256_GCM, &bytes)
            .map_err(|_| Error::Config("CAAS_SECRETS_KEY must be 32 bytes (base64 of `openssl rand 32`)".into()))?;
        Ok(Self(LessSafeKey::new(unbound)))
    }

    /// A fresh random key in base64 (for the dev mode and tests, which keep nothing across restarts).
    pub fn generate_base64() -> String {
        let bytes: [u8; 32] = rand::random();
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    /// `plaintext` sealed for the record `context` names (e.g. `webhook:<app>:<endpoint>`).
    pub fn seal(&self, plaintext: &str, context: &str) -> Result<String> {
        let nonce_bytes: [u8; NONCE_LEN] = rand::random();
        let mut sealed = plaintext.as_bytes().to_vec();
        self.0
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce_bytes),
                Aad::from(context.as_bytes()),
                &mut sealed,
            )
            .map_err(|_| Error::Internal("sealing a secret failed".into()))?;
        let mut out = nonce_bytes.to_vec();
        out.extend_from_slice(&sealed);
        Ok(format!(
            "{VERSION}{}",
            base64::engine::general_purpose::STANDARD.encode(out)
        ))
    }

    /// The plaintext of a value [`Self::seal`] sealed for the same `context`; an error when it was
    /// sealed with another key, for another record, or altered.
    pub fn open(&self, sealed: &str, context: &str) -> Result<String> {
        let unreadable =
            || Error::Internal("a sealed secret does not open with this key (CAAS_SECRETS_KEY changed?)".into());
        let encoded = sealed.strip_prefix(VERSION).ok_or_else(unreadable)?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|_| unreadable())?;
        if bytes.len() < NONCE_LEN {
            return Err(unreadable());
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| unreadable())?;
        let mut in_out = ciphertext.to_vec();
        let plain = self
            .0
            .open_in_place(nonce, Aad::from(context.as_bytes()), &mut in_out)
            .map_err(|_| unreadable())?;
        String::from_utf8(plain.to_vec()).map_err(|_| unreadable())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_only_with_its_key_and_context() {
        let key = SealingKey::from_base64(&SealingKey::generate_base64()).unwrap();
        let sealed = key.seal("whsec_abc", "webhook:app:1").unwrap();
        assert!(sealed.starts_with(VERSION) && !sealed.contains("whsec_abc"));
        assert_eq!(key.open(&sealed, "webhook:app:1").unwrap(), "whsec_abc");
        assert_ne!(
            sealed,
            key.seal("whsec_abc", "webhook:app:1").unwrap(),
            "a fresh nonce each time"
        );
        assert!(key.open(&sealed, "webhook:app:2").is_err(), "moved to another record");
        let other = SealingKey::from_base64(&SealingKey::generate_base64()).unwrap();
        assert!(other.open(&sealed, "webhook:app:1").is_err(), "another key");
        let mut tampered = sealed.clone().into_bytes();
        let last = tampered.len() - 3;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        assert!(key
            .open(&String::from_utf8(tampered).unwrap(), "webhook:app:1")
            .is_err());
        for garbage in ["", "v1.", "v1.!!", "v2.AAAA", "v1.AAAA"] {
            assert!(key.open(garbage, "webhook:app:1").is_err(), "{garbage:?}");
        }
    }

    #[test]
    fn keys_must_be_32_bytes_of_base64() {
        assert!(SealingKey::from_base64("not base64!").is_err());
        assert!(SealingKey::from_base64("AAAA").is_err());
        assert!(SealingKey::from_base64(&SealingKey::generate_base64()).is_ok());
        assert_eq!(
            format!("{:?}", SealingKey::from_base64(&SealingKey::generate_base64()).unwrap()),
            "SealingKey(…)"
        );
    }
}
