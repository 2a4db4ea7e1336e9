//! The WebSocket wire protocol: JSON text frames, one object each, tagged by `"type"`.
//!
//! `docs/PROTOCOL.md` is the reference; these types are its executable form. Ids and payloads
//! travel as strings and are validated by the receiver into [`crate::crypto`] newtypes, so that
//! each malformed value gets its own error code.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Path of the WebSocket endpoint.
pub const WS_PATH: &str = "/ws";

/// A frame from a client to the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientFrame {
    /// Enter a room. Must be the first frame, and is allowed once. `session` is 32 hex
    /// characters the page picked at random and keeps in memory: rejoining with it (within the
    /// server's grace period) is the same participant.
    Join { room_id: String, session: String },
    /// Store a sealed message and notify the room. `ttl`: how long it may wait unread, in
    /// seconds, at most the relay's `MESSAGE_TTL` (absent: that TTL). Only to a relay that lists
    /// [`FEATURE_TTL`]; an older relay refuses the field as `bad_frame`.
    Send {
        message_id: String,
        sealed: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ttl: Option<u32>,
    },
    /// Ask for a waiting message's sealed payload. Never destructive.
    Fetch { message_id: String },
    /// Confirm a fetched message was opened and shown: the server deletes it.
    Viewed { message_id: String },
    /// The sender started (`true`) or stopped (`false`) typing.
    Typing { active: bool },
    /// Begin uploading a file of `chunks` sealed chunks for the file card `message_id` (spec v2):
    /// its chunks follow as binary frames ([`binary`]), then the card as a `send`.
    Upload { message_id: String, chunks: u32 },
}

/// A frame from the server to a client.
///
/// Clients read these leniently, so that a page pinned to an older bundle keeps working with a
/// newer relay: a frame of an unknown type is [`ServerFrame::Unknown`] (ignored), unknown fields
/// are ignored, and an unknown error code is [`ErrorCode::Unknown`] (shown with its `message`).
/// Fields added later carry `#[serde(default)]`, so a newer page still reads an older relay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    /// The join succeeded: how many are here (this client included), the messages waiting, and
    /// what this relay accepts. A relay older than `limits` sends none: [`RelayLimits::default`]
    /// is what every relay accepts.
    Joined {
        participants: u32,
        pending: Vec<String>,
        #[serde(default)]
        limits: RelayLimits,
        /// The chunk count of each pending message that is a file card (as `message.chunks`);
        /// absent when none is.
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        files: BTreeMap<String, u32>,
    },
    /// A message this client sent is stored and the room was told.
    Sent { message_id: String },
    /// A message waits for this client. Carries no payload: fetch it to read it. `chunks` is
    /// its file's chunk count when it is a file card (absent for text): the padded size the
    /// relay stores, so the sealed card can say how large a file waits.
    Message {
        message_id: String,
        #[serde(default, skip_serializing_if = "is_zero")]
        chunks: u32,
    },
    /// The sealed payload of a fetched message, the server's at-rest layer removed.
    Payload { message_id: String, sealed: String },
    /// A message was viewed by everyone who had to, and its row deleted.
    Deleted { message_id: String },
    /// `viewed` of the `of` recipients of a message have viewed it; it waits for the others.
    Receipt { message_id: String, viewed: u32, of: u32 },
    /// A message expired unread and its row was deleted.
    Expired { message_id: String },
    /// The number of connected participants changed.
    Presence { participants: u32 },
    /// Someone else in the room started or stopped typing.
    Typing { active: bool },
    /// `chunks` chunks of this client's upload `message_id` are stored (0: the upload may begin).
    Uploaded { message_id: String, chunks: u32 },
    /// A frame was refused. The connection stays open unless the code says otherwise.
    /// `message_id` names the message the refused frame was about (`send`, `fetch`, `viewed`),
    /// when it had a well-formed one.
    Error {
        code: ErrorCode,
        message: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message_id: Option<String>,
    },
    /// A frame type this client does not know (from a newer relay): ignored. Never sent.
    #[serde(other)]
    Unknown,
}

