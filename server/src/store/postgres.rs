//! The PostgreSQL store: for production and for several instances over one database.

use app::crypto::MessageId;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgPool};

use super::{Inserted, NewMessage, StoreError};
use crate::at_rest::RoomHash;

/// Enough for two cores' worth of concurrent requests without crowding the database.
const MAX_CONNECTIONS: u32 = 10;
/// SQLSTATE of "database does not exist".
const INVALID_CATALOG_NAME: &str = "3D000";

pub(super) async fn connect(options: &PgConnectOptions) -> Result<PgPool, StoreError> {
    let pool = match PgPoolOptions::new().max_connections(MAX_CONNECTIONS).connect_with(options.clone()).await {
        Err(sqlx::Error::Database(err)) if err.code().as_deref() == Some(INVALID_CATALOG_NAME) => {
            create_database(options).await?;
            PgPoolOptions::new().max_connections(MAX_CONNECTIONS).connect_with(options.clone()).await?
        }
        other => other?,
    };
    sqlx::migrate!("../migrations/postgres").run(&pool).await?;
    Ok(pool)
}

/// Creates the configured database through the server's maintenance database.
async fn create_database(options: &PgConnectOptions) -> Result<(), StoreError> {
    let name =
        options.get_database().ok_or_else(|| StoreError::Setup("PostgreSQL: no database name configured".into()))?;
    let mut conn = options.clone().database("postgres").connect().await?;
    let quoted = format!("\"{}\"", name.replace('"', "\"\""));
    let created = sqlx::query(&format!("CREATE DATABASE {quoted}")).execute(&mut conn).await;
    conn.close().await?;
    match created {
        // Another instance created it first.
        Err(sqlx::Error::Database(err)) if err.code().as_deref() == Some("42P04") => Ok(()),
        other => other.map(drop).map_err(StoreError::from),
    }
}

pub(super) async fn insert(pool: &PgPool, m: &NewMessage<'_>, expires_at: i64) -> Result<Inserted, StoreError> {
    let done = sqlx::query(
        "INSERT INTO messages (room_hash, id, body, expires_at) VALUES ($1, $2, $3, $4) \
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
    let body: Option<Vec<u8>> = sqlx::query_scalar("SELECT body FROM messages WHERE room_hash = $1 AND id = $2")
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
    pool: &PgPool,
    room: &RoomHash,
    id: &MessageId,
    now: i64,
) -> Result<Option<Vec<u8>>, StoreError> {
    Ok(sqlx::query_scalar("SELECT body FROM messages WHERE room_hash = $1 AND id = $2 AND expires_at > $3")
        .bind(&room.0[..])
        .bind(&id.0[..])
        .bind(now)
        .fetch_optional(pool)
        .await?)
}

pub(super) async fn delete(pool: &PgPool, room: &RoomHash, id: &MessageId) -> Result<bool, StoreError> {
    let done = sqlx::query("DELETE FROM messages WHERE room_hash = $1 AND id = $2")
        .bind(&room.0[..])
        .bind(&id.0[..])
        .execute(pool)
        .await?;
    Ok(done.rows_affected() == 1)
}

pub(super) async fn pending(pool: &PgPool, room: &RoomHash, now: i64) -> Result<Vec<Vec<u8>>, StoreError> {
    Ok(sqlx::query_scalar("SELECT id FROM messages WHERE room_hash = $1 AND expires_at > $2 ORDER BY expires_at")
        .bind(&room.0[..])
        .bind(now)
        .fetch_all(pool)
        .await?)
}

pub(super) async fn delete_expired(pool: &PgPool, now: i64) -> Result<Vec<(Vec<u8>, Vec<u8>)>, StoreError> {
    Ok(sqlx::query_as("DELETE FROM messages WHERE expires_at <= $1 RETURNING room_hash, id")
        .bind(now)
        .fetch_all(pool)
        .await?)
}

pub(super) async fn pending_count(pool: &PgPool, room: &RoomHash, now: i64) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar("SELECT COUNT(*) FROM messages WHERE room_hash = $1 AND expires_at > $2")
        .bind(&room.0[..])
        .bind(now)
        .fetch_one(pool)
        .await?)
}
