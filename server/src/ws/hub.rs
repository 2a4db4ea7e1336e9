//! The hub: for each room with someone in it, a `broadcast` channel and its participants.
//!
//! A participant is one page session, known by the hash of its session token. It stays a
//! participant while disconnected, for the grace period, so a reconnect is the same participant.
//! The map's lock is a std `Mutex` held only for map updates, never across an `.await`. A room is
//! removed when its last participant is gone, so the hub holds nothing for empty rooms.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use app::crypto::primitives::sha256;
use app::crypto::MessageId;
use tokio::sync::broadcast;

use super::ROOM_CHANNEL_CAPACITY;
use crate::at_rest::RoomHash;

/// Identifies one connection inside this process, so it can skip its own events.
pub type ConnectionId = u64;

/// Domain label of the participant hash.
pub const SESSION_LABEL: &[u8] = b"ephemeral-chat/v1/session";

/// A participant: `SHA-256("ephemeral-chat/v1/session" || session token)`. The token stays in
/// the page's memory; the server keeps only this hash, which names no person.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Participant(pub [u8; 32]);

impl Participant {
    pub fn from_token(token: &[u8; 16]) -> Self {
        Self(sha256(&[SESSION_LABEL, token]))
    }

    /// From a stored column; a malformed value (the schema forbids it) maps to no one real.
    pub fn from_row(bytes: &[u8]) -> Self {
        Self(bytes.try_into().unwrap_or([0; 32]))
    }
}

impl fmt::Debug for Participant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Participant(<redacted>)")
    }
}

/// What happened in a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// A message was stored and waits to be fetched.
    Message(MessageId),
    /// A message was viewed by everyone who had to and deleted.
    Deleted(MessageId),
    /// A message expired unread and was deleted.
    Expired(MessageId),
    /// `viewed` of `of` recipients have viewed a message.
    Receipt { id: MessageId, viewed: u32, of: u32 },
    /// The number of connected participants is now this.
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

#[derive(Default)]
struct ParticipantState {
    /// The connection holding it, or `None` while in its grace period.
    connection: Option<ConnectionId>,
    /// Bumped at each disconnect, so a stale grace timer does nothing.
    generation: u64,
    /// Messages it fetched: only these may it confirm as viewed.
    fetched: HashSet<MessageId>,
}

struct Room {
    tx: broadcast::Sender<RoomEvent>,
    participants: HashMap<Participant, ParticipantState>,
}

impl Room {
    fn connected(&self) -> u32 {
        let n = self.participants.values().filter(|p| p.connection.is_some()).count();
        u32::try_from(n).unwrap_or(u32::MAX)
    }
}