/// What a relay accepts, stated in `joined` so a page never offers what its relay cannot do.
/// Every field has a default (what every relay of protocol 1 accepts), so a newer page reads an
/// older relay, and unknown fields from a newer relay are ignored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RelayLimits {
    /// Largest message, in bytes of padded plaintext (a multiple of 256, at most 16384).
    pub max_message: u32,
    /// How long an unread message waits before the relay deletes it, in seconds (its
    /// `MESSAGE_TTL`); 0 when the relay did not say.
    pub message_ttl: u64,
    /// Optional protocol features this relay offers, by name ([`FEATURE_FILES`]); a page uses a
    /// feature only when its relay lists it, and ignores names it does not know.
    pub features: Vec<String>,
    /// Largest file, in bytes of padded plaintext (chunks × 65536); 0 when the relay takes no
    /// files (or did not say).
    pub max_file: u64,
}

impl Default for RelayLimits {
    fn default() -> Self {
        Self { max_message: 16_384, message_ttl: 0, features: Vec::new(), max_file: 0 }
    }
}

// serde's `skip_serializing_if` passes a reference.
fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// The feature a relay lists when it takes files: `upload`, binary chunk frames and file cards.
pub const FEATURE_FILES: &str = "files";
/// The feature a relay lists when a `send` may say how long its message waits (`ttl`).
pub const FEATURE_TTL: &str = "ttl";

/// Stable error codes. Clients branch on these; the `message` is for people.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Not JSON, an unknown type, or missing, extra or mistyped fields.
    BadFrame,
    /// A binary WebSocket frame: the protocol is text only.
    BinaryFrame,
    /// A frame larger than the server accepts; the connection is closed.
    FrameTooLarge,
    /// `room_id` is not 64 lower-case hex characters.
    BadRoomId,
    /// `message_id` is not 32 lower-case hex characters.
    BadMessageId,
    /// `sealed` is not base64url without padding.
    BadEncoding,
    /// The sealed payload's length is not one spec v1 allows.
    BadSize,
    /// The sealed payload's version byte is unknown.
    BadVersion,
    /// A `send`'s `ttl` is 0 or longer than the relay's `MESSAGE_TTL`.
    BadTtl,
    /// `session` is not 32 lower-case hex characters.
    BadSession,
    /// `fetch` or `viewed` of a message this participant is not a recipient of.
    NotRecipient,
    /// A frame other than `join` before joining.
    NotJoined,
    /// A second `join` on one connection.
    AlreadyJoined,
    /// No such message in this room (never sent, already deleted, expired, or another room's).
    UnknownMessage,
    /// `fetch` or `viewed` of a message this participant sent.
    OwnMessage,
    /// `viewed` before a `fetch` of that message on this connection.
    NotFetched,
    /// A `send` reusing a stored message id with a different payload.
    IdConflict,
    /// Frames arrive faster than the rate limit; this one was dropped. Slow down.
    RateLimited,
    /// The room holds as many participants as it may.
    RoomFull,
    /// The room holds as many waiting messages as it may.
    TooManyPending,
    /// The server failed; nothing was changed. Safe to retry.
    Internal,
    /// `upload` of more chunks than `MAX_FILE_SIZE` allows (or files are off): nothing was
    /// stored.
    FileTooLarge,
    /// `upload` with a chunk count that is not a size class of spec v2.
    BadChunks,
    /// A chunk other than the next one the upload expects.
    ChunkOutOfOrder,
    /// A chunk frame whose sealed chunk is not 65552 bytes.
    BadChunkSize,
    /// A chunk for an id this connection is not uploading (another room's, finished, or never
    /// begun).
    UnknownUpload,
    /// `upload` while this connection's previous upload is unfinished.
    UploadBusy,
    /// A file card (`send` of version 2) before every chunk of its upload is stored.
    UploadIncomplete,
    /// A chunk request past the file's last chunk.
    BadChunkIndex,
    /// The relay stores as many bytes as it may (`MAX_STORED_BYTES`); nothing was stored. Try
    /// again once messages waiting have been read or have expired.
    StorageFull,
    /// Messages sent from this address wait for as many bytes as one address may leave
    /// (`MAX_STORED_BYTES_PER_ADDRESS`); nothing was stored. Try again once some are read.
    QuotaExceeded,
    /// A code this client does not know (from a newer relay): the frame was refused, and the
    /// error's `message` says why. Never sent.
    #[serde(other)]
    Unknown,
}

impl ServerFrame {
    /// An error frame with its human-readable message.
    pub fn error(code: ErrorCode) -> Self {
        Self::Error { code, message: code.describe().to_owned(), message_id: None }
    }

    /// An error frame about one message, naming it so the client marks that message's card.
    pub fn error_about(code: ErrorCode, message_id: &str) -> Self {
        Self::Error { code, message: code.describe().to_owned(), message_id: Some(message_id.to_owned()) }
    }

