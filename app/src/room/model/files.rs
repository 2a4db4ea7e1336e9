//! Files in the room model (spec v2): sending one (its upload, chunk by chunk, then its card)
//! and opening one (its card, then its chunks, decrypted in order). A file is a message: its card
//! is sent, fetched, viewed and burned as a text message is; this is only what moves beside it.
//!
//! The model holds at most [`WINDOW`] chunks in flight each way, so a transfer's memory is the
//! file itself (which the page holds whole: it reads it to send it, and shows or saves it whole)
//! and a few chunks more. Sealing and opening are left to the driver ([`Effect::Seal`],
//! [`Effect::Open`]), which answers in any order; chunks still go out and are put together in
//! order.

use std::collections::BTreeMap;
use std::sync::Arc;

use zeroize::Zeroizing;

use super::{RoomModel, Socket, Unacked};
use crate::crypto::file::{chunk_nonce, chunk_plaintext, FileCipher, CHUNK_LEN};
use crate::crypto::message::seal;
use crate::crypto::{Body, FileCard, MessageId, OpenError};
use crate::protocol::{binary, ClientFrame, FEATURE_FILES};
use crate::room::card::{Card, CardState, FileBytes, FileInfo};
use crate::room::effect::{ChunkJob, Effect, NotSent, RoomEvent};

/// Chunks in flight each way: sealed and sent but not yet stored, or asked for but not yet
/// opened. Four 64 KiB chunks keep a link busy without holding more than 256 KiB in flight.
pub const WINDOW: u32 = 4;

/// The file this page is sending: one at a time.
pub(super) struct Upload {
    id: MessageId,
    cipher: Arc<FileCipher>,
    bytes: Arc<Zeroizing<Vec<u8>>>,
    /// The sealed card (base64), sent once every chunk is stored.
    card: String,
    /// How long the card waits unread, as the sender chose (seconds).
    ttl: Option<u32>,
    chunks: u32,
    /// Whether the relay accepted the `upload` (its first `uploaded`).
    begun: bool,
    /// Chunks handed to the driver to seal, sent, and stored by the relay.
    sealing: u32,
    sent: u32,
    stored: u32,
    /// Sealed chunks waiting their turn to be sent, by index.
    ready: BTreeMap<u32, Vec<u8>>,
}

/// A file this page is opening: its card opened, its chunks coming.
pub(super) struct Download {
    card: FileCard,
    cipher: Arc<FileCipher>,
    /// The file so far: every chunk up to `opened`, in order.
    plain: Zeroizing<Vec<u8>>,
    requested: u32,
    opened: u32,
    /// Chunks opened out of order, waiting for the ones before them.
    early: BTreeMap<u32, Zeroizing<Vec<u8>>>,
}

/// What the page keeps of a file it sends until the relay has it: to send it again whole if
/// its upload is cut off or refused.
pub(super) struct Source {
    name: String,
    mime: String,
    bytes: Arc<Zeroizing<Vec<u8>>>,
}

impl Upload {
    pub(super) fn id(&self) -> MessageId {
        self.id
    }
}

impl RoomModel {
    /// Sends a file: named `name`, of media type `mime` (as the browser said; may be empty).
    /// Refused at once if the relay takes no files or not one this large, or while another file
    /// is being sent.
    pub fn send_file(&mut self, name: &str, mime: &str, bytes: Vec<u8>, now_ms: u64) -> Result<Vec<Effect>, NotSent> {
        self.send_file_shared(name, mime, Arc::new(Zeroizing::new(bytes)), now_ms)
    }