/// Why a join was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoomFull;

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

    fn rooms(&self) -> std::sync::MutexGuard<'_, HashMap<RoomHash, Room>> {
        self.rooms.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Enters (or, within the grace period, re-enters) a room. A new participant is refused when
    /// the room holds `max` (those in their grace period count). Subscribes before announcing,
    /// so nothing published afterwards is missed. Returns the receiver and the connected count.
    pub fn join(
        &self,
        room: RoomHash,
        who: Participant,
        connection: ConnectionId,
        max: u32,
    ) -> Result<(broadcast::Receiver<RoomEvent>, u32), RoomFull> {
        let mut rooms = self.rooms();
        let entry = rooms
            .entry(room)
            .or_insert_with(|| Room { tx: broadcast::channel(ROOM_CHANNEL_CAPACITY).0, participants: HashMap::new() });
        if !entry.participants.contains_key(&who) && entry.participants.len() >= max as usize {
            return Err(RoomFull);
        }
        let rx = entry.tx.subscribe();
        entry.participants.entry(who).or_default().connection = Some(connection);
        let count = entry.connected();
        let _ = entry.tx.send(RoomEvent { origin: Some(connection), kind: EventKind::Presence(count) });
        Ok((rx, count))
    }

    /// A connection ended. If it still held the participant, the participant enters its grace
    /// period; returns the generation to pass to [`Hub::expire`] when the period is over.
    pub fn disconnect(&self, room: &RoomHash, who: &Participant, connection: ConnectionId) -> Option<u64> {
        let mut rooms = self.rooms();
        let entry = rooms.get_mut(room)?;
        let state = entry.participants.get_mut(who)?;
        if state.connection != Some(connection) {
            return None; // a newer connection took this participant over
        }
        state.connection = None;
        state.generation += 1;
        let generation = state.generation;
        let count = entry.connected();
        let _ = entry.tx.send(RoomEvent { origin: Some(connection), kind: EventKind::Presence(count) });
        Some(generation)
    }

    /// Ends a participant whose grace period is over, unless it reconnected meanwhile. Removes
    /// the room when it was the last. Returns whether the participant is gone.
    pub fn expire(&self, room: &RoomHash, who: &Participant, generation: u64) -> bool {
        let mut rooms = self.rooms();
        let Some(entry) = rooms.get_mut(room) else { return false };
        match entry.participants.get(who) {
            Some(state) if state.connection.is_none() && state.generation == generation => {
                entry.participants.remove(who);
            }
            _ => return false,
        }
        if entry.participants.is_empty() {
            rooms.remove(room);
        }
        true
    }

    /// Whether the participant is in the room (connected or in its grace period).
    pub fn is_participant(&self, room: &RoomHash, who: &Participant) -> bool {
        self.rooms().get(room).is_some_and(|r| r.participants.contains_key(who))
    }

    /// The room's participants other than `who`: the recipients of what `who` sends now.
    pub fn others(&self, room: &RoomHash, who: &Participant) -> Vec<Participant> {
        self.rooms()
            .get(room)
            .map(|r| r.participants.keys().filter(|p| *p != who).copied().collect())
            .unwrap_or_default()
    }

    /// Remembers that `who` fetched `id`.
    pub fn mark_fetched(&self, room: &RoomHash, who: &Participant, id: MessageId) {
        if let Some(state) = self.rooms().get_mut(room).and_then(|r| r.participants.get_mut(who)) {
            state.fetched.insert(id);
        }
    }

    /// Whether `who` fetched `id`.
    pub fn has_fetched(&self, room: &RoomHash, who: &Participant, id: &MessageId) -> bool {
        self.rooms().get(room).and_then(|r| r.participants.get(who)).is_some_and(|s| s.fetched.contains(id))
    }

    /// Publishes an event to everyone connected to the room; a room nobody is in drops it.
    pub fn publish(&self, room: &RoomHash, origin: Option<ConnectionId>, kind: EventKind) {
        if let Some(entry) = self.rooms().get(room) {
            let _ = entry.tx.send(RoomEvent { origin, kind });
        }
    }

    /// Rooms with someone in them (for tests and lifecycle logs: a count, never an id).
    pub fn room_count(&self) -> usize {
        self.rooms().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who(n: u8) -> Participant {
        Participant([n; 32])
    }

    #[test]
    fn a_participant_outlives_its_connection_for_the_grace_period() {
        let hub = Hub::default();
        let room = RoomHash([1; 32]);
        let (_rx, n) = hub.join(room, who(1), 10, 2).unwrap();
        assert_eq!(n, 1);
        let (mut rx_b, n) = hub.join(room, who(2), 11, 2).unwrap();
        assert_eq!(n, 2);
        assert_eq!(hub.join(room, who(3), 12, 2).unwrap_err(), RoomFull);
        assert_eq!(rx_b.try_recv().unwrap().kind, EventKind::Presence(2));
        let generation = hub.disconnect(&room, &who(1), 10).unwrap();
        assert_eq!(rx_b.try_recv().unwrap().kind, EventKind::Presence(1));
        // Still a participant (the room is still full for newcomers), and may come back.
        assert!(hub.is_participant(&room, &who(1)));
        assert_eq!(hub.join(room, who(3), 12, 2).unwrap_err(), RoomFull);
        hub.join(room, who(1), 13, 2).unwrap();
        assert!(!hub.expire(&room, &who(1), generation), "a reconnect cancels the expiry");
        let generation = hub.disconnect(&room, &who(1), 13).unwrap();
        assert!(hub.expire(&room, &who(1), generation));
        assert!(!hub.is_participant(&room, &who(1)));
        let generation = hub.disconnect(&room, &who(2), 11).unwrap();
        assert!(hub.expire(&room, &who(2), generation));
        assert_eq!(hub.room_count(), 0);
    }

    #[test]
    fn a_stale_connection_does_not_disconnect_its_successor() {
        let hub = Hub::default();
        let room = RoomHash([1; 32]);
        hub.join(room, who(1), 10, 5).unwrap();
        hub.join(room, who(1), 11, 5).unwrap();
        assert_eq!(hub.disconnect(&room, &who(1), 10), None);
        assert!(hub.disconnect(&room, &who(1), 11).is_some());
    }

    #[test]
    fn events_reach_only_their_room() {
        let hub = Hub::default();
        let (mut rx_a, _) = hub.join(RoomHash([1; 32]), who(1), 1, 10).unwrap();
        let (mut rx_b, _) = hub.join(RoomHash([2; 32]), who(2), 2, 10).unwrap();
        hub.publish(&RoomHash([1; 32]), Some(1), EventKind::Typing(true));
        assert_eq!(rx_a.try_recv().unwrap().kind, EventKind::Presence(1));
        assert_eq!(rx_a.try_recv().unwrap().kind, EventKind::Typing(true));
        assert_eq!(rx_b.try_recv().unwrap().kind, EventKind::Presence(1));
        assert!(rx_b.try_recv().is_err());
    }
}
