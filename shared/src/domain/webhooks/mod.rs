//! Webhooks (issue 38), the rules without I/O: which events an endpoint may ask for, what an endpoint's
//! URL may be, and the Standard Webhooks signature (<https://www.standardwebhooks.com>): headers
//! `webhook-id` (stable across retries), `webhook-timestamp` (seconds) and `webhook-signature`, a
//! space-separated list of `v1,<base64 HMAC-SHA256 of "id.timestamp.body">`, one per secret in force
//! (two while a rotated secret overlaps its successor). Receivers verify it with the `standardwebhooks`
//! libraries as they are.

pub mod address;
pub mod events;
pub mod retry;

use crate::{Error, Result};
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// Every event type an endpoint may subscribe to: each change the platform already announces to
/// sockets or the audit trail. (The operator's `webhook.test` event goes to an endpoint whatever it
/// subscribes to.)
pub const EVENT_TYPES: &[&str] = &[
    "message.new",
    "message.updated",
    "message.deleted",
    "reaction.added",
    "reaction.removed",
    "member.added",
    "member.removed",
    "conversation.created",
    "conversation.updated",
    "message.flagged",
    "user.banned",
    "user.muted",
    "user.restriction_lifted",
];

/// The prefix of a signing secret, as the standard writes it.
pub const SECRET_PREFIX: &str = "whsec_";

/// Random bytes in a new signing secret (the standard allows 24 to 64).
const SECRET_BYTES: usize = 32;

/// At most this many event types per endpoint filter (there are fewer kinds than this).
pub const MAX_EVENT_TYPES: usize = 32;

/// Longest endpoint URL accepted.
pub const MAX_URL_BYTES: usize = 2048;

/// A new signing secret: `whsec_` and the base64 of 32 random bytes.
pub fn new_secret() -> String {
    let bytes: [u8; SECRET_BYTES] = rand::random();
    format!(
        "{SECRET_PREFIX}{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

/// The key bytes of a `whsec_…` secret (the prefix is optional, as in the standard's libraries).
fn secret_key(secret: &str) -> Result<Vec<u8>> {
    let encoded = secret.strip_prefix(SECRET_PREFIX).unwrap_or(secret);
    base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|_| Error::Validation("a webhook secret is whsec_ followed by base64".into()))
}

/// One `v1,<base64>` signature of `body` under `secret`, for message `id` sent at `timestamp` (seconds).
pub fn sign(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> Result<String> {
    let key = secret_key(secret)?;
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&key)
        .map_err(|_| Error::Internal("an HMAC key of any length is accepted".into()))?;
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    Ok(format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(digest)
    ))
}

/// The `webhook-signature` header: one signature per secret in force, space-separated, the newest first.
pub fn signature_header(secrets: &[&str], id: &str, timestamp: i64, body: &[u8]) -> Result<String> {
    let signatures = secrets
        .iter()
        .map(|secret| sign(secret, id, timestamp, body))
        .collect::<Result<Vec<_>>>()?;
    Ok(signatures.join(" "))
}

/// Checks an endpoint's event filter: known types, no repeats, at least one.
pub fn validate_event_types(types: &[String]) -> Result<()> {
    if types.is_empty() || types.len() > MAX_EVENT_TYPES {
        return Err(Error::Validation(format!(
            "event_types lists 1 to {MAX_EVENT_TYPES} of: {}",
            EVENT_TYPES.join(", ")
        )));
    }
    for (index, kind) in types.iter().enumerate() {
        if !EVENT_TYPES.contains(&kind.as_str()) {
            return Err(Error::Validation(format!(
                "event_types: unknown event type {kind:?}; known: {}",
                EVENT_TYPES.join(", ")
            )));
        }
        if types[..index].contains(kind) {
            return Err(Error::Validation(format!("event_types: {kind:?} is listed twice")));
        }
    }
    Ok(())
}

