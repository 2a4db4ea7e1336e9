//! Known-answer vectors for spec v1, published as `docs/vectors.json` for every implementation
//! to test against, and computed by an independent one (`tools/crypto_vectors.py`: Python's
//! hashlib and the `cryptography` package), which checks that file too.
//!
//! Published vectors are never changed. The constants below pin them as they were published;
//! the tests check this code against the published file, and the file against the constants,
//! so a drift of either fails.

use serde::Deserialize;

use super::at_rest::ServerKey;
use super::code::RoomCode;
use super::ids::{MessageId, SenderId};
use super::keys::RoomKeys;
use super::message::{open, padded_len, seal_with_nonce, Body, SealedPayload, MESSAGE_AAD_LABEL};
use super::primitives::{aes256gcm_open, aes256gcm_seal, NONCE_LEN};

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
pub const SERVER_KEY: &str = "404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f";
pub const AT_REST_NONCE: &str = "606162636465666768696a6b";
pub const KEY_ID: &str = "74";
pub const ROOM_HASH: &str = "97501b8776620aa01452ab6ed071754e0f2f65732315c1c26a7f73fb8e834b25";
pub const STORED: &str =
    "74606162636465666768696a6bf2a90615c7ed696048ed21b6285729670f6ddf343df3bfb2481f6924c4bc4bc1635441\
     d390f8ad20814cb8b751a0c51c7adafc0ee50de943ad16fcfbc42cb754e320de8e5b0b35cc3e3954c32d9f25fe3d9790\
     d4a6fa48b2c180eaddb419418b982a8a61d580b2fdd9e82f45d44377e4f1335c31ecc3b135e960eda24830c74ae9513b\
     a7490aa336b2c4b3ab34fc8ba9e37d5d3dc0b82c355cf9e3337ba60f1e40a9da43d4a1caa3368089aeed9c8071ff7262\
     0293900041154f6435eba80c474085b451e8ad62f2021943e32ad777eb153def2e0f850ae14c01a4997e99a39297a70d\
     86630c5a2c2cdaf1de58bec38dfdcacabe1e4fb4809b6a529a05d9be0f84a6735bb8518d166cd97369723d7c934d9bea\
     d3dd2d25282a16f7d469e3c2f8714cfdb180a444456862978970";

/// The published file, byte for byte as other implementations read it.
const PUBLISHED: &str = include_str!("../../../docs/vectors.json");

/// `docs/vectors.json`. Unknown fields are refused, so every value published is one pinned here.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Published {
    /// What the file is, for people: not a vector.
    #[serde(rename = "about")]
    _about: String,
    room: RoomVectors,
    message: MessageVectors,
    at_rest: AtRestVectors,
}

/// Room codes and the key schedule.
#[derive(Deserialize, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
struct RoomVectors {
    entropy: String,
    code: String,
    ikm: String,
    room_id: String,
    message_key: String,
    fingerprint: String,
}

/// One message sealed under the room's key.
#[derive(Deserialize, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
struct MessageVectors {
    message_id: String,
    sender: String,
    text: String,
    sent_at: u64,
    nonce: String,
    body: String,
    sealed: String,
}

/// That sealed message stored by the relay's at-rest layer.
#[derive(Deserialize, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
struct AtRestVectors {
    server_key: String,
    nonce: String,
    key_id: String,
    room_hash: String,
    stored: String,
}

fn published() -> Published {
    serde_json::from_str(PUBLISHED).expect("docs/vectors.json is the JSON this module reads")
}

fn unhex<const N: usize>(s: &str) -> [u8; N] {
    hex::decode(s).unwrap().try_into().unwrap()
}

/// The published message's body and the keys it is sealed under (from the published ikm).
fn published_message() -> (RoomKeys, Body, MessageVectors) {
    let Published { room, message, .. } = published();
    let keys = RoomKeys::from_ikm(&unhex(&room.ikm));
    let body = Body {
        id: MessageId(unhex(&message.message_id)),
        sender: SenderId(unhex(&message.sender)),
        text: message.text.clone(),
        sent_at: message.sent_at,
        file: None,
        chosen: Default::default(),
    };
    (keys, body, message)
}

