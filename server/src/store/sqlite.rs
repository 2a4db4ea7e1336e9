//! The embedded SQLite store: zero set-up, one server process per file.

use std::path::Path;
use std::time::Duration;

use app::crypto::MessageId;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;

use super::{Inserted, NewMessage, StoreError};
use crate::at_rest::RoomHash;

/// SQLite serialises writers; a few connections serve concurrent readers.
const MAX_CONNECTIONS: u32 = 4;

pub(super) async fn connect(path: &Path) -> Result<SqlitePool, StoreError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        create_private_dir(dir)?;
    }
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(5))
        // Deleted rows are overwritten with zeros, not just unlinked from the b-tree.
        .pragma("secure_delete", "ON");
    let pool = SqlitePoolOptions::new().max_connections(MAX_CONNECTIONS).connect_with(options).await?;
    sqlx::migrate!("../migrations/sqlite").run(&pool).await?;
    Ok(pool)
}

/// Creates the data directory readable by its owner only.
fn create_private_dir(dir: &Path) -> Result<(), StoreError> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(dir)
        .map_err(|err| StoreError::Setup(format!("cannot create data directory {}: {err}", dir.display())))
}

pub(super) async fn insert(pool: &SqlitePool, m: &NewMessage<'_>, expires_at: i64) -> Result<Inserted, StoreError> {
    let done = sqlx::query(
        "INSERT INTO messages (room_hash, id, body, expires_at) VALUES (?1, ?2, ?3, ?4) \
         ON CONFLICT (room_hash, id) DO NOTHING",
    )
    .bind(&m.room.0[..])
    .bind(&m.id.0[..])
    .bind(m.body)
    .bind(expires_at)
    .execute(pool)
    .await?;
    if done.rows_affected() == 1 {
        return Ok(Inserted::New);
    }
    let body: Option<Vec<u8>> = sqlx::query_scalar("SELECT body FROM messages WHERE room_hash = ?1 AND id = ?2")
        .bind(&m.room.0[..])
        .bind(&m.id.0[..])
        .fetch_optional(pool)
        .await?;
    // Gone between the two statements (viewed or expired): the id is free again, so try once more.
    match body {
        Some(body) => Ok(Inserted::Exists(body)),
        None => Box::pin(insert(pool, m, expires_at)).await,
    }
}

pub(super) async fn get(
    pool: &SqlitePool,
    room: &RoomHash,
    id: &MessageId,
    now: i64,
) -> Result<Option<Vec<u8>>, StoreError> {
    Ok(sqlx::query_scalar("SELECT body FROM messages WHERE room_hash = ?1 AND id = ?2 AND expires_at > ?3")
        .bind(&room.0[..])
        .bind(&id.0[..])
        .bind(now)
        .fetch_optional(pool)
        .await?)
}

pub(super) async fn delete(pool: &SqlitePool, room: &RoomHash, id: &MessageId) -> Result<bool, StoreError> {
    let done = sqlx::query("DELETE FROM messages WHERE room_hash = ?1 AND id = ?2")
        .bind(&room.0[..])
        .bind(&id.0[..])
        .execute(pool)
        .await?;
    Ok(done.rows_affected() == 1)
}

pub(super) async fn pending(pool: &SqlitePool, room: &RoomHash, now: i64) -> Result<Vec<Vec<u8>>, StoreError> {
    Ok(sqlx::query_scalar("SELECT id FROM messages WHERE room_hash = ?1 AND expires_at > ?2 ORDER BY expires_at")
        .bind(&room.0[..])
        .bind(now)
        .fetch_all(pool)
        .await?)
}

pub(super) async fn delete_expired(pool: &SqlitePool, now: i64) -> Result<Vec<(Vec<u8>, Vec<u8>)>, StoreError> {
    Ok(sqlx::query_as("DELETE FROM messages WHERE expires_at <= ?1 RETURNING room_hash, id")
        .bind(now)
        .fetch_all(pool)
        .await?)
}

pub(super) async fn pending_count(pool: &SqlitePool, room: &RoomHash, now: i64) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar("SELECT COUNT(*) FROM messages WHERE room_hash = ?1 AND expires_at > ?2")
        .bind(&room.0[..])
        .bind(now)
        .fetch_one(pool)
        .await?)
}
