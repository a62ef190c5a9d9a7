//! End-to-end-encryption key material (issue 22): the rules for what a device may publish, checked
//! before anything is stored. Public keys only — the server never sees a private half.
//!
//! The formats follow Matrix's `/keys/upload` (`device_keys`, `one_time_keys`, `fallback_keys`), with
//! the app's user ids in place of Matrix ids:
//! - a device's identity: `{user_id, device_id, algorithms, keys: {"ed25519:<device>", "curve25519:<device>"},
//!   signatures: {<user_id>: {"ed25519:<device>": <sig>}}}`, self-signed by its own Ed25519 key;
//! - a one-time or fallback key: `"signed_curve25519:<key id>": {key, fallback?, signatures}`, signed by
//!   the device's Ed25519 key.
//!
//! Signatures are Ed25519 over the object's canonical JSON with `signatures` and `unsigned` removed
//! (Matrix's signing-JSON rules); keys and signatures are unpadded standard base64.

use crate::{Error, Result};
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine;
use ed25519_dalek::{Signature, VerifyingKey};
use serde_json::{Map, Value};

/// The one algorithm of one-time and fallback keys.
pub const SIGNED_CURVE25519: &str = "signed_curve25519";
/// Longest device id a client may choose.
pub const MAX_DEVICE_ID_CHARS: usize = 64;
/// Longest one-time or fallback key id.
pub const MAX_KEY_ID_CHARS: usize = 64;
/// Most algorithms a device may list.
pub const MAX_ALGORITHMS: usize = 16;
/// Longest algorithm name.
pub const MAX_ALGORITHM_CHARS: usize = 128;
/// Largest signed object accepted (an identity or one key), as canonical JSON.
pub const MAX_SIGNED_OBJECT_BYTES: usize = 4 * 1024;

/// The largest integer canonical JSON carries exactly (2^53 − 1).
const MAX_SAFE_INTEGER: f64 = 9_007_199_254_740_991.0;

/// `value` as canonical JSON: object keys sorted by code point at every level, no insignificant
/// whitespace, integers only (within ±(2^53 − 1)), strings escaped as JSON requires and no more.
pub fn canonical_json(value: &Value) -> Result<String> {
    let mut out = String::new();
    write_canonical(value, &mut out)?;
    Ok(out)
}

fn write_canonical(value: &Value, out: &mut String) -> Result<()> {
    match value {
        Value::Null | Value::Bool(_) | Value::String(_) => out.push_str(&value.to_string()),
        Value::Number(number) => {
            let integer = match (number.as_i64(), number.as_u64(), number.as_f64()) {
                (Some(i), _, _) => Some(i as f64),
                (_, Some(u), _) => Some(u as f64),
                (_, _, Some(f)) if f.fract() == 0.0 => Some(f),
                _ => None,
            }
            .filter(|n| n.abs() <= MAX_SAFE_INTEGER)
            .ok_or_else(|| Error::Validation(format!("canonical JSON carries integers only, not {number}")))?;
            out.push_str(&format!("{}", integer as i64));
        }
        Value::Array(items) => {
            out.push('[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                write_canonical(item, out)?;
            }
            out.push(']');
        }
        Value::Object(fields) => {
            let mut keys: Vec<&String> = fields.keys().collect();
            // Rust orders strings by their UTF-8 bytes, which is code-point order.
            keys.sort();
            out.push('{');
            for (index, key) in keys.into_iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                out.push_str(&Value::from(key.as_str()).to_string());
                out.push(':');
                write_canonical(&fields[key], out)?;
            }
            out.push('}');
        }
    }
    Ok(())
}

/// The bytes a signature covers: the object's canonical JSON without `signatures` and `unsigned`.
pub fn signing_payload(object: &Map<String, Value>) -> Result<String> {
    let mut stripped = object.clone();
    stripped.remove("signatures");
    stripped.remove("unsigned");
    let payload = canonical_json(&Value::Object(stripped))?;
    if payload.len() > MAX_SIGNED_OBJECT_BYTES {
        return Err(Error::PayloadTooLarge(MAX_SIGNED_OBJECT_BYTES));
    }
    Ok(payload)
}

