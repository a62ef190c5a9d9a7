//! One module per group of client events. Each command is thin: it calls the shared use case
//! (`caas_shared::services`) and delivers what live connections must be told through the hub.

pub mod conversations;
pub mod messages;
pub mod presence;
pub mod subscribe;
