//! The app's crypto primitives exported to JavaScript, for the in-browser benchmark only
//! (`end2end/bench/browser.mjs`). Built with the `bench` feature, never in the shipped bundle.
//! Each export is the very function the app calls; the page times them beside WebCrypto.

use app::crypto::keys::PBKDF2_SALT;
use app::crypto::primitives::{aes256gcm_open, aes256gcm_seal, pbkdf2_sha256, NONCE_LEN};
use wasm_bindgen::prelude::wasm_bindgen;

/// PBKDF2-HMAC-SHA256 of `password` with the app's salt.
#[wasm_bindgen]
pub fn bench_pbkdf2(password: &str, iterations: u32) -> Vec<u8> {
    pbkdf2_sha256(password.as_bytes(), PBKDF2_SALT, iterations).to_vec()
}

/// AES-256-GCM seal; `None` for a key or nonce of the wrong length.
#[wasm_bindgen]
pub fn bench_seal(key: &[u8], nonce: &[u8], plaintext: &[u8], aad: &[u8]) -> Option<Vec<u8>> {
    let (key, nonce) = (key.try_into().ok()?, nonce.try_into().ok()?);
    Some(aes256gcm_seal(key, nonce, plaintext, aad))
}

/// AES-256-GCM open; `None` when it does not authenticate.
#[wasm_bindgen]
pub fn bench_open(key: &[u8], nonce: &[u8], sealed: &[u8], aad: &[u8]) -> Option<Vec<u8>> {
    let (key, nonce): (&[u8; 32], &[u8; NONCE_LEN]) = (key.try_into().ok()?, nonce.try_into().ok()?);
    aes256gcm_open(key, nonce, sealed, aad).map(|plain| plain.to_vec())
}
