//! The ids the relay knows things by. None of them names a person or reveals a room code: a
//! room is the hash of the id the page derived from its code, a participant the hash of a
//! random per-page-session token, an instance a random value drawn at each start.

use std::fmt;

use app::crypto::primitives::sha256;
pub use app::crypto::MessageId;

/// A stored room name: `SHA-256(room_id)`, the only form of the room id the relay keeps.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RoomHash(pub [u8; 32]);

impl RoomHash {
    /// From a stored column; `None` for a malformed value (the schema's CHECK forbids it).
    pub fn from_row(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(Self)
    }
}

impl fmt::Debug for RoomHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RoomHash(<redacted>)")
    }
}

/// Domain label of the participant hash.
pub const SESSION_LABEL: &[u8] = b"ephemeral-chat/v1/session";

/// A participant: `SHA-256("ephemeral-chat/v1/session" || session token)`. The token stays in
/// the page's memory; the relay keeps only this hash, which names no person.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
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

/// A relay process: random at each start, so a restarted instance is a new one.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct InstanceId(pub [u8; 16]);

impl InstanceId {
    pub fn generate() -> Self {
        Self(app::crypto::random_bytes())
    }
}

impl fmt::Debug for InstanceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "InstanceId({})", hex::encode(&self.0[..4]))
    }
}

/// One connection inside this process, so it can skip the events it caused itself.
pub type ConnectionId = u64;

/// Reads a 16-byte message id column; `None` for a malformed row (the schema's CHECK forbids it).
pub fn message_id_from_row(bytes: &[u8]) -> Option<MessageId> {
    bytes.try_into().ok().map(MessageId)
}
