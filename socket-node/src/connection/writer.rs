//! The writing half of a connection: one task per connection drains its bounded queue.

use super::Socket;
use futures_util::SinkExt;
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

/// Sends queued frames in order; when the connection ends, flushes what is queued and finishes with the
/// close frame the reader chose.
pub async fn write_frames(
    mut sink: futures_util::stream::SplitSink<Socket, Message>,
    mut frames: mpsc::Receiver<Utf8Bytes>,
    mut close: oneshot::Receiver<Message>,
) {
    let close_message = loop {
        tokio::select! {
            biased;
            frame = frames.recv() => match frame {
                Some(frame) => {
                    if sink.feed(Message::Text(frame)).await.is_err() { return; }
                    // Coalesce: write everything already queued before one flush.
                    while let Ok(frame) = frames.try_recv() {
                        if sink.feed(Message::Text(frame)).await.is_err() { return; }
                    }
                    if sink.flush().await.is_err() { return; }
                }
                // Every sender is gone: the reader has finished and its close frame is on its way.
                None => break (&mut close).await.ok(),
            },
            message = &mut close => break message.ok(),
        }
    };
    if let Some(message) = close_message {
        let _ = sink.send(message).await;
    }
    let _ = sink.close().await;
}
