//! Dates: where the model reads the time, and which send times no genuine message can have.

use std::sync::Arc;
use std::time::Duration;

use super::RoomModel;

/// The longest a genuine message can wait to be opened: mirrors the protocol's ceiling on a
/// relay's `MESSAGE_TTL` (7 days, `MAX_MESSAGE_TTL` in the server's config), past which every
/// relay has deleted it. A body dated earlier than this (and [`CLOCK_SKEW`]) is a stored copy
/// served again, by a malicious relay or someone holding its database and key: not shown.
/// (The time a page holds a message it sealed offline, before any relay stored it, is not
/// counted: a page offline for days may see its queued messages refused so.)
pub const MAX_MESSAGE_AGE: Duration = Duration::from_secs(7 * 24 * 3600);
/// How far the sender's clock and this page's may disagree: a body dated up to this much past
/// [`MAX_MESSAGE_AGE`], or ahead of this page's clock, still shows.
pub const CLOCK_SKEW: Duration = Duration::from_secs(10 * 60);

/// Where the model reads the time (milliseconds since the Unix epoch): this machine's clock, or
/// a test's (see [`RoomModel::with_clock`]).
pub type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// What a card says of a body dated before any genuine message could still wait.
pub(super) const TOO_OLD: &str = "Too old to be genuine: not shown.";
/// What a card says of a body opened later than the lifetime its sender gave it.
pub(super) const PAST_ITS_LIFETIME: &str = "Kept past the lifetime its sender gave it: not shown.";
/// What a card says of a body dated ahead of this page's clock by more than the skew allowed.
pub(super) const FROM_THE_FUTURE: &str = "Dated in the future: not shown.";

impl RoomModel {
    /// Why a body sent at `sent_at` cannot be genuine now, if it cannot: what its card says,
    /// and what is announced.
    /// A body whose sender gave it a lifetime (`ttl`, seconds) is not genuine past it either: the
    /// relay was told to delete it then.
    pub(super) fn misdated(&self, sent_at: u64, ttl: Option<u32>) -> Option<(&'static str, &'static str)> {
        let now = (self.clock)();
        let skew = CLOCK_SKEW.as_millis() as u64;
        let oldest = (MAX_MESSAGE_AGE + CLOCK_SKEW).as_millis() as u64;
        let lifetime = ttl.map(|ttl| u64::from(ttl) * 1_000 + skew);
        if sent_at > now.saturating_add(skew) {
            Some((FROM_THE_FUTURE, "A message dated in the future was not shown."))
        } else if now.saturating_sub(sent_at) > oldest {
            Some((TOO_OLD, "A message too old to be genuine was not shown."))
        } else if lifetime.is_some_and(|lifetime| now.saturating_sub(sent_at) > lifetime) {
            Some((PAST_ITS_LIFETIME, "A message kept past the lifetime its sender gave it was not shown."))
        } else {
            None
        }
    }
}

/// This machine's clock: the browser's in a page (a WebAssembly build has no other).
#[cfg(all(target_arch = "wasm32", feature = "ui"))]
pub(super) fn system_clock() -> u64 {
    js_sys::Date::now() as u64
}

/// This machine's clock.
#[cfg(not(all(target_arch = "wasm32", feature = "ui")))]
pub(super) fn system_clock() -> u64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |since| since.as_millis() as u64)
}
