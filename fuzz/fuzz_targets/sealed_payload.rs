//! The client's sealed-payload opener. The first byte picks what the rest is:
//! - even: a sealed payload as it arrives from the relay, opened as is (almost never
//!   authenticates: this covers everything before the tag check);
//! - odd: the *plaintext* inside one, sealed here under the room key by the spec (docs/CRYPTO.md),
//!   so the opener's unpadding and body parsing after authentication see arbitrary bytes.
//! Nothing may panic, and a body the opener accepts must seal and open back to itself.
#![no_main]

use std::sync::LazyLock;

use app::crypto::keys::MESSAGE_KEY_INFO;
use app::crypto::message::{open, seal_with_nonce, MESSAGE_AAD_LABEL, VERSION};
use app::crypto::primitives::{aes256gcm_seal, hkdf_sha256};
use app::crypto::{MessageId, RoomKeys, SealedPayload};
use libfuzzer_sys::fuzz_target;

const IKM: [u8; 32] = [7; 32];
const ID: MessageId = MessageId([3; 16]);
const NONCE: [u8; 12] = [5; 12];
static KEYS: LazyLock<RoomKeys> = LazyLock::new(|| RoomKeys::from_ikm(&IKM));
static MESSAGE_KEY: LazyLock<[u8; 32]> = LazyLock::new(|| {
    let mut key = [0; 32];
    hkdf_sha256(&IKM, &[MESSAGE_KEY_INFO], &mut key);
    key
});

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let payload = if mode % 2 == 0 {
        rest.to_vec()
    } else {
        let aad = [MESSAGE_AAD_LABEL, &[VERSION], &KEYS.room_id.0, &ID.0].concat();
        [&[VERSION][..], &NONCE, &aes256gcm_seal(&MESSAGE_KEY, &NONCE, rest, &aad)].concat()
    };
    let Ok(sealed) = SealedPayload::from_bytes(payload) else { return };
    let Ok(body) = open(&KEYS, &ID, &sealed) else { return };
    let again = seal_with_nonce(&KEYS, &body, &NONCE).expect("an opened body fits a payload");
    assert!(open(&KEYS, &ID, &again).expect("a sealed body opens") == body);
});
