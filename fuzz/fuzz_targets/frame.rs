//! The server's inbound frame parser: a WebSocket text frame as `ClientFrame` JSON, then the
//! field parsers the server applies to each kind (room id, session token, message id, sealed
//! payload). Nothing may panic; whatever parses must survive a round trip through JSON.
#![no_main]

use app::crypto::{MessageId, RoomId, SealedPayload};
use app::protocol::ClientFrame;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
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
        ClientFrame::Send { message_id, sealed } => {
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
        ClientFrame::Typing { .. } => {}
    }
    let again: ClientFrame = serde_json::from_str(&serde_json::to_string(&frame).unwrap()).unwrap();
    assert_eq!(again, frame);
});
