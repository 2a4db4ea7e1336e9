//! The hub: for each room with a connection on this instance, a `broadcast` channel.
//!
//! A participant is one page session, known by the hash of its session token. It stays a
//! participant while disconnected, for the grace period, so a reconnect (to any instance) is the
//! same participant; who is in a room lives in the store, shared by
//! every instance. The maps' locks are std `Mutex`es held only for map updates, never across an
//! `.await`. A room is removed when its last local connection is gone, so the hub holds nothing
//! for rooms nobody here is in.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use tokio::sync::broadcast;

use super::held::Held;
use super::quota::ClientCharges;
use crate::bus::Outbox;
use crate::domain::bounds::{
    CARRIED_FRESH, CARRIED_HELD_FOR, CLOCK_SKEW_ALLOWED, GONE_REMEMBERED, GONE_REMEMBERED_MAX, HELD_BYTES_BUDGET,
    ROOM_CHANNEL_CAPACITY,
};
use crate::domain::lifecycle::expiry;
use crate::domain::{now_ms, ConnectionId, EventKind, MessageId, Participant, RoomHash, StoredMessage, Waiting};
use crate::telemetry::metrics;

/// An event and the connection that caused it (`None` for the server itself).
#[derive(Debug, Clone, Copy)]
pub struct RoomEvent {
    pub origin: Option<ConnectionId>,
    pub kind: EventKind,
}

/// A room with connections on this instance.
struct LocalRoom {
    tx: broadcast::Sender<RoomEvent>,
    /// This instance's connections subscribed to it.
    connections: usize,
    /// Messages stored through this instance, held for its fetches (`held.rs`).
    held: Held,
    /// The last messages of the room heard deleted or expired, and when, most recent last: a
    /// notice of one of them that comes later (NATS orders one instance's events, not several
    /// instances') is stale, and is not passed on, nor is the message it carries held.
    gone: VecDeque<(MessageId, Instant)>,
}

/// What one participant fetched here: the messages it may confirm as viewed, and those it
/// fetched that are gone since (burned or expired), remembered for [`GONE_REMEMBERED`] so a late
/// or repeated `viewed` of one gets the one answer `deleted`. Both shrink as messages go, so a
/// participant that fetches all day holds no more than what waits and a few minutes' worth.
#[derive(Default)]
struct Fetched {
    live: HashSet<MessageId>,
    gone: VecDeque<(MessageId, Instant)>,
    last: Option<Instant>,
}

impl Fetched {
    fn went(&mut self, id: MessageId, now: Instant) {
        if self.live.remove(&id) {
            while self.gone.len() >= GONE_REMEMBERED_MAX
                || self.gone.front().is_some_and(|(_, at)| now.duration_since(*at) > GONE_REMEMBERED)
            {
                self.gone.pop_front();
            }
            self.gone.push_back((id, now));
        }
    }
}

/// Whether a participant fetched a message here, as `viewed` needs to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchedState {
    /// Fetched, and not known to be gone: it may be confirmed as viewed.
    Waiting,
    /// Fetched, and gone since (burned or expired): `viewed` is answered `deleted`.
    Gone,
    /// Not fetched here (or so long ago it is forgotten).
    NotFetched,
}

/// This instance's side of the rooms: a broadcast channel per room with local connections, and
/// what each participant fetched here. Who is in a room, over all instances, is in the store.
#[derive(Default)]
pub struct Hub {
    rooms: Mutex<HashMap<RoomHash, LocalRoom>>,
    /// Messages each participant fetched on this instance (only these may it confirm as
    /// viewed), and when it last fetched one, by room.
    fetched: Mutex<HashMap<RoomHash, HashMap<Participant, Fetched>>>,
    next_connection: AtomicU64,
    /// Bytes of the bodies the rooms hold; changed only under the `rooms` lock.
    held_bytes: AtomicUsize,
    /// Set while this instance cannot hear other instances' deletions (its link to them is
    /// down): nothing is held then. Changed only under the `rooms` lock.
    not_holding: AtomicBool,
    /// What each client block's messages stored here weigh, freed as they are deleted.
    pub charges: ClientCharges,
    /// Where this instance's own events go to the other instances after their commit, and
    /// which rooms it follows there (NATS; nothing with PostgreSQL, whose writes notify).
    outbox: Outbox,
    /// Messages held here as other instances' notices carried them (for tests).
    carried_held: AtomicU64,
}

