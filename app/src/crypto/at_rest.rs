//! The relay's at-rest layer (the second layer of `docs/CRYPTO.md`, "The server's at-rest
//! layer"): a second AES-256-GCM seal over the client's sealed payload, so a copy of the database
//! alone reveals nothing, not even the client ciphertext.
//!
//! ```text
//! key_id = SHA-256("ephemeral-chat/v1/at-rest-key-id" || server_key)[0]
//! k      = HKDF-SHA256(server_key, info = "ephemeral-chat/v1/at-rest" || message_id, 32)
//! stored = key_id || nonce(12) || AES-256-GCM(k, nonce, sealed, aad = key_id || message_id || room_hash)
//! ```
//! A file's chunk (spec v2) is stored the same way under its message's key, its index after the
//! AAD: `aad = key_id || message_id || room_hash || index (4 bytes, big-endian)`, so a chunk can
//! be neither read as the message nor moved to another index.
//!
//! `room_hash` is `SHA-256(room_id)` ([`RoomId::storage_hash`](super::RoomId::storage_hash)),
//! the only form of the room id the server keeps.
//!
//! It lives here rather than in the server so that it builds without Leptos: the fuzz targets
//! reach it with `app`'s default features, and the relay uses it through `server::at_rest`.

use std::fmt;

use zeroize::Zeroizing;

use super::primitives::{aes256gcm_open, aes256gcm_seal, hkdf_sha256, sha256, NONCE_LEN};
use super::{random_bytes, MessageId, SealedPayload};

/// Domain label of the key id.
pub const KEY_ID_LABEL: &[u8] = b"ephemeral-chat/v1/at-rest-key-id";
/// HKDF info prefix of the per-message key.
pub const AT_REST_INFO: &[u8] = b"ephemeral-chat/v1/at-rest";

/// Why a key was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("must be 64 hex characters (32 bytes), e.g. from `openssl rand -hex 32`")]
    Malformed,
    #[error("has the same key id byte as ENCRYPTION_KEY (the same key, or a 1-in-256 clash): generate another key")]
    SameId,
}

/// Why a stored record could not be opened. Opaque: the record is unusable either way.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AtRestError {
    /// Sealed under a key this server does not hold (rotated away).
    #[error("stored message was sealed under an unknown key")]
    UnknownKey,
    /// Corrupt, truncated or tampered with.
    #[error("stored message failed authentication")]
    Corrupt,
}

/// The server's 32-byte at-rest key, with its one-byte id.
#[derive(Clone)]
pub struct ServerKey {
    key: Zeroizing<[u8; 32]>,
    id: u8,
}

impl ServerKey {
    /// Parses 64 hex characters (either case).
    pub fn from_hex(hex_str: &str) -> Result<Self, KeyError> {
        let mut key = Zeroizing::new([0u8; 32]);
        if hex_str.len() != 64 {
            return Err(KeyError::Malformed);
        }
        hex::decode_to_slice(hex_str, key.as_mut()).map_err(|_| KeyError::Malformed)?;
        Ok(Self::from_bytes(key))
    }

    /// A fresh random key.
    pub fn generate() -> Self {
        Self::from_bytes(Zeroizing::new(random_bytes()))
    }

    fn from_bytes(key: Zeroizing<[u8; 32]>) -> Self {
        let id = sha256(&[KEY_ID_LABEL, key.as_ref()])[0];
        Self { key, id }
    }

    /// Lower-case hex, for writing a generated key to its file.
    pub fn to_hex(&self) -> Zeroizing<String> {
        Zeroizing::new(hex::encode(self.key.as_ref()))
    }

    /// The key id byte that starts every record sealed under this key.
    pub fn id(&self) -> u8 {
        self.id
    }

    /// A key for another of the relay's own uses, derived under `label` (HKDF-SHA256): never the
    /// at-rest key itself, and no other label's.
    pub fn subkey(&self, label: &[u8]) -> Zeroizing<[u8; 32]> {
        let mut k = Zeroizing::new([0u8; 32]);
        hkdf_sha256(self.key.as_ref(), &[label], k.as_mut());
        k
    }

    fn message_key(&self, id: &MessageId) -> Zeroizing<[u8; 32]> {
        let mut k = Zeroizing::new([0u8; 32]);
        hkdf_sha256(self.key.as_ref(), &[AT_REST_INFO, &id.0], k.as_mut());
        k
    }

    fn aad(&self, id: &MessageId, room_hash: &[u8; 32]) -> Vec<u8> {
        [&[self.id][..], &id.0, room_hash].concat()
    }

