//! The random ids of spec v1 and v2, chosen by senders: a message's, a page session's, a file's.
//! A message's and a file's `Debug` say nothing, so a log line never carries one (a file's id is
//! secret from the relay: it is inside the card).

use std::fmt;

use super::keys::parse_lower_hex;
use super::random_bytes;

/// A message's 16 random bytes, chosen by its sender; hex on the wire.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageId(pub [u8; 16]);

impl MessageId {
    /// A fresh id from the CSPRNG.
    pub fn generate() -> Self {
        Self(random_bytes())
    }

    /// Parses 32 lower-case hex characters.
    pub fn parse(hex_str: &str) -> Option<Self> {
        parse_lower_hex(hex_str).map(Self)
    }

    /// Lower-case hex, as sent on the wire.
    pub fn to_hex(self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Debug for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MessageId(<redacted>)")
    }
}

/// A page session's 8 random bytes, inside every body it seals, so it can drop its reflections.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct SenderId(pub [u8; 8]);

impl SenderId {
    /// A fresh sender id from the CSPRNG.
    pub fn generate() -> Self {
        Self(random_bytes())
    }
}

/// A file's 32 random bytes, chosen by its sender and known only to the room.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct FileId(pub [u8; 32]);

impl FileId {
    /// A fresh id from the CSPRNG.
    pub fn generate() -> Self {
        Self(random_bytes())
    }
}

impl fmt::Debug for FileId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FileId(<redacted>)")
    }
}
