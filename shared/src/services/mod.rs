//! The use cases, written once against the ports and called by every entry point that offers them:
//! the HTTP functions, the Kafka-triggered functions and the socket node.

pub mod audit;
pub mod auth;
pub mod conversation_reads;
pub mod conversations;
pub mod credentials;
pub mod history;
pub mod keys;
pub mod messages;
pub mod moderation;
pub mod revisions;
mod sending;
pub mod sequencing;
pub mod session_lookups;
pub mod sessions;
pub mod webhook_delivery;
pub mod webhook_events;
pub mod webhooks;
pub mod windows;
