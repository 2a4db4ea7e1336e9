//! The message store: one [`Store`] type, SQLite or PostgreSQL, with the same methods on both.
//!
//! Rows hold only what the relay needs: `SHA-256(room_id)`, the message id, the at-rest-sealed
//! payload, an expiry time, and who sent and who must view each message, as participant hashes
//! (random per page session). Handlers call these methods and never see SQL.
//!
//! Where a message's recipients live differs: on SQLite, in a `recipients` table, one row each;
//! on PostgreSQL, in the message's own row (arrays `recipients` and `viewed_by`), so that a
//! two-person room's journey writes one row, inserted then deleted, as the database's ceiling
//! does (BENCHMARKS.md). The statements that touch recipients are written per backend, in
//! `sqlite/` and `postgres/`; the rest are written once here (both dialects accept `$N`
//! parameters, `ON CONFLICT`, `RETURNING`) and run on either database through `dialect.rs`.
//! The journey's two writes, `insert` and `viewed`, take one call each: a compound statement on
//! SQLite, a data-modifying `WITH` and a function on PostgreSQL. On SQLite, those that queue
//! while the one write connection is busy commit together (`sqlite/group_commit.rs`).
//!
//! Participants are rows too (`participants.rs`), so several instances over one PostgreSQL
//! database share who is in each room. On PostgreSQL every write that causes a room event
//! NOTIFYs it in the same transaction (the bus listens for them); on SQLite that is a no-op.

mod dialect;
mod postgres;
mod sqlite;

use std::collections::HashSet;

use crate::config::Database;
use crate::domain::bounds::INSERT_ATTEMPTS;
use crate::domain::ids::message_id_from_row;
use crate::domain::lifecycle::expiry;
use crate::domain::{
    now_ms, EventKind, Inserted, InstanceId, MessageId, NewMessage, Notice, Participant, Pending, RoomHash, Viewed,
    Waiting, CHANNEL,
};
use crate::telemetry::metrics::{self, StoreTimer};
use dialect::Param::{Blob, Int};
use dialect::{Db, DbPool, WriteTx};
use sqlite::group_commit::WriteQueue;

