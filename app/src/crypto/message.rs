//! Messages in spec v1: the body, its padding, and the sealed payload that crosses the wire.
//!
//! ```text
//! body   = {"id": hex(message_id), "sender": hex(sender), "text": …, "sent_at": ms}
//! padded = body || 0x80 || 0x00…   (length 256 × ceil((len(body) + 1) / 256))
//! aad    = "ephemeral-chat/v1/message" || 0x01 || room_id || message_id
//! sealed = 0x01 || nonce(12) || AES-256-GCM(message_key, nonce, padded, aad)
//! ```

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::keys::{parse_lower_hex, RoomKeys};
use super::primitives::{aes256gcm_open, aes256gcm_seal, NONCE_LEN, TAG_LEN};
use super::random_bytes;

/// The format version byte that starts every sealed payload.
pub const VERSION: u8 = 0x01;
/// Domain label of the message AAD.
pub const MESSAGE_AAD_LABEL: &[u8] = b"ephemeral-chat/v1/message";
/// Padding block: lengths leak only in steps of this many bytes.
pub const PAD_BLOCK: usize = 256;
/// Largest body in bytes (padded, it fills 16 KiB exactly).
pub const MAX_BODY_LEN: usize = 16_383;
/// Bytes a sealed payload adds to the padded body: version, nonce, tag.
pub const SEAL_OVERHEAD: usize = 1 + NONCE_LEN + TAG_LEN;
/// Smallest valid sealed payload (one padding block).
pub const MIN_SEALED_LEN: usize = SEAL_OVERHEAD + PAD_BLOCK;
/// Largest valid sealed payload (16 KiB of padded body).
pub const MAX_SEALED_LEN: usize = SEAL_OVERHEAD + MAX_BODY_LEN + 1;

/// A message's 16 random bytes, chosen by its sender; hex on the wire.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageId(pub [u8; 16]);

impl MessageId {
    /// A fresh id from the CSPRNG.
    pub fn generate() -> Self {
        Self(random_bytes())
    }

    /// Parses 32 lower-case hex characters.
    pub fn parse(hex_str: &str) -> Option<Self> {
        parse_lower_hex(hex_str).map(Self)
    }

    /// Lower-case hex, as sent on the wire.
    pub fn to_hex(self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Debug for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MessageId(<redacted>)")
    }
}

/// A page session's 8 random bytes, inside every body it seals, so it can drop its reflections.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct SenderId(pub [u8; 8]);

impl SenderId {
    /// A fresh sender id from the CSPRNG.
    pub fn generate() -> Self {
        Self(random_bytes())
    }
}

/// The plaintext of a message, once opened.
#[derive(Clone, PartialEq, Eq)]
pub struct Body {
    pub id: MessageId,
    pub sender: SenderId,
    pub text: String,
    pub sent_at: u64,
}

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Body(<redacted>)")
    }
}

/// The JSON form of [`Body`]: field order is the spec's.
#[derive(Serialize, Deserialize)]
struct WireBody {
    id: String,
    sender: String,
    text: String,
    sent_at: u64,
}

/// A sealed payload whose length is one spec v1 allows. The server handles only these bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedPayload(Vec<u8>);

/// Why a sealed payload was refused before any decryption.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    #[error("sealed payload is not base64url without padding")]
    Encoding,
    #[error("sealed payload has a length spec v1 does not allow")]
    Size,
    #[error("sealed payload has an unknown version")]
    Version,
}

impl SealedPayload {
    /// Accepts raw bytes that have a valid version and length.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, PayloadError> {
        let len = bytes.len();
        if !(MIN_SEALED_LEN..=MAX_SEALED_LEN).contains(&len) || !(len - SEAL_OVERHEAD).is_multiple_of(PAD_BLOCK) {
            return Err(PayloadError::Size);
        }
        if bytes[0] != VERSION {
            return Err(PayloadError::Version);
        }
        Ok(Self(bytes))
    }

    /// Decodes base64url without padding (the wire form), then checks as [`Self::from_bytes`].
    pub fn from_base64(text: &str) -> Result<Self, PayloadError> {
        // Refuse before decoding anything larger than the largest payload could encode to.
        if text.len() > MAX_SEALED_LEN.div_ceil(3) * 4 {
            return Err(PayloadError::Size);
        }
        let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|_| PayloadError::Encoding)?;
        Self::from_bytes(bytes)
    }

    /// The wire form: base64url without padding.
    pub fn to_base64(&self) -> String {
        URL_SAFE_NO_PAD.encode(&self.0)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Length of the padded plaintext inside: the message's size class.
    pub fn padded_len(&self) -> usize {
        self.0.len() - SEAL_OVERHEAD
    }
}

impl fmt::Debug for SealedPayload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SealedPayload({} bytes)", self.0.len())
    }
}

