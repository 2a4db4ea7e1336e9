//! SQLite's checkpoints, off the write path.
//!
//! In WAL mode a commit appends to the `-wal` file without syncing it (`synchronous=NORMAL`); a
//! checkpoint copies the log back into the database file and syncs both. Left to SQLite, the
//! connection whose commit takes the log past 1,000 pages runs the checkpoint inside that
//! commit, so the one write connection, and every journey queued behind it, waits for two
//! syncs: on a disk that stalls, the slowest journeys then took 100–200 ms
//! (`docs/benchmark-history.md`, session 9). Here a connection of its own checkpoints every
//! [`CHECKPOINT_EVERY`] in `PASSIVE` mode, which copies what it can without taking the write
//! lock, while the write connection goes on committing. The write connection keeps a checkpoint
//! of its own only as a backstop (`CHECKPOINT_BACKSTOP_PAGES`), for a log this task has let
//! grow (it failed, or the disk is slower than the writes).

use sqlx::sqlite::SqliteConnectOptions;
use sqlx::ConnectOptions;

use super::group_commit::QueueWatch;
use crate::domain::bounds::CHECKPOINT_EVERY;

/// Starts the task that checkpoints the database `options` names for as long as `queue`, the
/// store's write queue, has a handle.
pub(in crate::store) fn spawn(options: SqliteConnectOptions, queue: QueueWatch) {
    tokio::spawn(async move {
        let mut conn = None;
        let mut failing = false;
        let mut tick = tokio::time::interval(CHECKPOINT_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if !queue.is_alive() {
                break;
            }
            match checkpoint(&options, &mut conn).await {
                // Not fatal: the write connection's own checkpoint is the backstop. Said once
                // per run of failures, not ten times a second.
                Err(err) if !failing => {
                    tracing::warn!("SQLite checkpoint failed ({err}); retrying every {CHECKPOINT_EVERY:?}");
                    (conn, failing) = (None, true);
                }
                Err(_) => conn = None,
                Ok(()) if failing => {
                    tracing::info!("SQLite checkpoints resumed");
                    failing = false;
                }
                Ok(()) => {}
            }
        }
    });
}

/// One `PASSIVE` checkpoint on `conn`, opened first if it is not.
async fn checkpoint(
    options: &SqliteConnectOptions,
    conn: &mut Option<sqlx::SqliteConnection>,
) -> Result<(), sqlx::Error> {
    let conn = match conn {
        Some(conn) => conn,
        None => conn.insert(options.connect().await?),
    };
    sqlx::query("PRAGMA wal_checkpoint(PASSIVE)").execute(&mut *conn).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::store::sqlite::connect;
    use crate::store::{Pool, Store};

    /// Rows of `t` in the database file alone, as a copy of it without its log reads them: what a
    /// checkpoint has copied back (`None`: not even the table).
    async fn rows_in_file(dir: &tempfile::TempDir) -> Option<i64> {
        let copy = tempfile::Builder::new().suffix(".db").tempfile_in(dir.path()).unwrap().into_temp_path();
        std::fs::copy(dir.path().join("test.db"), &copy).unwrap();
        let mut conn = SqliteConnectOptions::new().filename(&copy).connect().await.unwrap();
        sqlx::query_scalar("SELECT COUNT(*) FROM t").fetch_one(&mut conn).await.ok()
    }

    /// `n` rows of about a page each, in one commit.
    const PAGES: &str = "INSERT INTO t SELECT randomblob(4000) FROM \
        (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT $1) SELECT x FROM c)";

    #[tokio::test]
    async fn a_commit_past_sqlites_own_threshold_does_not_wait_for_a_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let (write, _read, _lock) = connect(&dir.path().join("test.db")).await.unwrap();
        sqlx::query("CREATE TABLE t (x BLOB)").execute(&write).await.unwrap();
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").execute(&write).await.unwrap();
        assert_eq!(rows_in_file(&dir).await, Some(0));
        // SQLite's default would checkpoint inside this commit: the log passes 1,000 pages.
        sqlx::query(PAGES).bind(1_100).execute(&write).await.unwrap();
        assert_eq!(rows_in_file(&dir).await, Some(0), "the commit left its pages in the log");
    }

    #[tokio::test]
    async fn a_sqlite_store_copies_the_log_back_while_it_lives_and_stops_with_it() {
        let dir = tempfile::tempdir().unwrap();
        let database = crate::config::Database::Sqlite { path: dir.path().join("test.db") };
        let (store, _lock) = Store::connect(&database, crate::domain::InstanceId::generate(), true).await.unwrap();
        let Pool::Sqlite { write, .. } = &store.pool else { panic!("a SQLite store") };
        let write = write.clone();
        sqlx::query("CREATE TABLE t (x BLOB)").execute(&write).await.unwrap();
        sqlx::query(PAGES).bind(10).execute(&write).await.unwrap();
        // A checkpoint syncs twice: on a disk that stalls, that can take a while.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while rows_in_file(&dir).await != Some(10) {
            assert!(tokio::time::Instant::now() < deadline, "the task copied the commit back");
            tokio::time::sleep(CHECKPOINT_EVERY).await;
        }

        drop(store);
        tokio::time::sleep(CHECKPOINT_EVERY * 3).await;
        sqlx::query(PAGES).bind(10).execute(&write).await.unwrap();
        tokio::time::sleep(CHECKPOINT_EVERY * 5).await;
        assert_eq!(rows_in_file(&dir).await, Some(10), "with the store gone the task copies nothing more");
    }
}
