//! A room on the page.
//!
//! - [`model`]: [`RoomModel`], the room's logic with no I/O (frames and actions in, effects out),
//!   which every Rust client of the protocol drives.
//! - [`card`], [`effect`]: the data the model shows and returns, and how a card says when its
//!   message was sent.
//! - `browser` (feature `ui`): [`RoomClient`], the model driven by the browser: socket, timers,
//!   signals, sound.
//!
//! Plaintext exists only in a model's memory, for as long as a card shows it.

#[cfg(feature = "ui")]
mod browser;
pub mod card;
pub mod effect;
pub mod model;

#[cfg(feature = "ui")]
pub use browser::{now_ms, object_url, relay_ws_url, CardView, RoomClient};
pub use card::{lifetime_words, Card, CardState, FileBytes, FileInfo, NO_NAME, SHOW_SECONDS};
pub use effect::{ChunkJob, ConnectionState, Effect, NotSent, RoomEvent, Timer};
pub use model::{BadName, Clock, RoomModel, LIFETIMES, VIEW_TIMES};
