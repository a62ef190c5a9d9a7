//! What the platform is made of, without I/O: models, the client protocol, the Kafka envelopes, the
//! audit chain, moderation rules, correlation ids, clocks and the rules for end-to-end-encryption key
//! material. Every other layer speaks these types.

pub mod audit;
pub mod clock;
pub mod correlation;
pub mod downloads;
pub mod events;
pub mod keys;
pub mod model;
pub mod moderation;
pub mod protocol;
pub mod sealing;
pub mod secrets;
pub mod webhooks;
