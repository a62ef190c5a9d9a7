//! How a connection talks to its client before it is live — the handshake, a refusal, the greeting —
//! over a WebSocket or a long-polling session, and how a closing polling client takes its last frames.

use super::{close_frame, writer, Socket, CLOSE_PATIENCE};
use crate::polling::PollingSession;
use crate::socketio;
use caas_shared::domain::protocol;
use caas_shared::Error;
use futures_util::{SinkExt, StreamExt};
use std::sync::Arc;
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

/// Which codec a connection speaks.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    Native,
    SocketIo,
}

/// How a connection talks to its client before it is live (the handshake, a refusal, the greeting).
// It lives only during setup, inside the boxed establishment future; boxing the socket would cost an
// allocation per connection for nothing.
#[allow(clippy::large_enum_variant)]
pub enum Transport {
    WebSocket(Socket),
    Polling(Arc<PollingSession>),
}

impl Transport {
    /// Sends one frame (a WebSocket text frame, or a packet the client's next poll takes).
    pub async fn send(&mut self, text: String) {
        match self {
            Transport::WebSocket(socket) => {
                let _ = socket.send(Message::text(text)).await;
            }
            Transport::Polling(session) => {
                let _ = session.outbox.push(text.into());
            }
        }
    }

    /// Sends frames ahead of anything queued for the client (its greeting).
    pub async fn send_first(&mut self, frames: Vec<String>) {
        match self {
            Transport::WebSocket(socket) => {
                for frame in frames {
                    if socket.feed(Message::text(frame)).await.is_err() {
                        return;
                    }
                }
                let _ = socket.flush().await;
            }
            Transport::Polling(session) => session.outbox.push_front(frames.into_iter().map(Into::into).collect()),
        }
    }

    /// The client's next text frame or packet; `None` when it left or sent something else.
    pub async fn recv(&mut self) -> Option<String> {
        match self {
            Transport::WebSocket(socket) => match socket.next().await {
                Some(Ok(Message::Text(text))) => Some(text.as_str().to_owned()),
                _ => None,
            },
            Transport::Polling(session) => session.recv().await,
        }
    }

    /// Tells the client why it is refused, then closes; a client that does not read gets
    /// [`CLOSE_PATIENCE`], then its socket is dropped (a polling one takes the refusal with its next poll).
    pub async fn refuse(mut self, wire: Wire, error: &Error, code: CloseCode, reason: &str) {
        let told = match wire {
            Wire::Native => protocol::event("error", protocol::error_body(error)),
            Wire::SocketIo => socketio::wire::connect_error(socketio::packet::MAIN_NAMESPACE, error),
        };
        let _ = tokio::time::timeout(CLOSE_PATIENCE, async {
            self.send(told).await;
            match &mut self {
                Transport::WebSocket(socket) => {
                    let _ = socket.send(close_frame(code, reason)).await;
                }
                Transport::Polling(session) => {
                    session.outbox.close();
                    finish_polling(session, close_frame(code, reason)).await;
                }
            }
        })
        .await;
        if let Transport::Polling(session) = self {
            session.close_inbound();
        }
    }
}

/// Lets a closing long-polling client take what is left in its (closed) outbox: with its next poll,
/// or over the WebSocket it is upgrading to at this moment. Bounded by [`CLOSE_PATIENCE`].
pub async fn finish_polling(session: &PollingSession, close: Message) {
    let _ = tokio::time::timeout(CLOSE_PATIENCE, async {
        tokio::select! {
            () = session.drained.notified() => {}
            socket = session.upgraded_socket() => {
                let (sink, _) = socket.split();
                let (close_tx, close_rx) = oneshot::channel();
                let _ = close_tx.send(close);
                let transcoder = session.transcoder.get().cloned().unwrap_or_default();
                writer::write_frames(sink, Arc::clone(&session.outbox), close_rx, Some(transcoder)).await;
            }
        }
    })
    .await;
}
