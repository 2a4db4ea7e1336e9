//! The slow steps, PBKDF2 on joining and AES-GCM over a file's chunks, done by the browser's
//! WebCrypto where the page has it.
//!
//! The key schedule is `crypto::keys`; this only computes its first step faster. PBKDF2 is
//! 600,000 rounds of SHA-256, and WebAssembly has no SHA instructions: the Rust code takes
//! about 850 ms in Chromium on the benchmark machine, WebCrypto (native code with the CPU's SHA
//! extensions) about 130 ms (BENCHMARKS.md). Both give the same 32 bytes (RFC 8018), which the
//! rest of the schedule (HKDF, SHA-256) turns into the keys in Rust as before.
//!
//! WebCrypto exists only in secure contexts (HTTPS, or localhost): served over plain HTTP on a
//! LAN address, or if the call fails, the page derives with the Rust code, which stays the
//! reference (`crypto::vectors`).

use js_sys::{Array, Uint8Array};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use zeroize::Zeroizing;

use crate::crypto::keys::{PBKDF2_ITERATIONS, PBKDF2_SALT};
use crate::crypto::{RoomCode, RoomKeys};

/// Runs the key schedule of `code`, its PBKDF2 by WebCrypto when the page has it.
pub async fn derive(code: &RoomCode) -> RoomKeys {
    match pbkdf2_sha256(code.canonical().as_bytes(), PBKDF2_SALT, PBKDF2_ITERATIONS).await {
        Some(ikm) => RoomKeys::from_ikm(&ikm),
        None => RoomKeys::derive(code),
    }
}

/// PBKDF2-HMAC-SHA256 with a 32-byte output by `crypto.subtle.deriveBits`; `None` where the
/// page has no WebCrypto or it refuses.
async fn pbkdf2_sha256(password: &[u8], salt: &[u8], iterations: u32) -> Option<Zeroizing<[u8; 32]>> {
    let crypto = web_sys::window()?.crypto().ok()?;
    // `crypto.subtle` is undefined outside secure contexts.
    let subtle = js_sys::Reflect::get(&crypto, &JsValue::from_str("subtle")).ok()?;
    if subtle.is_undefined() || subtle.is_null() {
        return None;
    }
    let subtle: web_sys::SubtleCrypto = subtle.unchecked_into();
    let password = Uint8Array::from(password);
    let usages = Array::of1(&JsValue::from_str("deriveBits"));
    let imported = subtle.import_key_with_str("raw", &password, "PBKDF2", false, &usages);
    password.fill(0, 0, password.length());
    let key: web_sys::CryptoKey = JsFuture::from(imported.ok()?).await.ok()?.dyn_into().ok()?;
    let params =
        web_sys::Pbkdf2Params::new("PBKDF2", &JsValue::from_str("SHA-256"), iterations, &Uint8Array::from(salt));
    let bits = JsFuture::from(subtle.derive_bits_with_object(&params, &key, 256).ok()?).await.ok()?;
    let bits = Uint8Array::new(&bits);
    let mut out = Zeroizing::new([0u8; 32]);
    let copied = bits.length() == 32;
    if copied {
        bits.copy_to(out.as_mut());
    }
    bits.fill(0, 0, bits.length());
    copied.then_some(out)
}

/// AES-256-GCM by `crypto.subtle`: seals (`encrypt`) or opens a file's chunk; `None` where the
/// page has no WebCrypto, or it refuses (for opening: a chunk that fails authentication too).
/// The same function as `crypto::primitives` (NIST SP 800-38D, 96-bit IV, 128-bit tag), which
/// stays the reference; a browser test checks both against each other.
pub async fn aes256gcm(
    encrypt: bool,
    key: &[u8; 32],
    nonce: &[u8; 12],
    aad: &[u8],
    input: &[u8],
) -> Option<Zeroizing<Vec<u8>>> {
    let crypto = web_sys::window()?.crypto().ok()?;
    let subtle = js_sys::Reflect::get(&crypto, &JsValue::from_str("subtle")).ok()?;
    if subtle.is_undefined() || subtle.is_null() {
        return None;
    }
    let subtle: web_sys::SubtleCrypto = subtle.unchecked_into();
    let raw = Uint8Array::from(&key[..]);
    let usage = if encrypt { "encrypt" } else { "decrypt" };
    let imported = subtle.import_key_with_str("raw", &raw, "AES-GCM", false, &Array::of1(&JsValue::from_str(usage)));
    raw.fill(0, 0, raw.length());
    let key: web_sys::CryptoKey = JsFuture::from(imported.ok()?).await.ok()?.dyn_into().ok()?;
    let params = web_sys::AesGcmParams::new("AES-GCM", &Uint8Array::from(&nonce[..]));
    params.set_additional_data(&Uint8Array::from(aad));
    params.set_tag_length(128);
    let data = Uint8Array::from(input);
    let promise = if encrypt {
        subtle.encrypt_with_object_and_buffer_source(&params, &key, &data)
    } else {
        subtle.decrypt_with_object_and_buffer_source(&params, &key, &data)
    };
    let result = JsFuture::from(promise.ok()?).await;
    data.fill(0, 0, data.length());
    let out = Uint8Array::new(&result.ok()?);
    let mut bytes = Zeroizing::new(vec![0u8; out.length() as usize]);
    out.copy_to(&mut bytes);
    out.fill(0, 0, out.length());
    Some(bytes)
}