impl Hub {
    /// A hub whose client blocks may each leave `max_per_client` bytes waiting, telling the
    /// other instances through `outbox`.
    pub fn new(max_per_client: u64, outbox: Outbox) -> Self {
        Self { charges: ClientCharges::new(max_per_client), outbox, ..Self::default() }
    }

    /// A process-unique id for a new connection.
    pub fn connection_id(&self) -> ConnectionId {
        self.next_connection.fetch_add(1, Ordering::Relaxed)
    }

    fn rooms(&self) -> std::sync::MutexGuard<'_, HashMap<RoomHash, LocalRoom>> {
        self.rooms.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn fetched(&self) -> std::sync::MutexGuard<'_, HashMap<RoomHash, HashMap<Participant, Fetched>>> {
        self.fetched.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A local connection starts listening to `room`. Subscribe before the join is announced,
    /// so nothing published afterwards is missed; a room new here is followed on the bus (see
    /// [`Hub::settled`]).
    pub fn subscribe(&self, room: RoomHash) -> broadcast::Receiver<RoomEvent> {
        let mut rooms = self.rooms();
        let entry = rooms.entry(room).or_insert_with(|| {
            self.outbox.follow(room);
            LocalRoom {
                tx: broadcast::channel(ROOM_CHANNEL_CAPACITY).0,
                connections: 0,
                held: Held::default(),
                gone: VecDeque::new(),
            }
        });
        entry.connections += 1;
        entry.tx.subscribe()
    }

    /// A local connection stopped listening; the room goes when its last one has.
    pub fn unsubscribe(&self, room: &RoomHash) {
        let mut rooms = self.rooms();
        if let Some(entry) = rooms.get_mut(room) {
            entry.connections = entry.connections.saturating_sub(1);
            if entry.connections == 0 {
                if let Some(mut gone) = rooms.remove(room) {
                    self.freed(gone.held.clear());
                    self.outbox.unfollow(*room);
                }
            }
        }
    }

    /// Remembers that `who` fetched `id`.
    pub fn mark_fetched(&self, room: &RoomHash, who: &Participant, id: MessageId) {
        let mut fetched = self.fetched();
        let entry = fetched.entry(*room).or_default().entry(*who).or_default();
        entry.live.insert(id);
        entry.last = Some(Instant::now());
    }

    /// Whether `who` fetched `id` here, and whether it is gone since.
    pub fn fetched_state(&self, room: &RoomHash, who: &Participant, id: &MessageId) -> FetchedState {
        match self.fetched().get(room).and_then(|room| room.get(who)) {
            Some(f) if f.live.contains(id) => FetchedState::Waiting,
            Some(f) if f.gone.iter().any(|(gone, _)| gone == id) => FetchedState::Gone,
            _ => FetchedState::NotFetched,
        }
    }

    /// `id` was burned or expired: whoever fetched it here may confirm it no more.
    pub fn fetched_gone(&self, room: &RoomHash, id: MessageId) {
        let now = Instant::now();
        if let Some(room) = self.fetched().get_mut(room) {
            room.values_mut().for_each(|f| f.went(id, now));
        }
    }

