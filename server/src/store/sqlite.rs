//! The embedded SQLite store: zero set-up, one server process per file.
//!
//! One process per file is enforced: participants and room events live in this process, so a
//! second server on the same file would split every room in two. The server holds an exclusive
//! lock on `<database>.lock` for as long as it runs; the operating system releases it when the
//! process ends, however it ends.

use std::fs::{File, TryLockError};
use std::path::Path;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;

use super::StoreError;

/// SQLite serialises writers; a few connections serve concurrent readers.
const MAX_CONNECTIONS: u32 = 4;

pub(super) async fn connect(path: &Path) -> Result<(SqlitePool, File), StoreError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        create_private_dir(dir)?;
    }
    let lock = lock_exclusively(path)?;
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
    Ok((pool, lock))
}

/// Takes the lock that says "a server runs on this database", or explains who holds it.
fn lock_exclusively(database: &Path) -> Result<File, StoreError> {
    let mut name = database.as_os_str().to_owned();
    name.push(".lock");
    let path = Path::new(&name);
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
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
