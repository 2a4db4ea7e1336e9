//! The embedded SQLite store: zero set-up, one server process per file.
//!
//! Layered bottom-up: [`writer`] runs one write on the one write connection; [`group_commit`]
//! queues the journey's writes and commits those that wait together; [`checkpoint`] copies the
//! log back off the write path. This file opens the database and holds the statements that are
//! SQLite's own.
//!
//! One process per file is enforced: participants and room events live in this process, so a
//! second server on the same file would split every room in two. The server holds an exclusive
//! lock on `<database>.lock` for as long as it runs; the operating system releases it when the
//! process ends, however it ends.

use std::fs::{File, TryLockError};
use std::path::Path;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous};
use sqlx::Row as _;
use sqlx::{SqliteConnection, SqlitePool};

use super::{InsertFound, StoreError};
use crate::domain::bounds::{CHECKPOINT_BACKSTOP_PAGES, SQLITE_READ_CONNECTIONS};
use crate::domain::{now_ms, MessageId, NewMessage, Participant, RoomHash, Viewed};
use group_commit::{compound, Bind, Compound, WriteQueue};

pub(super) mod checkpoint;
pub(super) mod group_commit;
mod writer;

/// Opens the database: a pool of one write connection, so writers wait their turn in this
/// process, in order (several write connections would contend for SQLite's lock and back off in
/// the busy handler's sleeps, which made the slowest journeys 100–400 ms: BENCHMARKS.md), and a
/// pool of read-only connections. Returns (write pool, read pool, the server's lock).
pub(super) async fn connect(path: &Path) -> Result<(SqlitePool, SqlitePool, File), StoreError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        create_private_dir(dir)?;
    }
    let lock = lock_exclusively(path)?;
    make_private(path)?;
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(5))
        // Deleted rows are overwritten with zeros, not just unlinked from the b-tree.
        .pragma("secure_delete", "ON");
    // A local file, not a network: no need to ping a connection before each use.
    let write = SqlitePoolOptions::new()
        .max_connections(1)
        .test_before_acquire(false)
        // The checkpoint task copies the log back (`checkpoint.rs`); this is the backstop.
        .connect_with(options.clone().pragma("wal_autocheckpoint", CHECKPOINT_BACKSTOP_PAGES.to_string()))
        .await?;
    sqlx::migrate!("../migrations/sqlite").run(&write).await?;
    let read = SqlitePoolOptions::new()
        .max_connections(SQLITE_READ_CONNECTIONS)
        .test_before_acquire(false)
        .connect_with(options.create_if_missing(false).read_only(true))
        .await?;
    Ok((write, read, lock))
}

/// [`INSERT`], queued for the write connection.
pub(super) async fn insert(queue: &WriteQueue, m: &NewMessage<'_>, expires_at: i64) -> Result<InsertFound, StoreError> {
    let binds = vec![
        Bind::Blob(m.room.0.to_vec()),
        Bind::Blob(m.id.0.to_vec()),
        Bind::Blob(m.body.to_vec()),
        Bind::Int(expires_at),
        Bind::Blob(m.sender.0.to_vec()),
        Bind::Int(now_ms()),
        Bind::Int(i64::from(m.max_pending)),
        Bind::Int(i64::from(m.chunks)),
    ];
    read_insert(&queue.write(&INSERT, binds).await?)
}

/// Reads what [`INSERT`]'s statements returned, in their order: (existing body, backlog) from
/// the first; the inserted row's id from the second, if it inserted one; a recipient from each
/// row of the third.
fn read_insert(rows: &[SqliteRow]) -> Result<InsertFound, StoreError> {
    let (read, written) = rows.split_first().ok_or(StoreError::NoRow("insert"))?;
    let (existing, pending) = (read.try_get(0)?, read.try_get(1)?);
    let recipients = match written.split_first() {
        None => None,
        Some((_inserted_id, recipients)) => Some(
            recipients
                .iter()
                .map(|row| row.try_get::<Vec<u8>, _>(0).map(|who: Vec<u8>| Participant::from_row(&who)))
                .collect::<Result<Vec<_>, _>>()?,
        ),
    };
    Ok(InsertFound { existing, pending, recipients })
}

