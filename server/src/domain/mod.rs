//! The relay's concepts, with no I/O and nothing else of this crate: who and what a room is made
//! of ([`ids`]), what happens in a room and how it travels between instances ([`events`]), and
//! the rule every message lives and burns by ([`lifecycle`]).
//!
//! Everything else imports from here; this module imports only the shared `app` crate's crypto
//! types and the standard library. The store's SQL enforces [`lifecycle`] atomically and is
//! tested against it (`server/tests/integration/scenarios.rs`).

pub mod address;
pub mod bounds;
pub mod events;
pub mod ids;
pub mod lifecycle;

pub use address::ClientBlock;
pub use events::{EventKind, Notice, CHANNEL};
pub use ids::{ConnectionId, InstanceId, MessageId, Participant, RoomHash};
pub use lifecycle::{now_ms, FetchRefusal, Inserted, NewMessage, Pending, StoredMessage, Viewed, Waiting};
