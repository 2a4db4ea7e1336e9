//! Room events between relay instances, on one of two buses:
//!
//! - [`postgres`]: PostgreSQL's `LISTEN`/`NOTIFY`, the default over PostgreSQL. The store NOTIFYs
//!   each event inside the transaction that causes it, on one channel every instance hears.
//!   Nothing new to run, and nothing to lose between a commit and its notice; but every instance
//!   hears every room, and every NOTIFYing commit in the database waits for the one before it.
//! - [`nats`]: NATS (`BUS_URL`). Each room has a subject of its own (a keyed hash of the room
//!   hash), an instance subscribes to it exactly while someone is in the room here, and the relay
//!   publishes each event after its commit. An instance hears only its rooms, and no commit
//!   waits on the bus.
//!
//! Either way the relay sees one interface: what it hears comes as [`BusEvent`]s, in order, to
//! `relay::tasks::hear_other_instances`, and what it does goes out through the [`Outbox`] the
//! hub holds (nothing, with PostgreSQL: the store has notified it already). When a link is lost
//! and comes back, events may have been missed: the relay resyncs its rooms from the store, and
//! with NATS this instance also tells the rooms it may have failed to tell (`nats.rs`). SQLite
//! has one instance per database file, so it has no bus.

pub mod nats;
pub mod postgres;

use crate::domain::{EventKind, Notice, RoomHash, StoredMessage};

/// What a bus tells the relay, in the order it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BusEvent {
    /// The link is up. `again`: it was lost before (or the bus dropped events), and events may
    /// have been missed.
    Listening { again: bool },
    /// The link is down: other instances' events go unheard until the next `Listening`.
    Lost,
    /// Another instance's event (this instance's own are never passed on). With NATS, a
    /// [`EventKind::Resync`] notice asks the room here to resync: its sender may have failed
    /// to tell it something.
    Notice(Notice),
    /// Another instance's message notice with the message as it stored it (NATS), passed on only
    /// when this instance has heard every event of the room since the message was stored: the
    /// relay may hold it for its fetches, which then need not read the store (`nats.rs`,
    /// "Carried messages").
    Stored(Notice, Box<StoredMessage>),
    /// Every room here resyncs (NATS: an instance that may have failed to tell rooms it can no
    /// longer name asked so).
    ResyncAll,
}

/// Which bus an instance uses, as it registers in the database: instances over one database
/// must agree, or they would not hear each other (`Store::register`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BusIdentity {
    /// PostgreSQL's LISTEN/NOTIFY.
    Postgres,
    /// NATS, with a fingerprint of the subject key (instances with different at-rest keys
    /// would publish to different subjects).
    Nats { fingerprint: String },
}

impl BusIdentity {
    /// The text stored in `instances.bus`.
    pub fn as_text(&self) -> String {
        match self {
            Self::Postgres => "postgres".to_owned(),
            Self::Nats { fingerprint } => format!("nats {fingerprint}"),
        }
    }

    /// How an operator reads a stored value in an error.
    pub fn describe(text: &str) -> String {
        match text.split_once(' ') {
            Some(("nats", fingerprint)) => format!("NATS (subject key {fingerprint})"),
            _ if text == "postgres" => "PostgreSQL LISTEN/NOTIFY (no BUS_URL)".to_owned(),
            _ => format!("an unknown bus ({text:?})"),
        }
    }
}

/// Where the relay hands its own rooms' events after they commit, and says which rooms it is
/// in. Cheap to clone; never waits, except [`Outbox::settled`].
#[derive(Clone, Debug, Default)]
pub struct Outbox(Option<nats::Link>);

impl Outbox {
    /// PostgreSQL's bus, or none: the store notifies inside its transactions.
    pub fn in_the_store() -> Self {
        Self(None)
    }

    pub fn nats(link: nats::Link) -> Self {
        Self(Some(link))
    }

    /// The first participant here entered `room`: hear its events from now on.
    pub fn follow(&self, room: RoomHash) {
        if let Some(link) = &self.0 {
            link.follow(room);
        }
    }

    /// The last participant here left `room`.
    pub fn unfollow(&self, room: RoomHash) {
        if let Some(link) = &self.0 {
            link.unfollow(room);
        }
    }

    /// Waits (a bounded time) until every room followed so far is heard: a join calls it between
    /// following its room and its own write, so an event committed after that write is heard.
    pub async fn settled(&self) {
        if let Some(link) = &self.0 {
            link.settled().await;
        }
    }

    /// Tells the other instances' rooms of an event this instance's commit caused.
    pub fn publish(&self, room: RoomHash, kind: EventKind) {
        if let Some(link) = &self.0 {
            link.publish(room, kind, None);
        }
    }

    /// Tells the other instances' rooms of a message this instance stored (`kind`, its notice),
    /// stored at `stored_at` (milliseconds since the Unix epoch, read before its insert): NATS
    /// carries the message along, so that a fetch there need not read it from the store.
    pub fn publish_stored(&self, room: RoomHash, kind: EventKind, message: &StoredMessage, stored_at: i64) {
        if let Some(link) = &self.0 {
            link.publish(room, kind, Some(Box::new(nats::Carried { message: message.clone(), stored_at })));
        }
    }

    /// Waits (a bounded time) until every event handed over so far has reached the bus: a
    /// stopping server calls it before its tasks end, so its last events are not lost.
    pub async fn drained(&self) {
        if let Some(link) = &self.0 {
            link.drained().await;
        }
    }
}
