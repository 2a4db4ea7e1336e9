//! What differs between the two databases inside the transactions the store writes once for
//! both: how a write transaction opens, how events are announced, and where a message's
//! recipients live.

use super::{postgres, sqlite};
use crate::domain::{MessageId, Participant, RoomHash, CHANNEL};

/// What differs between the backends inside the shared statements' transactions.
pub(super) trait Dialect {
    type Db: sqlx::Database;
    /// Opens a transaction that will write. SQLite takes the write lock up front (`BEGIN
    /// IMMEDIATE`): with one write connection no other writer can hold it, but a deferred
    /// transaction would still fail rather than wait if anything else (a backup, an operator's
    /// `sqlite3`) took it first. PostgreSQL's row locks already order writers.
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, Self::Db>, sqlx::Error>;
    /// Announces events to the other instances when (and only if) `tx` commits.
    async fn notify(
        &self,
        tx: &mut sqlx::Transaction<'static, Self::Db>,
        notices: &[String],
    ) -> Result<(), sqlx::Error>;
    /// Inside `tx`: drops `who` from the recipients of the messages of `room` it has not viewed,
    /// deletes those that every remaining recipient has now viewed, and returns their ids.
    async fn drop_recipient(
        &self,
        tx: &mut sqlx::Transaction<'static, Self::Db>,
        room: &RoomHash,
        who: &Participant,
    ) -> Result<Vec<Vec<u8>>, sqlx::Error>;
    /// Inside `tx`, after messages were deleted: deletes what is left of their recipients.
    async fn delete_orphan_recipients(&self, tx: &mut sqlx::Transaction<'static, Self::Db>) -> Result<(), sqlx::Error>;
    /// Inside `tx`, after message `id` of `room` was deleted: deletes its recipients.
    async fn delete_recipients_of(
        &self,
        tx: &mut sqlx::Transaction<'static, Self::Db>,
        room: &RoomHash,
        id: &MessageId,
    ) -> Result<(), sqlx::Error>;
}

impl Dialect for sqlx::SqlitePool {
    type Db = sqlx::Sqlite;
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, Self::Db>, sqlx::Error> {
        self.begin_with("BEGIN IMMEDIATE").await
    }
    /// One instance per SQLite file: nobody else to tell.
    async fn notify(&self, _: &mut sqlx::Transaction<'static, Self::Db>, _: &[String]) -> Result<(), sqlx::Error> {
        Ok(())
    }
    async fn drop_recipient(
        &self,
        tx: &mut sqlx::Transaction<'static, Self::Db>,
        room: &RoomHash,
        who: &Participant,
    ) -> Result<Vec<Vec<u8>>, sqlx::Error> {
        sqlx::query(sqlite::DROP_UNVIEWED).bind(&room.0[..]).bind(&who.0[..]).execute(&mut **tx).await?;
        let deleted = sqlx::query_scalar(sqlite::COMPLETED_IN_ROOM).bind(&room.0[..]).fetch_all(&mut **tx).await?;
        self.delete_orphan_recipients(tx).await?;
        Ok(deleted)
    }
    async fn delete_orphan_recipients(&self, tx: &mut sqlx::Transaction<'static, Self::Db>) -> Result<(), sqlx::Error> {
        sqlx::query(sqlite::DELETE_ORPHAN_RECIPIENTS).execute(&mut **tx).await.map(drop)
    }
    async fn delete_recipients_of(
        &self,
        tx: &mut sqlx::Transaction<'static, Self::Db>,
        room: &RoomHash,
        id: &MessageId,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(sqlite::DELETE_RECIPIENTS_OF).bind(&room.0[..]).bind(&id.0[..]).execute(&mut **tx).await.map(drop)
    }
}

impl Dialect for sqlx::PgPool {
    type Db = sqlx::Postgres;
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, Self::Db>, sqlx::Error> {
        self.begin().await
    }
    async fn notify(
        &self,
        tx: &mut sqlx::Transaction<'static, Self::Db>,
        notices: &[String],
    ) -> Result<(), sqlx::Error> {
        for notice in notices {
            sqlx::query("SELECT pg_notify($1, $2)").bind(CHANNEL).bind(notice).execute(&mut **tx).await?;
        }
        Ok(())
    }
    async fn drop_recipient(
        &self,
        tx: &mut sqlx::Transaction<'static, Self::Db>,
        room: &RoomHash,
        who: &Participant,
    ) -> Result<Vec<Vec<u8>>, sqlx::Error> {
        sqlx::query(postgres::DROP_UNVIEWED).bind(&room.0[..]).bind(&who.0[..]).execute(&mut **tx).await?;
        sqlx::query_scalar(postgres::COMPLETED_IN_ROOM).bind(&room.0[..]).fetch_all(&mut **tx).await
    }
    /// Recipients live in their message's row: they went with it.
    async fn delete_orphan_recipients(&self, _: &mut sqlx::Transaction<'static, Self::Db>) -> Result<(), sqlx::Error> {
        Ok(())
    }
    /// Recipients live in their message's row: they went with it.
    async fn delete_recipients_of(
        &self,
        _: &mut sqlx::Transaction<'static, Self::Db>,
        _: &RoomHash,
        _: &MessageId,
    ) -> Result<(), sqlx::Error> {
        Ok(())
    }
}
