//! Group commit for SQLite's journey writes: the writes that wait while the one write connection
//! is busy are committed together, in one transaction, when it is free.
//!
//! Each commit appends every page it changed to the write-ahead log. A message's insert or
//! `viewed` changes a few rows on the same few pages as the writes of the rooms beside it, so
//! committing them one by one writes those pages again and again; committed together, once
//! (BENCHMARKS.md). Each write runs inside its own savepoint, so one that fails is rolled back
//! alone and answered with its error while the others commit. No write is answered before the
//! transaction that holds it has committed. When the batch itself cannot commit (`BEGIN` or
//! `COMMIT` failed, or a savepoint could not be rolled back), nothing of it is kept and every
//! write runs again alone, for its own answer.
//!
//! A write waits only while another runs: one that finds the queue empty runs at once, alone, in
//! one call, as [`super::writer::write`] ran it before. Callers that stop waiting do not cancel
//! their write; it still runs whole or not at all.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use sqlx::sqlite::{SqliteArguments, SqliteRow};
use sqlx::{Sqlite, SqlitePool};
use tokio::sync::{mpsc, oneshot, Mutex, Notify, OwnedMutexGuard};

use super::writer::{write, Writer};
use crate::domain::bounds::{CHUNK_YIELD_AT_MOST, GROUP_COMMIT_MAX_BATCH, WRITE_QUEUE};

/// A write's statements, as they run alone and inside a batch.
#[derive(Debug)]
pub(in crate::store) struct Compound {
    /// Its own transaction: `BEGIN IMMEDIATE; …; COMMIT`.
    pub alone: &'static str,
    /// Inside the batch's transaction: `SAVEPOINT op; …; RELEASE op`.
    pub in_batch: &'static str,
}

/// Makes a [`Compound`] of statements given as one string literal, each ending in `;`.
macro_rules! compound {
    ($statements:literal) => {
        $crate::store::sqlite::group_commit::Compound {
            alone: concat!("BEGIN IMMEDIATE; ", $statements, " COMMIT"),
            in_batch: concat!("SAVEPOINT op; ", $statements, " RELEASE op"),
        }
    };
}
pub(in crate::store) use compound;

/// A parameter of a queued write, owned: the write outlives its caller's borrow.
#[derive(Debug)]
pub(in crate::store) enum Bind {
    Blob(Vec<u8>),
    Int(i64),
}

/// The queue in front of the write connection. Cloning it gives another handle to the same one.
#[derive(Clone, Debug)]
pub(in crate::store) struct WriteQueue {
    jobs: mpsc::Sender<Job>,
    /// Journey writes queued or running, and a wake-up for when there are none: file chunks'
    /// writes wait for them ([`WriteQueue::behind_journeys`]).
    journeys: Arc<Journeys>,
    /// File chunks' writes, one at a time: so at most one is ever ahead of a journey's write
    /// for the write connection.
    chunk_lane: Arc<Mutex<()>>,
    /// Writes committed in a batch of more than one, for the tests.
    #[cfg(test)]
    batched: Arc<AtomicU64>,
}

/// Whether a [`WriteQueue`] still has a handle: a task that serves the store and must end with
/// it holds this.
#[derive(Debug)]
pub(in crate::store) struct QueueWatch(mpsc::WeakSender<Job>);

impl QueueWatch {
    pub(in crate::store) fn is_alive(&self) -> bool {
        self.0.strong_count() > 0
    }
}

#[derive(Debug, Default)]
struct Journeys {
    waiting: AtomicUsize,
    none: Notify,
}

/// One journey write counted while its caller waits for it (also when the caller gives up).
struct Counted<'a>(&'a Journeys);

impl<'a> Counted<'a> {
    fn new(journeys: &'a Journeys) -> Self {
        journeys.waiting.fetch_add(1, Ordering::AcqRel);
        Self(journeys)
    }
}

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        if self.0.waiting.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.none.notify_waiters();
        }
    }
}

struct Job {
    statements: &'static Compound,
    binds: Vec<Bind>,
    reply: oneshot::Sender<Result<Vec<SqliteRow>, sqlx::Error>>,
}

