//! The relay's at-rest opener (`app::crypto::at_rest`): a stored record (as read back from the
//! database) opened into the client's sealed payload. The first byte picks what the rest is:
//! - even: a stored record as is (a corrupt or hostile database row);
//! - odd: a client payload, sealed here for storage, then opened back: it must be itself.
//! Nothing may panic.
#![no_main]

use std::sync::LazyLock;

use app::crypto::at_rest::{KeyRing, ServerKey};
use app::crypto::{MessageId, SealedPayload};
use libfuzzer_sys::fuzz_target;

/// The room hash (`SHA-256(room_id)`) every record here is sealed in.
const ROOM: [u8; 32] = [1; 32];
const ID: MessageId = MessageId([2; 16]);
static RING: LazyLock<KeyRing> = LazyLock::new(|| {
    let current = ServerKey::from_hex(&"ab".repeat(32)).expect("a valid key");
    let previous = ServerKey::from_hex(&"cd".repeat(32)).expect("a valid key");
    KeyRing::new(current, Some(previous)).expect("two distinct keys")
});

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    if mode % 2 == 0 {
        let _ = RING.open(&ROOM, &ID, rest);
    } else if let Ok(payload) = SealedPayload::from_bytes(rest.to_vec()) {
        let stored = RING.seal(&ROOM, &ID, &payload);
        let opened = RING.open(&ROOM, &ID, &stored).expect("a record this ring sealed opens");
        assert_eq!(opened.as_bytes(), payload.as_bytes());
        assert!(RING.open(&[9u8; 32], &ID, &stored).is_err(), "a record opens only in its room");
    }
});
