//! What the transfer framing costs the relay per chunk, measured in its own code (the JSON and
//! base64 crates it builds with): a binary frame, as the protocol has it, against the same
//! chunk as base64 in a JSON text frame, the alternative PROTOCOL.md weighed. Both directions:
//! reading an upload's frame, and writing a download's.

use std::time::Instant;

use app::crypto::file::SEALED_CHUNK_LEN;
use app::crypto::MessageId;
use app::protocol::binary;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

/// Microseconds per chunk, each way, and the bytes each frame takes.
#[derive(Debug, Serialize)]
pub struct FramingReport {
    pub chunks: usize,
    pub binary_frame_bytes: usize,
    pub text_frame_bytes: usize,
    pub binary_read_us: f64,
    pub binary_write_us: f64,
    pub text_read_us: f64,
    pub text_write_us: f64,
}

#[derive(Serialize, Deserialize)]
struct TextChunk {
    #[serde(rename = "type")]
    kind: String,
    message_id: String,
    index: u32,
    sealed: String,
}

/// Reads and writes `chunks` chunk frames each way, both framings.
pub fn measure(chunks: usize) -> FramingReport {
    let id = MessageId([7; 16]);
    let sealed: Vec<u8> = (0..SEALED_CHUNK_LEN).map(|i| (i * 131 % 251) as u8).collect();
    let frame = binary::chunk(binary::UPLOAD, &id, 3, &sealed);
    let text = serde_json::to_string(&TextChunk {
        kind: "chunk".into(),
        message_id: id.to_hex(),
        index: 3,
        sealed: URL_SAFE_NO_PAD.encode(&sealed),
    })
    .expect("plain data");
    let time = |f: &mut dyn FnMut() -> usize| {
        let start = Instant::now();
        let mut check = 0;
        for _ in 0..chunks {
            check += f();
        }
        assert!(check > 0);
        start.elapsed().as_secs_f64() * 1e6 / chunks as f64
    };
    // Reading: the relay needs the chunk's bytes, owned, to seal them at rest.
    let binary_read_us = time(&mut || match binary::decode(std::hint::black_box(&frame)) {
        Some(binary::Frame::Chunk { sealed, .. }) => std::hint::black_box(sealed.to_vec()).len(),
        _ => 0,
    });
    let text_read_us = time(&mut || {
        let parsed: TextChunk = serde_json::from_str(std::hint::black_box(&text)).expect("parses");
        URL_SAFE_NO_PAD.decode(parsed.sealed).map_or(0, |bytes| std::hint::black_box(bytes).len())
    });
    // Writing: from the chunk opened at rest to the frame.
    let binary_write_us =
        time(&mut || std::hint::black_box(binary::chunk(binary::CHUNK, &id, 3, std::hint::black_box(&sealed))).len());
    let text_write_us = time(&mut || {
        let frame = TextChunk {
            kind: "chunk".into(),
            message_id: id.to_hex(),
            index: 3,
            sealed: URL_SAFE_NO_PAD.encode(std::hint::black_box(&sealed)),
        };
        serde_json::to_string(&frame).map_or(0, |text| text.len())
    });
    FramingReport {
        chunks,
        binary_frame_bytes: frame.len(),
        text_frame_bytes: text.len(),
        binary_read_us,
        binary_write_us,
        text_read_us,
        text_write_us,
    }
}