/// Checks an endpoint's URL as registered: `https://` with a host, no credentials, no fragment; plain
/// `http://` only to a loopback host and only when `allow_loopback_http` (dev mode and tests). Parsed
/// as the sender will parse it (the WHATWG parser reqwest uses). Where the host resolves is checked
/// again at every delivery (it may change), not here.
pub fn validate_url(url: &str, allow_loopback_http: bool) -> Result<()> {
    let bad = |why: &str| Err(Error::Validation(format!("url: {why}")));
    if url.len() > MAX_URL_BYTES {
        return bad(&format!("at most {MAX_URL_BYTES} bytes"));
    }
    let Ok(parsed) = url::Url::parse(url) else {
        return bad("not a valid absolute URL");
    };
    let Some(host) = parsed.host() else {
        return bad("needs a host");
    };
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return bad("must not carry credentials");
    }
    if parsed.fragment().is_some() {
        return bad("must not have a fragment");
    }
    let loopback = match host {
        url::Host::Domain(name) => name.eq_ignore_ascii_case("localhost"),
        url::Host::Ipv4(ip) => ip.is_loopback(),
        url::Host::Ipv6(ip) => ip.is_loopback(),
    };
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if allow_loopback_http && loopback => Ok(()),
        "http" => bad("must be https (plain http only to a loopback host, in dev mode and tests)"),
        _ => bad("must be https"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Standard Webhooks reference vector (the libraries' `test_sign`).
    #[test]
    fn signs_as_the_standard_s_reference_vector() {
        let signature = sign(
            "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
            "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
            1_649_367_553,
            br#"{"email":"test@example.com","username":"test_user"}"#,
        )
        .unwrap();
        assert_eq!(signature, "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=");
    }

    #[test]
    fn a_rotation_signs_with_every_secret_in_force() {
        let (old, new) = (new_secret(), new_secret());
        let header = signature_header(&[&new, &old], "msg_1", 1, b"{}").unwrap();
        let parts: Vec<&str> = header.split(' ').collect();
        assert_eq!(
            parts,
            [
                sign(&new, "msg_1", 1, b"{}").unwrap(),
                sign(&old, "msg_1", 1, b"{}").unwrap()
            ]
        );
        assert_ne!(parts[0], parts[1]);
    }

    #[test]
    fn a_new_secret_is_prefixed_base64_of_32_bytes() {
        let secret = new_secret();
        assert_eq!(secret_key(&secret).unwrap().len(), 32);
        assert_ne!(secret, new_secret());
        assert!(sign("whsec_not base64!", "id", 1, b"").is_err());
    }

    #[test]
    fn urls() {
        let cases: &[(&str, bool, bool)] = &[
            ("https://hooks.example.com/caas", false, true),
            ("https://hooks.example.com:8443/a?b=c", false, true),
            ("http://hooks.example.com/caas", false, false),
            ("http://hooks.example.com/caas", true, false),
            ("http://127.0.0.1:9000/hook", false, false),
            ("http://127.0.0.1:9000/hook", true, true),
            ("http://localhost:9000/hook", true, true),
            ("http://[::1]:9000/hook", true, true),
            ("https://user:pass@hooks.example.com/", false, false),
            ("https://hooks.example.com/#frag", false, false),
            ("ftp://hooks.example.com/", true, false),
            ("hooks.example.com/caas", false, false),
            ("https:///nohost", false, true), // the WHATWG parser reads the host "nohost", as the sender will
            ("https://[::1", false, false),
            ("not a url", false, false),
        ];
        for (url, allow_http, ok) in cases {
            assert_eq!(
                validate_url(url, *allow_http).is_ok(),
                *ok,
                "{url} (loopback http allowed: {allow_http})"
            );
        }
        assert!(validate_url(&format!("https://a.example/{}", "x".repeat(MAX_URL_BYTES)), false).is_err());
    }

    #[test]
    fn event_filters() {
        let owned = |types: &[&str]| types.iter().map(|t| (*t).to_owned()).collect::<Vec<_>>();
        assert!(validate_event_types(&owned(&["message.new", "member.added"])).is_ok());
        assert!(validate_event_types(&owned(&[])).is_err());
        assert!(validate_event_types(&owned(&["message.new", "message.new"])).is_err());
        assert!(validate_event_types(&owned(&["message.exploded"])).is_err());
        assert!(validate_event_types(&owned(EVENT_TYPES)).is_ok());
    }
}
