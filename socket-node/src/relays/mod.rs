//! The node's background work, each a future the [`crate::Node`] owns in one `JoinSet` and stops
//! through [`Shutdown`]: the hub's fan-in, three bus topics tailed into the hub (acks, conversation
//! changes, session revocations), the presence renewal and sweep, and the session recheck.
//!
//! Topics are read from their end, outside any consumer group: what they carry matters only to the
//! connections open on this node right now (a client that reconnects elsewhere learns the state from
//! history or at its handshake).

mod acks;
mod conversation_changes;
mod presence_renewal;
mod presence_sweep;
mod revocations;
mod session_recheck;

pub use acks::acks;
pub use conversation_changes::conversation_changes;
pub use presence_renewal::presence_renewal;
pub use presence_sweep::presence_sweep;
pub use revocations::revocations;
pub use session_recheck::session_recheck;

use crate::hub::{FanIn, Hub};
use crate::shutdown::Shutdown;
use caas_shared::ports::bus::Bus;
use caas_shared::Result;
use serde::de::DeserializeOwned;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Most fan-out payloads handed to the hub at once.
const FAN_IN_BATCH: usize = 256;

/// Delivers what the fan-out driver received to this node's connections, in batches: one wake-up and one
/// hold of the routes for everything that arrived meanwhile; and gives up a gap in a conversation's seqs
/// when the messages after it have waited long enough ([`crate::in_order`]).
pub async fn fan_in(hub: Arc<Hub>, mut inbox: FanIn, mut shutdown: Shutdown) {
    let mut batch = Vec::with_capacity(FAN_IN_BATCH);
    let mut deadline: Option<Instant> = None;
    loop {
        let overdue = async {
            match deadline {
                Some(deadline) => tokio::time::sleep_until(deadline.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = shutdown.recv() => return,
            received = inbox.recv_many(&mut batch, FAN_IN_BATCH) => {
                if received == 0 {
                    return; // the driver is gone
                }
                deadline = hub.deliver_batch(batch.drain(..));
            }
            () = overdue => deadline = hub.release_overdue(Instant::now()),
        }
    }
}

/// Positions a reader at the current end of `topic` (so nothing published after this returns is
/// missed), and returns the relay that applies each record, decoded as `T`, until shutdown.
pub async fn tail<T, F>(
    bus: &dyn Bus,
    topic: &'static str,
    mut shutdown: Shutdown,
    mut apply: F,
) -> Result<impl Future<Output = ()> + Send + 'static>
where
    T: DeserializeOwned,
    F: FnMut(T) + Send + 'static,
{
    let mut records = bus.tail(topic).await?;
    Ok(async move {
        loop {
            let record = tokio::select! {
                _ = shutdown.recv() => return,
                record = records.next() => record,
            };
            match record {
                Ok(record) => match serde_json::from_slice::<T>(&record.payload) {
                    Ok(event) => apply(event),
                    Err(e) => tracing::warn!(error = %e, topic, "malformed record skipped"),
                },
                Err(e) => {
                    tracing::error!(error = %e, topic, "reading the topic failed");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    })
}