/// [`VIEWED`], queued for the write connection.
pub(super) async fn viewed(
    queue: &WriteQueue,
    room: &RoomHash,
    id: &MessageId,
    who: &Participant,
) -> Result<Viewed, StoreError> {
    let binds = vec![Bind::Blob(room.0.to_vec()), Bind::Blob(id.0.to_vec()), Bind::Blob(who.0.to_vec())];
    read_viewed(&queue.write(&VIEWED, binds).await?)
}

/// Reads what [`VIEWED`]'s statements returned: (recipients, viewed) counted after marking the
/// view; then the deleted message's id, if this view deleted it.
fn read_viewed(rows: &[SqliteRow]) -> Result<Viewed, StoreError> {
    let (counted, deleted) = rows.split_first().ok_or(StoreError::NoRow("viewed"))?;
    let (of, viewed): (i64, i64) = (counted.try_get(0)?, counted.try_get(1)?);
    Ok(if !deleted.is_empty() {
        Viewed::Deleted
    } else if viewed < of {
        Viewed::Progress { viewed: u32::try_from(viewed).unwrap_or(0), of: u32::try_from(of).unwrap_or(0) }
    } else {
        Viewed::Gone
    })
}

/// Inside a write transaction: drops `who` from the recipients of the messages of `room` it has
/// not viewed ([`DROP_UNVIEWED`]), deletes those that every remaining recipient has now viewed
/// ([`COMPLETED_IN_ROOM`]) and their recipients, and returns their ids.
pub(super) async fn drop_recipient(
    tx: &mut SqliteConnection,
    room: &RoomHash,
    who: &Participant,
) -> Result<Vec<Vec<u8>>, sqlx::Error> {
    sqlx::query(DROP_UNVIEWED).bind(&room.0[..]).bind(&who.0[..]).execute(&mut *tx).await?;
    let deleted = sqlx::query_scalar(COMPLETED_IN_ROOM).bind(&room.0[..]).fetch_all(&mut *tx).await?;
    delete_orphan_recipients(tx).await?;
    Ok(deleted)
}

/// Inside a write transaction, after messages were deleted: [`DELETE_ORPHAN_RECIPIENTS`].
pub(super) async fn delete_orphan_recipients(tx: &mut SqliteConnection) -> Result<(), sqlx::Error> {
    sqlx::query(DELETE_ORPHAN_RECIPIENTS).execute(tx).await.map(drop)
}

/// Inside a write transaction, after message `id` of `room` was deleted: [`DELETE_RECIPIENTS_OF`].
pub(super) async fn delete_recipients_of(
    tx: &mut SqliteConnection,
    room: &RoomHash,
    id: &MessageId,
) -> Result<(), sqlx::Error> {
    sqlx::query(DELETE_RECIPIENTS_OF).bind(&room.0[..]).bind(&id.0[..]).execute(tx).await.map(drop)
}

/// Takes the lock that says "a server runs on this database", or explains who holds it.
fn lock_exclusively(database: &Path) -> Result<File, StoreError> {
    let mut name = database.as_os_str().to_owned();
    name.push(".lock");
    let path = Path::new(&name);
    let mut options = File::options();
    options.create(true).truncate(false).write(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let file = options
        .open(path)
        .map_err(|err| StoreError::Setup(format!("cannot create lock file {}: {err}", path.display())))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(TryLockError::WouldBlock) => Err(StoreError::Setup(format!(
            "another server is already running on {}: SQLite serves one server process; \
             for several instances use PostgreSQL (DATABASE_URL=postgres://…)",
            database.display()
        ))),
        Err(TryLockError::Error(err)) => Err(StoreError::Setup(format!("cannot lock {}: {err}", path.display()))),
    }
}

