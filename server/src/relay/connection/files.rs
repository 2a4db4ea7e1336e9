//! The file operations of a joined connection (spec v2): an upload (`upload`, then its chunks as
//! binary frames, then its card as a `send`), and a recipient's chunk requests once it fetched the
//! card. A file is a message with chunks beside it: the card goes through `send`, `fetch` and
//! `viewed` as any message, and the store deletes the chunks with it; nothing here decides
//! when a file burns.
//!
//! One upload at a time per connection, its chunks in order. Its bytes are reserved against the
//! relay's total and charged to the client block when it begins, so a file that would not fit
//! is refused before any chunk moves. An upload that does not end in its card (the connection
//! ends, or [`UPLOAD_DEADLINE`] passes) is purged: a page sends it again from the start.

use std::time::Instant;

use app::crypto::file::{chunk_class, SEALED_CHUNK_LEN};
use app::protocol::{binary, ErrorCode, ServerFrame};

use super::{internal, parse_id, Connection, Member, Outgoing, Refusal};
use crate::at_rest::AtRestError;
use crate::domain::bounds::UPLOAD_DEADLINE;
use crate::domain::{MessageId, RoomHash};
use crate::relay::hub::FetchedState;
use crate::relay::quota::Reservation;
use crate::store::ChunkRead;
use crate::telemetry::metrics;

/// Bytes one stored chunk takes: its at-rest record (key id, nonce, sealed chunk, tag).
pub const STORED_CHUNK_LEN: u64 = (1 + 12 + SEALED_CHUNK_LEN + 16) as u64;

/// This connection's upload under way.
pub(super) struct Upload {
    room: RoomHash,
    id: MessageId,
    /// Chunks it has, and the next one it expects.
    chunks: u32,
    next: u32,
    started: Instant,
    /// Its bytes, reserved against the relay's total until its card is stored or it is purged.
    _reservation: Option<Reservation>,
}

impl Upload {
    fn complete(&self) -> bool {
        self.next == self.chunks
    }
}

impl Connection {
    /// Begins an upload of `chunks` chunks for the file card `message_id`.
    pub(super) async fn upload(&mut self, message_id: &str, chunks: u32) -> Result<Vec<ServerFrame>, Refusal> {
        let Member { room, .. } = self.member()?;
        let id = parse_id(message_id)?;
        if chunks == 0 || chunk_class(chunks) != chunks {
            return Err(ErrorCode::BadChunks);
        }
        if chunks > self.relay.max_file_chunks() {
            return Err(ErrorCode::FileTooLarge);
        }
        if self.upload.is_some() {
            return Err(ErrorCode::UploadBusy);
        }
        if self.relay.store.id_in_use(&room, &id).await.map_err(|err| internal(&err))? {
            return Err(ErrorCode::IdConflict);
        }
        let bytes = u64::from(chunks) * STORED_CHUNK_LEN;
        let (charged, reservation) = self.reserve_file(room, id, bytes).await?;
        if !charged {
            // Charged already: an id this block is sending (a card whose upload ended), or
            // another's; either way not a fresh upload.
            return Err(ErrorCode::IdConflict);
        }
        self.upload = Some(Upload { room, id, chunks, next: 0, started: Instant::now(), _reservation: reservation });
        Ok(vec![ServerFrame::Uploaded { message_id: id.to_hex(), chunks: 0 }])
    }

    /// Reserves a file's bytes of the relay's total and charges them to this client block, for
    /// as long as the upload and then its message may wait.
    async fn reserve_file(
        &self,
        room: RoomHash,
        id: MessageId,
        bytes: u64,
    ) -> Result<(bool, Option<Reservation>), Refusal> {
        let expires = Instant::now() + UPLOAD_DEADLINE + self.relay.message_ttl;
        let charged = self
            .relay
            .hub
            .charges
            .charge(self.client, room, id, bytes, expires)
            .map_err(|_| ErrorCode::QuotaExceeded)?;
        let store = &self.relay.store;
        let refused = match self.relay.stored.reserve(bytes, || store.stored_bytes()).await {
            Ok(Ok(reservation)) => return Ok((charged, Some(reservation))),
            Ok(Err(_)) => ErrorCode::StorageFull,
            Err(err) => internal(&err),
        };
        if charged {
            self.relay.hub.charges.refund(&room, &id);
        }
        Err(refused)
    }

    /// A binary frame of a file transfer: a chunk of this connection's upload, or a request for
    /// a chunk of a fetched file.
    pub async fn transfer(&mut self, frame: binary::Frame<'_>) -> Vec<Outgoing> {
        let (result, id) = match frame {
            binary::Frame::Chunk { kind: binary::UPLOAD, id, index, sealed } => (
                self.chunk(id, index, sealed).await.map(|frames| frames.into_iter().map(Outgoing::Frame).collect()),
                id,
            ),
            binary::Frame::Request { id, index } => {
                (self.request(id, index).await.map(|c| vec![Outgoing::Chunk(c)]), id)
            }
            // A chunk frame of the relay's own kind: not one a client sends.
            binary::Frame::Chunk { .. } => return vec![Outgoing::Frame(ServerFrame::error(ErrorCode::BinaryFrame))],
        };
        result.unwrap_or_else(|code| vec![Outgoing::Frame(ServerFrame::error_about(code, &id.to_hex()))])
    }

