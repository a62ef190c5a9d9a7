//! Domain models. Ids are strings; timestamps are Unix milliseconds. Every document written because of
//! a request carries that request's `correlation_id`.

mod apps;
mod compliance;
mod conversations;
mod keys;
mod messages;
mod users;
mod webhooks;

pub use apps::*;
pub use compliance::*;
pub use conversations::*;
pub use keys::*;
pub use messages::*;
pub use users::*;
pub use webhooks::*;

/// Limits on user-supplied content, enforced before anything is sequenced or published.
pub mod limits {
    /// Longest message text, in bytes (16 KiB); longer sends and edits are refused with `validation_failed`.
    pub const MAX_TEXT_BYTES: usize = 16 * 1024;
    /// Any client-supplied id (conversation, message, user, `client_msg_id`, …).
    pub const MAX_ID_BYTES: usize = 128;
    /// Most members a group may have, the owner included.
    pub const MAX_GROUP_MEMBERS: usize = 1_000;
    /// Longest conversation name, in characters; the auth function also caps app and display names at this many
    /// bytes.
    pub const MAX_NAME_CHARS: usize = 200;
    /// Longest external user id an app's backend may give, in bytes.
    pub const MAX_EXTERNAL_ID_BYTES: usize = 256;
    /// Longest reaction emoji, in bytes.
    pub const MAX_EMOJI_BYTES: usize = 32;
    /// Most distinct reaction emoji on one message; a new one past this is refused with
    /// `limit_exceeded` (a history page loads every message's reactions).
    pub const MAX_DISTINCT_REACTIONS: usize = 50;

    /// Whether a name (display name, conversation or file name) holds a character that can disguise
    /// what others see: control characters, and the bidirectional overrides, embeddings and isolates
    /// that reorder text ("evil\u{202E}gpj.exe" shows as "evilexe.jpg").
    pub fn has_deceptive_chars(name: &str) -> bool {
        name.chars().any(|c| {
            c.is_control() || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}' | '\u{FEFF}')
        })
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn bidi_controls_and_control_characters_are_deceptive() {
            assert!(super::has_deceptive_chars("evil\u{202E}gpj.exe"));
            assert!(super::has_deceptive_chars("a\u{2066}b"));
            assert!(super::has_deceptive_chars("tab\there"));
            assert!(!super::has_deceptive_chars("Zoë's team — שלום 👋"));
        }
    }
}
