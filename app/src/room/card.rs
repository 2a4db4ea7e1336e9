//! A message on screen, as data: what its card shows and how long it stays.

use crate::crypto::MessageId;

/// Seconds a read, burned or gone message stays on screen before it leaves.
pub const SHOW_SECONDS: u32 = 10;

/// What a card shows.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum CardState {
    /// Someone else's message, still sealed.
    Sealed,
    /// Fetching and decrypting.
    Opening,
    /// Decrypted and on screen.
    Open(String),
    /// The payload failed to open.
    Unreadable,
    /// Our own message: sent (`stored` once the server confirmed), not yet read by all; `seen`
    /// is how many of how many recipients have viewed it so far.
    Mine { text: String, stored: bool, seen: Option<(u32, u32)> },
    /// Our own message was read and deleted.
    Burned(String),
    /// Gone unread: expired, or read by someone else.
    Gone(&'static str),
}

impl CardState {
    /// Someone else's message that this page may still ask to open.
    pub fn is_openable(&self) -> bool {
        matches!(self, Self::Sealed | Self::Unreadable)
    }

    /// Someone else's message this page has not read (sealed, opening or unreadable).
    pub fn is_unread(&self) -> bool {
        matches!(self, Self::Sealed | Self::Opening | Self::Unreadable)
    }
}

/// One message on screen.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Card {
    pub id: MessageId,
    pub state: CardState,
    /// Seconds before the card leaves the screen, once it counts down.
    pub left: Option<u32>,
}

impl Card {
    pub(crate) fn new(id: MessageId, state: CardState) -> Self {
        Self { id, state, left: None }
    }
}
