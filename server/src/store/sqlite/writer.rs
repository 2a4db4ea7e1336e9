//! The bottom of the SQLite store: one write, carrying its own transaction, on the one write
//! connection, and the guard that keeps a connection with a transaction left open from serving
//! the next writer.

use sqlx::sqlite::{SqliteArguments, SqliteRow};
use sqlx::{Sqlite, SqlitePool};

/// Runs a write that carries its own transaction (`BEGIN IMMEDIATE; …; COMMIT` in one query
/// string) on the write connection, in one call. sqlx runs each SQLite connection on a worker
/// thread, and every call is a round trip to it: a transaction opened and committed by sqlx
/// costs two more. If a statement fails, what it left open is rolled back. sqlx does not know
/// of this transaction, so it cannot roll it back itself: a connection that may still hold it
/// (the rollback failed, or the caller dropped this future midway, which stops the worker
/// between statements) is closed, which rolls back, rather than handed to the next writer.
pub(crate) async fn write<'q>(
    pool: &SqlitePool,
    query: sqlx::query::Query<'q, Sqlite, SqliteArguments<'q>>,
) -> Result<Vec<SqliteRow>, sqlx::Error> {
    let mut writer = Writer::acquire(pool).await?;
    let result = query.fetch_all(writer.conn()).await;
    if result.is_ok() || sqlx::query("ROLLBACK").execute(writer.conn()).await.is_ok() {
        writer.clean();
    }
    result
}

/// The write connection while a write that runs its own transaction uses it: closed when
/// dropped unless marked clean, which rolls back whatever it may still hold.
pub(crate) struct Writer {
    conn: sqlx::pool::PoolConnection<Sqlite>,
    clean: bool,
}

impl Writer {
    pub(crate) async fn acquire(pool: &SqlitePool) -> Result<Self, sqlx::Error> {
        Ok(Self { conn: pool.acquire().await?, clean: false })
    }

    pub(crate) fn conn(&mut self) -> &mut sqlx::SqliteConnection {
        &mut self.conn
    }

    /// No transaction is left open: the connection may serve the next writer.
    pub(crate) fn clean(&mut self) {
        self.clean = true;
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        if !self.clean {
            self.conn.close_on_drop();
        }
    }
}