impl Job {
    fn query(&self, sql: &'static str) -> sqlx::query::Query<'_, Sqlite, SqliteArguments<'_>> {
        self.binds.iter().fold(sqlx::query(sql), |query, bind| match bind {
            Bind::Blob(bytes) => query.bind(&bytes[..]),
            Bind::Int(n) => query.bind(*n),
        })
    }

    async fn run_alone(self, pool: &SqlitePool) {
        let result = write(pool, self.query(self.statements.alone)).await;
        // A caller that stopped waiting no longer needs the answer.
        let _ = self.reply.send(result);
    }
}

impl WriteQueue {
    /// Starts the task that runs the queued writes on `pool`, the write pool. It ends when the
    /// last handle is dropped.
    pub(in crate::store) fn spawn(pool: SqlitePool) -> Self {
        let (jobs, queue) = mpsc::channel(WRITE_QUEUE);
        let batched = Arc::new(AtomicU64::new(0));
        tokio::spawn(run(pool, queue, batched.clone()));
        Self {
            jobs,
            journeys: Arc::default(),
            chunk_lane: Arc::default(),
            #[cfg(test)]
            batched,
        }
    }

    /// The turn of a file chunk's write: once no other chunk write holds it, and no journey
    /// write waits (or [`CHUNK_YIELD_AT_MOST`] has passed). A journey's insert or `viewed` is a
    /// few small rows a person waits on; a chunk is 64 KiB of an upload that takes seconds, so
    /// the chunk goes second. Held until the chunk is written.
    pub(in crate::store) async fn behind_journeys(&self) -> OwnedMutexGuard<()> {
        let turn = self.chunk_lane.clone().lock_owned().await;
        let deadline = tokio::time::Instant::now() + CHUNK_YIELD_AT_MOST;
        loop {
            let none = self.journeys.none.notified();
            tokio::pin!(none);
            // Registered before the count is read, so a last journey ending in between wakes it.
            none.as_mut().enable();
            if self.journeys.waiting.load(Ordering::Acquire) == 0 {
                break;
            }
            if tokio::time::timeout_at(deadline, none).await.is_err() {
                break;
            }
        }
        turn
    }

    /// Runs `statements` with `binds` ($1, $2, … in order) and returns the rows they returned.
    pub(in crate::store) async fn write(
        &self,
        statements: &'static Compound,
        binds: Vec<Bind>,
    ) -> Result<Vec<SqliteRow>, sqlx::Error> {
        let _counted = Counted::new(&self.journeys);
        let (reply, answer) = oneshot::channel();
        self.jobs.send(Job { statements, binds, reply }).await.map_err(|_| sqlx::Error::PoolClosed)?;
        answer.await.map_err(|_| sqlx::Error::PoolClosed)?
    }

    /// Something that tells whether this queue still has a handle, without being one.
    pub(in crate::store) fn watch(&self) -> QueueWatch {
        QueueWatch(self.jobs.downgrade())
    }

    /// How many writes were committed in a batch of more than one so far.
    #[cfg(test)]
    pub(in crate::store) fn batched(&self) -> u64 {
        self.batched.load(Ordering::Relaxed)
    }
}

async fn run(pool: SqlitePool, mut queue: mpsc::Receiver<Job>, batched: Arc<AtomicU64>) {
    let mut batch = Vec::with_capacity(GROUP_COMMIT_MAX_BATCH);
    while queue.recv_many(&mut batch, GROUP_COMMIT_MAX_BATCH).await > 0 {
        if batch.len() > 1 {
            match together(&pool, &batch).await {
                Ok(results) => {
                    batched.fetch_add(batch.len() as u64, Ordering::Relaxed);
                    for (job, result) in batch.drain(..).zip(results) {
                        let _ = job.reply.send(result);
                    }
                    continue;
                }
                // sqlx's error text names the statement's failure, never a bound value.
                Err(err) => {
                    tracing::warn!("group commit: a batch of {} writes failed ({err}); each runs alone", batch.len())
                }
            }
        }
        for job in batch.drain(..) {
            job.run_alone(&pool).await;
        }
    }
}

