//! Presence counts, read again after every join or leave and published in order.
//!
//! A count taken inside the transaction of a join or a leave can miss a concurrent one (each
//! sees the other uncommitted), and counts computed by separate tasks can be published out of
//! order: two people leaving at once could leave "2 people here" on screen for good. So a join
//! or leave only says "the count changed" (locally, and to the other instances), and one task
//! per instance reads the count after that and publishes it. The task takes requests in order,
//! so the last request is answered last, by a count that sees every change committed before it.

use std::sync::Arc;

use tokio::sync::mpsc;

use super::hub::Hub;
use crate::domain::bounds::PRESENCE_QUEUE;
use crate::domain::{ConnectionId, EventKind, RoomHash};
use crate::store::Store;

/// Where joins and leaves ask for a room's count to be read again.
#[derive(Clone)]
pub struct Presence {
    tx: mpsc::Sender<(RoomHash, Option<ConnectionId>)>,
}

/// The receiving end, for [`run`].
pub struct PresenceQueue(mpsc::Receiver<(RoomHash, Option<ConnectionId>)>);

impl Presence {
    pub fn new() -> (Self, PresenceQueue) {
        let (tx, rx) = mpsc::channel(PRESENCE_QUEUE);
        (Self { tx }, PresenceQueue(rx))
    }

    /// The participants of `room` changed (because of `origin`, which is not told): publish
    /// its new count to the connections here.
    pub async fn changed(&self, room: RoomHash, origin: Option<ConnectionId>) {
        let _ = self.tx.send((room, origin)).await;
    }
}

/// Counts and publishes, one request at a time, for as long as the server runs.
pub async fn run(hub: Arc<Hub>, store: Store, mut queue: PresenceQueue) {
    while let Some((room, origin)) = queue.0.recv().await {
        if !hub.has_room(&room) {
            continue; // nobody here to tell
        }
        match store.count_connected(&room).await {
            Ok(n) => hub.publish(&room, origin, EventKind::Presence(n)),
            Err(err) => tracing::error!("store: counting a room's participants: {err}"),
        }
    }
}