/// Decodes unpadded (or, leniently, padded) standard base64 of exactly `length` bytes.
fn decode_base64(what: &str, text: &str, length: usize) -> Result<Vec<u8>> {
    let bytes = STANDARD_NO_PAD
        .decode(text)
        .or_else(|_| STANDARD.decode(text))
        .map_err(|_| Error::Validation(format!("{what} is not base64")))?;
    if bytes.len() != length {
        return Err(Error::Validation(format!(
            "{what} must be {length} bytes, not {}",
            bytes.len()
        )));
    }
    Ok(bytes)
}

/// A device's Ed25519 public key from its unpadded base64.
pub fn ed25519_key(text: &str) -> Result<VerifyingKey> {
    let bytes: [u8; 32] = decode_base64("the ed25519 key", text, 32)?
        .try_into()
        .expect("length checked");
    VerifyingKey::from_bytes(&bytes).map_err(|_| Error::Validation("the ed25519 key is not a valid point".into()))
}

/// Checks that `object` carries a valid signature by `user_id`'s key `key_id` (`ed25519:<device>`),
/// made with `key` over [`signing_payload`]. Strict verification: no malleable or small-order forms.
pub fn verify_signature(object: &Map<String, Value>, user_id: &str, key_id: &str, key: &VerifyingKey) -> Result<()> {
    let signature = object
        .get("signatures")
        .and_then(|signatures| signatures.get(user_id))
        .and_then(|by_user| by_user.get(key_id))
        .and_then(Value::as_str)
        .ok_or_else(|| Error::Validation(format!("missing signature signatures.{user_id}.{key_id}")))?;
    let bytes: [u8; 64] = decode_base64("the signature", signature, 64)?
        .try_into()
        .expect("length checked");
    let payload = signing_payload(object)?;
    key.verify_strict(payload.as_bytes(), &Signature::from_bytes(&bytes))
        .map_err(|_| Error::Validation(format!("the signature {key_id} does not verify")))
}

/// A device's identity keys, checked: the object is the caller's, names the device, lists its
/// algorithms, carries an Ed25519 and a Curve25519 key of the right size, and is self-signed.
#[derive(Clone, Debug, PartialEq)]
pub struct DeviceIdentity {
    /// The device, as the client named it.
    pub device_id: String,
    /// Its Ed25519 signing key (unpadded base64), which signs its one-time and fallback keys.
    pub ed25519: String,
    /// Its Curve25519 identity key (unpadded base64).
    pub curve25519: String,
    /// The whole signed object as uploaded, handed out unchanged to whoever queries the device.
    pub object: Map<String, Value>,
}

/// Checks a device id a client chose.
pub fn check_device_id(device_id: &str) -> Result<()> {
    let fine = !device_id.is_empty()
        && device_id.chars().count() <= MAX_DEVICE_ID_CHARS
        && device_id.chars().all(|c| c.is_ascii_graphic() && c != ':');
    if fine {
        Ok(())
    } else {
        Err(Error::Validation(format!(
            "device_id is 1 to {MAX_DEVICE_ID_CHARS} printable ASCII characters, no colon or space"
        )))
    }
}