/// Runs `batch` in one transaction, each write in its own savepoint, and returns each write's
/// result once it has committed. An error is the batch's: nothing of it was kept.
async fn together(pool: &SqlitePool, batch: &[Job]) -> Result<Vec<Result<Vec<SqliteRow>, sqlx::Error>>, sqlx::Error> {
    // Closed when dropped unless it ends clean: a transaction left open would be the next
    // writer's.
    let mut writer = Writer::acquire(pool).await?;
    sqlx::query("BEGIN IMMEDIATE").execute(writer.conn()).await?;
    let mut results = Vec::with_capacity(batch.len());
    for job in batch {
        let result = job.query(job.statements.in_batch).fetch_all(writer.conn()).await;
        if result.is_err() {
            sqlx::query("ROLLBACK TO op; RELEASE op").execute(writer.conn()).await?;
        }
        results.push(result);
    }
    sqlx::query("COMMIT").execute(writer.conn()).await?;
    writer.clean();
    Ok(results)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sqlite::connect;

    const ADD: Compound = compound!("INSERT INTO t VALUES ($1) RETURNING x;");
    /// Two rows, `$1` then `-$1`: the CHECK refuses the second after the first was written.
    const ADD_AND_NEGATIVE: Compound = compound!("INSERT INTO t VALUES ($1); INSERT INTO t VALUES (-$1);");
    /// Fails after releasing its savepoint, so its batch cannot roll it back alone.
    const ADD_THEN_FAIL_UNSAVED: Compound = compound!("INSERT INTO t VALUES ($1); RELEASE op; SELECT * FROM nowhere;");

    async fn queue_on_table(dir: &tempfile::TempDir) -> (WriteQueue, SqlitePool, std::fs::File) {
        let (pool, _read, lock) = connect(&dir.path().join("test.db")).await.unwrap();
        sqlx::query("CREATE TABLE t (x INTEGER NOT NULL CHECK (x > 0))").execute(&pool).await.unwrap();
        (WriteQueue::spawn(pool.clone()), pool, lock)
    }

    /// Writes 1, then `middle` with 2, then 3, queued together.
    async fn around(queue: &WriteQueue, middle: &'static Compound) -> Vec<Result<Vec<SqliteRow>, sqlx::Error>> {
        let writes =
            [(&ADD, 1), (middle, 2), (&ADD, 3)].map(|(statements, x)| queue.write(statements, vec![Bind::Int(x)]));
        futures::future::join_all(writes).await
    }

    async fn sqlite_store(dir: &tempfile::TempDir) -> (crate::store::Store, Option<std::fs::File>) {
        let database = crate::config::Database::Sqlite { path: dir.path().join("test.db") };
        crate::store::Store::connect(&database, crate::domain::InstanceId::generate(), true).await.unwrap()
    }

    async fn rows(pool: &SqlitePool) -> Vec<i64> {
        sqlx::query_scalar("SELECT x FROM t ORDER BY x").fetch_all(pool).await.unwrap()
    }

    // The tests run on one thread: every write is queued before the queue's task first runs,
    // so they are one batch.

    #[tokio::test]
    async fn writes_queued_together_commit_together_and_each_gets_its_rows() {
        let dir = tempfile::tempdir().unwrap();
        let (queue, pool, _lock) = queue_on_table(&dir).await;
        let writes = (1..=5).map(|x| queue.write(&ADD, vec![Bind::Int(x)]));
        let results = futures::future::join_all(writes).await;
        for (x, result) in (1..=5).zip(results) {
            let rows = result.unwrap();
            assert_eq!(rows.len(), 1);
            assert_eq!(sqlx::Row::get::<i64, _>(&rows[0], 0), x);
        }
        assert_eq!(queue.batched(), 5, "the five writes were one batch");
        assert_eq!(rows(&pool).await, vec![1, 2, 3, 4, 5]);
    }

    #[tokio::test]
    async fn a_write_that_fails_in_a_batch_is_rolled_back_alone_and_the_others_commit() {
        let dir = tempfile::tempdir().unwrap();
        let (queue, pool, _lock) = queue_on_table(&dir).await;
        let results = around(&queue, &ADD_AND_NEGATIVE).await;
        assert!(results[0].is_ok() && results[2].is_ok());
        assert!(results[1].is_err(), "the CHECK refused -2");
        assert_eq!(queue.batched(), 3, "the three writes were one batch");
        assert_eq!(rows(&pool).await, vec![1, 3], "the failed write's first row was rolled back");
        // The connection is left clean: the next write commits.
        queue.write(&ADD, vec![Bind::Int(4)]).await.unwrap();
        assert_eq!(rows(&pool).await, vec![1, 3, 4]);
    }

    #[tokio::test]
    async fn a_batch_that_cannot_commit_keeps_nothing_and_runs_each_write_alone() {
        let dir = tempfile::tempdir().unwrap();
        let (queue, pool, _lock) = queue_on_table(&dir).await;
        let results = around(&queue, &ADD_THEN_FAIL_UNSAVED).await;
        assert!(results[0].is_ok() && results[2].is_ok());
        assert!(results[1].is_err());
        assert_eq!(queue.batched(), 0, "the batch did not commit");
        // Each good write once (the batch kept nothing), the failed one not at all.
        assert_eq!(rows(&pool).await, vec![1, 3]);
    }

    #[tokio::test]
    async fn a_chunks_turn_comes_once_the_journey_writes_before_it_are_done() {
        let dir = tempfile::tempdir().unwrap();
        let (queue, _pool, _lock) = queue_on_table(&dir).await;
        let journey = Counted::new(&queue.journeys);
        let chunk = tokio::spawn({
            let queue = queue.clone();
            async move {
                let _turn = queue.behind_journeys().await;
                std::time::Instant::now()
            }
        });
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert!(!chunk.is_finished(), "a chunk waits while a journey write does");
        let done = std::time::Instant::now();
        drop(journey);
        assert!(chunk.await.unwrap() >= done);
        // With none waiting, at once.
        let started = std::time::Instant::now();
        drop(queue.behind_journeys().await);
        assert!(started.elapsed() < CHUNK_YIELD_AT_MOST);
    }

    #[tokio::test]
    async fn a_chunk_waits_for_journeys_at_most_a_bound_and_chunks_go_one_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let (queue, _pool, _lock) = queue_on_table(&dir).await;
        let _endless = Counted::new(&queue.journeys);
        let started = std::time::Instant::now();
        let turn = queue.behind_journeys().await;
        assert!(started.elapsed() >= CHUNK_YIELD_AT_MOST, "it waited for the journeys");
        assert!(started.elapsed() < 20 * CHUNK_YIELD_AT_MOST, "but not for ever");
        let second = tokio::spawn({
            let queue = queue.clone();
            async move { drop(queue.behind_journeys().await) }
        });
        tokio::time::sleep(3 * CHUNK_YIELD_AT_MOST).await;
        assert!(!second.is_finished(), "one chunk write at a time");
        drop(turn);
        second.await.unwrap();
    }

    #[tokio::test]
    async fn a_write_alone_when_the_queue_is_idle_commits_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let (queue, pool, _lock) = queue_on_table(&dir).await;
        queue.write(&ADD, vec![Bind::Int(7)]).await.unwrap();
        assert_eq!(queue.batched(), 0);
        assert_eq!(rows(&pool).await, vec![7]);
    }

    #[tokio::test]
    async fn sends_to_one_room_in_one_batch_keep_the_backlog_limit_and_spot_a_resend() {
        use crate::domain::Inserted;
        use crate::domain::NewMessage;
        use crate::domain::Participant;
        use crate::store::Pool;
        let dir = tempfile::tempdir().unwrap();
        let (store, _lock) = sqlite_store(&dir).await;
        let room = crate::domain::RoomHash([7; 32]);
        let sender = Participant([1; 32]);
        let ids: Vec<app::crypto::MessageId> = (1..=5).map(|n| app::crypto::MessageId([n; 16])).collect();
        let send = |id, body| {
            store.insert(NewMessage {
                room: &room,
                id,
                body,
                ttl: std::time::Duration::from_secs(60),
                sender: &sender,
                max_pending: 3,
                chunks: 0,
            })
        };
        let results = futures::future::join_all([
            send(&ids[0], &b"first"[..]),
            send(&ids[0], &b"first, resent"[..]),
            send(&ids[1], &b"second"[..]),
            send(&ids[2], &b"third"[..]),
            send(&ids[3], &b"fourth"[..]),
            send(&ids[4], &b"fifth"[..]),
        ])
        .await;
        // Alone in the room, the sender's messages are open: they name no recipient.
        let results: Vec<Inserted> = results
            .into_iter()
            .map(|inserted| match inserted.unwrap() {
                Inserted::New { recipients, .. } => {
                    assert!(recipients.is_empty());
                    Inserted::New { recipients, expires_at: 0 }
                }
                other => other,
            })
            .collect();
        let new = || Inserted::New { recipients: Vec::new(), expires_at: 0 };
        assert_eq!(
            results,
            [
                new(),
                Inserted::Exists(b"first".to_vec()),
                new(),
                new(),
                Inserted::RoomBacklogFull,
                Inserted::RoomBacklogFull,
            ]
        );
        let Pool::Sqlite { queue, .. } = &store.pool else { unreachable!("a SQLite store") };
        assert_eq!(queue.batched(), 6, "the six sends were one batch");
        for (id, stored) in ids.iter().zip([true, true, true, false, false]) {
            assert_eq!(store.exists(&room, id).await.unwrap(), stored);
        }
    }

    #[tokio::test]
    async fn two_recipients_viewing_in_one_batch_burn_the_message_once() {
        use crate::domain::NewMessage;
        use crate::domain::Participant;
        use crate::domain::{Inserted, Viewed};
        use crate::store::Pool;
        let dir = tempfile::tempdir().unwrap();
        let (store, _lock) = sqlite_store(&dir).await;
        let room = crate::domain::RoomHash([7; 32]);
        let [sender, first, second] = [1, 2, 3].map(|n| Participant([n; 32]));
        for (connection, who) in [&sender, &first, &second].into_iter().enumerate() {
            store.join(&room, who, connection as u64, 8).await.unwrap().unwrap();
        }
        let id = app::crypto::MessageId([9; 16]);
        let message = NewMessage {
            room: &room,
            id: &id,
            body: b"secret",
            ttl: std::time::Duration::from_secs(60),
            sender: &sender,
            max_pending: 8,
            chunks: 0,
        };
        let Inserted::New { mut recipients, .. } = store.insert(message).await.unwrap() else { panic!("not inserted") };
        recipients.sort_by_key(|who| who.0);
        assert_eq!(recipients, [first, second], "the insert names the room's other participants");
        let results = futures::future::join_all([
            store.viewed(&room, &id, &first),
            store.viewed(&room, &id, &second),
            store.viewed(&room, &id, &second),
        ])
        .await;
        let results: Vec<Viewed> = results.into_iter().map(Result::unwrap).collect();
        assert_eq!(results, [Viewed::Progress { viewed: 1, of: 2 }, Viewed::Deleted, Viewed::Gone]);
        let Pool::Sqlite { queue, .. } = &store.pool else { unreachable!("a SQLite store") };
        assert_eq!(queue.batched(), 3, "the three views were one batch");
        assert!(!store.exists(&room, &id).await.unwrap(), "no message row left behind");
        assert!(store.recipient_participants().await.unwrap().is_empty(), "no recipient row left behind");
    }

    /// Not group commit's, but this module holds the store-level SQLite tests: a purge (a message
    /// unreadable at rest) deletes the message's recipients rows with it.
    #[tokio::test]
    async fn a_purged_message_takes_its_recipients_with_it() {
        use crate::domain::Inserted;
        use crate::domain::NewMessage;
        use crate::domain::Participant;
        let dir = tempfile::tempdir().unwrap();
        let (store, _lock) = sqlite_store(&dir).await;
        let room = crate::domain::RoomHash([7; 32]);
        let [sender, reader] = [1, 2].map(|n| Participant([n; 32]));
        for (connection, who) in [&sender, &reader].into_iter().enumerate() {
            store.join(&room, who, connection as u64, 8).await.unwrap().unwrap();
        }
        let id = app::crypto::MessageId([9; 16]);
        let ttl = std::time::Duration::from_secs(60);
        let message =
            NewMessage { room: &room, id: &id, body: b"secret", ttl, sender: &sender, max_pending: 8, chunks: 0 };
        assert!(matches!(store.insert(message).await.unwrap(), Inserted::New { .. }));
        assert_eq!(store.recipient_participants().await.unwrap().len(), 1);
        assert!(store.purge(&room, &id).await.unwrap());
        assert!(!store.exists(&room, &id).await.unwrap(), "no message row left behind");
        assert!(store.recipient_participants().await.unwrap().is_empty(), "no recipient row left behind");
    }
}