    /// `who` left the room for good: forget what it fetched, and stop holding what it had to
    /// view (the store no longer names it a recipient).
    pub fn forget(&self, room: &RoomHash, who: &Participant) {
        let mut fetched = self.fetched();
        if let Some(participants) = fetched.get_mut(room) {
            participants.remove(who);
            if participants.is_empty() {
                fetched.remove(room);
            }
        }
        drop(fetched);
        if let Some(entry) = self.rooms().get_mut(room) {
            self.freed(entry.held.release_recipient(who));
        }
    }

    /// Reserves a place for a message about to be stored in `room`, before its insert commits
    /// (`held.rs`); `false` if nobody here is in the room or the id has a place already.
    pub fn reserve(&self, room: &RoomHash, id: MessageId) -> bool {
        let mut rooms = self.rooms();
        !self.not_holding.load(Ordering::Relaxed) && rooms.get_mut(room).is_some_and(|entry| entry.held.reserve(id))
    }

    /// Drops every held message and holds none until [`Hub::start_holding`]: this instance no
    /// longer hears other instances' deletions.
    pub fn stop_holding(&self) {
        let mut rooms = self.rooms();
        self.not_holding.store(true, Ordering::Relaxed);
        for entry in rooms.values_mut() {
            self.freed(entry.held.clear());
        }
    }

    /// Holds messages again: this instance hears other instances' deletions (again).
    pub fn start_holding(&self) {
        let _rooms = self.rooms();
        self.not_holding.store(false, Ordering::Relaxed);
    }

    /// Whether messages are held (for tests).
    pub fn is_holding(&self) -> bool {
        !self.not_holding.load(Ordering::Relaxed)
    }

    /// Holds a stored message in the place [`Hub::reserve`] made, unless its deletion was heard
    /// meanwhile or the budget is spent.
    pub fn fill(&self, room: &RoomHash, id: MessageId, message: StoredMessage) {
        if let Some(entry) = self.rooms().get_mut(room) {
            self.fill_within_budget(entry, id, message);
        }
    }

    /// Fills `id`'s reserved place in `entry` within what is left of the held budget; the bytes
    /// it now holds (0: not held). Called under the `rooms` lock.
    fn fill_within_budget(&self, entry: &mut LocalRoom, id: MessageId, message: StoredMessage) -> usize {
        let budget = HELD_BYTES_BUDGET.saturating_sub(self.held_bytes.load(Ordering::Relaxed));
        let held = entry.held.fill(id, message, budget);
        self.held_bytes.fetch_add(held, Ordering::Relaxed);
        held
    }

    /// Stops holding a message (or gives up its reserved place).
    pub fn release(&self, room: &RoomHash, id: &MessageId) {
        if let Some(entry) = self.rooms().get_mut(room) {
            self.freed(entry.held.release(id));
        }
    }

    /// A held message as `who` may see it, unexpired at `now` (milliseconds since the Unix
    /// epoch); `None` if it is not held here (the store may still have it).
    pub fn held(&self, room: &RoomHash, id: &MessageId, who: &Participant, now: i64) -> Option<Waiting> {
        let mut rooms = self.rooms();
        let (waiting, freed) = rooms.get_mut(room)?.held.get(id, who, now);
        self.freed(freed);
        waiting
    }

    /// Bytes held over all rooms (for tests).
    pub fn held_bytes(&self) -> usize {
        self.held_bytes.load(Ordering::Relaxed)
    }

    fn freed(&self, bytes: usize) {
        self.held_bytes.fetch_sub(bytes, Ordering::Relaxed);
    }

    /// Forgets what was fetched more than `age` ago: every message it names has expired by then.
    /// (A participant that fetched here and left on another instance is never `forget`-ed here.)
    pub fn forget_fetched_before(&self, age: std::time::Duration) {
        self.fetched().retain(|_, participants| {
            participants.retain(|_, f| f.last.is_some_and(|last| last.elapsed() <= age));
            !participants.is_empty()
        });
    }

