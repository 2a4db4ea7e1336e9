//! Messages in spec v1: the body, its padding, and the sealed payload that crosses the wire.
//!
//! ```text
//! body   = {"id": hex(message_id), "sender": hex(sender), "text": …, "sent_at": ms,
//!           ["name": …], ["ttl": s], ["view": s]}
//! padded = body || 0x80 || 0x00…   (length 256 × ceil((len(body) + 1) / 256))
//! aad    = "ephemeral-chat/v1/message" || 0x01 || room_id || message_id
//! sealed = 0x01 || nonce(12) || AES-256-GCM(message_key, nonce, padded, aad)
//! ```

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::file::chunks_for;
use super::ids::{FileId, MessageId, SenderId};
use super::keys::{parse_lower_hex, RoomKeys};
use super::primitives::{aes256gcm_open, aes256gcm_seal, OpenError, NONCE_LEN, TAG_LEN};
use super::random_bytes;

/// The format version byte that starts every sealed text message.
pub const VERSION: u8 = 0x01;
/// The version byte of a sealed file card: a message whose body names a file sealed in chunks
/// stored beside it (spec v2, [`super::file`]). An older reader refuses it rather than show an
/// empty message and burn a file it cannot open.
pub const VERSION_FILE: u8 = 0x02;
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

/// The plaintext of a message, once opened.
#[derive(Clone, PartialEq, Eq)]
pub struct Body {
    pub id: MessageId,
    pub sender: SenderId,
    pub text: String,
    pub sent_at: u64,
    /// The file a card announces (version 2); `None` for a text message.
    pub file: Option<FileCard>,
    /// What the sender chose for it: a name to show, its lifetimes.
    pub chosen: Chosen,
}

/// Longest display name, in Unicode scalar values.
pub const MAX_NAME_CHARS: usize = 64;
/// Longest unread lifetime a body may state, in seconds: 7 days, every relay's ceiling.
pub const MAX_TTL_SECONDS: u32 = 7 * 24 * 3600;
/// Longest on-screen time a body may ask for, in seconds.
pub const MAX_VIEW_SECONDS: u32 = 3600;

/// What the sender of a message chose for it, all of it inside the ciphertext, and every part
/// optional: an older reader ignores them as unknown keys, and a body without them is today's
/// message (no name, the relay's lifetime, 10 s on screen).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Chosen {
    /// The sender's display name: a label anyone in the room could choose, not an identity.
    pub name: Option<String>,
    /// How long it may wait unread, in seconds (1 to [`MAX_TTL_SECONDS`]): the relay is told the
    /// same, and a page does not show it later than that.
    pub ttl: Option<u32>,
    /// How long it stays on screen once opened, in seconds (1 to [`MAX_VIEW_SECONDS`]).
    pub view: Option<u32>,
}

impl fmt::Debug for Chosen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Chosen")
            .field("name", &self.name.as_ref().map(|_| "<redacted>"))
            .field("ttl", &self.ttl)
            .field("view", &self.view)
            .finish()
    }
}

impl Chosen {
    /// Whether every part is one the spec allows.
    pub fn is_valid(&self) -> bool {
        self.name.as_deref().is_none_or(is_valid_name)
            && self.ttl.is_none_or(|ttl| (1..=MAX_TTL_SECONDS).contains(&ttl))
            && self.view.is_none_or(|view| (1..=MAX_VIEW_SECONDS).contains(&view))
    }
}

/// A display name the spec allows: 1 to [`MAX_NAME_CHARS`] characters, none a control character.
pub fn is_valid_name(name: &str) -> bool {
    let count = name.chars().count();
    (1..=MAX_NAME_CHARS).contains(&count) && !name.chars().any(char::is_control)
}

/// What a file card says of its file: all of it inside the ciphertext, none of it seen by the
/// relay but the chunk count, which it learns from the upload anyway.
#[derive(Clone, PartialEq, Eq)]
pub struct FileCard {
    pub id: FileId,
    /// The name the sender gave it (for the download; never used as a path).
    pub name: String,
    /// Its media type as the sender's browser named it, or empty.
    pub mime: String,
    /// Its length in bytes, before padding.
    pub size: u64,
    /// How many chunks it is sealed in: [`chunks_for`] of `size`.
    pub chunks: u32,
}

impl FileCard {
    /// A card for a file of `size` bytes with a fresh id; `None` if no chunk count can hold it.
    pub fn new(name: &str, mime: &str, size: u64) -> Option<Self> {
        Some(Self {
            id: FileId::generate(),
            name: name.to_owned(),
            mime: mime.to_owned(),
            size,
            chunks: chunks_for(size)?,
        })
    }
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    file: Option<WireFile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ttl: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    view: Option<u32>,
}

