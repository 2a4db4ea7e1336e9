//! The database's own ceiling for what a journey must do at least: one committed INSERT of a
//! message row and one committed DELETE of it, on the real schema (the server's migrations),
//! from several connections at once. The journey's throughput is read against this.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sqlx::{Database as SqlxDatabase, Pool};

use crate::cpu::CpuTime;
use crate::stats::Percentiles;
use crate::target::{Backend, Database, TargetError};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CeilingReport {
    pub backend: Backend,
    pub connections: usize,
    /// Whether each commit also NOTIFYs, as the server's writes on PostgreSQL do.
    #[serde(default)]
    pub notify: bool,
    pub seconds: f64,
    /// INSERT+DELETE pairs per second: two commits each.
    pub pairs_per_s: f64,
    #[serde(default)]
    pub pairs: u64,
    /// Processor time of the run (SQLite's work is the load generator's: it runs in process).
    #[serde(default)]
    pub cpu: CpuTime,
}

/// PostgreSQL's own insert+delete pairs on a fixed schedule, as the journey's open-loop run sends
/// its messages: what the database's commits alone take at that rate, on this machine's disk.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PacedReport {
    pub connections: usize,
    /// Whether each commit also NOTIFYs, as the server's writes on PostgreSQL do.
    #[serde(default)]
    pub notify: bool,
    /// Pairs started per second.
    pub rate: f64,
    pub pairs: u64,
    /// From each pair's scheduled start to its INSERT's commit: the one commit a message waits
    /// for between its send and its recipient's plaintext.
    pub insert: Option<Percentiles>,
    /// From each pair's scheduled start to its DELETE's commit.
    pub pair: Option<Percentiles>,
}

const INSERT: &str = "INSERT INTO messages (room_hash, id, body, expires_at, sender) VALUES ($1, $2, $3, $4, $5)";
const DELETE: &str = "DELETE FROM messages WHERE room_hash = $1 AND id = $2";
/// The same pair with a NOTIFY in each commit (PostgreSQL), still one statement each.
const INSERT_NOTIFY: &str = "WITH i AS (INSERT INTO messages (room_hash, id, body, expires_at, sender) \
     VALUES ($1, $2, $3, $4, $5) RETURNING 1) SELECT pg_notify('ec_bench_ceiling', 'x') FROM i";
const DELETE_NOTIFY: &str = "WITH d AS (DELETE FROM messages WHERE room_hash = $1 AND id = $2 RETURNING 1) \
     SELECT pg_notify('ec_bench_ceiling', 'x') FROM d";

/// Runs insert+delete pairs on `connections` connections for `duration`. `body` is the stored
/// row's size (a sealed payload plus the at-rest layer). `notify` (PostgreSQL only) adds a
/// NOTIFY to each commit.
pub async fn measure(
    db: &Database,
    connections: usize,
    duration: Duration,
    body: usize,
    notify: bool,
) -> Result<CeilingReport, TargetError> {
    let statements = if notify { (INSERT_NOTIFY, DELETE_NOTIFY) } else { (INSERT, DELETE) };
    let (pairs, cpu) = match db.backend {
        Backend::Sqlite => {
            let options = db
                .url
                .parse::<sqlx::sqlite::SqliteConnectOptions>()?
                .create_if_missing(true)
                // The server's own settings (server/src/store/sqlite.rs).
                .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
                .synchronous(sqlx::sqlite::SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(5))
                .pragma("secure_delete", "ON");
            let pool = sqlx::sqlite::SqlitePoolOptions::new()
                .max_connections(connections as u32)
                .connect_with(options)
                .await?;
            sqlx::migrate!("../migrations/sqlite").run(&pool).await.map_err(sqlx::Error::from)?;
            run_pairs(PairPool::Sqlite(pool), statements, connections, duration, body).await?
        }
        Backend::Postgres => {
            let pool = PairPool::Postgres(postgres_pool(db, connections).await?);
            run_pairs(pool, statements, connections, duration, body).await?
        }
    };
    Ok(CeilingReport {
        backend: db.backend,
        connections,
        notify,
        seconds: duration.as_secs_f64(),
        pairs_per_s: pairs as f64 / duration.as_secs_f64(),
        pairs,
        cpu,
    })
}

