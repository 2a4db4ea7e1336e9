//! The hub: one `broadcast` channel per room with someone in it, keyed by the room's hash.
//!
//! The map's lock is a std `Mutex` held only for map updates, never across an `.await`. A room
//! is removed when its last participant leaves, so the hub holds nothing for empty rooms.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use app::crypto::MessageId;
use tokio::sync::broadcast;

use super::ROOM_CHANNEL_CAPACITY;
use crate::at_rest::RoomHash;

/// Identifies one connection inside this process, so it can skip its own events.
pub type ConnectionId = u64;

/// What happened in a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// A message was stored and waits to be fetched.
    Message(MessageId),
    /// A message was viewed and deleted.
    Deleted(MessageId),
    /// A message expired unread and was deleted.
    Expired(MessageId),
    /// The number of participants is now this.
    Presence(u32),
    /// Someone started or stopped typing.
    Typing(bool),
}

/// An event and the connection that caused it (`None` for the server itself).
#[derive(Debug, Clone, Copy)]
pub struct RoomEvent {
    pub origin: Option<ConnectionId>,
    pub kind: EventKind,
}

struct Room {
    tx: broadcast::Sender<RoomEvent>,
    participants: u32,
}

/// All rooms with someone in them.
#[derive(Default)]
pub struct Hub {
    rooms: Mutex<HashMap<RoomHash, Room>>,
    next_connection: AtomicU64,
}

impl Hub {
    /// A process-unique id for a new connection.
    pub fn connection_id(&self) -> ConnectionId {
        self.next_connection.fetch_add(1, Ordering::Relaxed)
    }

    /// Enters a room unless it already holds `max` participants: subscribes first (so nothing
    /// published afterwards is missed), then counts the participant and announces the new
    /// count. Returns the receiver and the count, or `None` if the room is full.
    pub fn join(&self, room: RoomHash, who: ConnectionId, max: u32) -> Option<(broadcast::Receiver<RoomEvent>, u32)> {
        let mut rooms = self.rooms.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = rooms
            .entry(room)
            .or_insert_with(|| Room { tx: broadcast::channel(ROOM_CHANNEL_CAPACITY).0, participants: 0 });
        if entry.participants >= max {
            return None;
        }
        let rx = entry.tx.subscribe();
        entry.participants += 1;
        let count = entry.participants;
        let _ = entry.tx.send(RoomEvent { origin: Some(who), kind: EventKind::Presence(count) });
        Some((rx, count))
    }

    /// Leaves a room; removes it when empty, otherwise announces the new count.
    pub fn leave(&self, room: &RoomHash, who: ConnectionId) {
        let mut rooms = self.rooms.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(entry) = rooms.get_mut(room) else { return };
        entry.participants = entry.participants.saturating_sub(1);
        if entry.participants == 0 {
            rooms.remove(room);
        } else {
            let count = entry.participants;
            let _ = entry.tx.send(RoomEvent { origin: Some(who), kind: EventKind::Presence(count) });
        }
    }

    /// Publishes an event to everyone in the room; a room nobody is in drops it.
    pub fn publish(&self, room: &RoomHash, origin: Option<ConnectionId>, kind: EventKind) {
        let rooms = self.rooms.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(entry) = rooms.get(room) {
            let _ = entry.tx.send(RoomEvent { origin, kind });
        }
    }

    /// Rooms with someone in them (for tests and lifecycle logs: a count, never an id).
    pub fn room_count(&self) -> usize {
        self.rooms.lock().unwrap_or_else(PoisonError::into_inner).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_room_lives_exactly_while_someone_is_in_it() {
        let hub = Hub::default();
        let room = RoomHash([1; 32]);
        let (_rx_a, n) = hub.join(room, 1, 2).unwrap();
        assert_eq!(n, 1);
        let (mut rx_b, n) = hub.join(room, 2, 2).unwrap();
        assert_eq!(n, 2);
        assert!(hub.join(room, 3, 2).is_none(), "a full room refuses");
        assert_eq!(rx_b.try_recv().unwrap().kind, EventKind::Presence(2));
        hub.leave(&room, 1);
        assert_eq!(rx_b.try_recv().unwrap().kind, EventKind::Presence(1));
        assert_eq!(hub.room_count(), 1);
        hub.leave(&room, 2);
        assert_eq!(hub.room_count(), 0);
    }

    #[test]
    fn events_reach_only_their_room() {
        let hub = Hub::default();
        let (mut rx_a, _) = hub.join(RoomHash([1; 32]), 1, 10).unwrap();
        let (mut rx_b, _) = hub.join(RoomHash([2; 32]), 2, 10).unwrap();
        hub.publish(&RoomHash([1; 32]), Some(1), EventKind::Typing(true));
        assert_eq!(rx_a.try_recv().unwrap().kind, EventKind::Presence(1));
        assert_eq!(rx_a.try_recv().unwrap().kind, EventKind::Typing(true));
        assert_eq!(rx_b.try_recv().unwrap().kind, EventKind::Presence(1));
        assert!(rx_b.try_recv().is_err());
    }
}
