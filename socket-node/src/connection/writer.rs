//! The writing half of a connection: one task per connection drains its [`Outbox`], turning native
//! frames into Socket.IO packets for a Socket.IO client.

use super::Socket;
use crate::outbox::Outbox;
use crate::socketio::wire::Transcoder;
use futures_util::SinkExt;
use std::sync::Arc;
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::Message;

/// Queued for a native client, it is sent as a WebSocket ping: no protocol frame is ever empty.
pub const WEBSOCKET_PING: &str = "";

/// Sends queued frames in order; when the outbox closes, writes what is left and finishes with the close
/// frame the reader chose. A client that stops reading leaves this task waiting on the socket: the
/// connection bounds that wait (see `Connection::run`) and then drops the task and the socket.
pub async fn write_frames(
    mut sink: futures_util::stream::SplitSink<Socket, Message>,
    outbox: Arc<Outbox>,
    close: oneshot::Receiver<Message>,
    socketio: Option<Transcoder>,
) {
    let mut packets = Vec::new();
    while let Some(first) = outbox.next().await {
        // Coalesce: write everything already queued before one flush.
        let mut frame = Some(first);
        while let Some(next) = frame.take().or_else(|| outbox.try_next()) {
            let sent = if let Some(transcoder) = &socketio {
                transcoder.transcode(&next, &mut packets);
                let mut sent = Ok(());
                for packet in packets.drain(..) {
                    sent = sent.and(sink.feed(Message::text(packet)).await);
                }
                sent
            } else if next.as_str() == WEBSOCKET_PING {
                sink.feed(Message::Ping(Default::default())).await
            } else {
                sink.feed(Message::Text(next)).await
            };
            if sent.is_err() {
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
