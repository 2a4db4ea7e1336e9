//! Ephemeral Chat's client cryptography, crypto spec v1 (`docs/CRYPTO.md`).
//!
//! Pure Rust with no browser or framework dependency, so `cargo test -p app` runs it natively
//! and other clients (the server's tests, the load generator, the fuzz targets) use the very
//! same code.
//!
//! - [`code`]: room codes (Crockford base32 with a check symbol): generate, parse, display.
//! - [`keys`]: the key schedule: PBKDF2 → room id, message key, fingerprint.
//! - [`message`]: message ids, bodies, padding and the sealed payload.
//! - [`ids`]: the random ids senders choose: messages', page sessions', files'.
//! - [`file`]: files: their keys, size classes and the chunk stream (spec v2).
//! - [`at_rest`]: the relay's second layer over a sealed payload, under the server's key.

pub mod at_rest;
pub mod code;
pub mod file;
pub mod ids;
pub mod keys;
pub mod message;
pub mod primitives;
#[cfg(test)]
mod vectors;

pub use code::{CodeError, RoomCode};
pub use file::FileCipher;
pub use ids::{FileId, MessageId, SenderId};
pub use keys::{Fingerprint, RoomId, RoomKeys};
pub use message::{Body, Chosen, FileCard, SealedPayload};
pub use primitives::OpenError;

/// Fills `buf` from the operating system's CSPRNG (`crypto.getRandomValues` in the browser).
///
/// # Panics
/// If the platform has no CSPRNG. Without one nothing here can be made safely, so there is no
/// degraded mode to fall back to.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    getrandom::getrandom(&mut buf).expect("invariant: the platform provides a CSPRNG");
    buf
}