impl DeviceIdentity {
    /// Checks `object` as `user_id`'s identity for `device_id`.
    pub fn check(user_id: &str, device_id: &str, object: Value) -> Result<Self> {
        check_device_id(device_id)?;
        let Value::Object(object) = object else {
            return Err(Error::Validation("device_keys is an object".into()));
        };
        let text = |field: &str| object.get(field).and_then(Value::as_str);
        if text("user_id") != Some(user_id) {
            return Err(Error::Validation("device_keys.user_id must be your own user id".into()));
        }
        if text("device_id") != Some(device_id) {
            return Err(Error::Validation(
                "device_keys.device_id must be the device uploaded".into(),
            ));
        }
        let algorithms = object
            .get("algorithms")
            .and_then(Value::as_array)
            .filter(|list| !list.is_empty() && list.len() <= MAX_ALGORITHMS)
            .ok_or_else(|| {
                Error::Validation(format!("device_keys.algorithms lists 1 to {MAX_ALGORITHMS} algorithms"))
            })?;
        if !algorithms.iter().all(|a| {
            a.as_str()
                .is_some_and(|a| !a.is_empty() && a.len() <= MAX_ALGORITHM_CHARS)
        }) {
            return Err(Error::Validation(format!(
                "each algorithm is a name of 1 to {MAX_ALGORITHM_CHARS} characters"
            )));
        }
        let key = |algorithm: &str| {
            let id = format!("{algorithm}:{device_id}");
            object
                .get("keys")
                .and_then(|keys| keys.get(&id))
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| Error::Validation(format!("device_keys.keys needs {id}")))
        };
        let (ed25519, curve25519) = (key("ed25519")?, key("curve25519")?);
        if object.get("keys").and_then(Value::as_object).map(Map::len) != Some(2) {
            return Err(Error::Validation(
                "device_keys.keys holds the device's ed25519 and curve25519 keys only".into(),
            ));
        }
        decode_base64("the curve25519 key", &curve25519, 32)?;
        let signing_key = ed25519_key(&ed25519)?;
        verify_signature(&object, user_id, &format!("ed25519:{device_id}"), &signing_key)?;
        Ok(Self {
            device_id: device_id.to_owned(),
            ed25519,
            curve25519,
            object,
        })
    }
}

/// A one-time or fallback key, checked against its device's Ed25519 key.
#[derive(Clone, Debug, PartialEq)]
pub struct SignedKey {
    /// The algorithm (`signed_curve25519`).
    pub algorithm: String,
    /// The key's id, unique per device.
    pub key_id: String,
    /// The whole signed object (`{key, fallback?, signatures}`), handed out unchanged.
    pub object: Map<String, Value>,
}

impl SignedKey {
    /// Checks the upload entry `"<algorithm>:<key id>": object` of `user_id`'s device.
    pub fn check(
        user_id: &str,
        device_id: &str,
        device_key: &VerifyingKey,
        name: &str,
        object: Value,
        fallback: bool,
    ) -> Result<Self> {
        let (algorithm, key_id) = name
            .split_once(':')
            .filter(|(algorithm, key_id)| {
                *algorithm == SIGNED_CURVE25519
                    && !key_id.is_empty()
                    && key_id.chars().count() <= MAX_KEY_ID_CHARS
                    && key_id.chars().all(|c| c.is_ascii_graphic())
            })
            .ok_or_else(|| {
                Error::Validation(format!(
                    "a key is named signed_curve25519:<id>, the id 1 to {MAX_KEY_ID_CHARS} printable characters; got {name:?}"
                ))
            })?;
        let Value::Object(object) = object else {
            return Err(Error::Validation(format!("{name} is an object {{key, signatures}}")));
        };
        let key = object
            .get("key")
            .and_then(Value::as_str)
            .ok_or_else(|| Error::Validation(format!("{name}.key is missing")))?;
        decode_base64("a curve25519 key", key, 32)?;
        if object.get("fallback").and_then(Value::as_bool).unwrap_or(false) != fallback {
            return Err(Error::Validation(match fallback {
                true => format!("{name}: a fallback key says \"fallback\": true"),
                false => format!("{name}: a one-time key is not a fallback key"),
            }));
        }
        verify_signature(&object, user_id, &format!("ed25519:{device_id}"), device_key)?;
        Ok(Self {
            algorithm: algorithm.to_owned(),
            key_id: key_id.to_owned(),
            object,
        })
    }
}

/// What a client does to publish keys, for tests: real Ed25519 keys derived from a seed, self-signed
/// identities and signed one-time or fallback keys.
#[cfg(any(test, feature = "conformance"))]
pub mod testing {
    use super::signing_payload;
    use base64::engine::general_purpose::STANDARD_NO_PAD;
    use base64::Engine;
    use ed25519_dalek::{Signer, SigningKey};
    use serde_json::{json, Value};

