//! Files in spec v2: a file's key, its padded chunks, and the stream construction that seals
//! them (`docs/CRYPTO.md`, "Files").
//!
//! ```text
//! file_key = HKDF-SHA256(message_key, info = "ephemeral-chat/v2/file-key" || file_id, 32)
//! n        = chunk_class(max(1, ceil(size / 65536)))
//! plain_i  = the file's bytes i·65536 .. (i+1)·65536, the last zero-filled to 65536
//! nonce_i  = i (11 bytes, big-endian) || (0x01 if i = n − 1 else 0x00)
//! aad      = "ephemeral-chat/v2/file-chunk" || room_id || message_id || n (4 bytes, big-endian)
//! chunk_i  = AES-256-GCM(file_key, nonce_i, plain_i, aad)            (65552 bytes)
//! ```
//!
//! The construction is age's STREAM (a counter and a last-chunk flag in each nonce) under a key
//! of the file's own: chunks cannot be reordered (the counter), truncated or extended (the flag,
//! and `n` in the AAD), or moved to another file (another `file_id`, so another key) or to
//! another message or room (the AAD). Every chunk is full, so the relay learns only `n`, a
//! size class: counts up to 16 are exact, larger ones keep their four leading bits, so a file
//! pads by less than 12.5 %.
//!
//! The card that announces a file is a sealed message of version 2 ([`super::message`]): its
//! body names the file (`file_id`, name, type, size, `n`), so the relay never sees them.

use std::fmt;

use zeroize::Zeroizing;

use super::ids::{FileId, MessageId};
use super::keys::RoomKeys;
use super::primitives::{aes256gcm_open, aes256gcm_seal, hkdf_sha256, OpenError, NONCE_LEN, TAG_LEN};

/// HKDF info prefix of a file's key.
pub const FILE_KEY_INFO: &[u8] = b"ephemeral-chat/v2/file-key";
/// Domain label of a chunk's AAD.
pub const CHUNK_AAD_LABEL: &[u8] = b"ephemeral-chat/v2/file-chunk";
/// Plaintext bytes in every chunk.
pub const CHUNK_LEN: usize = 65_536;
/// Bytes of a sealed chunk: its plaintext and the tag.
pub const SEALED_CHUNK_LEN: usize = CHUNK_LEN + TAG_LEN;
/// Most chunks a file may have in this spec (16 GiB): far above any relay's limit, so that a
/// count always fits the nonce's counter and the sizes below never overflow.
pub const MAX_CHUNKS: u32 = 1 << 18;

/// The size class of a file of `chunks` chunks: the count itself up to 16, else the count
/// rounded up to its four leading bits (18, 20, …, 32, 36, 40, …, 64, 72, …, 128, 144, 160, …).
pub fn chunk_class(chunks: u32) -> u32 {
    if chunks <= 16 {
        return chunks.max(1);
    }
    let shift = (u32::BITS - chunks.leading_zeros()) - 4;
    // In 64 bits: the largest counts round up past u32 (then no count has them as its class).
    u32::try_from(u64::from(chunks.div_ceil(1 << shift)) << shift).unwrap_or(u32::MAX)
}

/// How many chunks a file of `size` bytes is sealed into (its size class), or `None` past
/// [`MAX_CHUNKS`].
pub fn chunks_for(size: u64) -> Option<u32> {
    let needed = u32::try_from(size.div_ceil(CHUNK_LEN as u64).max(1)).ok()?;
    let class = chunk_class(needed);
    (class <= MAX_CHUNKS).then_some(class)
}

/// The nonce of chunk `index` of `chunks`: the counter, then the last-chunk flag.
pub fn chunk_nonce(index: u32, chunks: u32) -> [u8; NONCE_LEN] {
    let mut nonce = [0u8; NONCE_LEN];
    nonce[7..11].copy_from_slice(&index.to_be_bytes());
    nonce[11] = u8::from(index + 1 == chunks);
    nonce
}

/// The AAD every chunk of a file carries: its room, its message and its chunk count.
pub fn chunk_aad(keys: &RoomKeys, id: &MessageId, chunks: u32) -> Vec<u8> {
    [CHUNK_AAD_LABEL, &keys.room_id.0, &id.0, &chunks.to_be_bytes()].concat()
}