/// Every way opening can fail, as one opaque error: no oracle for an attacker to query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("could not be decrypted")]
pub struct OpenError;

/// Why a message could not be sealed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("message is too long")]
pub struct TooLong;

/// The AAD binding a payload to its room and its id.
fn aad(keys: &RoomKeys, id: &MessageId) -> Vec<u8> {
    [MESSAGE_AAD_LABEL, &[VERSION], &keys.room_id.0, &id.0].concat()
}

/// Padded length for a body of `body_len` bytes.
pub fn padded_len(body_len: usize) -> usize {
    PAD_BLOCK * (body_len + 1).div_ceil(PAD_BLOCK)
}

/// Seals `body` for the room with a fresh nonce.
pub fn seal(keys: &RoomKeys, body: &Body) -> Result<SealedPayload, TooLong> {
    seal_with_nonce(keys, body, &random_bytes())
}

/// Seals with a given nonce. Only for known-answer tests: a nonce must never repeat under a key.
pub fn seal_with_nonce(keys: &RoomKeys, body: &Body, nonce: &[u8; NONCE_LEN]) -> Result<SealedPayload, TooLong> {
    let wire = WireBody {
        id: body.id.to_hex(),
        sender: hex::encode(body.sender.0),
        text: body.text.clone(),
        sent_at: body.sent_at,
    };
    let json = Zeroizing::new(serde_json::to_vec(&wire).expect("invariant: a struct of strings serializes"));
    drop(Zeroizing::new(wire.text)); // wipe this copy of the text
    if json.len() > MAX_BODY_LEN {
        return Err(TooLong);
    }
    let mut padded = Zeroizing::new(Vec::with_capacity(padded_len(json.len())));
    padded.extend_from_slice(&json);
    padded.push(0x80);
    padded.resize(padded_len(json.len()), 0);
    let ciphertext = aes256gcm_seal(keys.message_key(), nonce, &padded, &aad(keys, &body.id));
    let sealed = [&[VERSION][..], nonce, &ciphertext].concat();
    Ok(SealedPayload::from_bytes(sealed).expect("invariant: padding yields a valid length"))
}

