//! The browser side of a bench run, as `end2end/bench/browser.mjs` writes it: the client's crypto
//! in Chromium, the time to join a room, and the bundle's sizes.

use serde::{Deserialize, Serialize};

/// One browser run's figures.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Browser {
    pub chromium: String,
    pub pbkdf2: Pbkdf2,
    pub aes_gcm: AesGcm,
    /// A file's 64 KiB chunk sealed as the page seals one (absent from runs before files).
    #[serde(default)]
    pub file_chunk: Option<FileChunk>,
    /// From opening an invite link to "connected" in the real app, key derivation included.
    pub join_ms: f64,
    /// The same on a page without WebCrypto, where the app derives with its Rust code in WASM.
    #[serde(default)]
    pub join_without_webcrypto_ms: Option<f64>,
    pub sizes: Vec<FileSize>,
    /// How the server sent the WASM to Chromium: `Content-Encoding` and bytes on the wire.
    pub served_wasm_encoding: String,
    pub served_wasm_bytes: u64,
    /// A file sent and opened through the real page (absent from runs before files).
    #[serde(default)]
    pub file_transfer: Option<FileTransfer>,
}

/// One file through the real page between two pages of a room: from Send to stored, and from
/// the click on the sealed card to decrypted whole (medians of three).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FileTransfer {
    pub bytes: u64,
    pub upload_ms: f64,
    pub download_ms: f64,
}

impl FileTransfer {
    /// The file's bytes up and down over the time both took, in MB/s (10^6 bytes).
    pub fn mb_s(&self) -> f64 {
        2.0 * self.bytes as f64 / ((self.upload_ms + self.download_ms) * 1000.0)
    }
}

/// One key derivation (PBKDF2-HMAC-SHA256) by the app's WASM and by WebCrypto.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Pbkdf2 {
    pub iterations: u32,
    pub wasm_ms: f64,
    pub webcrypto_ms: f64,
}

/// The mean AES-256-GCM seal and open of `bytes`, by the app's WASM and by WebCrypto.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AesGcm {
    pub bytes: usize,
    pub wasm_seal_us: f64,
    pub wasm_open_us: f64,
    pub webcrypto_seal_us: f64,
    pub webcrypto_open_us: f64,
}

/// The mean seal of one file chunk by the app's WASM and by WebCrypto (its key imported for
/// each chunk, as the page does).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FileChunk {
    pub bytes: usize,
    pub wasm_seal_us: f64,
    pub webcrypto_seal_us: f64,
}

impl FileChunk {
    /// MB/s (10^6 bytes a second) at `us` microseconds a chunk.
    pub fn mb_s(&self, us: f64) -> f64 {
        self.bytes as f64 / us
    }
}

/// One file of a build as served: raw, and as precompressed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FileSize {
    pub build: String,
    pub file: String,
    pub raw: u64,
    pub gzip: u64,
    pub brotli: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_from_before_the_join_without_webcrypto_was_timed_still_read() {
        let json = r#"{
            "chromium": "Chromium 120",
            "pbkdf2": { "iterations": 600000, "wasm_ms": 300, "webcrypto_ms": 200 },
            "aes_gcm": { "bytes": 200, "wasm_seal_us": 4, "wasm_open_us": 3,
                         "webcrypto_seal_us": 8, "webcrypto_open_us": 6 },
            "join_ms": 450,
            "sizes": [],
            "served_wasm_encoding": "br",
            "served_wasm_bytes": 1024
        }"#;
        let browser: Browser = serde_json::from_str(json).unwrap();
        assert_eq!(browser.join_without_webcrypto_ms, None);
        assert_eq!(browser.pbkdf2.iterations, 600_000);
    }
}
