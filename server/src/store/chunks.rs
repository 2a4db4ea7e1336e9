//! A file's chunks as rows (crypto spec v2): written one by one while their file uploads, before
//! the file card's message row exists; read by its recipients; deleted with that row by the
//! `messages_burn_chunks` trigger (the migrations), whichever way it goes. What an upload left
//! without a message row is purged: by its connection when it ends, or by the sweep once the
//! upload deadline is past (its instance died).

use super::dialect::Param::{Blob, Int};
use super::{Pool, Store, StoreError};
use crate::domain::{now_ms, MessageId, RoomHash};
use crate::telemetry::metrics::StoreTimer;

/// Whether an id is free for an upload: neither a message nor chunks are stored under it.
const ID_IN_USE: &str = "SELECT (SELECT COUNT(*) FROM messages WHERE room_hash = $1 AND id = $2) \
     + (SELECT COUNT(*) FROM (SELECT 1 FROM chunks WHERE room_hash = $1 AND message_id = $2 LIMIT 1) AS any_chunk)";
const INSERT_CHUNK: &str = "INSERT INTO chunks (room_hash, message_id, idx, body, stored_at) \
     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (room_hash, message_id, idx) DO NOTHING";
/// PostgreSQL: the same, committed without waiting for its WAL to reach the disk
/// (`synchronous_commit` off for this transaction alone). Nothing is risked: the card's own
/// insert commits synchronously after every chunk of its upload, and flushing its commit record
/// flushes every record before it, the chunks' included. A crash before the card took only chunks
/// of an upload never offered, which the page then sends again (`upload_incomplete`). A file's
/// 160 chunks no longer wait for 160 flushes, nor make the journeys' commits beside them queue
/// behind those flushes.
const INSERT_CHUNK_POSTGRES: &str = "WITH relaxed AS (SELECT set_config('synchronous_commit', 'off', true)) \
     INSERT INTO chunks (room_hash, message_id, idx, body, stored_at) SELECT $1, $2, $3, $4, $5 FROM relaxed \
     ON CONFLICT (room_hash, message_id, idx) DO NOTHING";
const COUNT_CHUNKS: &str = "SELECT COUNT(*) FROM chunks WHERE room_hash = $1 AND message_id = $2";
/// (the chunk's body, the message's chunk count), each NULL if there is none: the message only
/// while it waits unexpired.
const SELECT_CHUNK: &str = "SELECT (SELECT c.body FROM chunks c WHERE c.room_hash = $1 AND c.message_id = $2 \
         AND c.idx = $3 AND EXISTS (SELECT 1 FROM messages m WHERE m.room_hash = $1 AND m.id = $2 \
         AND m.expires_at > $4)), \
     (SELECT CAST(m.chunks AS BIGINT) FROM messages m WHERE m.room_hash = $1 AND m.id = $2 AND m.expires_at > $4)";
const PURGE_UPLOAD: &str = "DELETE FROM chunks WHERE room_hash = $1 AND message_id = $2 \
     AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.room_hash = $1 AND m.id = $2)";
const PURGE_ABANDONED: &str = "DELETE FROM chunks WHERE stored_at < $1 AND NOT EXISTS \
     (SELECT 1 FROM messages m WHERE m.room_hash = chunks.room_hash AND m.id = chunks.message_id)";

/// What a chunk read found.
#[derive(Debug, PartialEq, Eq)]
pub enum ChunkRead {
    /// The chunk's stored (at-rest-sealed) bytes.
    Found(Vec<u8>),
    /// The message waits, but has no chunk of that index (it has this many).
    NoSuchIndex { chunks: u32 },
    /// No such message waits in the room (never sent, burned, expired).
    NoMessage,
}

impl Store {
    /// Whether a message or an upload's chunks are stored under `id` in `room`.
    pub async fn id_in_use(&self, room: &RoomHash, id: &MessageId) -> Result<bool, StoreError> {
        let _timer = StoreTimer::start("id_in_use");
        let (count,): (i64,) = self.write_pool().fetch_one(ID_IN_USE, &[Blob(&room.0), Blob(&id.0)]).await?;
        Ok(count > 0)
    }

    /// Stores chunk `index` of the upload `id` of `room` (its at-rest record); `false` if that
    /// chunk was stored already (and is left as it was).
    pub async fn put_chunk(
        &self,
        room: &RoomHash,
        id: &MessageId,
        index: u32,
        body: &[u8],
    ) -> Result<bool, StoreError> {
        let _timer = StoreTimer::start("put_chunk");
        // SQLite's one write connection serves the journeys' writes first.
        let _turn = match &self.pool {
            Pool::Sqlite { queue, .. } => Some(queue.behind_journeys().await),
            Pool::Postgres(_) => None,
        };
        let params = [Blob(&room.0), Blob(&id.0), Int(index.into()), Blob(body), Int(now_ms())];
        let sql = self.dialect(INSERT_CHUNK, INSERT_CHUNK_POSTGRES);
        Ok(self.write_pool().execute(sql, &params).await? == 1)
    }

    /// How many chunks are stored for `id` of `room`.
    pub async fn chunk_count(&self, room: &RoomHash, id: &MessageId) -> Result<u32, StoreError> {
        let _timer = StoreTimer::start("chunk_count");
        let (count,): (i64,) = self.write_pool().fetch_one(COUNT_CHUNKS, &[Blob(&room.0), Blob(&id.0)]).await?;
        Ok(u32::try_from(count).unwrap_or(u32::MAX))
    }

    /// Chunk `index` of the waiting, unexpired message `id` of `room`.
    pub async fn chunk(&self, room: &RoomHash, id: &MessageId, index: u32) -> Result<ChunkRead, StoreError> {
        let _timer = StoreTimer::start("chunk");
        let params = [Blob(&room.0), Blob(&id.0), Int(index.into()), Int(now_ms())];
        let (body, chunks): (Option<Vec<u8>>, Option<i64>) = self.read_pool().fetch_one(SELECT_CHUNK, &params).await?;
        Ok(match (body, chunks) {
            (Some(body), Some(_)) => ChunkRead::Found(body),
            (None, Some(chunks)) => ChunkRead::NoSuchIndex { chunks: u32::try_from(chunks).unwrap_or(0) },
            (_, None) => ChunkRead::NoMessage,
        })
    }

    /// Deletes what an upload stored, unless its message row exists (then its chunks are its
    /// file's, and go with it). Returns how many chunks went.
    pub async fn purge_upload(&self, room: &RoomHash, id: &MessageId) -> Result<u64, StoreError> {
        let _timer = StoreTimer::start("purge_upload");
        Ok(self.write_pool().execute(PURGE_UPLOAD, &[Blob(&room.0), Blob(&id.0)]).await?)
    }

    /// Deletes the chunks of uploads abandoned before `stored_before` (milliseconds since the
    /// epoch) that never got their message row: their instance died mid-upload. Returns how
    /// many went.
    pub async fn purge_abandoned_uploads(&self, stored_before: i64) -> Result<u64, StoreError> {
        let _timer = StoreTimer::start("purge_abandoned_uploads");
        Ok(self.write_pool().execute(PURGE_ABANDONED, &[Int(stored_before)]).await?)
    }
}
