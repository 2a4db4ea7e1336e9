//! The relay: the operations a connection can ask for (join, send, fetch, view, type, leave,
//! resync) and this instance's side of the rooms (the hub, the messages it holds, presence,
//! the background tasks).
//!
//! It sits between the transport (`routes/`, `ws/`), which turns sockets into calls of
//! [`connection::Connection`], and the domain below it. The store and the bus sit beside it:
//! the relay calls them; they import only the domain.
//!
//! - [`connection`]: one connection's operations and state, frames in and frames out.
//! - [`departure`]: what a participant's leaving does, after its grace period or at once.
//! - [`hub`] and [`held`]: per-room broadcast channels, and the messages held for fetches here.
//! - [`presence`]: participant counts, read again after every change and published in order.
//! - [`quota`]: how many bytes may wait stored, in all and per client block.
//! - [`tasks`]: the background tasks, each given only what it uses.

pub mod connection;
pub mod departure;
pub mod held;
pub mod hub;
pub mod presence;
pub mod quota;
pub mod tasks;

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use app::crypto::file::CHUNK_LEN;
use app::protocol::{RelayLimits, FEATURE_FILES, FEATURE_TTL};

use crate::at_rest::KeyRing;
use crate::config::Limits;
use crate::domain::{ConnectionId, EventKind, InstanceId, RoomHash};
use crate::store::Store;
use hub::Hub;
use presence::Presence;

/// What every connection of this instance shares.
pub struct Relay {
    /// This process, among the instances sharing a PostgreSQL database.
    pub instance: InstanceId,
    pub store: Store,
    pub hub: Arc<Hub>,
    pub keys: KeyRing,
    pub message_ttl: Duration,
    pub session_grace: Duration,
    pub limits: Limits,
    /// Where joins and leaves ask for presence counts.
    pub presence: Presence,
    /// Times the link to the other instances was re-established.
    pub bus_reconnects: Arc<AtomicU64>,
    /// Room events heard from other instances (for tests: which rooms' events reach here).
    pub bus_heard: Arc<AtomicU64>,
    /// This instance's share of `MAX_STORED_BYTES`.
    pub stored: Arc<quota::Total>,
}

impl Relay {
    /// What this relay accepts, as `joined` states it to every page.
    pub fn stated_limits(&self) -> RelayLimits {
        RelayLimits {
            max_message: u32::try_from(self.limits.max_padded_message).unwrap_or(u32::MAX),
            message_ttl: self.message_ttl.as_secs(),
            features: [(FEATURE_FILES, self.max_file_chunks() > 0), (FEATURE_TTL, true)]
                .into_iter()
                .filter(|&(_, offered)| offered)
                .map(|(name, _)| name.to_owned())
                .collect(),
            max_file: u64::from(self.max_file_chunks()) * CHUNK_LEN as u64,
        }
    }

    /// Someone joined or left `room` here (`origin`: the connection whose join or leave it
    /// was): the room's count is read again, here and on the other instances.
    pub fn participants_changed(&self, room: RoomHash, origin: Option<ConnectionId>) {
        self.presence.changed(room, origin);
        self.hub.tell_others(&room, EventKind::PresenceChanged);
    }

    /// The most chunks a file may have here (`MAX_FILE_SIZE` in whole chunks); 0: no files.
    pub fn max_file_chunks(&self) -> u32 {
        u32::try_from(self.limits.max_file_size / CHUNK_LEN as u64).unwrap_or(u32::MAX)
    }
}