    /// Waits (a bounded time) until the bus hears every room subscribed so far: a join waits
    /// between [`Hub::subscribe`] and its write, so whatever another instance commits after
    /// that write reaches it (NATS; at once with PostgreSQL, which hears every room).
    pub async fn settled(&self) {
        self.outbox.settled().await;
    }

    /// An event this instance caused, once its write has committed: published here, and to the
    /// other instances through the bus.
    pub fn announce(&self, room: &RoomHash, origin: Option<ConnectionId>, kind: EventKind) {
        self.publish(room, origin, kind);
        self.outbox.publish(*room, kind);
    }

    /// A message this instance stored (`kind`, its notice), once its insert has committed: held
    /// in the place [`Hub::reserve`] made if `reserved`, announced here, and published to the
    /// other instances with the message (stored at `stored_at`, read before the insert), so
    /// that their fetches of it need not read the store.
    pub fn announce_stored(
        &self,
        room: &RoomHash,
        origin: Option<ConnectionId>,
        kind: EventKind,
        message: StoredMessage,
        stored_at: i64,
        reserved: bool,
    ) {
        self.outbox.publish_stored(*room, kind, &message, stored_at);
        if let (true, EventKind::Message { id, .. }) = (reserved, kind) {
            self.fill(room, id, message);
        }
        self.publish(room, origin, kind);
    }

    /// An event for the other instances only: this one has dealt with it (presence changes,
    /// which each instance counts itself).
    pub fn tell_others(&self, room: &RoomHash, kind: EventKind) {
        self.outbox.publish(*room, kind);
    }

    /// Waits (a bounded time) until the events announced so far have reached the other
    /// instances: a stopping server's last ones (its participants' disconnections).
    pub async fn drained(&self) {
        self.outbox.drained().await;
    }

    /// An event another instance published, passed on to the room here. A message notice is
    /// dropped if the room heard that message is gone already (a late notice, from an instance
    /// whose link to the bus was down while the message was read and burned). `carried`: the
    /// message as its instance stored it, which the bus passes on only when this instance has
    /// heard the room's every event since (`bus/nats.rs`, "Carried messages"); it is held for
    /// its recipients' fetches here, for at most [`CARRIED_HELD_FOR`], unless the room may have
    /// forgotten a deletion heard since (more than it remembers went in that time).
    pub fn hear(&self, room: &RoomHash, kind: EventKind, carried: Option<StoredMessage>) {
        if let EventKind::Message { id, .. } = kind {
            let mut rooms = self.rooms();
            let Some(entry) = rooms.get_mut(room) else {
                return; // nobody here: dropped anyway
            };
            if entry.gone.iter().any(|(gone, _)| *gone == id) {
                return;
            }
            let forgot = entry.gone.len() == GONE_REMEMBERED_MAX
                && entry.gone.front().is_some_and(|(_, at)| at.elapsed() < CARRIED_FRESH + CLOCK_SKEW_ALLOWED);
            // Only for its recipients: none of them can fetch it after its burn but one that
            // viewed it already. An open one, which anyone may fetch, is read from the store.
            let holding = !forgot && !self.not_holding.load(Ordering::Relaxed);
            if let Some(mut message) = carried.filter(|m| holding && !m.recipients.is_empty()) {
                message.expires_at = message.expires_at.min(expiry(now_ms(), CARRIED_HELD_FOR));
                if entry.held.reserve(id) && self.fill_within_budget(entry, id, message) > 0 {
                    self.carried_held.fetch_add(1, Ordering::Relaxed);
                    metrics::counter!(metrics::BUS_CARRIED_HELD).increment(1);
                }
            }
        }
        self.publish(room, None, kind);
    }

    /// Messages held here as other instances' notices carried them, so far (for tests).
    pub fn carried_held(&self) -> u64 {
        self.carried_held.load(Ordering::Relaxed)
    }