/// Seals `json` as a body by hand (the spec's padding, AAD and framing), so a test can seal
/// bodies that [`seal_with_nonce`] would never write.
fn seal_json(keys: &RoomKeys, id: &MessageId, json: &str) -> SealedPayload {
    let mut padded = json.as_bytes().to_vec();
    padded.push(0x80);
    padded.resize(padded_len(json.len()), 0);
    let nonce = [7u8; NONCE_LEN];
    let aad = [MESSAGE_AAD_LABEL, &[1], &keys.room_id.0, &id.0].concat();
    let ciphertext = aes256gcm_seal(keys.message_key(), &nonce, &padded, &aad);
    SealedPayload::from_bytes([&[1u8][..], &nonce, &ciphertext].concat()).unwrap()
}

#[test]
fn the_published_file_holds_exactly_the_pinned_vectors() {
    let published = published();
    let room = RoomVectors {
        entropy: ENTROPY.into(),
        code: CODE.into(),
        ikm: IKM.into(),
        room_id: ROOM_ID.into(),
        message_key: MESSAGE_KEY.into(),
        fingerprint: FINGERPRINT.into(),
    };
    let message = MessageVectors {
        message_id: MESSAGE_ID.into(),
        sender: SENDER.into(),
        text: TEXT.into(),
        sent_at: SENT_AT,
        nonce: NONCE.into(),
        body: BODY.into(),
        sealed: SEALED.into(),
    };
    let at_rest = AtRestVectors {
        server_key: SERVER_KEY.into(),
        nonce: AT_REST_NONCE.into(),
        key_id: KEY_ID.into(),
        room_hash: ROOM_HASH.into(),
        stored: STORED.into(),
    };
    assert_eq!(published.room, room);
    assert_eq!(published.message, message);
    assert_eq!(published.at_rest, at_rest);
}

#[test]
fn the_code_and_its_check_symbol_match_the_vector() {
    let room = published().room;
    assert_eq!(RoomCode::from_entropy(&unhex(&room.entropy)).canonical(), room.code);
}

#[test]
fn the_key_schedule_matches_the_vector() {
    let room = published().room;
    let keys = RoomKeys::derive(&RoomCode::parse(&room.code).unwrap());
    let from_ikm = RoomKeys::from_ikm(&unhex(&room.ikm));
    assert!(keys.same_room(&from_ikm));
    assert_eq!(keys.room_id.to_hex(), room.room_id);
    assert_eq!(hex::encode(keys.message_key()), room.message_key);
    assert_eq!(keys.fingerprint.display(), room.fingerprint);
}

#[test]
fn the_pbkdf2_password_is_the_25_canonical_symbols_however_the_code_was_typed() {
    // Grouped, lower case, `O` for `0`: the same 25 upper-case symbols, the same keys.
    let room = published().room;
    let typed = RoomCode::parse("000g4-0r40m-3oe2o-9185g-r38ew").unwrap();
    assert_eq!(typed.canonical(), room.code);
    assert_eq!(RoomKeys::derive(&typed).room_id.to_hex(), room.room_id);
}

#[test]
fn sealing_matches_the_vector_and_opens_to_its_body() {
    let (keys, body, message) = published_message();
    let sealed = seal_with_nonce(&keys, &body, &unhex(&message.nonce)).unwrap();
    assert_eq!(hex::encode(sealed.as_bytes()), message.sealed);
    let vector = SealedPayload::from_bytes(hex::decode(&message.sealed).unwrap()).unwrap();
    assert_eq!(open(&keys, &body.id, &vector), Ok(body));
}