    /// A chunk's AAD: the message's, then the chunk's index.
    fn chunk_aad(&self, id: &MessageId, room_hash: &[u8; 32], index: u32) -> Vec<u8> {
        [self.aad(id, room_hash), index.to_be_bytes().to_vec()].concat()
    }

    /// `key_id || nonce || AES-256-GCM(k, nonce, plain, aad)` under message `id`'s key.
    fn seal_record(&self, id: &MessageId, plain: &[u8], aad: &[u8], nonce: &[u8; NONCE_LEN]) -> Vec<u8> {
        let ct = aes256gcm_seal(&self.message_key(id), nonce, plain, aad);
        [&[self.id][..], nonce, &ct].concat()
    }

    /// The inverse of [`Self::seal_record`].
    fn open_record(&self, id: &MessageId, stored: &[u8], aad: &[u8]) -> Result<Zeroizing<Vec<u8>>, AtRestError> {
        let (&key_id, rest) = stored.split_first().ok_or(AtRestError::Corrupt)?;
        if key_id != self.id {
            return Err(AtRestError::UnknownKey);
        }
        let (nonce, ct) = rest.split_at_checked(NONCE_LEN).ok_or(AtRestError::Corrupt)?;
        let nonce: &[u8; NONCE_LEN] = nonce.try_into().map_err(|_| AtRestError::Corrupt)?;
        aes256gcm_open(&self.message_key(id), nonce, ct, aad).ok_or(AtRestError::Corrupt)
    }

    /// Seals a client payload for storage.
    pub fn seal(&self, room_hash: &[u8; 32], id: &MessageId, sealed: &SealedPayload) -> Vec<u8> {
        self.seal_with_nonce(room_hash, id, sealed, &random_bytes())
    }

    /// Seals with a given nonce. Only for known-answer tests.
    pub fn seal_with_nonce(
        &self,
        room_hash: &[u8; 32],
        id: &MessageId,
        sealed: &SealedPayload,
        nonce: &[u8; NONCE_LEN],
    ) -> Vec<u8> {
        self.seal_record(id, sealed.as_bytes(), &self.aad(id, room_hash), nonce)
    }

    /// Seals chunk `index` of a file (a client's sealed chunk) for storage.
    pub fn seal_chunk(&self, room_hash: &[u8; 32], id: &MessageId, index: u32, chunk: &[u8]) -> Vec<u8> {
        self.seal_chunk_with_nonce(room_hash, id, index, chunk, &random_bytes())
    }

    /// Seals a chunk with a given nonce. Only for known-answer tests.
    pub fn seal_chunk_with_nonce(
        &self,
        room_hash: &[u8; 32],
        id: &MessageId,
        index: u32,
        chunk: &[u8],
        nonce: &[u8; NONCE_LEN],
    ) -> Vec<u8> {
        self.seal_record(id, chunk, &self.chunk_aad(id, room_hash, index), nonce)
    }

    /// Opens a stored chunk back into the client's sealed chunk.
    pub fn open_chunk(
        &self,
        room_hash: &[u8; 32],
        id: &MessageId,
        index: u32,
        stored: &[u8],
    ) -> Result<Vec<u8>, AtRestError> {
        // Not secret to the relay (it is the client's ciphertext): no need to keep it wiped.
        self.open_record(id, stored, &self.chunk_aad(id, room_hash, index)).map(|plain| plain.to_vec())
    }

    /// Opens a stored record back into the client's sealed payload.
    pub fn open(&self, room_hash: &[u8; 32], id: &MessageId, stored: &[u8]) -> Result<SealedPayload, AtRestError> {
        let plain = self.open_record(id, stored, &self.aad(id, room_hash))?;
        SealedPayload::from_bytes(plain.to_vec()).map_err(|_| AtRestError::Corrupt)
    }
}

/// The keys a server holds: the current one seals; it and the previous one (during a rotation)
/// open, picked by the record's key id byte.
#[derive(Clone, Debug)]
pub struct KeyRing {
    current: ServerKey,
    previous: Option<ServerKey>,
}

impl KeyRing {
    /// A ring; refuses a previous key whose id byte equals the current one's (1 in 256 for two
    /// random keys, or the same key twice), since records could then not say which key sealed them.
    pub fn new(current: ServerKey, previous: Option<ServerKey>) -> Result<Self, KeyError> {
        if previous.as_ref().is_some_and(|p| p.id == current.id) {
            return Err(KeyError::SameId);
        }
        Ok(Self { current, previous })
    }

