//! The writing half of a connection: one task per connection drains its [`Outbox`].

use super::Socket;
use crate::outbox::Outbox;
use futures_util::SinkExt;
use std::sync::Arc;
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::Message;

/// Sends queued frames in order; when the outbox closes, writes what is left and finishes with the close
/// frame the reader chose. A client that stops reading leaves this task waiting on the socket: the
/// connection bounds that wait (see `Connection::run`) and then drops the task and the socket.
pub async fn write_frames(
    mut sink: futures_util::stream::SplitSink<Socket, Message>,
    outbox: Arc<Outbox>,
    close: oneshot::Receiver<Message>,
) {
    while let Some(frame) = outbox.next().await {
        if sink.feed(Message::Text(frame)).await.is_err() {
            return;
        }
        // Coalesce: write everything already queued before one flush.
        while let Some(frame) = outbox.try_next() {
            if sink.feed(Message::Text(frame)).await.is_err() {
                return;
            }
        }
        if sink.flush().await.is_err() {
            return;
        }
    }
    if let Ok(message) = close.await {
        let _ = sink.send(message).await;
    }
    let _ = sink.close().await;
}