    /// Stores chunk `index` of the upload `id`.
    async fn chunk(&mut self, id: MessageId, index: u32, sealed: &[u8]) -> Result<Vec<ServerFrame>, Refusal> {
        self.member()?;
        let upload = self.upload.as_ref().filter(|u| u.id == id).ok_or(ErrorCode::UnknownUpload)?;
        if upload.started.elapsed() > UPLOAD_DEADLINE {
            self.abandon_upload().await;
            return Err(ErrorCode::UnknownUpload);
        }
        if sealed.len() != SEALED_CHUNK_LEN {
            return Err(ErrorCode::BadChunkSize);
        }
        if upload.complete() || index != upload.next {
            return Err(ErrorCode::ChunkOutOfOrder);
        }
        let room = upload.room;
        let record = self.relay.keys.seal_chunk(&room.0, &id, index, sealed);
        // `false`: the row was there already, left by an earlier upload of this id that was not
        // purged (its purge failed). Taking it would store a chunk of another upload.
        if !self.relay.store.put_chunk(&room, &id, index, &record).await.map_err(|err| internal(&err))? {
            self.abandon_upload().await;
            return Err(ErrorCode::IdConflict);
        }
        metrics::counter!(metrics::FILE_BYTES, "direction" => "in").increment(sealed.len() as u64);
        let upload = self.upload.as_mut().expect("invariant: checked above, and nothing since removed it");
        upload.next += 1;
        Ok(vec![ServerFrame::Uploaded { message_id: id.to_hex(), chunks: upload.next }])
    }

    /// The chunks of message `id` about to be sent: for a file card, this connection's upload of
    /// it, which must be complete; for a text message none, and its id must not be an upload's.
    /// A card with no upload here is only let through as a resend of a card already stored (the
    /// insert then answers it as such, storing nothing).
    pub(super) async fn uploaded_chunks(&self, room: &RoomHash, id: &MessageId, card: bool) -> Result<u32, Refusal> {
        let upload = self.upload.as_ref().filter(|u| u.id == *id && u.room == *room);
        if !card {
            return if upload.is_some() { Err(ErrorCode::IdConflict) } else { Ok(0) };
        }
        match upload {
            Some(upload) if upload.complete() => {
                // Every chunk must still be there: a sweep of abandoned uploads, or a purge
                // by a failed earlier attempt, would leave a card that cannot be opened.
                let stored = self.relay.store.chunk_count(room, id).await.map_err(|err| internal(&err))?;
                if stored == upload.chunks {
                    Ok(upload.chunks)
                } else {
                    Err(ErrorCode::UploadIncomplete)
                }
            }
            Some(_) => Err(ErrorCode::UploadIncomplete),
            None if self.relay.store.exists(room, id).await.map_err(|err| internal(&err))? => Ok(0),
            None => Err(ErrorCode::UploadIncomplete),
        }
    }

    /// The card of this connection's upload `id` is stored: the upload is done, its chunks now
    /// its message's (and counted by the store, so its reservation goes).
    pub(super) fn upload_stored(&mut self, id: &MessageId) {
        if self.upload.as_ref().is_some_and(|u| u.id == *id) {
            self.upload = None;
        }
    }

    /// Ends this connection's upload under way, if any, deleting what it stored and refunding
    /// its charge.
    pub(super) async fn abandon_upload(&mut self) {
        let Some(upload) = self.upload.take() else { return };
        match self.relay.store.purge_upload(&upload.room, &upload.id).await {
            Ok(_) => {
                // Unless its card was stored after all (then the charge is the message's).
                if !self.relay.store.exists(&upload.room, &upload.id).await.unwrap_or(true) {
                    self.relay.hub.charges.refund(&upload.room, &upload.id);
                }
            }
            // Left for the sweep of abandoned uploads; the charge goes at its expiry.
            Err(err) => tracing::error!("store: an abandoned upload's purge failed: {err}"),
        }
    }

    /// Chunk `index` of the file of card `id`, which this participant fetched, as a binary frame.
    async fn request(&mut self, id: MessageId, index: u32) -> Result<Vec<u8>, Refusal> {
        let Member { room, who } = self.member()?;
        match self.relay.hub.fetched_state(&room, &who, &id) {
            FetchedState::NotFetched => return Err(ErrorCode::NotFetched),
            FetchedState::Gone => return Err(ErrorCode::UnknownMessage),
            FetchedState::Waiting => {}
        }
        let stored = match self.relay.store.chunk(&room, &id, index).await.map_err(|err| internal(&err))? {
            ChunkRead::Found(stored) => stored,
            ChunkRead::NoSuchIndex { .. } => return Err(ErrorCode::BadChunkIndex),
            ChunkRead::NoMessage => return Err(ErrorCode::UnknownMessage),
        };
        match self.relay.keys.open_chunk(&room.0, &id, index, &stored) {
            Ok(sealed) => {
                metrics::counter!(metrics::FILE_BYTES, "direction" => "out").increment(sealed.len() as u64);
                Ok(binary::chunk(binary::CHUNK, &id, index, &sealed))
            }
            Err(err) => {
                // Unreadable at rest: the file cannot be opened, so its card goes as expired,
                // as a message's would.
                if matches!(err, AtRestError::Corrupt) {
                    tracing::error!("a stored file chunk failed at-rest authentication; purging its message");
                }
                self.purge_unreadable(&room, id).await?;
                Err(ErrorCode::UnknownMessage)
            }
        }
    }
}
