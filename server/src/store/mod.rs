//! The message store: one [`Store`] type, SQLite or PostgreSQL, with the same methods on both.
//!
//! Rows hold only what the relay needs: `SHA-256(room_id)`, the message id, the at-rest-sealed
//! payload and an expiry time. Handlers call these methods and never see SQL.

mod postgres;
mod sqlite;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use app::crypto::MessageId;

use crate::at_rest::RoomHash;
use crate::config::Database;

/// Why a store operation failed. Never carries a value from a row.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("{0}")]
    Setup(String),
}

/// A message to store.
pub struct NewMessage<'a> {
    pub room: &'a RoomHash,
    pub id: &'a MessageId,
    /// The at-rest-sealed payload.
    pub body: &'a [u8],
    pub ttl: Duration,
}

/// What an insert found.
#[derive(Debug, PartialEq, Eq)]
pub enum Inserted {
    /// A new row.
    New,
    /// A row with this id already waits in the room; here is its stored body.
    Exists(Vec<u8>),
}

/// The message store.
#[derive(Clone, Debug)]
pub enum Store {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

/// Milliseconds since the Unix epoch, as stored in `expires_at`.
pub fn now_ms() -> i64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
}

fn expiry(ttl: Duration) -> i64 {
    now_ms().saturating_add(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX))
}

/// Reads a 16-byte id column; `None` for a malformed row (which the schema's CHECK forbids).
fn id_from_row(bytes: &[u8]) -> Option<MessageId> {
    bytes.try_into().ok().map(MessageId)
}

fn room_from_row(bytes: &[u8]) -> Option<RoomHash> {
    bytes.try_into().ok().map(RoomHash)
}

impl Store {
    /// Opens (creating if needed) the configured database and runs its migrations.
    pub async fn connect(database: &Database) -> Result<Self, StoreError> {
        match database {
            Database::Sqlite { path } => sqlite::connect(path).await.map(Self::Sqlite),
            Database::Postgres(options) => postgres::connect(options).await.map(Self::Postgres),
        }
    }

    /// Stores a message unless one with its id already waits in its room.
    pub async fn insert(&self, message: NewMessage<'_>) -> Result<Inserted, StoreError> {
        let expires_at = expiry(message.ttl);
        match self {
            Self::Sqlite(pool) => sqlite::insert(pool, &message, expires_at).await,
            Self::Postgres(pool) => postgres::insert(pool, &message, expires_at).await,
        }
    }

    /// The stored body of a waiting, unexpired message of `room`.
    pub async fn get(&self, room: &RoomHash, id: &MessageId) -> Result<Option<Vec<u8>>, StoreError> {
        match self {
            Self::Sqlite(pool) => sqlite::get(pool, room, id, now_ms()).await,
            Self::Postgres(pool) => postgres::get(pool, room, id, now_ms()).await,
        }
    }

    /// Deletes a message of `room`; `false` if there was none.
    pub async fn delete(&self, room: &RoomHash, id: &MessageId) -> Result<bool, StoreError> {
        match self {
            Self::Sqlite(pool) => sqlite::delete(pool, room, id).await,
            Self::Postgres(pool) => postgres::delete(pool, room, id).await,
        }
    }

    /// Ids of the unexpired messages waiting in `room`, oldest expiry first.
    pub async fn pending(&self, room: &RoomHash) -> Result<Vec<MessageId>, StoreError> {
        let rows = match self {
            Self::Sqlite(pool) => sqlite::pending(pool, room, now_ms()).await?,
            Self::Postgres(pool) => postgres::pending(pool, room, now_ms()).await?,
        };
        Ok(rows.iter().filter_map(|id| id_from_row(id)).collect())
    }

    /// How many unexpired messages wait in `room`.
    pub async fn pending_count(&self, room: &RoomHash) -> Result<u64, StoreError> {
        let count = match self {
            Self::Sqlite(pool) => sqlite::pending_count(pool, room, now_ms()).await?,
            Self::Postgres(pool) => postgres::pending_count(pool, room, now_ms()).await?,
        };
        Ok(u64::try_from(count).unwrap_or_default())
    }

    /// Deletes every expired message and says which, so their rooms can be told.
    pub async fn delete_expired(&self) -> Result<Vec<(RoomHash, MessageId)>, StoreError> {
        let rows = match self {
            Self::Sqlite(pool) => sqlite::delete_expired(pool, now_ms()).await?,
            Self::Postgres(pool) => postgres::delete_expired(pool, now_ms()).await?,
        };
        Ok(rows.iter().filter_map(|(room, id)| Some((room_from_row(room)?, id_from_row(id)?))).collect())
    }

    /// Closes the pool, waiting for connections to finish.
    pub async fn close(&self) {
        match self {
            Self::Sqlite(pool) => pool.close().await,
            Self::Postgres(pool) => pool.close().await,
        }
    }
}