#[test]
fn the_vector_body_is_the_exact_json_sealed() {
    // The plaintext JSON, byte for byte: what another client must produce and accept.
    let (keys, body, message) = published_message();
    let vector = hex::decode(&message.sealed).unwrap();
    let nonce: [u8; NONCE_LEN] = vector[1..1 + NONCE_LEN].try_into().unwrap();
    let aad = [MESSAGE_AAD_LABEL, &[1], &keys.room_id.0, &body.id.0].concat();
    let padded = aes256gcm_open(keys.message_key(), &nonce, &vector[1 + NONCE_LEN..], &aad).unwrap();
    let json = message.body.as_bytes();
    assert_eq!(&padded[..json.len()], json);
    assert_eq!(padded[json.len()], 0x80);
    assert!(padded[json.len() + 1..].iter().all(|&b| b == 0));
}

#[test]
fn flipping_any_bit_of_room_id_or_message_id_fails_to_open() {
    let (keys, body, message) = published_message();
    let vector = SealedPayload::from_bytes(hex::decode(&message.sealed).unwrap()).unwrap();
    for bit in 0..128 {
        let mut id = body.id;
        id.0[bit / 8] ^= 1 << (bit % 8);
        assert!(open(&keys, &id, &vector).is_err(), "message id bit {bit}");
    }
    for bit in 0..256 {
        // A different room id means a different room: derive one whose room id differs.
        let mut other = keys.clone();
        other.room_id.0[bit / 8] ^= 1 << (bit % 8);
        assert!(open(&other, &body.id, &vector).is_err(), "room id bit {bit}");
    }
}

