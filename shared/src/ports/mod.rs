//! The ports: each is a trait with a real driver and an in-memory reference driver, opened by URL
//! (`connect`), so the same code runs on MongoDB/Redis/Kafka/S3 in production and in one process in the
//! dev mode. Each port's conformance suite runs one test body on both drivers.

pub mod blob;
pub mod bus;
pub mod cache;
pub mod fanout;
pub mod redis_target;
#[cfg(feature = "search")]
pub mod search;
pub mod store;
pub mod webhook_transport;
