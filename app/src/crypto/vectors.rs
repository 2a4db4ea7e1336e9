//! Known-answer vectors for spec v1, computed by an independent implementation
//! (`tools/crypto_vectors.py`: Python's hashlib and the `cryptography` package).
//! Published vectors are never changed: other clients test against them.

use super::code::RoomCode;
use super::keys::RoomKeys;
use super::message::{open, seal_with_nonce, Body, MessageId, SealedPayload, SenderId};

pub const ENTROPY: &str = "000102030405060708090a0b0c0d0e";
pub const CODE: &str = "000G40R40M30E209185GR38EW";
pub const IKM: &str = "e04d5935aed00dbf1f0ebf7505ecfd0423261988f8e7e4aa026d7da219240164";
pub const ROOM_ID: &str = "da8d2c662de3253a8a7eaf9aaeb58fc4d22e20f8cd9fcb2f22b64c3f179c556e";
pub const MESSAGE_KEY: &str = "edaa39ca2d59c5413898cae7635ff062720cf778cd2a22c6d5e3b6a8959f5045";
pub const FINGERPRINT: &str = "CRM8-PJXZ";
pub const MESSAGE_ID: &str = "101112131415161718191a1b1c1d1e1f";
pub const SENDER: &str = "2021222324252627";
pub const TEXT: &str = "hello from A ✓";
pub const SENT_AT: u64 = 1_767_225_600_000;
pub const BODY: &str = r#"{"id":"101112131415161718191a1b1c1d1e1f","sender":"2021222324252627","text":"hello from A ✓","sent_at":1767225600000}"#;
pub const NONCE: &str = "303132333435363738393a3b";
pub const SEALED: &str =
    "01303132333435363738393a3b40b680d2964330aad0c48d555f8069190014bb6987e49303fc57561885f3a33cd92eda\
     dab1b9e7fb4ccbec1a45982114aed93d8ec90452c1637331c2325b6feb6113e6ba88c648ec0cc571846d03e443f2ec5e\
     108dea7b65606e37f8bcc63aab6b0b488e4029182e5f66c547b89d8ff742dfce539fb7e4e7c23dad8a91edbaa3a70eef\
     f6b1ede0725a7ca2172802b3da64215a3249c382cca0637f6fe2caef92137fe796a8281014d79e2cc2c3559d7001a43b\
     194f842413a1a55573431299504c0240a56d68f91fc45a3781ab1c1fc6706edced71a017bfef4abfb3d696977739c0b7\
     342be11e2e5a90165b03bb2cbf3551556ad6211ce72c2e119f400da190154c17e012c3900596ca58117557254d";

fn unhex<const N: usize>(s: &str) -> [u8; N] {
    hex::decode(s).unwrap().try_into().unwrap()
}

fn keys() -> RoomKeys {
    RoomKeys::derive(&RoomCode::parse(CODE).unwrap())
}

fn body() -> Body {
    Body { id: MessageId(unhex(MESSAGE_ID)), sender: SenderId(unhex(SENDER)), text: TEXT.into(), sent_at: SENT_AT }
}

#[test]
fn the_code_and_its_check_symbol_match_the_vector() {
    assert_eq!(RoomCode::from_entropy(&unhex(ENTROPY)).canonical(), CODE);
}

#[test]
fn the_key_schedule_matches_the_vector() {
    let keys = keys();
    let from_ikm = RoomKeys::from_ikm(&unhex(IKM));
    assert!(keys.same_room(&from_ikm));
    assert_eq!(keys.room_id.to_hex(), ROOM_ID);
    assert_eq!(hex::encode(keys.message_key()), MESSAGE_KEY);
    assert_eq!(keys.fingerprint.display(), FINGERPRINT);
}

#[test]
fn sealing_matches_the_vector_and_opens_to_its_body() {
    let keys = RoomKeys::from_ikm(&unhex(IKM));
    let sealed = seal_with_nonce(&keys, &body(), &unhex(NONCE)).unwrap();
    assert_eq!(hex::encode(sealed.as_bytes()), SEALED);
    let vector = SealedPayload::from_bytes(hex::decode(SEALED).unwrap()).unwrap();
    assert_eq!(open(&keys, &body().id, &vector), Ok(body()));
}

#[test]
fn the_vector_body_is_the_exact_json_sealed() {
    // The plaintext JSON, byte for byte: what another client must produce and accept.
    let keys = RoomKeys::from_ikm(&unhex(IKM));
    let vector = hex::decode(SEALED).unwrap();
    let nonce: [u8; 12] = vector[1..13].try_into().unwrap();
    let aad = [super::message::MESSAGE_AAD_LABEL, &[1], &keys.room_id.0, &unhex::<16>(MESSAGE_ID)].concat();
    let padded = super::primitives::aes256gcm_open(keys.message_key(), &nonce, &vector[13..], &aad).unwrap();
    assert_eq!(&padded[..BODY.len()], BODY.as_bytes());
    assert_eq!(padded[BODY.len()], 0x80);
}

#[test]
fn flipping_any_bit_of_room_id_or_message_id_fails_to_open() {
    let keys = RoomKeys::from_ikm(&unhex(IKM));
    let vector = SealedPayload::from_bytes(hex::decode(SEALED).unwrap()).unwrap();
    for bit in 0..128 {
        let mut id = unhex::<16>(MESSAGE_ID);
        id[bit / 8] ^= 1 << (bit % 8);
        assert!(open(&keys, &MessageId(id), &vector).is_err(), "message id bit {bit}");
    }
    let ikm = unhex::<32>(IKM);
    for bit in 0..256 {
        // A different room id means a different room: derive one whose room id differs.
        let mut other = RoomKeys::from_ikm(&ikm);
        other.room_id.0[bit / 8] ^= 1 << (bit % 8);
        assert!(open(&other, &body().id, &vector).is_err(), "room id bit {bit}");
    }
}