    fn send_file_shared(
        &mut self,
        name: &str,
        mime: &str,
        bytes: Arc<Zeroizing<Vec<u8>>>,
        now_ms: u64,
    ) -> Result<Vec<Effect>, NotSent> {
        if self.halted {
            return Err(NotSent::NotInRoom);
        }
        if !self.limits.features.iter().any(|f| f == FEATURE_FILES) {
            self.notice = Some("This relay does not take files.".into());
            return Err(NotSent::NoFiles);
        }
        if self.upload.is_some() {
            self.notice = Some("A file is still being sent: wait for it first.".into());
            return Err(NotSent::Busy);
        }
        let file = FileCard::new(name, mime, bytes.len() as u64)
            .filter(|file| u64::from(file.chunks) * CHUNK_LEN as u64 <= self.limits.max_file);
        let Some(file) = file else {
            self.notice = Some(format!(
                "That file is too large: this relay takes files of up to {}.",
                bytes_in_words(self.limits.max_file)
            ));
            return Err(NotSent::FileTooLarge);
        };
        let id = MessageId::generate();
        let body = Body {
            id,
            sender: self.sender,
            text: String::new(),
            sent_at: now_ms,
            file: Some(file.clone()),
            chosen: self.chosen(),
        };
        let Ok(card) = seal(&self.keys, &body) else {
            self.notice = Some("That file's name is too long to send.".into());
            return Err(NotSent::TooLong);
        };
        let cipher = Arc::new(FileCipher::new(&self.keys, &file.id, &id, file.chunks));
        let mut view = Card::new(id, CardState::Mine { text: String::new(), stored: false, seen: None });
        view.sent_at = Some(now_ms);
        view.file = Some(FileInfo {
            name: name.to_owned(),
            mime: mime.to_owned(),
            size: file.size,
            done: 0,
            chunks: file.chunks,
        });
        self.cards.push(view);
        self.sources.insert(id, Source { name: name.to_owned(), mime: mime.to_owned(), bytes: bytes.clone() });
        self.upload = Some(Upload {
            id,
            cipher,
            bytes,
            card: card.to_base64(),
            ttl: self.lifetime,
            chunks: file.chunks,
            begun: false,
            sealing: 0,
            sent: 0,
            stored: 0,
            ready: BTreeMap::new(),
        });
        let mut out = Vec::new();
        if self.socket == Socket::Joined {
            out.push(Effect::Send(ClientFrame::Upload { message_id: id.to_hex(), chunks: file.chunks }));
        }
        Ok(out)
    }

    /// After joining: an upload cut off by the last connection is gone from the relay (it purges
    /// what an upload stored when its connection ends), so its card offers to send it again; one
    /// that had not begun begins now.
    pub(super) fn rejoined_upload(&mut self, out: &mut Vec<Effect>) {
        let Some(upload) = self.upload.as_ref() else { return };
        if upload.begun {
            let id = upload.id;
            self.upload = None;
            self.upload_failed(id, "The upload was interrupted: nothing of it was kept.".into());
        } else {
            out.push(Effect::Send(ClientFrame::Upload { message_id: upload.id.to_hex(), chunks: upload.chunks }));
        }
    }

    /// The relay refused our upload or its card: the card offers to send the file again.
    pub(super) fn upload_failed(&mut self, id: MessageId, why: String) {
        if self.upload.as_ref().is_some_and(|u| u.id == id) {
            self.upload = None;
        }
        self.unacked.retain(|unacked| unacked.id != id);
        self.announcement = format!("Your file was not sent. {why}");
        self.set_state(id, CardState::Unsent { text: String::new(), why });
    }

    /// `uploaded`: the relay stores `stored` chunks of our upload.
    pub(super) fn uploaded(&mut self, id: MessageId, stored: u32, out: &mut Vec<Effect>) {
        let Some(upload) = self.upload.as_mut().filter(|u| u.id == id) else { return };
        upload.begun = true;
        upload.stored = upload.stored.max(stored);
        let (done, chunks) = (upload.stored, upload.chunks);
        if let Some(file) = self.card_mut(id).and_then(|card| card.file.as_mut()) {
            file.done = done;
        }
        if done == chunks {
            // Every chunk is stored: the card goes as a message (kept until `sent`, and sent
            // again after a reconnect: a resend of a stored card is idempotent).
            let upload = self.upload.take().expect("invariant: matched above");
            let card = Unacked::new(id, upload.card, upload.ttl);
            out.push(Effect::Send(card.frame()));
            self.unacked.push(card);
            return;
        }
        self.pump_upload(out);
    }