async fn run_pairs(
    pool: PairPool,
    statements: (&'static str, &'static str),
    connections: usize,
    duration: Duration,
    body: usize,
) -> Result<(u64, CpuTime), TargetError> {
    let done = Arc::new(AtomicBool::new(false));
    let pairs = Arc::new(AtomicU64::new(0));
    let room = app::crypto::random_bytes::<32>().to_vec();
    let mut tasks = tokio::task::JoinSet::new();
    let cpu_before = CpuTime::now(&[]);
    for _ in 0..connections {
        let (pool, done, pairs, room) = (pool.clone(), done.clone(), pairs.clone(), room.clone());
        tasks.spawn(async move {
            let body = vec![0x5a_u8; body];
            while !done.load(Ordering::Relaxed) {
                pool.insert_then_delete(statements, &room, &body, || {}).await?;
                pairs.fetch_add(1, Ordering::Relaxed);
            }
            Ok::<_, sqlx::Error>(())
        });
    }
    tokio::time::sleep(duration).await;
    done.store(true, Ordering::Relaxed);
    let counted = pairs.load(Ordering::Relaxed);
    let cpu = CpuTime::now(&[]).since(&cpu_before);
    for result in tasks.join_all().await {
        result?;
    }
    pool.close().await;
    Ok((counted, cpu))
}

/// A fresh PostgreSQL database on the real schema, with a pool of `connections`.
async fn postgres_pool(db: &Database, connections: usize) -> Result<sqlx::PgPool, TargetError> {
    db.create_postgres().await?;
    let pool = sqlx::postgres::PgPoolOptions::new().max_connections(connections as u32).connect(&db.url).await?;
    sqlx::migrate!("../migrations/postgres").run(&pool).await.map_err(sqlx::Error::from)?;
    Ok(pool)
}

/// The pool the pairs run on: SQLite's or PostgreSQL's.
#[derive(Clone)]
enum PairPool {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

impl PairPool {
    /// One pair: a new row of `room` with `body`, committed, then its deletion, committed;
    /// `inserted` runs between the two.
    async fn insert_then_delete(
        &self,
        statements: (&'static str, &'static str),
        room: &[u8],
        body: &[u8],
        inserted: impl FnOnce(),
    ) -> Result<(), sqlx::Error> {
        match self {
            Self::Sqlite(pool) => insert_then_delete(pool, statements, room, body, inserted).await,
            Self::Postgres(pool) => insert_then_delete(pool, statements, room, body, inserted).await,
        }
    }

    async fn close(&self) {
        match self {
            Self::Sqlite(pool) => pool.close().await,
            Self::Postgres(pool) => pool.close().await,
        }
    }
}

/// [`PairPool::insert_then_delete`] on either database.
async fn insert_then_delete<DB>(
    pool: &Pool<DB>,
    (insert, delete): (&'static str, &'static str),
    room: &[u8],
    body: &[u8],
    inserted: impl FnOnce(),
) -> Result<(), sqlx::Error>
where
    DB: SqlxDatabase,
    for<'q> Vec<u8>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> <DB as SqlxDatabase>::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
    for<'c> &'c Pool<DB>: sqlx::Executor<'c, Database = DB>,
{
    let id = app::crypto::random_bytes::<16>().to_vec();
    sqlx::query(insert)
        .bind(room.to_vec())
        .bind(id.clone())
        .bind(body.to_vec())
        .bind(i64::MAX)
        .bind(vec![0_u8; 32])
        .execute(pool)
        .await?;
    inserted();
    sqlx::query(delete).bind(room.to_vec()).bind(id).execute(pool).await?;
    Ok(())
}

/// Starts an insert+delete pair every `1 / rate` seconds for `duration` on a pool of
/// `connections` (PostgreSQL), and times each from its scheduled start, so that a pair that waits
/// for a connection or a stalled commit counts its wait (no coordinated omission). `notify` adds
/// a NOTIFY to each commit.
pub async fn paced_postgres(
    db: &Database,
    connections: usize,
    rate: f64,
    duration: Duration,
    body: usize,
    notify: bool,
) -> Result<PacedReport, TargetError> {
    let statements = if notify { (INSERT_NOTIFY, DELETE_NOTIFY) } else { (INSERT, DELETE) };
    let pool = PairPool::Postgres(postgres_pool(db, connections).await?);
    let pairs = (rate * duration.as_secs_f64()).ceil().max(1.0) as u64;
    let interval = Duration::from_secs_f64(1.0 / rate);
    let room = app::crypto::random_bytes::<32>().to_vec();
    let body = vec![0x5a_u8; body];
    let start = tokio::time::Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..pairs {
        let scheduled = start + interval.mul_f64(n as f64);
        tokio::time::sleep_until(scheduled).await;
        let (pool, room, body) = (pool.clone(), room.clone(), body.clone());
        tasks.spawn(async move {
            let mut inserted = Duration::ZERO;
            pool.insert_then_delete(statements, &room, &body, || inserted = scheduled.elapsed()).await?;
            Ok::<_, sqlx::Error>((inserted, scheduled.elapsed()))
        });
    }
    let mut inserts = Vec::with_capacity(pairs as usize);
    let mut whole = Vec::with_capacity(pairs as usize);
    for result in tasks.join_all().await {
        let (insert, pair) = result?;
        inserts.push(insert);
        whole.push(pair);
    }
    pool.close().await;
    Ok(PacedReport { connections, notify, rate, pairs, insert: Percentiles::of(inserts), pair: Percentiles::of(whole) })
}