    /// The key that seals new records.
    pub fn current(&self) -> &ServerKey {
        &self.current
    }

    /// The previous key during a rotation, else the current one: the key every instance of a
    /// rolling rotation's first step still holds (those not yet restarted hold it as current).
    pub fn oldest(&self) -> &ServerKey {
        self.previous.as_ref().unwrap_or(&self.current)
    }

    /// Seals under the current key.
    pub fn seal(&self, room_hash: &[u8; 32], id: &MessageId, sealed: &SealedPayload) -> Vec<u8> {
        self.current.seal(room_hash, id, sealed)
    }

    /// Seals a file's chunk under the current key.
    pub fn seal_chunk(&self, room_hash: &[u8; 32], id: &MessageId, index: u32, chunk: &[u8]) -> Vec<u8> {
        self.current.seal_chunk(room_hash, id, index, chunk)
    }

    /// The held key a stored record names by its first byte (the current one if none does: it
    /// then fails to open as sealed under an unknown key).
    fn key_for(&self, stored: &[u8]) -> &ServerKey {
        match (stored.first(), &self.previous) {
            (Some(&key_id), Some(previous)) if key_id == previous.id => previous,
            _ => &self.current,
        }
    }

    /// Opens a stored chunk with whichever held key it names.
    pub fn open_chunk(
        &self,
        room_hash: &[u8; 32],
        id: &MessageId,
        index: u32,
        stored: &[u8],
    ) -> Result<Vec<u8>, AtRestError> {
        self.key_for(stored).open_chunk(room_hash, id, index, stored)
    }

    /// Opens with whichever held key the record names.
    pub fn open(&self, room_hash: &[u8; 32], id: &MessageId, stored: &[u8]) -> Result<SealedPayload, AtRestError> {
        self.key_for(stored).open(room_hash, id, stored)
    }
}