/// Chunk `index` of `file` as it is sealed: its 65536 bytes, the last zero-filled.
pub fn chunk_plaintext(file: &[u8], index: u32) -> Zeroizing<Vec<u8>> {
    let start = (index as usize).saturating_mul(CHUNK_LEN).min(file.len());
    let end = start.saturating_add(CHUNK_LEN).min(file.len());
    let mut plain = Zeroizing::new(Vec::with_capacity(CHUNK_LEN));
    plain.extend_from_slice(&file[start..end]);
    plain.resize(CHUNK_LEN, 0);
    plain
}

/// Everything needed to seal or open the chunks of one file of one message.
pub struct FileCipher {
    key: Zeroizing<[u8; 32]>,
    aad: Vec<u8>,
    chunks: u32,
}

impl fmt::Debug for FileCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FileCipher({} chunks)", self.chunks)
    }
}

impl FileCipher {
    /// The cipher of file `file_id` of `chunks` chunks, announced by message `id` of the room.
    pub fn new(keys: &RoomKeys, file_id: &FileId, id: &MessageId, chunks: u32) -> Self {
        let mut key = Zeroizing::new([0u8; 32]);
        hkdf_sha256(keys.message_key(), &[FILE_KEY_INFO, &file_id.0], key.as_mut());
        Self { key, aad: chunk_aad(keys, id, chunks), chunks }
    }

    /// The file's key, for WebCrypto to seal or open with (the page's fast path).
    pub fn key(&self) -> &[u8; 32] {
        &self.key
    }

    /// The AAD of every chunk.
    pub fn aad(&self) -> &[u8] {
        &self.aad
    }

    pub fn chunks(&self) -> u32 {
        self.chunks
    }

    /// Seals chunk `index` of `file` (the whole file's bytes).
    ///
    /// # Panics
    /// If `index` is not below the chunk count: a caller's bug.
    pub fn seal_chunk(&self, file: &[u8], index: u32) -> Vec<u8> {
        assert!(index < self.chunks, "chunk {index} of {}", self.chunks);
        let plain = chunk_plaintext(file, index);
        aes256gcm_seal(&self.key, &chunk_nonce(index, self.chunks), &plain, &self.aad)
    }

    /// Opens sealed chunk `index`: its 65536 bytes of plaintext (with the last chunk's zeros).
    pub fn open_chunk(&self, index: u32, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, OpenError> {
        if index >= self.chunks || sealed.len() != SEALED_CHUNK_LEN {
            return Err(OpenError);
        }
        aes256gcm_open(&self.key, &chunk_nonce(index, self.chunks), sealed, &self.aad).ok_or(OpenError)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> RoomKeys {
        RoomKeys::from_ikm(&[9; 32])
    }

    const ID: MessageId = MessageId([3; 16]);
    const FILE: FileId = FileId([5; 32]);

    fn file(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i % 251) as u8).collect()
    }

    fn sealed(cipher: &FileCipher, bytes: &[u8]) -> Vec<Vec<u8>> {
        (0..cipher.chunks()).map(|i| cipher.seal_chunk(bytes, i)).collect()
    }

    fn open_all(cipher: &FileCipher, chunks: &[Vec<u8>]) -> Result<Vec<u8>, OpenError> {
        if chunks.len() != cipher.chunks() as usize {
            return Err(OpenError);
        }
        let mut out = Vec::new();
        for (i, chunk) in chunks.iter().enumerate() {
            out.extend_from_slice(&cipher.open_chunk(i as u32, chunk)?);
        }
        Ok(out)
    }