    /// The driver sealed chunk `index` of file `id`.
    pub fn chunk_sealed(&mut self, id: MessageId, index: u32, sealed: Vec<u8>) -> Vec<Effect> {
        let mut out = Vec::new();
        if let Some(upload) = self.upload.as_mut().filter(|u| u.id == id) {
            upload.ready.insert(index, sealed);
            self.pump_upload(&mut out);
        }
        out
    }

    /// Seals what the window allows, and sends, in order, what is sealed.
    fn pump_upload(&mut self, out: &mut Vec<Effect>) {
        if self.socket != Socket::Joined {
            return;
        }
        let Some(upload) = self.upload.as_mut().filter(|u| u.begun) else { return };
        let limit = (upload.stored + WINDOW).min(upload.chunks);
        while upload.sealing < limit {
            let index = upload.sealing;
            out.push(Effect::Seal(ChunkJob {
                id: upload.id,
                index,
                key: Arc::new(Zeroizing::new(*upload.cipher.key())),
                nonce: chunk_nonce(index, upload.chunks),
                aad: Arc::new(upload.cipher.aad().to_vec()),
                input: chunk_plaintext(&upload.bytes, index),
            }));
            upload.sealing += 1;
        }
        while upload.sent < limit {
            let Some(sealed) = upload.ready.remove(&upload.sent) else { break };
            out.push(Effect::SendBinary(binary::chunk(binary::UPLOAD, &upload.id, upload.sent, &sealed)));
            upload.sent += 1;
        }
    }

    /// The opened card of message `id` names a file: fetch its chunks (again from the last whole
    /// one, if this is the card fetched again after a reconnect).
    pub(super) fn opened_file_card(&mut self, id: MessageId, file: FileCard, out: &mut Vec<Effect>) {
        if let Some(download) = self.downloads.get_mut(&id) {
            download.requested = download.opened;
            download.early.clear();
        } else {
            let cipher = Arc::new(FileCipher::new(&self.keys, &file.id, &id, file.chunks));
            if let Some(card) = self.card_mut(id) {
                card.file = Some(FileInfo {
                    name: file.name.clone(),
                    mime: file.mime.clone(),
                    size: file.size,
                    done: 0,
                    chunks: file.chunks,
                });
            }
            let plain = Zeroizing::new(Vec::with_capacity(file.chunks as usize * CHUNK_LEN));
            self.downloads
                .insert(id, Download { card: file, cipher, plain, requested: 0, opened: 0, early: BTreeMap::new() });
        }
        self.pump_download(id, out);
    }

    /// Asks for what the window allows.
    fn pump_download(&mut self, id: MessageId, out: &mut Vec<Effect>) {
        if self.socket != Socket::Joined {
            return;
        }
        let Some(download) = self.downloads.get_mut(&id) else { return };
        let limit = (download.opened + WINDOW).min(download.card.chunks);
        while download.requested < limit {
            out.push(Effect::SendBinary(binary::request(&id, download.requested)));
            download.requested += 1;
        }
    }

    /// A binary frame from the relay: a chunk of a file this page is opening.
    pub fn on_binary(&mut self, bytes: &[u8]) -> Vec<Effect> {
        let mut out = Vec::new();
        let Some(binary::Frame::Chunk { kind: binary::CHUNK, id, index, sealed }) = binary::decode(bytes) else {
            return out;
        };
        let Some(download) = self.downloads.get(&id) else { return out };
        if index < download.opened || index >= download.card.chunks || download.early.contains_key(&index) {
            return out;
        }
        out.push(Effect::Open(ChunkJob {
            id,
            index,
            key: Arc::new(Zeroizing::new(*download.cipher.key())),
            nonce: chunk_nonce(index, download.card.chunks),
            aad: Arc::new(download.cipher.aad().to_vec()),
            input: Zeroizing::new(sealed.to_vec()),
        }));
        out
    }