#[test]
fn a_body_that_repeats_a_key_fails_to_open() {
    // Parsers that keep the first and parsers that keep the last of a repeated key would read
    // two different messages from one ciphertext: a repeated key is refused instead.
    let (keys, body, message) = published_message();
    let fields = [
        ("id", format!(r#""{}""#, message.message_id)),
        ("sender", format!(r#""{}""#, message.sender)),
        ("text", r#""hello""#.to_owned()),
        ("sent_at", message.sent_at.to_string()),
    ];
    let json = |repeat: Option<(&str, &str)>| {
        let mut members: Vec<String> = fields.iter().map(|(key, value)| format!(r#""{key}":{value}"#)).collect();
        if let Some((key, value)) = repeat {
            members.push(format!(r#""{key}":{value}"#));
        }
        format!("{{{}}}", members.join(","))
    };
    // The same construction without a repeat opens: the refusals below are the repeats'.
    assert_eq!(open(&keys, &body.id, &seal_json(&keys, &body.id, &json(None))).map(|b| b.text), Ok("hello".into()));
    for (key, value) in &fields {
        let same = json(Some((key, value)));
        assert!(open(&keys, &body.id, &seal_json(&keys, &body.id, &same)).is_err(), "{same}");
    }
    let other_text = json(Some(("text", r#""goodbye""#)));
    assert!(open(&keys, &body.id, &seal_json(&keys, &body.id, &other_text)).is_err(), "{other_text}");
}

#[test]
fn the_at_rest_layer_matches_the_vector_and_opens_back() {
    let Published { room, message, at_rest, .. } = published();
    let key = ServerKey::from_hex(&at_rest.server_key).unwrap();
    assert_eq!(format!("{:02x}", key.id()), at_rest.key_id);
    let room_id = super::keys::RoomId::parse(&room.room_id).unwrap();
    assert_eq!(hex::encode(room_id.storage_hash()), at_rest.room_hash);
    let id = MessageId(unhex(&message.message_id));
    let sealed = SealedPayload::from_bytes(hex::decode(&message.sealed).unwrap()).unwrap();
    let stored = key.seal_with_nonce(&room_id.storage_hash(), &id, &sealed, &unhex(&at_rest.nonce));
    assert_eq!(hex::encode(&stored), at_rest.stored);
    assert_eq!(key.open(&room_id.storage_hash(), &id, &stored), Ok(sealed));
}

#[test]
fn a_body_that_is_an_array_fails_to_open() {
    // serde reads a struct from a JSON array too; the spec's body is an object.
    let (keys, body, message) = published_message();
    let array = format!(r#"["{}","{}","hello",{}]"#, message.message_id, message.sender, message.sent_at);
    assert!(open(&keys, &body.id, &seal_json(&keys, &body.id, &array)).is_err(), "{array}");
}

/// The file vectors (spec v2), published as `docs/vectors-file.json` beside the v1 file, which
/// stays as it was.
mod file {
    use serde::Deserialize;

    use super::super::at_rest::ServerKey;
    use super::super::file::{chunk_nonce, FileCipher, SEALED_CHUNK_LEN};
    use super::super::ids::{FileId, MessageId, SenderId};
    use super::super::keys::RoomKeys;
    use super::super::message::{open, seal_with_nonce, Body, FileCard, SealedPayload};
    use super::super::primitives::sha256;
    use super::{published, unhex, MESSAGE_KEY, ROOM_ID, SERVER_KEY};

    const PUBLISHED: &str = include_str!("../../../docs/vectors-file.json");
    /// The file as it was published, pinned whole: a change to any byte of it fails.
    const PUBLISHED_SHA256: &str = "bd87e7de1675c2d75332532bb842f1396f69f9f89ddc1c6f51459a7b5e0d0654";

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Published {
        #[serde(rename = "about")]
        _about: String,
        room: Room,
        card: Card,
        chunks: Chunks,
        at_rest: AtRest,
    }

    /// The room a vector file names (the v1 room): shared with the body vectors.
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub(super) struct Room {
        pub(super) room_id: String,
        pub(super) message_key: String,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Card {
        message_id: String,
        sender: String,
        text: String,
        sent_at: u64,
        nonce: String,
        file: File,
        body: String,
        sealed: String,
    }

    /// A card's `file` as a vector file gives it: shared with the body vectors.
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub(super) struct File {
        id: String,
        name: String,
        #[serde(rename = "type")]
        mime: String,
        size: u64,
        pub(super) chunks: u32,
    }

    impl File {
        pub(super) fn card(&self) -> FileCard {
            FileCard {
                id: FileId(unhex(&self.id)),
                name: self.name.clone(),
                mime: self.mime.clone(),
                size: self.size,
                chunks: self.chunks,
            }
        }
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Chunks {
        #[serde(rename = "content")]
        _content: String,
        file_key: String,
        aad: String,
        nonces: Vec<String>,
        sealed_sha256: Vec<String>,
        tags: Vec<String>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct AtRest {
        server_key: String,
        nonce: String,
        index: u32,
        stored_len: usize,
        stored_head: String,
        stored_sha256: String,
    }

    fn vectors() -> Published {
        serde_json::from_str(PUBLISHED).expect("docs/vectors-file.json is the JSON this module reads")
    }

    /// The v1 room, from its published ikm: the file vectors live in it.
    fn room() -> RoomKeys {
        RoomKeys::from_ikm(&unhex(&published().room.ikm))
    }

    /// The content rule of the vectors: byte i is i mod 251.
    fn content(size: u64) -> Vec<u8> {
        (0..size).map(|i| (i % 251) as u8).collect()
    }

    fn card_body(v: &Published) -> Body {
        Body {
            id: MessageId(unhex(&v.card.message_id)),
            sender: SenderId(unhex(&v.card.sender)),
            text: v.card.text.clone(),
            sent_at: v.card.sent_at,
            file: Some(v.card.file.card()),
            chosen: Default::default(),
        }
    }

    #[test]
    fn the_published_file_vectors_are_the_pinned_ones() {
        assert_eq!(hex::encode(sha256(&[PUBLISHED.as_bytes()])), PUBLISHED_SHA256);
    }

    #[test]
    fn the_file_vectors_live_in_the_published_room_under_the_published_server_key() {
        let v = vectors();
        assert_eq!((v.room.room_id.as_str(), v.room.message_key.as_str()), (ROOM_ID, MESSAGE_KEY));
        assert_eq!(v.at_rest.server_key, SERVER_KEY);
    }

    #[test]
    fn the_card_seals_to_the_vector_and_opens_to_its_file() {
        let v = vectors();
        let keys = room();
        let body = card_body(&v);
        let sealed = seal_with_nonce(&keys, &body, &unhex(&v.card.nonce)).unwrap();
        assert_eq!(hex::encode(sealed.as_bytes()), v.card.sealed);
        let vector = SealedPayload::from_bytes(hex::decode(&v.card.sealed).unwrap()).unwrap();
        assert_eq!(open(&keys, &body.id, &vector), Ok(body));
        // The body sealed is the published JSON, byte for byte (as the v1 vector's is).
        assert!(v.card.body.contains(r#""file":{"id":"c0c1"#) && v.card.body.ends_with(r#""chunks":2}}"#));
    }

    #[test]
    fn the_chunks_seal_to_the_vectors_and_open_to_the_content() {
        let v = vectors();
        let keys = room();
        let id = MessageId(unhex(&v.card.message_id));
        let cipher = FileCipher::new(&keys, &FileId(unhex(&v.card.file.id)), &id, v.card.file.chunks);
        assert_eq!(hex::encode(cipher.key()), v.chunks.file_key);
        assert_eq!(hex::encode(cipher.aad()), v.chunks.aad);
        let bytes = content(v.card.file.size);
        let mut opened = Vec::new();
        for index in 0..v.card.file.chunks {
            let i = index as usize;
            assert_eq!(hex::encode(chunk_nonce(index, cipher.chunks())), v.chunks.nonces[i]);
            let chunk = cipher.seal_chunk(&bytes, index);
            assert_eq!(chunk.len(), SEALED_CHUNK_LEN);
            assert_eq!(hex::encode(sha256(&[&chunk])), v.chunks.sealed_sha256[i], "chunk {index}");
            assert_eq!(hex::encode(&chunk[chunk.len() - 16..]), v.chunks.tags[i], "chunk {index}");
            opened.extend_from_slice(&cipher.open_chunk(index, &chunk).unwrap());
        }
        assert_eq!(&opened[..bytes.len()], &bytes[..]);
        assert_eq!(v.chunks.nonces.len(), v.card.file.chunks as usize);
    }

    #[test]
    fn a_chunk_at_rest_matches_the_vector_and_opens_back() {
        let v = vectors();
        let keys = room();
        let id = MessageId(unhex(&v.card.message_id));
        let cipher = FileCipher::new(&keys, &FileId(unhex(&v.card.file.id)), &id, v.card.file.chunks);
        let chunk = cipher.seal_chunk(&content(v.card.file.size), v.at_rest.index);
        let key = ServerKey::from_hex(&v.at_rest.server_key).unwrap();
        let room_hash = keys.room_id.storage_hash();
        let stored = key.seal_chunk_with_nonce(&room_hash, &id, v.at_rest.index, &chunk, &unhex(&v.at_rest.nonce));
        assert_eq!(stored.len(), v.at_rest.stored_len);
        assert_eq!(hex::encode(&stored[..13]), v.at_rest.stored_head);
        assert_eq!(hex::encode(sha256(&[&stored])), v.at_rest.stored_sha256);
        assert_eq!(key.open_chunk(&room_hash, &id, v.at_rest.index, &stored), Ok(chunk));
    }
}

/// The vectors of a body's optional keys (`name`, `ttl`, `view`: docs/vectors-body.json), in the
/// v1 room: a message carrying all three, a file card carrying a name, and bodies a reader must
/// refuse.
mod body_keys {
    use serde::Deserialize;

    use super::super::ids::{MessageId, SenderId};
    use super::super::keys::RoomKeys;
    use super::super::message::{open, seal_with_nonce, Body, Chosen, SealedPayload};
    use super::super::primitives::{aes256gcm_open, sha256, NONCE_LEN};
    use super::super::OpenError;
    use super::file::{File, Room};
    use super::{published, seal_json, unhex, MESSAGE_AAD_LABEL, MESSAGE_KEY, ROOM_ID};

    const PUBLISHED: &str = include_str!("../../../docs/vectors-body.json");
    /// The file as it was published, pinned whole: a change to any byte of it fails.
    const PUBLISHED_SHA256: &str = "8c86093d8e70f8d6a50dcdff7d1e3d6bf9da48efab5983531d804eaee4477938";

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Published {
        #[serde(rename = "about")]
        _about: String,
        room: Room,
        inputs: Inputs,
        body: String,
        sealed: String,
        card: Card,
        refused: Vec<Refused>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Inputs {
        message_id: String,
        sender: String,
        text: String,
        sent_at: u64,
        name: String,
        ttl: u32,
        view: u32,
        nonce: String,
    }

    /// The file card of docs/vectors-file.json with a name.
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Card {
        message_id: String,
        sender: String,
        text: String,
        sent_at: u64,
        nonce: String,
        file: File,
        name: String,
        body: String,
        sealed: String,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Refused {
        why: String,
        body: String,
    }

    fn vectors() -> Published {
        serde_json::from_str(PUBLISHED).expect("docs/vectors-body.json is the JSON this module reads")
    }

    fn room() -> RoomKeys {
        RoomKeys::from_ikm(&unhex(&published().room.ikm))
    }

    #[test]
    fn the_published_body_vectors_are_the_pinned_ones_in_the_published_room() {
        assert_eq!(hex::encode(sha256(&[PUBLISHED.as_bytes()])), PUBLISHED_SHA256);
        let v = vectors();
        assert_eq!((v.room.room_id.as_str(), v.room.message_key.as_str()), (ROOM_ID, MESSAGE_KEY));
    }

    #[test]
    fn a_message_with_a_name_and_lifetimes_seals_to_the_vector_and_opens_to_them() {
        let v = vectors();
        let keys = room();
        let body = Body {
            id: MessageId(unhex(&v.inputs.message_id)),
            sender: SenderId(unhex(&v.inputs.sender)),
            text: v.inputs.text.clone(),
            sent_at: v.inputs.sent_at,
            file: None,
            chosen: Chosen { name: Some(v.inputs.name.clone()), ttl: Some(v.inputs.ttl), view: Some(v.inputs.view) },
        };
        let sealed = seal_with_nonce(&keys, &body, &unhex(&v.inputs.nonce)).unwrap();
        assert_eq!(hex::encode(sealed.as_bytes()), v.sealed);
        let padded = aes256gcm_open(
            keys.message_key(),
            &unhex(&v.inputs.nonce),
            &sealed.as_bytes()[1 + NONCE_LEN..],
            &[MESSAGE_AAD_LABEL, &[1], &keys.room_id.0, &body.id.0].concat(),
        )
        .unwrap();
        assert_eq!(&padded[..v.body.len()], v.body.as_bytes(), "the body sealed is the published JSON");
        let vector = SealedPayload::from_bytes(hex::decode(&v.sealed).unwrap()).unwrap();
        assert_eq!(open(&keys, &body.id, &vector), Ok(body));
    }

    #[test]
    fn a_file_card_with_a_name_seals_to_the_vector() {
        let v = vectors();
        let keys = room();
        let body = Body {
            id: MessageId(unhex(&v.card.message_id)),
            sender: SenderId(unhex(&v.card.sender)),
            text: v.card.text.clone(),
            sent_at: v.card.sent_at,
            file: Some(v.card.file.card()),
            chosen: Chosen { name: Some(v.card.name.clone()), ..Chosen::default() },
        };
        let sealed = seal_with_nonce(&keys, &body, &unhex(&v.card.nonce)).unwrap();
        assert_eq!(hex::encode(sealed.as_bytes()), v.card.sealed);
        assert_eq!(v.card.file.chunks, 2);
        assert!(v.card.body.ends_with(r#""chunks":2},"name":"Ana Lúcia"}"#), "the name comes after the file");
        assert_eq!(open(&keys, &body.id, &sealed), Ok(body));
    }

    #[test]
    fn every_refused_body_fails_to_open() {
        let v = vectors();
        let keys = room();
        let id = MessageId(unhex(&v.inputs.message_id));
        assert!(v.refused.len() >= 14);
        for refused in &v.refused {
            assert_eq!(open(&keys, &id, &seal_json(&keys, &id, &refused.body)), Err(OpenError), "{}", refused.why);
        }
    }
}