/// Why a store operation failed. Never carries a value from a row.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("{0}")]
    Setup(String),
    /// A statement that always returns a row returned none, or a row not of the shape it
    /// returns: a bug, or a database that is not what the migrations made. (A malformed id in a
    /// row the schema's CHECKs let through is skipped where rows are listed.)
    #[error("{0}: the database returned no row, or a malformed one")]
    NoRow(&'static str),
    /// An operation lost the same race more times than it retries.
    #[error("{0}: lost to concurrent writes too often")]
    Contended(&'static str),
}

/// The message store: a pool, and the instance whose events its writes announce.
#[derive(Clone, Debug)]
pub struct Store {
    pool: Pool,
    instance: InstanceId,
    /// PostgreSQL: whether writes NOTIFY their events inside their transactions (the PostgreSQL
    /// bus); not with NATS, where the relay publishes them after the commit.
    notifies: bool,
}

#[derive(Clone, Debug)]
enum Pool {
    /// SQLite runs one writer at a time: writes queue for the one write connection, in order,
    /// inside this process, and the journey's writes are committed in groups (`queue`); reads go
    /// to read-only connections, which WAL never blocks.
    Sqlite {
        write: sqlx::SqlitePool,
        read: sqlx::SqlitePool,
        queue: WriteQueue,
    },
    Postgres(sqlx::PgPool),
}

const DELETE_MESSAGE: &str = "DELETE FROM messages WHERE room_hash = $1 AND id = $2";

/// What an insert's one statement read and did, on either backend.
#[derive(Debug)]
struct InsertFound {
    /// The stored body of a row with the same id, if one waits.
    existing: Option<Vec<u8>>,
    /// Unexpired messages waiting in the room before the insert.
    pending: i64,
    /// The inserted row's recipients, if it was inserted.
    recipients: Option<Vec<Participant>>,
}

impl InsertFound {
    /// What the insert did; `None` if it lost to a concurrent insert of the same id.
    fn outcome(self, max_pending: u32, expires_at: i64) -> Option<Inserted> {
        match (self.existing, self.recipients) {
            // A resend of a stored message is recognised (even in a full room).
            (Some(body), _) => Some(Inserted::Exists(body)),
            (None, Some(recipients)) => Some(Inserted::New { recipients, expires_at }),
            (None, None) if self.pending >= i64::from(max_pending) => Some(Inserted::RoomBacklogFull),
            (None, None) => None,
        }
    }
}

mod chunks;
mod participants;
pub use chunks::ChunkRead;
pub use participants::{Admitted, Reaped};

impl Store {
    /// Opens (creating if needed) the configured database and runs its migrations. `instance`
    /// names this process in participant rows and event notices; `notifies`: PostgreSQL's writes
    /// NOTIFY their events (the PostgreSQL bus; not with NATS). With SQLite, also returns the
    /// lock that keeps a second server off the file: hold it for as long as the server runs.
    pub async fn connect(
        database: &Database,
        instance: InstanceId,
        notifies: bool,
    ) -> Result<(Self, Option<std::fs::File>), StoreError> {
        match database {
            Database::Sqlite { path } => {
                let (write, read, lock) = sqlite::connect(path).await?;
                let queue = WriteQueue::spawn(write.clone());
                sqlite::checkpoint::spawn(write.connect_options().as_ref().clone(), queue.watch());
                Ok((Self { pool: Pool::Sqlite { write, read, queue }, instance, notifies: false }, Some(lock)))
            }
            Database::Postgres { options, pool } => {
                let pool = Pool::Postgres(postgres::connect(options, *pool).await?);
                Ok((Self { pool, instance, notifies }, None))
            }
        }
    }

    /// Where the PostgreSQL database is, for the bus's own connection; `None` on SQLite.
    pub fn postgres_connect_options(&self) -> Option<sqlx::postgres::PgConnectOptions> {
        match &self.pool {
            Pool::Postgres(pool) => Some((*pool.connect_options()).clone()),
            Pool::Sqlite { .. } => None,
        }
    }

    /// Whether other instances may share this database (PostgreSQL).
    fn is_shared(&self) -> bool {
        matches!(self.pool, Pool::Postgres(_))
    }

    /// Where statements that only read run: SQLite's read-only connections, or the PostgreSQL
    /// pool.
    fn read_pool(&self) -> DbPool<'_> {
        match &self.pool {
            Pool::Sqlite { read, .. } => Db::Sqlite(read),
            Pool::Postgres(pool) => Db::Postgres(pool),
        }
    }

    /// Where statements that write run: SQLite's one write connection, or the PostgreSQL pool.
    fn write_pool(&self) -> DbPool<'_> {
        match &self.pool {
            Pool::Sqlite { write, .. } => Db::Sqlite(write),
            Pool::Postgres(pool) => Db::Postgres(pool),
        }
    }

    /// The one of two statements that is written for this store's database.
    fn dialect(&self, sqlite: &'static str, postgres: &'static str) -> &'static str {
        match self.pool {
            Pool::Sqlite { .. } => sqlite,
            Pool::Postgres(_) => postgres,
        }
    }

    /// A room event as this instance announces it.
    fn notice(&self, room: &RoomHash, kind: EventKind) -> String {
        Notice { instance: self.instance, room: *room, kind }.encode()
    }

    /// Inside `tx`: NOTIFYs `notices` at its commit, if this store notifies (the PostgreSQL bus).
    async fn notify(&self, tx: &mut WriteTx, notices: &[String]) -> Result<(), StoreError> {
        if self.notifies {
            tx.notify(notices).await?;
        }
        Ok(())
    }

    /// Inside `tx`: drops participant `who` of `room` from the recipients of what it had not
    /// viewed, deletes (and announces) the messages every remaining recipient has viewed, and
    /// returns their ids.
    async fn drop_from_recipients(
        &self,
        tx: &mut WriteTx,
        room: &RoomHash,
        who: &Participant,
    ) -> Result<Vec<MessageId>, StoreError> {
        let rows = tx.drop_recipient(room, who).await?;
        let deleted: Vec<MessageId> = rows.iter().filter_map(|id| message_id_from_row(id)).collect();
        let notices: Vec<String> = deleted.iter().map(|id| self.notice(room, EventKind::Deleted(*id))).collect();
        self.notify(tx, &notices).await?;
        Ok(deleted)
    }

    /// Announces an event that goes with no write (typing) to the other instances, if this
    /// store notifies (the PostgreSQL bus).
    pub async fn announce(&self, room: &RoomHash, kind: EventKind) -> Result<(), StoreError> {
        let _timer = StoreTimer::start("announce");
        if let (Pool::Postgres(pool), true) = (&self.pool, self.notifies) {
            sqlx::query("SELECT pg_notify($1, $2)").bind(CHANNEL).bind(self.notice(room, kind)).execute(pool).await?;
        }
        Ok(())
    }

    /// Stores a message, with the room's other participants as its recipients, unless its id
    /// already waits in its room or the room holds `max_pending` unread messages.
    ///
    /// A concurrent send of the same id can win the insert between this one's reads and its
    /// write (PostgreSQL; SQLite's one writer rules it out): then it looks again, a bounded
    /// number of times.
    pub async fn insert(&self, m: NewMessage<'_>) -> Result<Inserted, StoreError> {
        let _timer = StoreTimer::start("insert");
        for _ in 0..INSERT_ATTEMPTS {
            let expires_at = expiry(now_ms(), m.ttl);
            let found = match &self.pool {
                Pool::Sqlite { queue, .. } => sqlite::insert(queue, &m, expires_at).await?,
                Pool::Postgres(pool) => {
                    let notice = self.notice(m.room, EventKind::Message { id: *m.id, chunks: m.chunks });
                    postgres::insert(pool, &m, expires_at, self.instance, self.notifies, notice).await?
                }
            };
            if let Some(inserted) = found.outcome(m.max_pending, expires_at) {
                if let Inserted::New { .. } = inserted {
                    metrics::counter!(metrics::MESSAGES_STORED).increment(1);
                }
                return Ok(inserted);
            }
        }
        Err(StoreError::Contended("insert"))
    }

    /// A waiting, unexpired message of `room`, as `who` may see it. (A fetch asks the hub
    /// first: the instance that stored a message holds it, `relay/held.rs`.)
    pub async fn get(&self, room: &RoomHash, id: &MessageId, who: &Participant) -> Result<Option<Waiting>, StoreError> {
        let _timer = StoreTimer::start("get");
        let sql = self.dialect(sqlite::SELECT_WAITING, postgres::SELECT_WAITING);
        let params = [Blob(&room.0), Blob(&id.0), Blob(&who.0), Int(now_ms())];
        let row: Option<(Vec<u8>, Vec<u8>, i64, i64)> = self.read_pool().fetch_optional(sql, &params).await?;
        Ok(row.map(|(body, sender, recipients, mine)| Waiting {
            body,
            sender: Participant::from_row(&sender),
            recipients,
            is_recipient: mine > 0,
        }))
    }

    /// Records that `who` viewed the message and deletes it once every recipient has (or at once
    /// if it is open).
    pub async fn viewed(&self, room: &RoomHash, id: &MessageId, who: &Participant) -> Result<Viewed, StoreError> {
        let _timer = StoreTimer::start("viewed");
        let viewed = match &self.pool {
            Pool::Sqlite { queue, .. } => sqlite::viewed(queue, room, id, who).await?,
            Pool::Postgres(pool) => {
                let deleted = self.notice(room, EventKind::Deleted(*id));
                let receipt = Notice::receipt_prefix(self.instance, room, id);
                let channel = self.notifies.then_some(CHANNEL);
                postgres::viewed(pool, room, id, who, self.instance, channel, deleted, receipt).await?
            }
        };
        if viewed == Viewed::Deleted {
            burned(1);
        }
        Ok(viewed)
    }

    /// Purges a message of `room` that can no longer be opened, announcing it as expired;
    /// `false` if there was none.
    pub async fn purge(&self, room: &RoomHash, id: &MessageId) -> Result<bool, StoreError> {
        let _timer = StoreTimer::start("purge");
        let notice = self.notice(room, EventKind::Expired(*id));
        let mut tx = self.write_pool().begin_write().await?;
        let deleted = tx.execute(DELETE_MESSAGE, &[Blob(&room.0), Blob(&id.0)]).await? == 1;
        tx.delete_recipients_of(room, id).await?;
        if deleted {
            self.notify(&mut tx, &[notice]).await?;
        }
        tx.commit().await?;
        if deleted {
            metrics::counter!(metrics::MESSAGES_EXPIRED).increment(1);
        }
        Ok(deleted)
    }

    /// Whether a message of `room` is still stored (waiting, or expired and not yet swept).
    pub async fn exists(&self, room: &RoomHash, id: &MessageId) -> Result<bool, StoreError> {
        let _timer = StoreTimer::start("exists");
        let sql = "SELECT COUNT(*) FROM messages WHERE room_hash = $1 AND id = $2";
        let (count,): (i64,) = self.read_pool().fetch_one(sql, &[Blob(&room.0), Blob(&id.0)]).await?;
        Ok(count > 0)
    }

    /// Ids of every message stored for `room` (waiting, or expired and not yet swept): at most
    /// the room's backlog limit and what expired since the last sweep. One read for a resync,
    /// however many of its own messages a connection asks about.
    pub async fn stored_ids(&self, room: &RoomHash) -> Result<HashSet<MessageId>, StoreError> {
        let _timer = StoreTimer::start("stored_ids");
        let sql = "SELECT id FROM messages WHERE room_hash = $1";
        let rows: Vec<(Vec<u8>,)> = self.read_pool().fetch_all(sql, &[Blob(&room.0)]).await?;
        Ok(rows.iter().filter_map(|(id,)| message_id_from_row(id)).collect())
    }

    /// Bytes of every stored record (waiting, or expired and not yet swept) and file chunk, over all rooms and
    /// every instance sharing this database: what `MAX_STORED_BYTES` bounds. A scan of the
    /// records' lengths (neither database reads a body to know its length); the relay asks
    /// once per step of its allowance, not per message.
    pub async fn stored_bytes(&self) -> Result<u64, StoreError> {
        let _timer = StoreTimer::start("stored_bytes");
        let sql = self.dialect(
            "SELECT CAST(COALESCE((SELECT SUM(LENGTH(body)) FROM messages), 0) \
               + COALESCE((SELECT SUM(LENGTH(body)) FROM chunks), 0) AS INTEGER)",
            "SELECT (COALESCE((SELECT SUM(OCTET_LENGTH(body)) FROM messages), 0) \
               + COALESCE((SELECT SUM(OCTET_LENGTH(body)) FROM chunks), 0))::BIGINT",
        );
        let (bytes,): (i64,) = self.read_pool().fetch_one(sql, &[]).await?;
        Ok(u64::try_from(bytes).unwrap_or(0))
    }

    /// The unexpired messages of `room` that `who` may view, oldest expiry first.
    pub async fn pending_for(&self, room: &RoomHash, who: &Participant) -> Result<Vec<Pending>, StoreError> {
        let _timer = StoreTimer::start("pending_for");
        let sql = self.dialect(sqlite::PENDING_FOR, postgres::PENDING_FOR);
        let rows: Vec<(Vec<u8>, i64)> =
            self.read_pool().fetch_all(sql, &[Blob(&room.0), Blob(&who.0), Int(now_ms())]).await?;
        Ok(rows
            .iter()
            .filter_map(|(id, chunks)| {
                Some(Pending { id: message_id_from_row(id)?, chunks: u32::try_from(*chunks).unwrap_or(0) })
            })
            .collect())
    }

    /// A participant with no participant row left for good: it is dropped from the recipients
    /// of what it had not viewed; messages every remaining recipient has viewed are deleted.
    /// Returns those messages' ids.
    pub async fn drop_participant(&self, room: &RoomHash, who: &Participant) -> Result<Vec<MessageId>, StoreError> {
        let _timer = StoreTimer::start("drop_participant");
        let mut tx = self.write_pool().begin_write().await?;
        let deleted = self.drop_from_recipients(&mut tx, room, who).await?;
        tx.commit().await?;
        burned(deleted.len());
        Ok(deleted)
    }

    /// Every (room, participant) still named as a recipient: after a restart, the ones that do
    /// not come back are dropped.
    pub async fn recipient_participants(&self) -> Result<Vec<(RoomHash, Participant)>, StoreError> {
        let _timer = StoreTimer::start("recipient_participants");
        let sql = self.dialect(sqlite::RECIPIENT_PARTICIPANTS, postgres::RECIPIENT_PARTICIPANTS);
        let rows: Vec<(Vec<u8>, Vec<u8>)> = self.read_pool().fetch_all(sql, &[]).await?;
        Ok(rows
            .iter()
            .filter_map(|(room, who)| Some((RoomHash::from_row(room)?, Participant::from_row(who))))
            .collect())
    }

    /// Deletes every expired message (and its recipients) and says which, so rooms can be told.
    pub async fn delete_expired(&self) -> Result<Vec<(RoomHash, MessageId)>, StoreError> {
        let _timer = StoreTimer::start("delete_expired");
        let sql = "DELETE FROM messages WHERE expires_at <= $1 RETURNING room_hash, id";
        let mut tx = self.write_pool().begin_write().await?;
        let rows: Vec<(Vec<u8>, Vec<u8>)> = tx.fetch_all(sql, &[Int(now_ms())]).await?;
        let expired: Vec<(RoomHash, MessageId)> =
            rows.iter().filter_map(|(room, id)| Some((RoomHash::from_row(room)?, message_id_from_row(id)?))).collect();
        if !rows.is_empty() {
            tx.delete_orphan_recipients().await?;
            let notices: Vec<String> =
                expired.iter().map(|(room, id)| self.notice(room, EventKind::Expired(*id))).collect();
            self.notify(&mut tx, &notices).await?;
        }
        tx.commit().await?;
        metrics::counter!(metrics::MESSAGES_EXPIRED).increment(expired.len() as u64);
        Ok(expired)
    }

    /// Closes the pools, waiting for connections to finish.
    pub async fn close(&self) {
        match &self.pool {
            Pool::Sqlite { write, read, .. } => {
                read.close().await;
                write.close().await;
            }
            Pool::Postgres(pool) => pool.close().await,
        }
    }
}

/// Counts messages burned by a committed write.
fn burned(messages: usize) {
    metrics::counter!(metrics::MESSAGES_BURNED).increment(messages as u64);
}
