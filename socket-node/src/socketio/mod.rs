//! The Socket.IO wire format (Engine.IO v4 under Socket.IO v5), so the replaced system's clients
//! (`socket.io-client` 4.x) can talk to the socket node unchanged (issue 21). Pure codecs here; the
//! design that puts them on the node's one connection model (`/socket.io/` beside `/ws`, long-polling
//! and the upgrade, heartbeats, acks, recovery) is in `docs/design/socketio-compat.md`.

pub mod engine;
pub mod events;
pub mod packet;
pub mod recovery;
pub mod wire;