    /// The driver opened chunk `index` of file `id` (or it failed to open: the whole file is
    /// then unreadable, as a message that fails to open is).
    pub fn chunk_opened(
        &mut self,
        id: MessageId,
        index: u32,
        opened: Result<Zeroizing<Vec<u8>>, OpenError>,
    ) -> Vec<Effect> {
        let mut out = Vec::new();
        let Some(download) = self.downloads.get_mut(&id) else { return out };
        let Ok(plain) = opened else {
            self.downloads.remove(&id);
            self.set_state(id, CardState::Unreadable);
            out.push(Effect::Event(RoomEvent::Unreadable(id)));
            return out;
        };
        if index >= download.opened {
            download.early.insert(index, plain);
        }
        while let Some(next) = download.early.remove(&download.opened) {
            download.plain.extend_from_slice(&next);
            download.opened += 1;
        }
        let (opened, chunks) = (download.opened, download.card.chunks);
        if let Some(file) = self.card_mut(id).and_then(|card| card.file.as_mut()) {
            file.done = opened;
        }
        if opened < chunks {
            self.pump_download(id, &mut out);
            return out;
        }
        let mut download = self.downloads.remove(&id).expect("invariant: found above");
        download.plain.truncate(usize::try_from(download.card.size).unwrap_or(usize::MAX));
        let bytes = FileBytes(Arc::new(std::mem::take(&mut download.plain)));
        self.shown.insert(id);
        self.set_state(id, CardState::File(bytes));
        out.push(Effect::Event(RoomEvent::Opened(id)));
        let image = self.card(id).and_then(|card| card.file.as_ref()).is_some_and(FileInfo::is_image);
        if image {
            // Shown now, as a text message is: viewed, and gone after the view time.
            self.confirm_viewed(id, &mut out);
            self.count_down(id, &mut out);
        } else {
            self.announcement = "A file is ready to save.".into();
        }
        out
    }

    /// The person saves a decrypted file: the browser gets it, this page lets go of it, and the
    /// relay is told it was viewed.
    pub fn save(&mut self, id: MessageId) -> Vec<Effect> {
        let mut out = Vec::new();
        let Some(card) = self.card(id) else { return out };
        let (CardState::File(bytes), Some(file)) = (&card.state, &card.file) else { return out };
        if file.is_image() {
            return out;
        }
        out.push(Effect::Save { name: file.name.clone(), bytes: bytes.clone() });
        self.set_state(id, CardState::Saved);
        self.confirm_viewed(id, &mut out);
        self.count_down(id, &mut out);
        out
    }

    /// "Send again" on our file the relay refused, or whose upload was cut off: a new file
    /// message, with a new id, its card last.
    pub(super) fn resend_file(&mut self, id: MessageId, now_ms: u64) -> Option<Result<Vec<Effect>, NotSent>> {
        let source = self.sources.get(&id)?;
        let (name, mime, bytes) = (source.name.clone(), source.mime.clone(), source.bytes.clone());
        let sent = self.send_file_shared(&name, &mime, bytes, now_ms);
        if sent.is_ok() {
            self.sources.remove(&id);
            self.cards.retain(|card| card.id != id);
        }
        Some(sent)
    }

    /// Our file is stored: what was kept to send it again goes.
    pub(super) fn file_stored(&mut self, id: MessageId) {
        self.sources.remove(&id);
    }
}

/// A size as people read it: "10 MiB", "512 KiB".
pub(super) fn bytes_in_words(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{} MiB", b >> 20),
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / f64::from(1 << 20)),
        b if b >= 1 << 10 => format!("{} KiB", b.div_ceil(1 << 10)),
        b => format!("{b} bytes"),
    }
}
