//! The key schedule of spec v1: one PBKDF2 from the room code, then cheap derivations.
//!
//! ```text
//! ikm         = PBKDF2-HMAC-SHA256(code, "ephemeral-chat/v1/pbkdf2", 600000, 32)
//! room_id     = SHA-256("ephemeral-chat/v1/room-id" || ikm)          (shown to the server)
//! message_key = HKDF-SHA256(ikm, info = "ephemeral-chat/v1/message-key", 32)
//! fingerprint = HKDF-SHA256(ikm, info = "ephemeral-chat/v1/fingerprint", 5)
//! ```

use std::fmt;

use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::code::{group, RoomCode, ALPHABET};
use super::primitives::{hkdf_sha256, pbkdf2_sha256, sha256};

/// PBKDF2 salt: a fixed domain label (the code itself carries 120 bits of entropy).
pub const PBKDF2_SALT: &[u8] = b"ephemeral-chat/v1/pbkdf2";
/// PBKDF2 iterations: OWASP's 2023 figure for PBKDF2-HMAC-SHA256.
pub const PBKDF2_ITERATIONS: u32 = 600_000;
/// Domain label of the room id hash.
pub const ROOM_ID_LABEL: &[u8] = b"ephemeral-chat/v1/room-id";
/// HKDF info of the message key.
pub const MESSAGE_KEY_INFO: &[u8] = b"ephemeral-chat/v1/message-key";
/// HKDF info of the fingerprint.
pub const FINGERPRINT_INFO: &[u8] = b"ephemeral-chat/v1/fingerprint";

/// The room's public name: what the server sees instead of the code. 32 bytes, hex on the wire.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct RoomId(pub [u8; 32]);

impl RoomId {
    /// Parses 64 lower-case hex characters.
    pub fn parse(hex_str: &str) -> Option<Self> {
        parse_lower_hex(hex_str).map(Self)
    }

    /// Lower-case hex, as sent on the wire.
    pub fn to_hex(self) -> String {
        hex::encode(self.0)
    }

    /// `SHA-256(room_id)`: the only form of the room id the server stores.
    pub fn storage_hash(&self) -> [u8; 32] {
        sha256(&[&self.0])
    }
}

impl fmt::Debug for RoomId {
    // Room ids identify a conversation: keep them out of logs and panic messages.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RoomId(<redacted>)")
    }
}

/// Parses exactly `2 × N` lower-case hex characters.
pub(crate) fn parse_lower_hex<const N: usize>(s: &str) -> Option<[u8; N]> {
    if s.len() != 2 * N || !s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let mut out = [0u8; N];
    hex::decode_to_slice(s, &mut out).ok()?;
    Some(out)
}

/// Eight symbols people read to each other to confirm they hold the same code.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Fingerprint([u8; 5]);

impl Fingerprint {
    /// 40 bits big-endian as 8 alphabet symbols, shown as two groups of four.
    pub fn display(&self) -> String {
        let value = self.0.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
        let symbols: String =
            (0..8).rev().map(|i| char::from(ALPHABET[((value >> (5 * i)) & 0x1f) as usize])).collect();
        group(&symbols, 4)
    }
}

/// Everything a client derives from a room code.
#[derive(Clone)]
pub struct RoomKeys {
    pub room_id: RoomId,
    message_key: Zeroizing<[u8; 32]>,
    pub fingerprint: Fingerprint,
}

impl RoomKeys {
    /// Runs the key schedule (one PBKDF2 of 600,000 iterations: the slow part of joining).
    pub fn derive(code: &RoomCode) -> Self {
        let ikm = pbkdf2_sha256(code.canonical().as_bytes(), PBKDF2_SALT, PBKDF2_ITERATIONS);
        Self::from_ikm(&ikm)
    }

    /// The cheap half of the schedule, from the PBKDF2 output.
    pub fn from_ikm(ikm: &[u8; 32]) -> Self {
        let room_id = RoomId(sha256(&[ROOM_ID_LABEL, ikm]));
        let mut message_key = Zeroizing::new([0u8; 32]);
        hkdf_sha256(ikm, &[MESSAGE_KEY_INFO], message_key.as_mut());
        let mut fingerprint = [0u8; 5];
        hkdf_sha256(ikm, &[FINGERPRINT_INFO], &mut fingerprint);
        Self { room_id, message_key, fingerprint: Fingerprint(fingerprint) }
    }

    /// The AES-256-GCM key of the room's messages.
    pub(crate) fn message_key(&self) -> &[u8; 32] {
        &self.message_key
    }

    /// Constant-time comparison of two schedules' secrets.
    pub fn same_room(&self, other: &Self) -> bool {
        self.message_key.as_slice().ct_eq(other.message_key.as_slice()).into()
    }
}

impl fmt::Debug for RoomKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RoomKeys(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_are_two_groups_of_four_alphabet_symbols() {
        let fp = Fingerprint([0xff, 0, 0xff, 0, 0x0f]).display();
        assert_eq!(fp.len(), 9);
        assert_eq!(fp.as_bytes()[4], b'-');
        assert!(fp.bytes().filter(|&b| b != b'-').all(|b| ALPHABET.contains(&b)));
        assert_eq!(Fingerprint([0; 5]).display(), "0000-0000");
        assert_eq!(Fingerprint([0xff; 5]).display(), "ZZZZ-ZZZZ");
    }

    #[test]
    fn room_ids_parse_only_lower_hex_of_the_right_length() {
        let id = RoomId([0xab; 32]);
        assert_eq!(RoomId::parse(&id.to_hex()), Some(id));
        assert_eq!(RoomId::parse(&id.to_hex().to_uppercase()), None);
        assert_eq!(RoomId::parse(&id.to_hex()[2..]), None);
        assert_eq!(RoomId::parse(&format!("{}00", id.to_hex())), None);
        assert_eq!(RoomId::parse(&"zz".repeat(32)), None);
    }

    #[test]
    fn different_ikm_gives_a_different_room() {
        let a = RoomKeys::from_ikm(&[1; 32]);
        let b = RoomKeys::from_ikm(&[2; 32]);
        assert!(!a.same_room(&b));
        assert!(a.same_room(&a.clone()));
        assert_ne!(a.room_id, b.room_id);
    }
}
