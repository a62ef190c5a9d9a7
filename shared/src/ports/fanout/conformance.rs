//! One test body for every driver of the fan-out port (in-process in unit tests, Redis in `tests/`).
//! The caller builds two nodes on one backend and hands over each node's inbox receiver.

use super::FanOut;
use std::time::Duration;
use tokio::sync::mpsc::UnboundedReceiver;

/// The receiving end of a node's [`Inbox`](super::Inbox): `(channel, payload)` pairs.
pub type Received = UnboundedReceiver<(String, String)>;

/// Long enough for a pub/sub round trip on a loaded machine; absence is checked after a real delivery.
const WAIT: Duration = Duration::from_secs(10);

/// Runs the fan-out conformance checks on two nodes of one backend, each with the receiver of its inbox: a
/// publish reaches only the nodes subscribed to its channel (the publisher included), and unsubscribing stops
/// delivery. Panics at the first behaviour that differs.
pub async fn run(node1: &dyn FanOut, inbox1: &mut Received, node2: &dyn FanOut, inbox2: &mut Received) {
    let channel = format!("conformance-{}", uuid::Uuid::new_v4().simple());
    let other = format!("{channel}-other");
    node1.subscribe(&channel).await.unwrap();
    node2.subscribe(&other).await.unwrap();

    node2.publish(&channel, "hello").await.unwrap();
    node2.publish(&other, "to node 2").await.unwrap();
    assert_eq!(receive(inbox1).await, (channel.clone(), "hello".to_owned()));
    assert_eq!(receive(inbox2).await, (other.clone(), "to node 2".to_owned()));
    assert!(inbox1.try_recv().is_err(), "node 1 did not subscribe to {other}");

    node1.unsubscribe(std::slice::from_ref(&channel)).await.unwrap();
    node2.publish(&channel, "late").await.unwrap();
    // A delivery on the still-subscribed channel proves the earlier publish had time to arrive.
    node1.publish(&other, "marker").await.unwrap();
    assert_eq!(receive(inbox2).await, (other.clone(), "marker".to_owned()));
    assert!(inbox1.try_recv().is_err(), "unsubscribed node 1 still got a message");
}

async fn receive(inbox: &mut Received) -> (String, String) {
    tokio::time::timeout(WAIT, inbox.recv())
        .await
        .expect("a delivery within the wait")
        .expect("inbox open")
}