/// Creates the database file readable and writable by its owner only (SQLite gives its `-wal`
/// and `-shm` files the database's own mode), or tightens an existing database's files that
/// others could read, saying so once.
fn make_private(database: &Path) -> Result<(), StoreError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
        let setup = |what: &str, path: &Path, err: std::io::Error| {
            StoreError::Setup(format!("cannot {what} {}: {err}", path.display()))
        };
        match File::options().write(true).create_new(true).mode(0o600).open(database) {
            Ok(_) => return Ok(()),
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(err) => return Err(setup("create database file", database, err)),
        }
        let mut tightened = false;
        for suffix in ["", "-wal", "-shm", ".lock"] {
            let mut name = database.as_os_str().to_owned();
            name.push(suffix);
            let path = Path::new(&name);
            let Ok(metadata) = std::fs::metadata(path) else { continue };
            if metadata.permissions().mode() & 0o077 != 0 {
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
                    .map_err(|err| setup("restrict the permissions of", path, err))?;
                tightened = true;
            }
        }
        if tightened {
            tracing::warn!("the database files could be read by other users: now by their owner only (0600)");
        }
    }
    Ok(())
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

// The statements that differ on SQLite: a message's recipients are rows of their own, in
// `recipients` (one per participant who must view it, with whether it has).

/// [`Store::insert`](super::Store::insert), one compound statement run in one call (each call is
/// a round trip to the connection's worker thread), alone or in a group commit (see
/// [`group_commit`]): reads the existing body and the room's backlog, inserts the row unless
/// either refuses it (returning its id), and gives it the room's other participants (connected
/// or in their grace period) as recipients if it was inserted (returning each). `changes()` is the
/// row count of the insert just before.
pub(super) const INSERT: Compound = compound!(
    "SELECT (SELECT body FROM messages WHERE room_hash = $1 AND id = $2), \
       (SELECT COUNT(*) FROM messages WHERE room_hash = $1 AND expires_at > $6); \
     INSERT INTO messages (room_hash, id, body, expires_at, sender, chunks) SELECT $1, $2, $3, $4, $5, $8 \
       WHERE NOT EXISTS (SELECT 1 FROM messages WHERE room_hash = $1 AND id = $2) \
       AND (SELECT COUNT(*) FROM messages WHERE room_hash = $1 AND expires_at > $6) < $7 \
       ON CONFLICT (room_hash, id) DO NOTHING RETURNING id; \
     INSERT INTO recipients (room_hash, message_id, participant) \
       SELECT room_hash, $2, participant FROM participants \
       WHERE room_hash = $1 AND participant <> $5 AND changes() = 1 RETURNING participant;"
);
/// [`Store::viewed`](super::Store::viewed), one compound statement run in one call, alone or in
/// a group commit (writers run one at a time on the one write connection, so nothing interleaves
/// with it): marks the view, counts (recipients, viewed), deletes the message (returning its id)
/// once no recipient is left unviewed, and its recipients with it.
pub(super) const VIEWED: Compound = compound!(
    "UPDATE recipients SET viewed = TRUE WHERE room_hash = $1 AND message_id = $2 AND participant = $3; \
     SELECT COUNT(*), COALESCE(SUM(CASE WHEN viewed THEN 1 ELSE 0 END), 0) \
       FROM recipients WHERE room_hash = $1 AND message_id = $2; \
     DELETE FROM messages WHERE room_hash = $1 AND id = $2 AND NOT EXISTS (SELECT 1 FROM recipients \
       WHERE room_hash = $1 AND message_id = $2 AND NOT viewed) RETURNING id; \
     DELETE FROM recipients WHERE room_hash = $1 AND message_id = $2 \
       AND NOT EXISTS (SELECT 1 FROM messages WHERE room_hash = $1 AND id = $2);"
);
/// (body, sender, recipients, whether `$3` is one of them) of an unexpired message.
pub(super) const SELECT_WAITING: &str = "SELECT m.body, m.sender, \
       (SELECT COUNT(*) FROM recipients r WHERE r.room_hash = m.room_hash AND r.message_id = m.id), \
       (SELECT COUNT(*) FROM recipients r WHERE r.room_hash = m.room_hash AND r.message_id = m.id \
            AND r.participant = $3) \
     FROM messages m WHERE m.room_hash = $1 AND m.id = $2 AND m.expires_at > $4";