    /// The JSON text of this frame.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("invariant: frames are plain data and always serialize")
    }
}

impl ErrorCode {
    /// A one-line explanation for people reading the frame.
    pub fn describe(self) -> &'static str {
        match self {
            Self::BadFrame => "frame is not a valid protocol frame",
            Self::BinaryFrame => "binary frames are not accepted",
            Self::FrameTooLarge => "frame is too large",
            Self::BadRoomId => "room_id must be 64 lower-case hex characters",
            Self::BadMessageId => "message_id must be 32 lower-case hex characters",
            Self::BadEncoding => "sealed must be base64url without padding",
            Self::BadSize => "sealed payload has an invalid size",
            Self::BadVersion => "sealed payload has an unknown version",
            Self::BadTtl => "ttl must be from 1 second to the relay's message_ttl",
            Self::BadSession => "session must be 32 lower-case hex characters",
            Self::NotRecipient => "this message is for the participants who were here when it was sent",
            Self::NotJoined => "join a room first",
            Self::AlreadyJoined => "this connection already joined a room",
            Self::UnknownMessage => "no such message in this room",
            Self::OwnMessage => "this is your own message",
            Self::NotFetched => "fetch the message before confirming it was viewed",
            Self::IdConflict => "message_id already used for another payload",
            Self::RateLimited => "too many frames, slow down",
            Self::RoomFull => "this room is full",
            Self::TooManyPending => "too many messages wait unread in this room",
            Self::Internal => "internal error, nothing was changed",
            Self::StorageFull => "the relay is full; nothing was stored, try again later",
            Self::QuotaExceeded => "too much sent from this address waits unread; try again once it is read",
            Self::FileTooLarge => "the file is larger than this relay takes",
            Self::BadChunks => "a file's chunk count must be a size class of spec v2",
            Self::ChunkOutOfOrder => "chunks must be sent in order, each once",
            Self::BadChunkSize => "a sealed chunk must be 65552 bytes",
            Self::UnknownUpload => "this connection is not uploading that file",
            Self::UploadBusy => "finish or abandon the upload under way first",
            Self::UploadIncomplete => "send a file card once every chunk of its upload is stored",
            Self::BadChunkIndex => "the file has no chunk of that index",
            Self::Unknown => "refused",
        }
    }
}

/// The binary frames of file transfers (spec v2): a kind byte, the message id, the chunk index
/// (4 bytes, big-endian), then for a chunk its sealed bytes. Everything else in the protocol is
/// JSON text.
pub mod binary {
    use crate::crypto::file::SEALED_CHUNK_LEN;
    use crate::crypto::MessageId;

    /// Client → relay: a chunk of this client's upload.
    pub const UPLOAD: u8 = 0x01;
    /// Client → relay: ask for a chunk of a fetched file card's file.
    pub const REQUEST: u8 = 0x02;
    /// Relay → client: a chunk asked for.
    pub const CHUNK: u8 = 0x03;
    /// Kind, id and index.
    pub const HEADER_LEN: usize = 1 + 16 + 4;
    /// A chunk frame's length.
    pub const CHUNK_FRAME_LEN: usize = HEADER_LEN + SEALED_CHUNK_LEN;

    /// A binary frame, as read.
    #[derive(Debug, PartialEq, Eq)]
    pub enum Frame<'a> {
        /// A chunk (`UPLOAD` or `CHUNK`): its sealed bytes, of any length (the receiver checks).
        Chunk { kind: u8, id: MessageId, index: u32, sealed: &'a [u8] },
        /// A `REQUEST`.
        Request { id: MessageId, index: u32 },
    }