    /// Publishes an event to this instance's connections to the room; a room nobody here is in
    /// drops it. A message's deletion or expiry first drops it from what the room holds.
    pub fn publish(&self, room: &RoomHash, origin: Option<ConnectionId>, kind: EventKind) {
        if let EventKind::Deleted(id) | EventKind::Expired(id) = kind {
            // Heard even when nobody here is in the room any more (its sender left).
            self.charges.freed(room, &id);
            self.fetched_gone(room, id);
        }
        if let Some(entry) = self.rooms().get_mut(room) {
            self.unhold(entry, kind);
            let _ = entry.tx.send(RoomEvent { origin, kind });
        }
    }

    /// Publishes an event to every room with a connection here.
    pub fn publish_everywhere(&self, kind: EventKind) {
        for entry in self.rooms().values_mut() {
            self.unhold(entry, kind);
            let _ = entry.tx.send(RoomEvent { origin: None, kind });
        }
    }

    /// What `kind` says a room may no longer hold: a deleted or expired message, or everything
    /// when the room resyncs (events from other instances may have been missed).
    fn unhold(&self, entry: &mut LocalRoom, kind: EventKind) {
        match kind {
            EventKind::Deleted(id) | EventKind::Expired(id) => {
                self.freed(entry.held.release(&id));
                if entry.gone.len() == GONE_REMEMBERED_MAX {
                    entry.gone.pop_front();
                }
                entry.gone.push_back((id, Instant::now()));
            }
            EventKind::Resync => self.freed(entry.held.clear()),
            _ => {}
        }
    }

