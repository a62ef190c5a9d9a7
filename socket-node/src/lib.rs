//! The socket node: a long-lived WebSocket server, transport only — the use cases it offers live in
//! `caas_shared::services`.
//!
//! Shape borrowed from mini-redis and centrifuge:
//! - [`server::Listener`] accepts connections, caps them with a semaphore and shuts down gracefully;
//! - [`connection`] serves one client: handshake → admit → run → teardown;
//! - [`dispatch`] turns a client frame into a typed [`ClientEvent`](caas_shared::domain::protocol::ClientEvent)
//!   and hands it to its command under [`commands`];
//! - [`node::Node`] owns the drivers, the [`hub`] (local routing + cross-node fan-out) and the
//!   background [`relays`] (topics tailed into the hub, the presence sweep), all stopped by [`shutdown`];
//! - every connection's outbound frames wait in its byte-bounded [`outbox`], and [`tally`] caps
//!   connections per user and handshakes per IP;
//! - [`socketio`] holds the Engine.IO / Socket.IO codecs for the replaced system's clients, and
//!   [`polling`] their long-polling sessions (the same connections, over HTTP requests).

pub mod budget;
pub mod commands;
pub mod config;
pub mod connection;
pub mod dispatch;
pub mod handshakes;
pub mod hub;
pub mod in_order;
pub mod node;
pub mod outbox;
pub mod polling;
pub mod relays;
pub mod server;
pub mod session;
pub mod shutdown;
pub mod socketio;
pub mod tally;

pub use node::Node;

/// A client's upgraded WebSocket, whichever protocol it speaks.
pub type WebSocket = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;
