//! The WebSocket wire protocol: JSON text frames, one object each, tagged by `"type"`.
//!
//! `docs/PROTOCOL.md` is the reference; these types are its executable form. Ids and payloads
//! travel as strings and are validated by the receiver into [`crate::crypto`] newtypes, so that
//! each malformed value gets its own error code.

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
    /// Store a sealed message and notify the room.
    Send { message_id: String, sealed: String },
    /// Ask for a waiting message's sealed payload. Never destructive.
    Fetch { message_id: String },
    /// Confirm a fetched message was opened and shown: the server deletes it.
    Viewed { message_id: String },
    /// The sender started (`true`) or stopped (`false`) typing.
    Typing { active: bool },
}

/// A frame from the server to a client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    /// The join succeeded: how many are here (this client included) and the messages waiting.
    Joined { participants: u32, pending: Vec<String> },
    /// A message this client sent is stored and the room was told.
    Sent { message_id: String },
    /// A message waits for this client. Carries no payload: fetch it to read it.
    Message { message_id: String },
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
    /// A frame was refused. The connection stays open unless the code says otherwise.
    Error { code: ErrorCode, message: String },
}

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
}

impl ServerFrame {
    /// An error frame with its human-readable message.
    pub fn error(code: ErrorCode) -> Self {
        Self::Error { code, message: code.describe().to_owned() }
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
    fn error_frames_carry_a_snake_case_code() {
        assert_eq!(
            ServerFrame::error(ErrorCode::NotFetched).to_json(),
            r#"{"type":"error","code":"not_fetched","message":"fetch the message before confirming it was viewed"}"#
        );
    }
}