/// Messages `$2` may view: as an unviewed recipient, or open (no recipients) and not its own.
pub(super) const PENDING_FOR: &str =
    "SELECT m.id, m.chunks FROM messages m WHERE m.room_hash = $1 AND m.expires_at > $3 AND ( \
       EXISTS (SELECT 1 FROM recipients r WHERE r.room_hash = m.room_hash AND r.message_id = m.id \
               AND r.participant = $2 AND NOT r.viewed) \
       OR (m.sender <> $2 AND NOT EXISTS (SELECT 1 FROM recipients r \
               WHERE r.room_hash = m.room_hash AND r.message_id = m.id))) \
     ORDER BY m.expires_at";
/// Drops `$2` from the recipients of the messages of room `$1` it has not viewed. (`BEGIN
/// IMMEDIATE` runs writers one at a time: no `viewed` interleaves with this and the next.)
const DROP_UNVIEWED: &str = "DELETE FROM recipients WHERE room_hash = $1 AND participant = $2 AND NOT viewed";
/// Messages of room `$1` whose remaining recipients (there is one) have all viewed them.
const COMPLETED_IN_ROOM: &str = "DELETE FROM messages AS m WHERE m.room_hash = $1 \
       AND EXISTS (SELECT 1 FROM recipients r WHERE r.room_hash = m.room_hash AND r.message_id = m.id) \
       AND NOT EXISTS (SELECT 1 FROM recipients r WHERE r.room_hash = m.room_hash AND r.message_id = m.id \
               AND NOT r.viewed) \
     RETURNING id";
/// Recipients whose message is gone.
const DELETE_ORPHAN_RECIPIENTS: &str = "DELETE FROM recipients WHERE NOT EXISTS (SELECT 1 FROM messages m \
       WHERE m.room_hash = recipients.room_hash AND m.id = recipients.message_id)";
/// The recipients of message `$2` of room `$1`.
const DELETE_RECIPIENTS_OF: &str = "DELETE FROM recipients WHERE room_hash = $1 AND message_id = $2";
/// Every (room, participant) still named as a recipient.
pub(super) const RECIPIENT_PARTICIPANTS: &str = "SELECT DISTINCT room_hash, participant FROM recipients";

#[cfg(test)]
mod tests {
    use super::writer::write;
    use super::*;

    #[tokio::test]
    async fn a_write_that_fails_halfway_is_rolled_back_and_the_next_write_runs() {
        let dir = tempfile::tempdir().unwrap();
        let (pool, _read, _lock) = connect(&dir.path().join("test.db")).await.unwrap();
        sqlx::query("CREATE TABLE t (x INTEGER NOT NULL CHECK (x > 0))").execute(&pool).await.unwrap();
        let failed =
            write(&pool, sqlx::query("BEGIN IMMEDIATE; INSERT INTO t VALUES (1); INSERT INTO t VALUES (-1); COMMIT"))
                .await;
        assert!(failed.is_err());
        // Left open, the first write's transaction would refuse this one's BEGIN.
        write(&pool, sqlx::query("BEGIN IMMEDIATE; INSERT INTO t VALUES (2); COMMIT")).await.unwrap();
        let rows: Vec<i64> = sqlx::query_scalar("SELECT x FROM t").fetch_all(&pool).await.unwrap();
        assert_eq!(rows, vec![2], "the failed write's first row was rolled back");
    }

    #[tokio::test]
    async fn a_write_dropped_midway_leaves_no_transaction_open_for_the_next() {
        let dir = tempfile::tempdir().unwrap();
        let (pool, _read, _lock) = connect(&dir.path().join("test.db")).await.unwrap();
        sqlx::query("CREATE TABLE t (x INTEGER)").execute(&pool).await.unwrap();
        // Millions of rows after BEGIN: the caller gives up long before the COMMIT.
        let long = "BEGIN IMMEDIATE; INSERT INTO t VALUES (1); \
                    WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 50000000) SELECT x FROM c; \
                    COMMIT";
        let dropped = tokio::time::timeout(Duration::from_millis(50), write(&pool, sqlx::query(long))).await;
        assert!(dropped.is_err(), "the write was still running when dropped");
        write(&pool, sqlx::query("BEGIN IMMEDIATE; INSERT INTO t VALUES (2); COMMIT")).await.unwrap();
        let rows: Vec<i64> = sqlx::query_scalar("SELECT x FROM t").fetch_all(&pool).await.unwrap();
        assert_eq!(rows, vec![2], "the dropped write's row was rolled back");
    }
}