    /// A device as a client would build it: its signing key (from `seed`) and its self-signed identity.
    pub fn device(user_id: &str, device_id: &str, seed: u8) -> (SigningKey, Value) {
        let signing = SigningKey::from_bytes(&[seed; 32]);
        let ed25519 = STANDARD_NO_PAD.encode(signing.verifying_key().as_bytes());
        let curve25519 = STANDARD_NO_PAD.encode([seed.wrapping_add(1); 32]);
        let mut object = json!({
            "user_id": user_id,
            "device_id": device_id,
            "algorithms": ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"],
            "keys": {format!("ed25519:{device_id}"): ed25519, format!("curve25519:{device_id}"): curve25519},
        });
        sign(&signing, user_id, device_id, &mut object);
        (signing, object)
    }

    /// Signs `object` as the device does: `signatures.<user>.ed25519:<device>` over its signing JSON.
    pub fn sign(signing: &SigningKey, user_id: &str, device_id: &str, object: &mut Value) {
        let payload = signing_payload(object.as_object().expect("an object")).expect("signable");
        let signature = STANDARD_NO_PAD.encode(signing.sign(payload.as_bytes()).to_bytes());
        object["signatures"] = json!({user_id: {format!("ed25519:{device_id}"): signature}});
    }

    /// A signed one-time (or fallback) Curve25519 key whose public half is 32 bytes of `fill`.
    pub fn signed_key(signing: &SigningKey, user_id: &str, device_id: &str, fill: u8, fallback: bool) -> Value {
        let mut object = json!({"key": STANDARD_NO_PAD.encode([fill; 32])});
        if fallback {
            object["fallback"] = json!(true);
        }
        sign(signing, user_id, device_id, &mut object);
        object
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{device, sign};
    use super::*;
    use ed25519_dalek::SigningKey;
    use serde_json::json;

    #[test]
    fn canonical_json_follows_the_matrix_vectors() {
        let cases = [
            (json!({}), "{}"),
            (json!({"one": 1, "two": "Two"}), r#"{"one":1,"two":"Two"}"#),
            (json!({"b": "2", "a": "1"}), r#"{"a":"1","b":"2"}"#),
            (
                json!({"auth": {"success": true, "mxid": "@john.doe:example.com", "profile": {
                    "display_name": "John Doe",
                    "three_pids": [{"medium": "email", "address": "john.doe@example.org"},
                                   {"medium": "msisdn", "address": "123456789"}]}}}),
                r#"{"auth":{"mxid":"@john.doe:example.com","profile":{"display_name":"John Doe","three_pids":[{"address":"john.doe@example.org","medium":"email"},{"address":"123456789","medium":"msisdn"}]},"success":true}}"#,
            ),
            (json!({"a": "日本語"}), r#"{"a":"日本語"}"#),
            (json!({"本": 2, "日": 1}), r#"{"日":1,"本":2}"#),
            (json!({"a": "\u{65E5}"}), r#"{"a":"日"}"#),
            (json!({"a": null}), r#"{"a":null}"#),
        ];
        for (value, expected) in cases {
            assert_eq!(canonical_json(&value).unwrap(), expected);
        }
        let exponent: Value = serde_json::from_str(r#"{"a": -0, "b": 1e10}"#).unwrap();
        assert_eq!(canonical_json(&exponent).unwrap(), r#"{"a":0,"b":10000000000}"#);
        assert!(canonical_json(&json!({"a": 1.5})).is_err(), "no fractions");
        assert!(
            canonical_json(&json!({"a": 9_007_199_254_740_992_u64})).is_err(),
            "beyond 2^53 - 1"
        );
    }

    #[test]
    fn the_matrix_signing_vectors_verify() {
        // The Matrix specification's appendix "Signing JSON": seed, key id and signatures. The seed's
        // last character carries bits past the 32 bytes, which Python's decoder (the spec's) ignores.
        let lenient = base64::engine::GeneralPurpose::new(
            &base64::alphabet::STANDARD,
            base64::engine::GeneralPurposeConfig::new()
                .with_decode_allow_trailing_bits(true)
                .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
        );
        let seed: [u8; 32] = lenient
            .decode("YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1")
            .unwrap()
            .try_into()
            .unwrap();
        let key = SigningKey::from_bytes(&seed).verifying_key();
        let signed = |object: Value, signature: &str| {
            let mut object = object.as_object().unwrap().clone();
            object.insert("signatures".into(), json!({"domain": {"ed25519:1": signature}}));
            object
        };
        let empty = signed(
            json!({}),
            "K8280/U9SSy9IVtjBuVeLr+HpOB4BQFWbg+UZaADMtTdGYI7Geitb76LTrr5QV/7Xg4ahLwYGYZzuHGZKM5ZAQ",
        );
        verify_signature(&empty, "domain", "ed25519:1", &key).unwrap();
        let two = signed(
            json!({"one": 1, "two": "Two"}),
            "KqmLSbO39/Bzb0QIYE82zqLwsA+PDzYIpIRA2sRQ4sL53+sN6/fpNSoqE7BP7vBZhG6kYdD13EIMJpvhJI+6Bw",
        );
        verify_signature(&two, "domain", "ed25519:1", &key).unwrap();
        let mut tampered = two;
        tampered.insert("two".into(), json!("Three"));
        assert!(verify_signature(&tampered, "domain", "ed25519:1", &key).is_err());
    }

    #[test]
    fn a_self_signed_device_is_accepted_and_anything_else_is_refused_with_the_reason() {
        let (_, object) = device("u1", "PHONE", 7);
        let identity = DeviceIdentity::check("u1", "PHONE", object.clone()).unwrap();
        assert_eq!(identity.device_id, "PHONE");
        let reason = |object: Value, user: &str, device: &str| {
            DeviceIdentity::check(user, device, object)
                .unwrap_err()
                .public_message()
        };
        assert!(reason(object.clone(), "u2", "PHONE").contains("your own user id"));
        assert!(reason(object.clone(), "u1", "LAPTOP").contains("device uploaded"));
        let mut forged = object.clone();
        forged["algorithms"] = json!(["other"]);
        assert!(reason(forged, "u1", "PHONE").contains("does not verify"));
        let mut unsigned = object.clone();
        unsigned.as_object_mut().unwrap().remove("signatures");
        assert!(reason(unsigned, "u1", "PHONE").contains("missing signature"));
        let mut short_key = object;
        short_key["keys"]["curve25519:PHONE"] = json!("AAAA");
        assert!(reason(short_key, "u1", "PHONE").contains("32 bytes"));
        assert!(check_device_id(&"d".repeat(65)).is_err());
        assert!(check_device_id("has space").is_err());
    }

    #[test]
    fn one_time_and_fallback_keys_are_signed_by_their_device() {
        let (signing, object) = device("u1", "PHONE", 9);
        let identity = DeviceIdentity::check("u1", "PHONE", object).unwrap();
        let device_key = ed25519_key(&identity.ed25519).unwrap();
        let mut one_time = json!({"key": STANDARD_NO_PAD.encode([3u8; 32])});
        sign(&signing, "u1", "PHONE", &mut one_time);
        let checked = SignedKey::check(
            "u1",
            "PHONE",
            &device_key,
            "signed_curve25519:AAAAHQ",
            one_time.clone(),
            false,
        )
        .unwrap();
        assert_eq!(
            (checked.algorithm.as_str(), checked.key_id.as_str()),
            ("signed_curve25519", "AAAAHQ")
        );
        assert!(SignedKey::check("u1", "PHONE", &device_key, "curve25519:AAAAHQ", one_time.clone(), false).is_err());
        assert!(
            SignedKey::check(
                "u1",
                "PHONE",
                &device_key,
                "signed_curve25519:X",
                one_time.clone(),
                true
            )
            .is_err(),
            "a one-time key is not a fallback key"
        );
        let (other, _) = device("u1", "PHONE", 10);
        let mut foreign = json!({"key": STANDARD_NO_PAD.encode([4u8; 32])});
        sign(&other, "u1", "PHONE", &mut foreign);
        assert!(SignedKey::check("u1", "PHONE", &device_key, "signed_curve25519:Y", foreign, false).is_err());
        let mut fallback = json!({"key": STANDARD_NO_PAD.encode([5u8; 32]), "fallback": true});
        sign(&signing, "u1", "PHONE", &mut fallback);
        SignedKey::check("u1", "PHONE", &device_key, "signed_curve25519:F", fallback, true).unwrap();
    }
}