/// The JSON form of [`FileCard`], in the spec's order.
#[derive(Serialize, Deserialize)]
struct WireFile {
    id: String,
    name: String,
    #[serde(rename = "type")]
    mime: String,
    size: u64,
    chunks: u32,
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
        if bytes[0] != VERSION && bytes[0] != VERSION_FILE {
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

    /// Whether it is a file card (version 2): a message with chunks stored beside it.
    pub fn is_file_card(&self) -> bool {
        self.0[0] == VERSION_FILE
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

/// Why a message could not be sealed: its body is longer than the spec allows, or states a
/// choice the spec does not allow (a name too long, a lifetime out of range), which no reader
/// would open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("message is too long")]
pub struct TooLong;

/// The AAD binding a payload to its version, its room and its id.
fn aad(keys: &RoomKeys, id: &MessageId, version: u8) -> Vec<u8> {
    [MESSAGE_AAD_LABEL, &[version], &keys.room_id.0, &id.0].concat()
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
        file: body.file.as_ref().map(|file| WireFile {
            id: hex::encode(file.id.0),
            name: file.name.clone(),
            mime: file.mime.clone(),
            size: file.size,
            chunks: file.chunks,
        }),
        name: body.chosen.name.clone(),
        ttl: body.chosen.ttl,
        view: body.chosen.view,
    };
    let json = Zeroizing::new(serde_json::to_vec(&wire).expect("invariant: a struct of strings serializes"));
    drop(Zeroizing::new(wire.text)); // wipe this copy of the text
    if json.len() > MAX_BODY_LEN || !body.chosen.is_valid() {
        return Err(TooLong);
    }
    let mut padded = Zeroizing::new(Vec::with_capacity(padded_len(json.len())));
    padded.extend_from_slice(&json);
    padded.push(0x80);
    padded.resize(padded_len(json.len()), 0);
    let version = if body.file.is_some() { VERSION_FILE } else { VERSION };
    let ciphertext = aes256gcm_seal(keys.message_key(), nonce, &padded, &aad(keys, &body.id, version));
    let sealed = [&[version][..], nonce, &ciphertext].concat();
    Ok(SealedPayload::from_bytes(sealed).expect("invariant: padding yields a valid length"))
}

/// Opens a payload received for `id`: version, authentication, padding, JSON, and that the body
/// names the same id. Every failure is the same [`OpenError`].
pub fn open(keys: &RoomKeys, id: &MessageId, sealed: &SealedPayload) -> Result<Body, OpenError> {
    let bytes = sealed.as_bytes();
    let version = bytes[0];
    if version != VERSION && version != VERSION_FILE {
        return Err(OpenError);
    }
    let nonce: &[u8; NONCE_LEN] = bytes[1..1 + NONCE_LEN].try_into().map_err(|_| OpenError)?;
    let padded =
        aes256gcm_open(keys.message_key(), nonce, &bytes[1 + NONCE_LEN..], &aad(keys, id, version)).ok_or(OpenError)?;
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
    // A version 1 body's `file` is an unknown key, ignored; a version 2 body must name its file.
    let file = match (version, wire.file) {
        (VERSION_FILE, Some(file)) => Some(open_file_card(file)?),
        (VERSION_FILE, None) => return Err(OpenError),
        _ => None,
    };
    let chosen = Chosen { name: wire.name, ttl: wire.ttl, view: wire.view };
    if !chosen.is_valid() {
        return Err(OpenError);
    }
    Ok(Body { id: body_id, sender, text: wire.text, sent_at: wire.sent_at, file, chosen })
}

/// A card's file as the spec allows it: a 64-hex-character id, and a chunk count that is the
/// size's class.
fn open_file_card(file: WireFile) -> Result<FileCard, OpenError> {
    let id = parse_lower_hex(&file.id).map(FileId).ok_or(OpenError)?;
    if chunks_for(file.size) != Some(file.chunks) {
        return Err(OpenError);
    }
    Ok(FileCard { id, name: file.name, mime: file.mime, size: file.size, chunks: file.chunks })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> RoomKeys {
        RoomKeys::from_ikm(&[9; 32])
    }

    fn body(text: &str) -> Body {
        Body {
            id: MessageId([3; 16]),
            sender: SenderId([4; 8]),
            text: text.into(),
            sent_at: 1_700_000_000_000,
            file: None,
            chosen: Chosen::default(),
        }
    }

    #[test]
    fn a_sealed_message_opens_to_its_body() {
        let b = body("hello from A");
        let sealed = seal(&keys(), &b).unwrap();
        assert_eq!(open(&keys(), &b.id, &sealed), Ok(b));
    }

    #[test]
    fn the_senders_choices_travel_inside_and_out_of_range_ones_are_not_sealed() {
        let mut b = body("with a name");
        b.chosen = Chosen { name: Some("Ana Lúcia".into()), ttl: Some(3600), view: Some(30) };
        let sealed = seal(&keys(), &b).unwrap();
        assert_eq!(open(&keys(), &b.id, &sealed), Ok(b.clone()));
        for chosen in [
            Chosen { name: Some(String::new()), ..Chosen::default() },
            Chosen { name: Some("x".repeat(MAX_NAME_CHARS + 1)), ..Chosen::default() },
            Chosen { name: Some("bell\u{7}".into()), ..Chosen::default() },
            Chosen { ttl: Some(0), ..Chosen::default() },
            Chosen { ttl: Some(MAX_TTL_SECONDS + 1), ..Chosen::default() },
            Chosen { view: Some(0), ..Chosen::default() },
            Chosen { view: Some(MAX_VIEW_SECONDS + 1), ..Chosen::default() },
        ] {
            b.chosen = chosen;
            assert_eq!(seal(&keys(), &b), Err(TooLong));
        }
        assert!(is_valid_name(&"é".repeat(MAX_NAME_CHARS)), "counted in characters, not bytes");
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
            file: None,
            name: None,
            ttl: None,
            view: None,
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
        let ct = aes256gcm_seal(k.message_key(), &nonce, &padded, &aad(&k, &id, VERSION));
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
            let ct = aes256gcm_seal(k.message_key(), &nonce, &padded, &aad(&k, &id, VERSION));
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

    fn card(size: u64) -> Body {
        let mut b = body("a caption");
        b.file = Some(FileCard {
            id: FileId([7; 32]),
            name: "scan \"ID\".png".into(),
            mime: "image/png".into(),
            size,
            chunks: chunks_for(size).unwrap(),
        });
        b
    }

    /// Seals `json` as a payload of `version` by hand: what a writer of the spec never makes.
    fn seal_json(json: &str, version: u8) -> SealedPayload {
        let k = keys();
        let mut padded = json.as_bytes().to_vec();
        padded.push(0x80);
        padded.resize(padded_len(json.len()), 0);
        let nonce = [0u8; NONCE_LEN];
        let ct = aes256gcm_seal(k.message_key(), &nonce, &padded, &aad(&k, &MessageId([3; 16]), version));
        SealedPayload::from_bytes([&[version][..], &nonce, &ct].concat()).unwrap()
    }

    #[test]
    fn a_file_card_is_version_2_and_opens_to_its_file() {
        let b = card(1_234_567);
        let sealed = seal(&keys(), &b).unwrap();
        assert_eq!(sealed.as_bytes()[0], VERSION_FILE);
        assert!(sealed.is_file_card());
        assert_eq!(open(&keys(), &b.id, &sealed), Ok(b.clone()));
        // The version is authenticated: the same bytes under version 1 do not open.
        let mut as_v1 = sealed.as_bytes().to_vec();
        as_v1[0] = VERSION;
        assert_eq!(open(&keys(), &b.id, &SealedPayload::from_bytes(as_v1).unwrap()), Err(OpenError));
        assert!(!seal(&keys(), &body("text")).unwrap().is_file_card());
    }

    #[test]
    fn a_card_must_name_a_well_formed_file_and_a_text_message_never_does() {
        let head = r#"{"id":"03030303030303030303030303030303","sender":"0404040404040404","text":"","sent_at":1"#;
        let file = |id: &str, size: u64, chunks: u32| {
            format!(r#","file":{{"id":"{id}","name":"a","type":"","size":{size},"chunks":{chunks}}}}}"#)
        };
        let good_id = "07".repeat(32);
        assert!(
            open(&keys(), &MessageId([3; 16]), &seal_json(&(head.to_owned() + &file(&good_id, 70_000, 2)), 2)).is_ok()
        );
        for (why, json) in [
            ("no file", format!("{head}}}")),
            ("a count that is not the size's class", head.to_owned() + &file(&good_id, 70_000, 3)),
            ("an id of the wrong length", head.to_owned() + &file(&"07".repeat(16), 70_000, 2)),
            ("an upper-case id", head.to_owned() + &file(&"0A".repeat(32), 70_000, 2)),
            ("a repeated key", head.to_owned() + &file(&good_id, 70_000, 2).replace(r#""size""#, r#""size":1,"size""#)),
        ] {
            assert_eq!(open(&keys(), &MessageId([3; 16]), &seal_json(&json, 2)), Err(OpenError), "{why}");
        }
        // In a version 1 body, `file` is an unknown key: ignored, and the message is text.
        let text = open(&keys(), &MessageId([3; 16]), &seal_json(&(head.to_owned() + &file(&good_id, 70_000, 2)), 1));
        assert_eq!(text.map(|b| b.file.is_none()), Ok(true));
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
