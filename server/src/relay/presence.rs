//! Presence counts, read again after every join or leave and published in order.
//!
//! A count taken inside the transaction of a join or a leave can miss a concurrent one (each
//! sees the other uncommitted), and counts computed by separate tasks can be published out of
//! order: two people leaving at once could leave "2 people here" on screen for good. So a join
//! or leave only says "the count changed" (locally, and to the other instances), and one task
//! per instance reads the count after that and publishes it.
//!
//! Requests for one room that wait together are answered by one count, read after the last of
//! them: it sees every change committed before any of them. So the queue holds each room once
//! and never blocks the asker: a room whose members join and leave as fast as they can costs
//! one count per pass of the queue, and cannot hold up the other rooms' joins.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::Notify;

use super::hub::Hub;
use crate::domain::bounds::PRESENCE_ORIGINS;
use crate::domain::{ConnectionId, EventKind, RoomHash};
use crate::store::Store;

/// Where joins and leaves ask for a room's count to be read again.
#[derive(Clone)]
pub struct Presence {
    queue: Arc<Queue>,
}

/// The counting end, for [`run`].
pub struct PresenceQueue(Arc<Queue>);

#[derive(Default)]
struct Queue {
    waiting: Mutex<Waiting>,
    wake: Notify,
}

/// Rooms to count, each once, in the order first asked; and for each, the connections whose
/// own join or leave asked (each marks, on hearing its count, that counts are current again).
#[derive(Default)]
struct Waiting {
    order: VecDeque<RoomHash>,
    origins: HashMap<RoomHash, Vec<Option<ConnectionId>>>,
}

impl Presence {
    pub fn new() -> (Self, PresenceQueue) {
        let queue = Arc::new(Queue::default());
        (Self { queue: queue.clone() }, PresenceQueue(queue))
    }

    /// The participants of `room` changed (because of `origin`): publish its new count to the
    /// connections here. Never waits.
    pub fn changed(&self, room: RoomHash, origin: Option<ConnectionId>) {
        let mut waiting = self.queue.waiting.lock().unwrap_or_else(PoisonError::into_inner);
        let Waiting { order, origins } = &mut *waiting;
        let asked = origins.entry(room).or_insert_with(|| {
            order.push_back(room);
            Vec::new()
        });
        if !asked.contains(&origin) {
            if asked.len() == PRESENCE_ORIGINS {
                asked.remove(0);
            }
            asked.push(origin);
        }
        drop(waiting);
        self.queue.wake.notify_one();
    }
}

impl PresenceQueue {
    /// The next room to count and who asked, waiting for one if none is queued.
    async fn next(&self) -> (RoomHash, Vec<Option<ConnectionId>>) {
        loop {
            {
                let mut waiting = self.0.waiting.lock().unwrap_or_else(PoisonError::into_inner);
                if let Some(room) = waiting.order.pop_front() {
                    let origins = waiting.origins.remove(&room).unwrap_or_default();
                    return (room, origins);
                }
            }
            self.0.wake.notified().await;
        }
    }

    /// Rooms waiting to be counted (for tests).
    pub fn len(&self) -> usize {
        self.0.waiting.lock().unwrap_or_else(PoisonError::into_inner).order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Counts and publishes, one room at a time, for as long as the server runs.
pub async fn run(hub: Arc<Hub>, store: Store, queue: PresenceQueue) {
    loop {
        let (room, origins) = queue.next().await;
        if !hub.has_room(&room) {
            continue; // nobody here to tell
        }
        match store.count_connected(&room).await {
            // The same count once for each asker (connections already told it skip it).
            Ok(n) => origins.into_iter().for_each(|origin| hub.publish(&room, origin, EventKind::Presence(n))),
            Err(err) => tracing::error!("store: counting a room's participants: {err}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_room_asked_for_many_times_waits_once_and_others_keep_their_place() {
        let (presence, queue) = Presence::new();
        let (busy, quiet) = (RoomHash([1; 32]), RoomHash([2; 32]));
        for n in 0..10_000 {
            presence.changed(busy, Some(n % 3));
        }
        presence.changed(quiet, None);
        presence.changed(busy, None);
        assert_eq!(queue.len(), 2, "each room once, however often it asked");
        let (room, origins) = queue.next().await;
        assert_eq!(room, busy);
        assert_eq!(origins, vec![Some(0), Some(1), Some(2), None]);
        assert_eq!(queue.next().await, (quiet, vec![None]));
        assert!(queue.is_empty());
    }

    #[tokio::test]
    async fn the_askers_of_one_count_are_bounded() {
        let (presence, queue) = Presence::new();
        let room = RoomHash([1; 32]);
        for n in 0..(PRESENCE_ORIGINS as u64 + 10) {
            presence.changed(room, Some(n));
        }
        let (_, origins) = queue.next().await;
        assert_eq!(origins.len(), PRESENCE_ORIGINS);
        assert_eq!(origins.last(), Some(&Some(PRESENCE_ORIGINS as u64 + 9)), "the latest are kept");
    }
}