impl fmt::Debug for ServerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ServerKey(id {:#04x})", self.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload() -> SealedPayload {
        SealedPayload::from_bytes([&[1u8][..], &[0x5a; 284]].concat()).unwrap()
    }

    #[test]
    fn a_stored_record_opens_to_the_client_payload() {
        let key = ServerKey::generate();
        let room = [1u8; 32];
        let id = MessageId([2; 16]);
        let stored = key.seal(&room, &id, &payload());
        assert_eq!(stored[0], key.id());
        assert_eq!(key.open(&room, &id, &stored), Ok(payload()));
    }

    #[test]
    fn a_stored_chunk_opens_only_as_that_chunk_of_that_message() {
        let key = ServerKey::generate();
        let (room, id) = ([1u8; 32], MessageId([2; 16]));
        let chunk = vec![0x33; 1000];
        let stored = key.seal_chunk(&room, &id, 4, &chunk);
        assert_eq!(key.open_chunk(&room, &id, 4, &stored), Ok(chunk));
        assert_eq!(key.open_chunk(&room, &id, 5, &stored), Err(AtRestError::Corrupt));
        assert_eq!(key.open_chunk(&room, &MessageId([3; 16]), 4, &stored), Err(AtRestError::Corrupt));
        assert_eq!(key.open_chunk(&[2u8; 32], &id, 4, &stored), Err(AtRestError::Corrupt));
        assert_eq!(key.open(&room, &id, &stored), Err(AtRestError::Corrupt), "read as the message");
        let other = ServerKey::generate();
        let expected = if other.id() == key.id() { AtRestError::Corrupt } else { AtRestError::UnknownKey };
        assert_eq!(other.open_chunk(&room, &id, 4, &stored), Err(expected));
    }

    #[test]
    fn the_stored_bytes_do_not_contain_the_client_payload() {
        let key = ServerKey::generate();
        let stored = key.seal(&[1u8; 32], &MessageId([2; 16]), &payload());
        let client = payload();
        let needle = &client.as_bytes()[1..33];
        assert!(!stored.windows(needle.len()).any(|w| w == needle));
    }

    #[test]
    fn another_room_id_or_key_fails_to_open() {
        let key = ServerKey::generate();
        let id = MessageId([2; 16]);
        let stored = key.seal(&[1u8; 32], &id, &payload());
        assert_eq!(key.open(&[9u8; 32], &id, &stored), Err(AtRestError::Corrupt));
        assert_eq!(key.open(&[1u8; 32], &MessageId([3; 16]), &stored), Err(AtRestError::Corrupt));
        let mut other = ServerKey::generate();
        other.id = key.id; // same id byte, different key: still refused
        assert_eq!(other.open(&[1u8; 32], &id, &stored), Err(AtRestError::Corrupt));
    }

    #[test]
    fn every_flipped_bit_fails_to_open() {
        let key = ServerKey::generate();
        let (room, id) = ([1u8; 32], MessageId([2; 16]));
        let stored = key.seal(&room, &id, &payload());
        for i in 0..stored.len() * 8 {
            let mut bytes = stored.clone();
            bytes[i / 8] ^= 1 << (i % 8);
            assert!(key.open(&room, &id, &bytes).is_err(), "bit {i}");
        }
        assert_eq!(key.open(&room, &id, &[]), Err(AtRestError::Corrupt));
        assert_eq!(key.open(&room, &id, &stored[..5]), Err(AtRestError::Corrupt));
    }

    #[test]
    fn a_ring_opens_records_of_its_previous_key_and_seals_with_the_current() {
        let (old, new) = distinct_keys();
        let (room, id) = ([1u8; 32], MessageId([2; 16]));
        let old_record = old.seal(&room, &id, &payload());
        let ring = KeyRing::new(new.clone(), Some(old.clone())).unwrap();
        assert_eq!(ring.open(&room, &id, &old_record), Ok(payload()));
        let new_record = ring.seal(&room, &id, &payload());
        assert_eq!(new_record[0], new.id());
        assert_eq!(ring.open(&room, &id, &new_record), Ok(payload()));
        let without_old = KeyRing::new(new, None).unwrap();
        assert_eq!(without_old.open(&room, &id, &old_record), Err(AtRestError::UnknownKey));
    }

    #[test]
    fn a_previous_key_with_the_same_id_is_refused() {
        let key = ServerKey::generate();
        assert_eq!(KeyRing::new(key.clone(), Some(key)).unwrap_err(), KeyError::SameId);
    }

    fn distinct_keys() -> (ServerKey, ServerKey) {
        let old = ServerKey::generate();
        loop {
            let new = ServerKey::generate();
            if new.id() != old.id() {
                return (old, new);
            }
        }
    }

    #[test]
    fn malformed_keys_are_refused() {
        assert_eq!(ServerKey::from_hex("ab").unwrap_err(), KeyError::Malformed);
        assert!(ServerKey::from_hex(&"g".repeat(64)).is_err());
        assert!(ServerKey::from_hex(&"AB".repeat(32)).is_ok());
    }

    /// Computed by tools/crypto_vectors.py (Python `cryptography`); never changed.
    #[test]
    fn sealing_matches_the_independent_vector() {
        let key = ServerKey::from_hex("404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f").unwrap();
        assert_eq!(key.id(), 0x74);
        let room: [u8; 32] = hex::decode("97501b8776620aa01452ab6ed071754e0f2f65732315c1c26a7f73fb8e834b25")
            .unwrap()
            .try_into()
            .unwrap();
        let id = MessageId(hex::decode("101112131415161718191a1b1c1d1e1f").unwrap().try_into().unwrap());
        let sealed = SealedPayload::from_bytes(
            hex::decode(
                "01303132333435363738393a3b40b680d2964330aad0c48d555f8069190014bb6987e49303fc57561885f3a33cd92eda\
             dab1b9e7fb4ccbec1a45982114aed93d8ec90452c1637331c2325b6feb6113e6ba88c648ec0cc571846d03e443f2ec5e\
             108dea7b65606e37f8bcc63aab6b0b488e4029182e5f66c547b89d8ff742dfce539fb7e4e7c23dad8a91edbaa3a70eef\
             f6b1ede0725a7ca2172802b3da64215a3249c382cca0637f6fe2caef92137fe796a8281014d79e2cc2c3559d7001a43b\
             194f842413a1a55573431299504c0240a56d68f91fc45a3781ab1c1fc6706edced71a017bfef4abfb3d696977739c0b7\
             342be11e2e5a90165b03bb2cbf3551556ad6211ce72c2e119f400da190154c17e012c3900596ca58117557254d",
            )
            .unwrap(),
        )
        .unwrap();
        let stored = key.seal_with_nonce(
            &room,
            &id,
            &sealed,
            &hex::decode("606162636465666768696a6b").unwrap().try_into().unwrap(),
        );
        // The published vector (pinned once, in `vectors.rs`, and in docs/vectors.json).
        assert_eq!(hex::encode(&stored), crate::crypto::vectors::STORED);
        assert_eq!(key.open(&room, &id, &stored), Ok(sealed));
    }
}