/// Opens a payload received for `id`: version, authentication, padding, JSON, and that the body
/// names the same id. Every failure is the same [`OpenError`].
pub fn open(keys: &RoomKeys, id: &MessageId, sealed: &SealedPayload) -> Result<Body, OpenError> {
    let bytes = sealed.as_bytes();
    if bytes[0] != VERSION {
        return Err(OpenError);
    }
    let nonce: &[u8; NONCE_LEN] = bytes[1..1 + NONCE_LEN].try_into().map_err(|_| OpenError)?;
    let padded = aes256gcm_open(keys.message_key(), nonce, &bytes[1 + NONCE_LEN..], &aad(keys, id)).ok_or(OpenError)?;
    let end = padded.iter().rposition(|&b| b != 0).ok_or(OpenError)?;
    if padded[end] != 0x80 || padded.len() != padded_len(end) {
        return Err(OpenError);
    }
    // A JSON object, not the array serde would also take for a struct.
    if padded[..end].iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(OpenError);
    }
    let wire: WireBody = serde_json::from_slice(&padded[..end]).map_err(|_| OpenError)?;
    let body_id = MessageId::parse(&wire.id).ok_or(OpenError)?;
    let sender = parse_lower_hex(&wire.sender).map(SenderId).ok_or(OpenError)?;
    if body_id != *id {
        return Err(OpenError);
    }
    Ok(Body { id: body_id, sender, text: wire.text, sent_at: wire.sent_at })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> RoomKeys {
        RoomKeys::from_ikm(&[9; 32])
    }

    fn body(text: &str) -> Body {
        Body { id: MessageId([3; 16]), sender: SenderId([4; 8]), text: text.into(), sent_at: 1_700_000_000_000 }
    }

    #[test]
    fn a_sealed_message_opens_to_its_body() {
        let b = body("hello from A");
        let sealed = seal(&keys(), &b).unwrap();
        assert_eq!(open(&keys(), &b.id, &sealed), Ok(b));
    }

    #[test]
    fn sealed_lengths_leak_only_the_256_byte_class() {
        let short = seal(&keys(), &body("a")).unwrap();
        let longer = seal(&keys(), &body(&"a".repeat(150))).unwrap();
        assert_eq!(short.as_bytes().len(), MIN_SEALED_LEN);
        assert_eq!(longer.as_bytes().len(), MIN_SEALED_LEN);
    }

    #[test]
    fn the_largest_body_fills_16_kib_and_one_more_byte_is_refused() {
        let empty_len = serde_json::to_vec(&WireBody {
            id: "0".repeat(32),
            sender: "0".repeat(16),
            text: String::new(),
            sent_at: 1_700_000_000_000,
        })
        .unwrap()
        .len();
        let max = body(&"x".repeat(MAX_BODY_LEN - empty_len));
        assert_eq!(seal(&keys(), &max).unwrap().as_bytes().len(), MAX_SEALED_LEN);
        let over = body(&"x".repeat(MAX_BODY_LEN - empty_len + 1));
        assert_eq!(seal(&keys(), &over), Err(TooLong));
    }

    #[test]
    fn the_wrong_room_or_id_fails_to_open() {
        let b = body("secret");
        let sealed = seal(&keys(), &b).unwrap();
        assert_eq!(open(&RoomKeys::from_ikm(&[8; 32]), &b.id, &sealed), Err(OpenError));
        assert_eq!(open(&keys(), &MessageId([5; 16]), &sealed), Err(OpenError));
    }

    #[test]
    fn every_flipped_bit_fails_to_open() {
        let b = body("flip me");
        let sealed = seal(&keys(), &b).unwrap();
        for i in 0..sealed.as_bytes().len() * 8 {
            let mut bytes = sealed.as_bytes().to_vec();
            bytes[i / 8] ^= 1 << (i % 8);
            let flipped = SealedPayload(bytes);
            assert_eq!(open(&keys(), &b.id, &flipped), Err(OpenError), "bit {i}");
        }
    }

    #[test]
    fn a_flipped_version_bit_is_refused() {
        let sealed = seal(&keys(), &body("v")).unwrap();
        for bit in 0..8 {
            let mut bytes = sealed.as_bytes().to_vec();
            bytes[0] ^= 1 << bit;
            assert_eq!(SealedPayload::from_bytes(bytes), Err(PayloadError::Version));
        }
    }

    #[test]
    fn a_body_naming_another_id_fails_to_open() {
        let mut b = body("swap");
        let other = MessageId([6; 16]);
        b.id = other;
        let sealed_for_other = seal(&keys(), &b).unwrap();
        // Sealed with the other id as AAD too: only the body check could differ, so re-seal by hand.
        let k = keys();
        let json = br#"{"id":"06060606060606060606060606060606","sender":"0404040404040404","text":"x","sent_at":1}"#;
        let mut padded = json.to_vec();
        padded.push(0x80);
        padded.resize(PAD_BLOCK, 0);
        let nonce = [0u8; NONCE_LEN];
        let id = MessageId([3; 16]);
        let ct = aes256gcm_seal(k.message_key(), &nonce, &padded, &aad(&k, &id));
        let sealed = SealedPayload::from_bytes([&[VERSION][..], &nonce, &ct].concat()).unwrap();
        assert_eq!(open(&k, &id, &sealed), Err(OpenError));
        assert!(open(&k, &other, &sealed_for_other).is_ok());
    }

    #[test]
    fn bad_padding_fails_to_open() {
        let k = keys();
        let id = MessageId([3; 16]);
        let json = br#"{"id":"03030303030303030303030303030303","sender":"0404040404040404","text":"x","sent_at":1}"#;
        let nonce = [0u8; NONCE_LEN];
        let attempt = |padded: Vec<u8>| {
            let ct = aes256gcm_seal(k.message_key(), &nonce, &padded, &aad(&k, &id));
            let sealed = SealedPayload::from_bytes([&[VERSION][..], &nonce, &ct].concat()).unwrap();
            open(&k, &id, &sealed)
        };
        let mut good = json.to_vec();
        good.push(0x80);
        good.resize(PAD_BLOCK, 0);
        assert!(attempt(good.clone()).is_ok());
        let mut no_marker = json.to_vec();
        no_marker.resize(PAD_BLOCK, 0);
        assert_eq!(attempt(no_marker), Err(OpenError));
        let mut too_long = json.to_vec();
        too_long.push(0x80);
        too_long.resize(2 * PAD_BLOCK, 0);
        assert_eq!(attempt(too_long), Err(OpenError));
        assert_eq!(attempt(vec![0; PAD_BLOCK]), Err(OpenError));
    }

    #[test]
    fn payload_sizes_outside_the_spec_are_refused() {
        assert_eq!(SealedPayload::from_bytes(vec![VERSION; MIN_SEALED_LEN - 1]), Err(PayloadError::Size));
        assert_eq!(SealedPayload::from_bytes(vec![VERSION; MIN_SEALED_LEN + 1]), Err(PayloadError::Size));
        assert_eq!(SealedPayload::from_bytes(vec![VERSION; MAX_SEALED_LEN + PAD_BLOCK]), Err(PayloadError::Size));
        assert!(SealedPayload::from_bytes(vec![VERSION; MAX_SEALED_LEN]).is_ok());
        assert_eq!(SealedPayload::from_base64("not base64!"), Err(PayloadError::Encoding));
        assert_eq!(SealedPayload::from_base64(&"A".repeat(30_000)), Err(PayloadError::Size));
    }
}