    #[test]
    fn size_classes_keep_four_leading_bits_and_pad_by_under_an_eighth() {
        let classes: Vec<u32> = (1..=20).map(chunk_class).collect();
        assert_eq!(classes, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 18, 18, 20, 20]);
        assert_eq!(chunk_class(0), 1);
        assert_eq!(chunk_class(160), 160, "a 10 MiB file pads to 10 MiB");
        assert_eq!(chunk_class(161), 176);
        assert_eq!(chunk_class(33), 36);
        assert_eq!(chunk_class(u32::MAX), u32::MAX, "past u32: saturates, never wraps to a small class");
        for chunks in 1..=4096u32 {
            let class = chunk_class(chunks);
            assert!(class >= chunks && u64::from(class - chunks) * 8 < u64::from(chunks), "{chunks} → {class}");
            assert_eq!(chunk_class(class), class, "a class is its own class");
        }
        assert_eq!(chunks_for(0), Some(1));
        assert_eq!(chunks_for(CHUNK_LEN as u64), Some(1));
        assert_eq!(chunks_for(CHUNK_LEN as u64 + 1), Some(2));
        assert_eq!(chunks_for(10 << 20), Some(160));
        assert_eq!(chunks_for(u64::from(MAX_CHUNKS) * CHUNK_LEN as u64), Some(MAX_CHUNKS));
        assert_eq!(chunks_for(u64::from(MAX_CHUNKS) * CHUNK_LEN as u64 + 1), None);
    }

    #[test]
    fn a_sealed_file_opens_to_its_bytes_and_zero_fill() {
        let bytes = file(3 * CHUNK_LEN + 17);
        let chunks = chunks_for(bytes.len() as u64).unwrap();
        assert_eq!(chunks, 4);
        let cipher = FileCipher::new(&keys(), &FILE, &ID, chunks);
        let sealed = sealed(&cipher, &bytes);
        assert!(sealed.iter().all(|chunk| chunk.len() == SEALED_CHUNK_LEN));
        let opened = open_all(&cipher, &sealed).unwrap();
        assert_eq!(&opened[..bytes.len()], &bytes[..]);
        assert!(opened[bytes.len()..].iter().all(|&b| b == 0));
        assert_eq!(opened.len(), 4 * CHUNK_LEN);
    }

    #[test]
    fn reordered_dropped_truncated_or_extended_chunks_fail_to_open() {
        let bytes = file(3 * CHUNK_LEN);
        let cipher = FileCipher::new(&keys(), &FILE, &ID, 3);
        let good = sealed(&cipher, &bytes);
        let mut swapped = good.clone();
        swapped.swap(0, 1);
        assert_eq!(open_all(&cipher, &swapped), Err(OpenError), "reordered");
        assert_eq!(open_all(&cipher, &[good[0].clone(), good[2].clone()]), Err(OpenError), "dropped");
        // Truncated: the first two chunks read as a file of two; the second is not flagged last.
        let two = FileCipher::new(&keys(), &FILE, &ID, 2);
        assert_eq!(open_all(&two, &good[..2]), Err(OpenError), "truncated");
        // Extended: a file of four whose first three are these; the third is flagged last.
        let four = FileCipher::new(&keys(), &FILE, &ID, 4);
        assert_eq!(four.open_chunk(2, &good[2]), Err(OpenError), "extended");
        assert_eq!(cipher.open_chunk(3, &good[2]), Err(OpenError), "past the end");
    }

    #[test]
    fn chunks_do_not_move_between_files_messages_or_rooms() {
        let bytes = file(CHUNK_LEN);
        let cipher = FileCipher::new(&keys(), &FILE, &ID, 1);
        let chunk = cipher.seal_chunk(&bytes, 0);
        assert!(cipher.open_chunk(0, &chunk).is_ok());
        for other in [
            FileCipher::new(&keys(), &FileId([6; 32]), &ID, 1),
            FileCipher::new(&keys(), &FILE, &MessageId([4; 16]), 1),
            FileCipher::new(&RoomKeys::from_ikm(&[8; 32]), &FILE, &ID, 1),
        ] {
            assert_eq!(other.open_chunk(0, &chunk), Err(OpenError));
        }
    }

    #[test]
    fn every_flipped_bit_of_a_chunk_fails_to_open() {
        let bytes = file(100);
        let cipher = FileCipher::new(&keys(), &FILE, &ID, 1);
        let chunk = cipher.seal_chunk(&bytes, 0);
        // Every bit of the tag and the first and last blocks; a sample of the rest.
        let bits =
            (0..256).chain((256..(CHUNK_LEN - 16) * 8).step_by(4099)).chain((CHUNK_LEN - 16) * 8..chunk.len() * 8);
        for bit in bits {
            let mut flipped = chunk.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            assert_eq!(cipher.open_chunk(0, &flipped), Err(OpenError), "bit {bit}");
        }
        assert_eq!(cipher.open_chunk(0, &chunk[..chunk.len() - 1]), Err(OpenError), "short");
    }
}
