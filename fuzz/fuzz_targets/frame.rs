//! The server's inbound frame parsers: a WebSocket text frame as `ClientFrame` JSON, then the
//! field parsers the server applies to each kind (room id, session token, message id, sealed
//! payload); and a binary frame as a file transfer's frame. Nothing may panic; whatever parses
//! must survive a round trip through JSON, or through the binary encoding.
#![no_main]

use app::crypto::{MessageId, RoomId, SealedPayload};
use app::protocol::{binary, ClientFrame};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match binary::decode(data) {
        Some(binary::Frame::Chunk { kind, id, index, sealed }) => {
            assert_eq!(binary::chunk(kind, &id, index, sealed), data);
        }
        Some(binary::Frame::Request { id, index }) => assert_eq!(binary::request(&id, index), data),
        None => {}
    }
    // The server hands the parser only text frames, which tungstenite has checked are UTF-8.
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(frame) = serde_json::from_str::<ClientFrame>(text) else { return };
    match &frame {
        ClientFrame::Join { room_id, session } => {
            if let Some(id) = RoomId::parse(room_id) {
                assert_eq!(&id.to_hex(), room_id);
                let _ = id.storage_hash();
            }
            let _ = MessageId::parse(session);
        }
        ClientFrame::Send { message_id, sealed, .. } => {
            let _ = MessageId::parse(message_id);
            if let Ok(payload) = SealedPayload::from_base64(sealed) {
                let again = SealedPayload::from_base64(&payload.to_base64()).expect("an encoded payload decodes");
                assert_eq!(again.as_bytes(), payload.as_bytes());
                let _ = payload.padded_len();
            }
        }
        ClientFrame::Fetch { message_id } | ClientFrame::Viewed { message_id } => {
            if let Some(id) = MessageId::parse(message_id) {
                assert_eq!(&id.to_hex(), message_id);
            }
        }
        ClientFrame::Upload { message_id, chunks } => {
            let _ = (MessageId::parse(message_id), app::crypto::file::chunk_class(*chunks));
        }
        ClientFrame::Typing { .. } => {}
    }
    let again: ClientFrame = serde_json::from_str(&serde_json::to_string(&frame).unwrap()).unwrap();
    assert_eq!(again, frame);
});
