//! Where the statements written once for both databases run, and what differs between the two
//! databases inside the transactions that run them: how a write transaction opens, how events
//! are announced, and where a message's recipients live.

use sqlx::postgres::PgRow;
use sqlx::query::Query;
use sqlx::sqlite::SqliteRow;
use sqlx::{Encode, FromRow, PgConnection, PgExecutor, PgPool, Postgres, Sqlite, SqliteConnection, SqliteExecutor};
use sqlx::{SqlitePool, Transaction, Type};

use super::{postgres, sqlite};
use crate::domain::{MessageId, Participant, RoomHash};

/// A parameter of a statement written once for both databases: such statements bind only these.
#[derive(Clone, Copy, Debug)]
pub(super) enum Param<'a> {
    Blob(&'a [u8]),
    Int(i64),
    Text(&'a str),
}

/// A row type that both databases decode: a tuple of owned columns, read by position.
pub(super) trait SharedRow:
    for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin + 'static
{
}

impl<T> SharedRow for T where T: for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin + 'static {}

/// A pool or a connection of either database: where a statement written once for both runs.
#[derive(Debug)]
pub(super) enum Db<S, P> {
    Sqlite(S),
    Postgres(P),
}

/// Either database's pool.
pub(super) type DbPool<'a> = Db<&'a SqlitePool, &'a PgPool>;

impl<'c, S: SqliteExecutor<'c>, P: PgExecutor<'c>> Db<S, P> {
    /// Runs `sql` with `params` ($1, $2, … in order) and returns how many rows it changed.
    pub(super) async fn execute(self, sql: &str, params: &[Param<'_>]) -> Result<u64, sqlx::Error> {
        Ok(match self {
            Db::Sqlite(on) => query(sql, params).execute(on).await?.rows_affected(),
            Db::Postgres(on) => query(sql, params).execute(on).await?.rows_affected(),
        })
    }

    /// Runs `sql` with `params` and reads the one row it returns: `RowNotFound` if none.
    pub(super) async fn fetch_one<T: SharedRow>(self, sql: &str, params: &[Param<'_>]) -> Result<T, sqlx::Error> {
        match self {
            Db::Sqlite(on) => query(sql, params).try_map(|row: SqliteRow| T::from_row(&row)).fetch_one(on).await,
            Db::Postgres(on) => query(sql, params).try_map(|row: PgRow| T::from_row(&row)).fetch_one(on).await,
        }
    }

    /// Runs `sql` with `params` and reads the first row it returns, if any.
    pub(super) async fn fetch_optional<T: SharedRow>(
        self,
        sql: &str,
        params: &[Param<'_>],
    ) -> Result<Option<T>, sqlx::Error> {
        match self {
            Db::Sqlite(on) => query(sql, params).try_map(|row: SqliteRow| T::from_row(&row)).fetch_optional(on).await,
            Db::Postgres(on) => query(sql, params).try_map(|row: PgRow| T::from_row(&row)).fetch_optional(on).await,
        }
    }

    /// Runs `sql` with `params` and reads every row it returns.
    pub(super) async fn fetch_all<T: SharedRow>(self, sql: &str, params: &[Param<'_>]) -> Result<Vec<T>, sqlx::Error> {
        match self {
            Db::Sqlite(on) => query(sql, params).try_map(|row: SqliteRow| T::from_row(&row)).fetch_all(on).await,
            Db::Postgres(on) => query(sql, params).try_map(|row: PgRow| T::from_row(&row)).fetch_all(on).await,
        }
    }
}

/// `sql` with `params` bound in order.
fn query<'q, DB: sqlx::Database>(sql: &'q str, params: &[Param<'q>]) -> Query<'q, DB, DB::Arguments<'q>>
where
    &'q [u8]: Encode<'q, DB> + Type<DB>,
    i64: Encode<'q, DB> + Type<DB>,
    &'q str: Encode<'q, DB> + Type<DB>,
{
    params.iter().fold(sqlx::query(sql), |query, param| match *param {
        Param::Blob(bytes) => query.bind(bytes),
        Param::Int(n) => query.bind(n),
        Param::Text(text) => query.bind(text),
    })
}

impl DbPool<'_> {
    /// Opens a transaction that will write. SQLite takes the write lock up front (`BEGIN
    /// IMMEDIATE`): with one write connection no other writer can hold it, but a deferred
    /// transaction would still fail rather than wait if anything else (a backup, an operator's
    /// `sqlite3`) took it first. PostgreSQL's row locks already order writers.
    pub(super) async fn begin_write(self) -> Result<WriteTx, sqlx::Error> {
        Ok(match self {
            Db::Sqlite(pool) => WriteTx::Sqlite(pool.begin_with("BEGIN IMMEDIATE").await?),
            Db::Postgres(pool) => WriteTx::Postgres(pool.begin().await?),
        })
    }
}

/// A write transaction on either database ([`DbPool::begin_write`]): rolled back if dropped
/// before [`WriteTx::commit`].
#[derive(Debug)]
pub(super) enum WriteTx {
    Sqlite(Transaction<'static, Sqlite>),
    Postgres(Transaction<'static, Postgres>),
}

impl WriteTx {
    /// The transaction's connection, for one statement.
    fn on(&mut self) -> Db<&mut SqliteConnection, &mut PgConnection> {
        match self {
            WriteTx::Sqlite(tx) => Db::Sqlite(&mut **tx),
            WriteTx::Postgres(tx) => Db::Postgres(&mut **tx),
        }
    }

    /// [`Db::execute`] inside the transaction.
    pub(super) async fn execute(&mut self, sql: &str, params: &[Param<'_>]) -> Result<u64, sqlx::Error> {
        self.on().execute(sql, params).await
    }

    /// [`Db::fetch_one`] inside the transaction.
    pub(super) async fn fetch_one<T: SharedRow>(&mut self, sql: &str, params: &[Param<'_>]) -> Result<T, sqlx::Error> {
        self.on().fetch_one(sql, params).await
    }

    /// [`Db::fetch_optional`] inside the transaction.
    pub(super) async fn fetch_optional<T: SharedRow>(
        &mut self,
        sql: &str,
        params: &[Param<'_>],
    ) -> Result<Option<T>, sqlx::Error> {
        self.on().fetch_optional(sql, params).await
    }

    /// [`Db::fetch_all`] inside the transaction.
    pub(super) async fn fetch_all<T: SharedRow>(
        &mut self,
        sql: &str,
        params: &[Param<'_>],
    ) -> Result<Vec<T>, sqlx::Error> {
        self.on().fetch_all(sql, params).await
    }

    pub(super) async fn commit(self) -> Result<(), sqlx::Error> {
        match self {
            WriteTx::Sqlite(tx) => tx.commit().await,
            WriteTx::Postgres(tx) => tx.commit().await,
        }
    }

    /// Announces events to the other instances when (and only if) the transaction commits. One
    /// instance per SQLite file: there, nobody else to tell.
    pub(super) async fn notify(&mut self, notices: &[String]) -> Result<(), sqlx::Error> {
        match self {
            WriteTx::Sqlite(_) => Ok(()),
            WriteTx::Postgres(tx) => postgres::notify(tx, notices).await,
        }
    }

    /// Drops `who` from the recipients of the messages of `room` it has not viewed, deletes those
    /// that every remaining recipient has now viewed, and returns their ids.
    pub(super) async fn drop_recipient(
        &mut self,
        room: &RoomHash,
        who: &Participant,
    ) -> Result<Vec<Vec<u8>>, sqlx::Error> {
        match self {
            WriteTx::Sqlite(tx) => sqlite::drop_recipient(tx, room, who).await,
            WriteTx::Postgres(tx) => postgres::drop_recipient(tx, room, who).await,
        }
    }

    /// After messages were deleted: deletes what is left of their recipients. On PostgreSQL,
    /// recipients live in their message's row and went with it.
    pub(super) async fn delete_orphan_recipients(&mut self) -> Result<(), sqlx::Error> {
        match self {
            WriteTx::Sqlite(tx) => sqlite::delete_orphan_recipients(tx).await,
            WriteTx::Postgres(_) => Ok(()),
        }
    }

    /// After message `id` of `room` was deleted: deletes its recipients. On PostgreSQL,
    /// recipients live in their message's row and went with it.
    pub(super) async fn delete_recipients_of(&mut self, room: &RoomHash, id: &MessageId) -> Result<(), sqlx::Error> {
        match self {
            WriteTx::Sqlite(tx) => sqlite::delete_recipients_of(tx, room, id).await,
            WriteTx::Postgres(_) => Ok(()),
        }
    }
}