    /// Reads a binary frame; `None` for an unknown kind or a frame too short for its header
    /// (or, for a request, of any other length).
    pub fn decode(bytes: &[u8]) -> Option<Frame<'_>> {
        if bytes.len() < HEADER_LEN {
            return None;
        }
        let id = MessageId(bytes[1..17].try_into().ok()?);
        let index = u32::from_be_bytes(bytes[17..21].try_into().ok()?);
        match bytes[0] {
            kind @ (UPLOAD | CHUNK) => Some(Frame::Chunk { kind, id, index, sealed: &bytes[HEADER_LEN..] }),
            REQUEST if bytes.len() == HEADER_LEN => Some(Frame::Request { id, index }),
            _ => None,
        }
    }

    /// A chunk frame of `kind` ([`UPLOAD`] or [`CHUNK`]).
    pub fn chunk(kind: u8, id: &MessageId, index: u32, sealed: &[u8]) -> Vec<u8> {
        let mut frame = Vec::with_capacity(HEADER_LEN + sealed.len());
        frame.push(kind);
        frame.extend_from_slice(&id.0);
        frame.extend_from_slice(&index.to_be_bytes());
        frame.extend_from_slice(sealed);
        frame
    }

    /// A [`REQUEST`] frame.
    pub fn request(id: &MessageId, index: u32) -> Vec<u8> {
        chunk(REQUEST, id, index, &[])
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn frames_read_back_and_malformed_ones_are_refused() {
            let id = MessageId([7; 16]);
            let frame = chunk(UPLOAD, &id, 258, &[1, 2, 3]);
            assert_eq!(&frame[..HEADER_LEN], &[&[UPLOAD][..], &[7; 16], &[0, 0, 1, 2]].concat()[..]);
            assert_eq!(decode(&frame), Some(Frame::Chunk { kind: UPLOAD, id, index: 258, sealed: &[1, 2, 3] }));
            assert_eq!(decode(&request(&id, 3)), Some(Frame::Request { id, index: 3 }));
            assert_eq!(decode(&[&request(&id, 3)[..], &[0]].concat()), None, "a request with a body");
            assert_eq!(decode(&frame[..HEADER_LEN - 1]), None, "short");
            assert_eq!(decode(&[&[9][..], &frame[1..]].concat()), None, "unknown kind");
            assert_eq!(CHUNK_FRAME_LEN, 65_573);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_frames_have_the_documented_shape() {
        let frame: ClientFrame = serde_json::from_str(r#"{"type":"fetch","message_id":"ab"}"#).unwrap();
        assert_eq!(frame, ClientFrame::Fetch { message_id: "ab".into() });
        assert_eq!(
            serde_json::to_string(&ClientFrame::Typing { active: true }).unwrap(),
            r#"{"type":"typing","active":true}"#
        );
    }

    #[test]
    fn extra_fields_and_unknown_types_are_refused() {
        assert!(serde_json::from_str::<ClientFrame>(r#"{"type":"fetch","message_id":"ab","x":1}"#).is_err());
        assert!(serde_json::from_str::<ClientFrame>(r#"{"type":"shout"}"#).is_err());
        assert!(serde_json::from_str::<ClientFrame>(r#"{"type":"send","message_id":"ab"}"#).is_err());
    }

    #[test]
    fn unknown_frames_fields_and_codes_from_a_newer_relay_are_read() {
        let frame: ServerFrame = serde_json::from_str(r#"{"type":"file_chunk","index":3}"#).unwrap();
        assert_eq!(frame, ServerFrame::Unknown);
        let frame: ServerFrame =
            serde_json::from_str(r#"{"type":"sent","message_id":"ab","stored_until":12}"#).unwrap();
        assert_eq!(frame, ServerFrame::Sent { message_id: "ab".into() });
        let frame: ServerFrame =
            serde_json::from_str(r#"{"type":"error","code":"solar_flare","message":"try later","message_id":"ab"}"#)
                .unwrap();
        assert_eq!(
            frame,
            ServerFrame::Error { code: ErrorCode::Unknown, message: "try later".into(), message_id: Some("ab".into()) }
        );
    }

    #[test]
    fn an_older_relays_joined_means_the_protocol_1_limits() {
        let frame: ServerFrame = serde_json::from_str(r#"{"type":"joined","participants":2,"pending":[]}"#).unwrap();
        let ServerFrame::Joined { limits, .. } = frame else { panic!("{frame:?}") };
        assert_eq!(limits, RelayLimits::default());
        let frame: ServerFrame = serde_json::from_str(
            r#"{"type":"joined","participants":1,"pending":[],"limits":{"max_message":512,"files":9}}"#,
        )
        .unwrap();
        let ServerFrame::Joined { limits, .. } = frame else { panic!("{frame:?}") };
        assert_eq!((limits.max_message, limits.message_ttl), (512, 0));
    }

    #[test]
    fn error_frames_carry_a_snake_case_code() {
        assert_eq!(
            ServerFrame::error(ErrorCode::NotFetched).to_json(),
            r#"{"type":"error","code":"not_fetched","message":"fetch the message before confirming it was viewed"}"#
        );
        assert_eq!(
            ServerFrame::error_about(ErrorCode::StorageFull, "ab").to_json(),
            r#"{"type":"error","code":"storage_full","message":"the relay is full; nothing was stored, try again later","message_id":"ab"}"#
        );
    }
}
