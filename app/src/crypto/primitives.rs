//! The primitives of spec v1, one function each, so every use names its parameters.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use hkdf::Hkdf;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// AES-256-GCM nonce length in bytes (NIST SP 800-38D, 96-bit IV).
pub const NONCE_LEN: usize = 12;
/// AES-256-GCM tag length in bytes.
pub const TAG_LEN: usize = 16;

/// SHA-256 (FIPS 180-4) of the concatenation of `parts`.
pub fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part);
    }
    hasher.finalize().into()
}

/// PBKDF2-HMAC-SHA256 (RFC 8018 §5.2) with a 32-byte output.
pub fn pbkdf2_sha256(password: &[u8], salt: &[u8], iterations: u32) -> Zeroizing<[u8; 32]> {
    let mut out = Zeroizing::new([0u8; 32]);
    pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, iterations, out.as_mut());
    out
}

/// HKDF-SHA256 (RFC 5869) extract-then-expand with no salt (the RFC's 32 zero bytes) into `out`.
pub fn hkdf_sha256(ikm: &[u8], info: &[&[u8]], out: &mut [u8]) {
    let hk = Hkdf::<Sha256>::new(None, ikm);
    hk.expand_multi_info(info, out)
        .expect("invariant: callers ask HKDF-SHA256 for far less than its 255 × 32-byte limit");
}

/// Every way opening can fail, as one opaque error: no oracle for an attacker to query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("could not be decrypted")]
pub struct OpenError;

/// AES-256-GCM encryption (NIST SP 800-38D): returns ciphertext followed by the 16-byte tag.
pub fn aes256gcm_seal(key: &[u8; 32], nonce: &[u8; NONCE_LEN], plaintext: &[u8], aad: &[u8]) -> Vec<u8> {
    Aes256Gcm::new(key.into())
        .encrypt(Nonce::from_slice(nonce), Payload { msg: plaintext, aad })
        .expect("invariant: AES-GCM encryption fails only past 2^36 bytes, far above any payload")
}

/// AES-256-GCM decryption; `None` on any authentication failure (no detail, by design).
pub fn aes256gcm_open(
    key: &[u8; 32],
    nonce: &[u8; NONCE_LEN],
    ciphertext_and_tag: &[u8],
    aad: &[u8],
) -> Option<Zeroizing<Vec<u8>>> {
    Aes256Gcm::new(key.into())
        .decrypt(Nonce::from_slice(nonce), Payload { msg: ciphertext_and_tag, aad })
        .ok()
        .map(Zeroizing::new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_block_cipher_wipes_its_round_keys_when_dropped() {
        // A compile-time check: without the `aes` crate's `zeroize` feature this does not build.
        fn wiped_on_drop<T: zeroize::ZeroizeOnDrop>() {}
        wiped_on_drop::<aes::Aes256>();
    }

    #[test]
    fn sha256_matches_the_fips_180_2_abc_vector() {
        assert_eq!(
            hex::encode(sha256(&[b"a", b"bc"])),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn hkdf_matches_rfc_5869_test_case_3() {
        // RFC 5869 A.3: no salt, no info.
        let ikm = [0x0b; 22];
        let mut okm = [0u8; 42];
        hkdf_sha256(&ikm, &[], &mut okm);
        assert_eq!(
            hex::encode(okm),
            "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d\
             9d201395faa4b61a96c8"
        );
    }

    #[test]
    fn a_flipped_tag_bit_fails_to_open() {
        let key = [7u8; 32];
        let nonce = [1u8; NONCE_LEN];
        let mut sealed = aes256gcm_seal(&key, &nonce, b"secret", b"aad");
        assert_eq!(aes256gcm_open(&key, &nonce, &sealed, b"aad").as_deref().map(Vec::as_slice), Some(&b"secret"[..]));
        let last = sealed.len() - 1;
        sealed[last] ^= 1;
        assert!(aes256gcm_open(&key, &nonce, &sealed, b"aad").is_none());
    }
}
