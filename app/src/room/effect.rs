//! What the room model returns to its driver, and the states it shows.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use zeroize::Zeroizing;

use crate::crypto::primitives::{aes256gcm_open, aes256gcm_seal, NONCE_LEN};
use crate::crypto::{MessageId, OpenError};
use crate::protocol::{ClientFrame, ErrorCode};
use crate::room::card::FileBytes;

/// How long "typing…" lasts after the last typing notice.
pub const TYPING_SHOWN_FOR: Duration = Duration::from_secs(4);
/// Least time between two typing notices this page sends, in milliseconds.
pub const TYPING_RESEND_MS: u64 = 2_000;
/// The first wait before reconnecting; it doubles after each failed attempt.
pub const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// Longest wait between reconnection attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// Failed attempts in a row after which the page says the server cannot be reached.
pub const UNREACHABLE_AFTER: u32 = 3;
/// After an `internal` or `rate_limited` refusal, the wait before the page tries again what the
/// relay has not confirmed (the protocol says both are safe to retry). Refusals that last (a full
/// relay, an address over its quota) are never retried by themselves: the person sends again.
pub const RETRY_AFTER: Duration = Duration::from_millis(1_500);

/// The state of the connection to the relay.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ConnectionState {
    /// Running the key derivation (before a model exists).
    Deriving,
    /// Opening the socket and joining.
    Connecting,
    /// Joined: messages flow.
    Online,
    /// The socket dropped; trying again.
    Reconnecting,
    /// Several attempts in a row failed; still trying.
    Unreachable,
    /// The relay refused the join: the room holds as many people as it may.
    Full,
}

/// What the driver must do.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Effect {
    /// Send this frame on the open socket.
    Send(ClientFrame),
    /// Open a socket to the relay after this wait, then call [`RoomModel::on_connected`], or
    /// [`RoomModel::on_closed`] if it cannot be opened.
    Connect { after: Duration },
    /// Close the socket; [`RoomModel::on_closed`] is not called for it.
    Disconnect,
    /// Call [`RoomModel::on_timer`] with this timer after this wait.
    Schedule { timer: Timer, after: Duration },
    /// Something happened that the page may mark (a tone, the title) and a test may count.
    Event(RoomEvent),
    /// Send this binary frame (a file's chunk, or a request for one) on the open socket.
    SendBinary(Vec<u8>),
    /// Seal this chunk (by WebCrypto where the page has it, else [`ChunkJob::seal`]) and hand the
    /// result to [`RoomModel::chunk_sealed`].
    Seal(ChunkJob),
    /// Open this chunk likewise and hand the result to [`RoomModel::chunk_opened`].
    Open(ChunkJob),
    /// Hand a decrypted file the person asked to save to the browser: named `name`, typed
    /// `application/octet-stream` so it is never rendered. Its card then says it was saved.
    Save { name: String, bytes: FileBytes },
}

/// One chunk to seal or open with AES-256-GCM: the file's key, the chunk's nonce and AAD
/// (`crypto::file`), and the bytes. The model leaves the work to its driver so that a page can
/// use WebCrypto, several times faster than AES in WebAssembly; [`ChunkJob::seal`] and
/// [`ChunkJob::open`] are the Rust reference, which every other driver calls.
#[derive(Clone, PartialEq, Eq)]
pub struct ChunkJob {
    pub id: MessageId,
    pub index: u32,
    pub key: Arc<Zeroizing<[u8; 32]>>,
    pub nonce: [u8; NONCE_LEN],
    pub aad: Arc<Vec<u8>>,
    /// The plaintext to seal (zeroed on drop), or the sealed chunk to open.
    pub input: Zeroizing<Vec<u8>>,
}

impl ChunkJob {
    /// Seals the chunk in Rust.
    pub fn seal(&self) -> Vec<u8> {
        aes256gcm_seal(&self.key, &self.nonce, &self.input, &self.aad)
    }

    /// Opens the chunk in Rust.
    pub fn open(&self) -> Result<Zeroizing<Vec<u8>>, OpenError> {
        aes256gcm_open(&self.key, &self.nonce, &self.input, &self.aad).ok_or(OpenError)
    }
}

impl fmt::Debug for ChunkJob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChunkJob(chunk {} of <redacted>, {} bytes)", self.index, self.input.len())
    }
}

/// The model's timers.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Timer {
    /// The peer's "typing…" ends, unless a newer typing notice came (this is its generation).
    TypingShown(u64),
    /// A card's countdown moves on by a second.
    Countdown(MessageId),
    /// Try again what an `internal` or `rate_limited` refusal left unconfirmed.
    Retry,
}

/// What happened in the room, as the page saw it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum RoomEvent {
    /// The relay let this page into the room (again, after a reconnect).
    Joined,
    /// A sealed message arrived for this page.
    Arrived(MessageId),
    /// A message opened and is on screen; its `viewed` is on its way.
    Opened(MessageId),
    /// A message this page already showed waits again (a resend, or a `viewed` lost with a
    /// connection): it is fetched and confirmed viewed, never shown twice.
    SeenAgain(MessageId),
    /// A message failed to open.
    Unreadable(MessageId),
    /// A message opened but is dated where no genuine message can be (too old, or ahead of
    /// this page's clock): not shown, not confirmed viewed.
    Misdated(MessageId),
    /// The relay stored a message this page sent.
    Stored(MessageId),
    /// Deleted from the relay: this page's message read by everyone, or a message this page
    /// viewed (its burn confirmed by `deleted`, or by its absence when the page rejoined).
    Burned(MessageId),
    /// The relay counted this page's view of a message that still waits for other recipients
    /// (a `receipt`): it burns once they have viewed it too.
    Counted(MessageId),
    /// A message expired unread.
    Expired(MessageId),
    /// The relay refused a frame.
    Refused(ErrorCode),
}

/// Why a message was not sent.
#[derive(Clone, Copy, PartialEq, Eq, Debug, thiserror::Error)]
pub enum NotSent {
    #[error("there is nothing to send")]
    Empty,
    #[error("that message is too long to send")]
    TooLong,
    #[error("this page is not in the room")]
    NotInRoom,
    #[error("this relay takes no files")]
    NoFiles,
    #[error("that file is larger than this relay takes")]
    FileTooLarge,
    #[error("a file is still being sent")]
    Busy,
}