    /// Whether a connection here is in `room`.
    pub fn has_room(&self, room: &RoomHash) -> bool {
        self.rooms().contains_key(room)
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
    fn a_room_lives_as_long_as_its_local_connections() {
        let hub = Hub::default();
        let room = RoomHash([1; 32]);
        let _a = hub.subscribe(room);
        let mut b = hub.subscribe(room);
        hub.unsubscribe(&room);
        assert_eq!(hub.room_count(), 1);
        hub.publish(&room, Some(1), EventKind::Typing(true));
        assert_eq!(b.try_recv().unwrap().kind, EventKind::Typing(true));
        hub.unsubscribe(&room);
        assert_eq!(hub.room_count(), 0);
        hub.unsubscribe(&room); // more unsubscribes than subscribes change nothing
        assert_eq!(hub.room_count(), 0);
    }

    #[test]
    fn events_reach_only_their_room_and_resync_reaches_all() {
        let hub = Hub::default();
        let mut rx_a = hub.subscribe(RoomHash([1; 32]));
        let mut rx_b = hub.subscribe(RoomHash([2; 32]));
        hub.publish(&RoomHash([1; 32]), Some(1), EventKind::Typing(true));
        assert_eq!(rx_a.try_recv().unwrap().kind, EventKind::Typing(true));
        assert!(rx_b.try_recv().is_err());
        hub.publish_everywhere(EventKind::Resync);
        assert_eq!(rx_a.try_recv().unwrap().kind, EventKind::Resync);
        assert_eq!(rx_b.try_recv().unwrap().kind, EventKind::Resync);
    }

    fn hold(hub: &Hub, room: &RoomHash, n: u8, recipients: Vec<Participant>) -> MessageId {
        let id = MessageId([n; 16]);
        assert!(hub.reserve(room, id));
        hub.fill(room, id, StoredMessage { body: vec![n; 10], sender: who(1), recipients, expires_at: i64::MAX });
        id
    }

    #[test]
    fn a_held_message_goes_with_its_deletion_its_expiry_a_resync_or_its_room() {
        let hub = Hub::default();
        let room = RoomHash([1; 32]);
        assert!(!hub.reserve(&room, MessageId([9; 16])), "nobody here: nothing is held");
        let _rx = hub.subscribe(room);
        let (a, b, c) =
            (hold(&hub, &room, 2, vec![who(2)]), hold(&hub, &room, 3, vec![]), hold(&hub, &room, 4, vec![]));
        let weight = |recipients: usize| {
            StoredMessage { body: vec![0; 10], sender: who(1), recipients: vec![who(2); recipients], expires_at: 0 }
                .weight()
        };
        assert_eq!(hub.held_bytes(), weight(1) + 2 * weight(0));
        assert_eq!(hub.held(&room, &a, &who(2), 0).map(|w| w.body), Some(vec![2; 10]));
        hub.publish(&room, None, EventKind::Deleted(a));
        hub.publish(&room, None, EventKind::Expired(b));
        hub.publish(&room, None, EventKind::Receipt { id: c, viewed: 1, of: 2 });
        assert!(hub.held(&room, &a, &who(2), 0).is_none());
        assert!(hub.held(&room, &b, &who(2), 0).is_none());
        assert!(hub.held(&room, &c, &who(2), 0).is_some(), "a receipt changes nothing held");
        assert_eq!(hub.held_bytes(), weight(0));
        hub.publish_everywhere(EventKind::Resync);
        assert!(hub.held(&room, &c, &who(2), 0).is_none());
        assert_eq!(hub.held_bytes(), 0);
        hold(&hub, &room, 5, vec![]);
        hub.unsubscribe(&room);
        assert_eq!(hub.held_bytes(), 0, "the room's last connection takes what it held along");
    }

    #[test]
    fn nothing_is_held_while_deletions_elsewhere_go_unheard() {
        let hub = Hub::default();
        let room = RoomHash([1; 32]);
        let _rx = hub.subscribe(room);
        let held = hold(&hub, &room, 2, vec![]);
        let reserved = MessageId([3; 16]);
        assert!(hub.reserve(&room, reserved));
        hub.stop_holding();
        assert_eq!(hub.held_bytes(), 0);
        assert!(hub.held(&room, &held, &who(2), 0).is_none());
        assert!(!hub.reserve(&room, MessageId([4; 16])), "no new place while not holding");
        hub.fill(
            &room,
            reserved,
            StoredMessage { body: vec![1; 10], sender: who(1), recipients: vec![], expires_at: i64::MAX },
        );
        assert_eq!(hub.held_bytes(), 0, "a place made before is gone too");
        hub.start_holding();
        let fifth = hold(&hub, &room, 5, vec![]);
        hub.release(&room, &fifth);
        assert_eq!(hub.held_bytes(), 0);
        hold(&hub, &room, 6, vec![]);
        assert!(hub.held_bytes() > 10, "held again, the entry counted with its body");
    }

    #[test]
    fn a_notice_heard_after_the_room_heard_its_message_gone_is_dropped() {
        let hub = Hub::default();
        let room = RoomHash([1; 32]);
        let mut rx = hub.subscribe(room);
        let (late, fresh) = (MessageId([2; 16]), MessageId([3; 16]));
        hub.announce(&room, None, EventKind::Deleted(late));
        assert_eq!(rx.try_recv().unwrap().kind, EventKind::Deleted(late));
        hub.hear(&room, EventKind::Message { id: late, chunks: 0 }, None);
        assert!(rx.try_recv().is_err(), "a stale notice reached the room");
        hub.hear(&room, EventKind::Message { id: fresh, chunks: 0 }, None);
        assert_eq!(rx.try_recv().unwrap().kind, EventKind::Message { id: fresh, chunks: 0 });
        hub.hear(&room, EventKind::Expired(fresh), None);
        hub.hear(&room, EventKind::Message { id: fresh, chunks: 0 }, None);
        assert_eq!(rx.try_recv().unwrap().kind, EventKind::Expired(fresh));
        assert!(rx.try_recv().is_err(), "expired, then a late notice");
    }

    fn carried(n: u8, expires_at: i64) -> StoredMessage {
        StoredMessage { body: vec![n; 10], sender: who(1), recipients: vec![who(2)], expires_at }
    }

    #[test]
    fn a_message_another_instance_s_notice_carried_is_held_briefly_unless_its_deletion_was_heard() {
        let hub = Hub::default();
        let room = RoomHash([1; 32]);
        let mut rx = hub.subscribe(room);
        let (held, burned, late) = (MessageId([2; 16]), MessageId([3; 16]), MessageId([4; 16]));
        hub.hear(&room, EventKind::Message { id: held, chunks: 0 }, Some(carried(2, i64::MAX)));
        assert_eq!(rx.try_recv().unwrap().kind, EventKind::Message { id: held, chunks: 0 });
        assert_eq!(
            (hub.carried_held(), hub.held(&room, &held, &who(2), now_ms()).map(|w| w.body)),
            (1, Some(vec![2; 10]))
        );
        // Held for CARRIED_HELD_FOR at most, whatever its expiry.
        let after = expiry(now_ms(), CARRIED_HELD_FOR) + 1;
        assert!(hub.held(&room, &held, &who(2), after).is_none());
        assert_eq!(hub.held_bytes(), 0);

        // Its burn heard first (from a third instance): neither passed on nor held.
        hub.hear(&room, EventKind::Deleted(burned), None);
        assert_eq!(rx.try_recv().unwrap().kind, EventKind::Deleted(burned));
        hub.hear(&room, EventKind::Message { id: burned, chunks: 0 }, Some(carried(3, i64::MAX)));
        assert!(rx.try_recv().is_err());
        assert_eq!((hub.carried_held(), hub.held_bytes()), (1, 0));

        // Burned after: released.
        hub.hear(&room, EventKind::Message { id: late, chunks: 0 }, Some(carried(4, i64::MAX)));
        assert!(hub.held_bytes() > 0);
        hub.hear(&room, EventKind::Deleted(late), None);
        assert_eq!(hub.held_bytes(), 0);

        // An open message (anyone but its sender may fetch it) is read from the store.
        let open = StoredMessage { recipients: vec![], ..carried(8, i64::MAX) };
        hub.hear(&room, EventKind::Message { id: MessageId([8; 16]), chunks: 0 }, Some(open));
        assert_eq!((hub.carried_held(), hub.held_bytes()), (2, 0));

        // Nothing is held while deletions elsewhere go unheard, nor in a room nobody here is in.
        hub.stop_holding();
        hub.hear(&room, EventKind::Message { id: MessageId([5; 16]), chunks: 0 }, Some(carried(5, i64::MAX)));
        hub.start_holding();
        hub.hear(
            &RoomHash([9; 32]),
            EventKind::Message { id: MessageId([6; 16]), chunks: 0 },
            Some(carried(6, i64::MAX)),
        );
        assert_eq!((hub.carried_held(), hub.held_bytes()), (2, 0));
    }

    #[test]
    fn a_room_that_may_have_forgotten_a_recent_deletion_holds_nothing_carried() {
        let hub = Hub::default();
        let room = RoomHash([1; 32]);
        let _rx = hub.subscribe(room);
        for n in 0..GONE_REMEMBERED_MAX {
            hub.hear(
                &room,
                EventKind::Deleted(MessageId([
                    (n % 256) as u8,
                    (n / 256) as u8,
                    1,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                ])),
                None,
            );
        }
        // Every deletion it remembers is recent: one before them may have been this message's.
        hub.hear(&room, EventKind::Message { id: MessageId([7; 16]), chunks: 0 }, Some(carried(7, i64::MAX)));
        assert_eq!((hub.carried_held(), hub.held_bytes()), (0, 0));
    }

    #[test]
    fn a_message_stored_here_is_held_announced_and_carried() {
        let hub = Hub::default();
        let room = RoomHash([1; 32]);
        let mut rx = hub.subscribe(room);
        let id = MessageId([2; 16]);
        assert!(hub.reserve(&room, id));
        hub.announce_stored(&room, Some(1), EventKind::Message { id, chunks: 0 }, carried(2, i64::MAX), now_ms(), true);
        assert_eq!(rx.try_recv().unwrap().kind, EventKind::Message { id, chunks: 0 });
        assert!(hub.held(&room, &id, &who(2), now_ms()).is_some());
        let other = MessageId([3; 16]);
        hub.announce_stored(
            &room,
            Some(1),
            EventKind::Message { id: other, chunks: 0 },
            carried(3, i64::MAX),
            now_ms(),
            false,
        );
        assert!(hub.held(&room, &other, &who(2), now_ms()).is_none(), "no place reserved: not held");
        assert_eq!(hub.carried_held(), 0, "its own are not counted as carried");
    }

    #[test]
    fn a_recipient_leaving_releases_what_it_had_to_view() {
        let hub = Hub::default();
        let room = RoomHash([1; 32]);
        let _rx = hub.subscribe(room);
        let mine = hold(&hub, &room, 2, vec![who(2), who(3)]);
        let other = hold(&hub, &room, 3, vec![who(3)]);
        hub.forget(&room, &who(2));
        assert!(hub.held(&room, &mine, &who(3), 0).is_none());
        assert!(hub.held(&room, &other, &who(3), 0).is_some());
        hub.release(&room, &other);
        assert_eq!(hub.held_bytes(), 0);
    }

    #[test]
    fn what_a_participant_fetched_is_remembered_until_it_leaves() {
        let hub = Hub::default();
        let room = RoomHash([1; 32]);
        let id = MessageId([5; 16]);
        let state = |who_: u8| hub.fetched_state(&room, &who(who_), &id);
        assert_eq!(state(1), FetchedState::NotFetched);
        hub.mark_fetched(&room, &who(1), id);
        assert_eq!(state(1), FetchedState::Waiting);
        assert_eq!(state(2), FetchedState::NotFetched);
        hub.forget(&room, &who(1));
        assert_eq!(state(1), FetchedState::NotFetched);
        hub.mark_fetched(&room, &who(2), id);
        hub.forget_fetched_before(std::time::Duration::from_secs(60));
        assert_eq!(state(2), FetchedState::Waiting, "recent: kept");
        std::thread::sleep(std::time::Duration::from_millis(5));
        hub.forget_fetched_before(std::time::Duration::ZERO);
        assert_eq!(state(2), FetchedState::NotFetched, "older than every message: forgotten");
    }

    #[test]
    fn a_fetched_message_that_goes_is_remembered_as_gone_and_the_set_shrinks() {
        let hub = Hub::default();
        let room = RoomHash([1; 32]);
        let (a, b) = (MessageId([1; 16]), MessageId([2; 16]));
        hub.mark_fetched(&room, &who(1), a);
        hub.mark_fetched(&room, &who(2), a);
        hub.mark_fetched(&room, &who(1), b);
        hub.publish(&room, None, EventKind::Expired(a));
        assert_eq!(hub.fetched_state(&room, &who(1), &a), FetchedState::Gone);
        assert_eq!(hub.fetched_state(&room, &who(2), &a), FetchedState::Gone);
        assert_eq!(hub.fetched_state(&room, &who(1), &b), FetchedState::Waiting);
        hub.publish(&room, None, EventKind::Deleted(b));
        assert_eq!(hub.fetched_state(&room, &who(1), &b), FetchedState::Gone);
        let fetched = hub.fetched();
        let mine = &fetched[&room][&who(1)];
        assert!(mine.live.is_empty() && mine.gone.len() == 2);
        drop(fetched);
        // Only the most recent are remembered.
        for n in 0..=GONE_REMEMBERED_MAX {
            let id = MessageId([n as u8; 16]);
            hub.mark_fetched(&room, &who(3), id);
            hub.fetched_gone(&room, id);
        }
        assert_eq!(hub.fetched()[&room][&who(3)].gone.len(), GONE_REMEMBERED_MAX);
    }
}
