//! The message store: one [`Store`] type, SQLite or PostgreSQL, with the same methods on both.
//!
//! Rows hold only what the relay needs: `SHA-256(room_id)`, the message id, the at-rest-sealed
//! payload, an expiry time, and who sent and who must view each message, as participant hashes
//! (random per page session). Handlers call these methods and never see SQL.
//!
//! Most statements are written once: both dialects accept `$N` parameters, `ON CONFLICT`,
//! `RETURNING`, `NOT viewed`, and the same sub-queries. The two writes of every message's
//! journey, `insert` and `viewed`, are written per backend to take one call each (BENCHMARKS.md):
//! a compound statement on SQLite, a data-modifying `WITH` and a function on PostgreSQL. On
//! SQLite, those that queue while the one write connection is busy commit together
//! (`group_commit.rs`). Connecting and the migrations (schema types, storage parameters)
//! differ, in `sqlite.rs` and `postgres.rs`.
//!
//! Participants are rows too (`participants.rs`), so several instances over one PostgreSQL
//! database share who is in each room. On PostgreSQL every write that causes a room event
//! NOTIFYs it in the same transaction (see [`crate::bus`]); on SQLite that is a no-op.

mod group_commit;
mod postgres;
mod sqlite;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use app::crypto::MessageId;
use sqlx::Row as _;

use crate::at_rest::RoomHash;
use crate::bus::{InstanceId, Notice, CHANNEL};
use crate::config::Database;
use crate::ws::hub::{EventKind, Participant};
use group_commit::{compound, Bind, Compound, WriteQueue};

/// Why a store operation failed. Never carries a value from a row.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("{0}")]
    Setup(String),
    /// A statement that always returns a row returned none: a bug, or a database that is not
    /// what the migrations made.
    #[error("{0}: the database returned no row")]
    NoRow(&'static str),
}

/// A message to store.
pub struct NewMessage<'a> {
    pub room: &'a RoomHash,
    pub id: &'a MessageId,
    /// The at-rest-sealed payload.
    pub body: &'a [u8],
    pub ttl: Duration,
    pub sender: &'a Participant,
    /// Refuse it when this many messages already wait in the room.
    pub max_pending: u32,
}

/// What an insert found.
#[derive(Debug, PartialEq, Eq)]
pub enum Inserted {
    /// A new row.
    New,
    /// A row with this id already waits in the room; here is its stored body.
    Exists(Vec<u8>),
    /// The room already holds `max_pending` unread messages.
    RoomBacklogFull,
}

/// A waiting message as one participant may see it.
#[derive(Debug)]
pub struct Waiting {
    pub body: Vec<u8>,
    pub sender: Participant,
    /// Recipients it still has (none: it is open to anyone but its sender).
    pub recipients: i64,
    /// Whether the asking participant is one of them.
    pub is_recipient: bool,
}

/// What a `viewed` did.
#[derive(Debug, PartialEq, Eq)]
pub enum Viewed {
    /// Everyone who had to has viewed it: the row is gone.
    Deleted,
    /// `viewed` of `of` recipients have viewed it; it waits for the others.
    Progress { viewed: u32, of: u32 },
    /// It was already gone (viewed, expired, or another viewer won the race).
    Gone,
}

/// The message store: a pool, and the instance whose events its writes announce.
#[derive(Clone, Debug)]
pub struct Store {
    pool: Pool,
    instance: InstanceId,
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

/// Runs the same statements on whichever pool the store has: by default the pool that may
/// write; `read pool =>` for statements that only read.
macro_rules! on_pool {
    ($store:expr, read $pool:ident => $body:expr) => {
        match &$store.pool {
            Pool::Sqlite { read: $pool, .. } => $body,
            Pool::Postgres($pool) => $body,
        }
    };
    ($store:expr, $pool:ident => $body:expr) => {
        match &$store.pool {
            Pool::Sqlite { write: $pool, .. } => $body,
            Pool::Postgres($pool) => $body,
        }
    };
}

/// What differs between the backends inside the shared statements' transactions.
trait Backend {
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
}

impl Backend for sqlx::SqlitePool {
    type Db = sqlx::Sqlite;
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, Self::Db>, sqlx::Error> {
        self.begin_with("BEGIN IMMEDIATE").await
    }
    /// One instance per SQLite file: nobody else to tell.
    async fn notify(&self, _: &mut sqlx::Transaction<'static, Self::Db>, _: &[String]) -> Result<(), sqlx::Error> {
        Ok(())
    }
}

impl Backend for sqlx::PgPool {
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
}

/// Milliseconds since the Unix epoch, as stored in `expires_at`.
pub fn now_ms() -> i64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
}

fn expiry(ttl: Duration) -> i64 {
    now_ms().saturating_add(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX))
}

/// Reads a 16-byte id column; `None` for a malformed row (which the schema's CHECK forbids).
fn id_from_row(bytes: &[u8]) -> Option<MessageId> {
    bytes.try_into().ok().map(MessageId)
}

fn room_from_row(bytes: &[u8]) -> Option<RoomHash> {
    bytes.try_into().ok().map(RoomHash)
}

/// SQLite's [`Store::insert`], one compound statement run in one call (each call is a round trip
/// to the connection's worker thread), alone or in a group commit (see [`group_commit`]): reads
/// the existing body and the room's backlog, inserts the row unless either refuses it
/// (returning its id), and gives it the room's other participants (connected or in their grace
/// period) as recipients if it was inserted. `changes()` is the row count of the insert just
/// before.
const INSERT_SQLITE: Compound = compound!(
    "SELECT (SELECT body FROM messages WHERE room_hash = $1 AND id = $2), \
       (SELECT COUNT(*) FROM messages WHERE room_hash = $1 AND expires_at > $6); \
     INSERT INTO messages (room_hash, id, body, expires_at, sender) SELECT $1, $2, $3, $4, $5 \
       WHERE NOT EXISTS (SELECT 1 FROM messages WHERE room_hash = $1 AND id = $2) \
       AND (SELECT COUNT(*) FROM messages WHERE room_hash = $1 AND expires_at > $6) < $7 \
       ON CONFLICT (room_hash, id) DO NOTHING RETURNING id; \
     INSERT INTO recipients (room_hash, message_id, participant) \
       SELECT room_hash, $2, participant FROM participants \
       WHERE room_hash = $1 AND participant <> $5 AND changes() = 1;"
);
/// PostgreSQL's [`Store::insert`] in one statement: the existing body and the backlog are read,
/// the row and its recipients inserted only if neither refuses it, and the event NOTIFYd only if
/// it was inserted and another instance can care: a participant of the room is on another
/// instance (`$10` is this one), or the message has no recipients (open to whoever joins next,
/// wherever). A commit that NOTIFYs holds a lock that serialises every such commit in the
/// database; notifying a room wholly on this instance cost most of the throughput for nobody's
/// benefit (BENCHMARKS.md). The room's participant rows are read with `FOR KEY SHARE`, which
/// waits for a leave (a row DELETE) in flight and skips the row once it has committed: read
/// without it, a participant whose leave committed while this ran was made a recipient after
/// its leave had dropped it from every recipient list, and the message could then not burn
/// until it expired. The lock conflicts only with DELETE, not with heartbeats, disconnects or
/// rejoins (which update non-key columns). A participant that first joins elsewhere while this
/// runs is not a recipient (it was not here when the message was sent), so it needs no notice.
/// Known gap: a participant *re*joining another instance in the same few milliseconds (its row
/// still names this instance in this statement's snapshot, and its join read what waits before
/// this commits) is a recipient that hears of this message only at its next join or resync.
/// Evaluates to (existing body, backlog, rows inserted, notices sent): the last is read so that
/// the `notified` query runs at all (PostgreSQL skips a SELECT in WITH that nothing reads).
const INSERT_POSTGRES: &str = "WITH existing AS (SELECT body FROM messages WHERE room_hash = $1 AND id = $2), \
     pending AS (SELECT COUNT(*) AS n FROM messages WHERE room_hash = $1 AND expires_at > $6), \
     inserted AS (INSERT INTO messages (room_hash, id, body, expires_at, sender) \
         SELECT $1, $2, $3, $4, $5 WHERE NOT EXISTS (SELECT 1 FROM existing) AND (SELECT n FROM pending) < $7 \
         ON CONFLICT (room_hash, id) DO NOTHING RETURNING id), \
     members AS (SELECT room_hash, participant, instance FROM participants WHERE room_hash = $1 \
         FOR KEY SHARE), \
     recipients AS (INSERT INTO recipients (room_hash, message_id, participant) \
         SELECT p.room_hash, i.id, p.participant FROM members p, inserted i WHERE p.participant <> $5), \
     notified AS (SELECT pg_notify($8, $9) FROM inserted \
         WHERE EXISTS (SELECT 1 FROM members WHERE instance <> $10) \
         OR NOT EXISTS (SELECT 1 FROM members WHERE participant <> $5)) \
     SELECT (SELECT body FROM existing), (SELECT n FROM pending), \
         (SELECT COUNT(*) FROM inserted), (SELECT COUNT(*) FROM notified)";
const SELECT_WAITING: &str = "SELECT m.body, m.sender, \
       (SELECT COUNT(*) FROM recipients r WHERE r.room_hash = m.room_hash AND r.message_id = m.id), \
       (SELECT COUNT(*) FROM recipients r WHERE r.room_hash = m.room_hash AND r.message_id = m.id \
            AND r.participant = $3) \
     FROM messages m WHERE m.room_hash = $1 AND m.id = $2 AND m.expires_at > $4";
/// SQLite's [`Store::viewed`], one compound statement run in one call, alone or in a group
/// commit (writers already run one at a time on the one write connection): marks the view,
/// counts (recipients, viewed), deletes the message (returning its id) once no recipient is
/// left unviewed, and its recipients with it.
const VIEWED_SQLITE: Compound = compound!(
    "UPDATE recipients SET viewed = TRUE WHERE room_hash = $1 AND message_id = $2 AND participant = $3; \
     SELECT COUNT(*), COALESCE(SUM(CASE WHEN viewed THEN 1 ELSE 0 END), 0) \
       FROM recipients WHERE room_hash = $1 AND message_id = $2; \
     DELETE FROM messages WHERE room_hash = $1 AND id = $2 AND NOT EXISTS (SELECT 1 FROM recipients \
       WHERE room_hash = $1 AND message_id = $2 AND NOT viewed) RETURNING id; \
     DELETE FROM recipients WHERE room_hash = $1 AND message_id = $2 \
       AND NOT EXISTS (SELECT 1 FROM messages WHERE room_hash = $1 AND id = $2);"
);
/// Takes the row locks of every message of a room (a no-op write) before a participant is
/// dropped from their recipients, so a concurrent `viewed` (which locks its message first, see
/// `ec_viewed` in the PostgreSQL migrations) and this run one after the other. Otherwise, under
/// PostgreSQL's read committed, each can count the other's change as not yet made and neither
/// burns the message. (SQLite's `BEGIN IMMEDIATE` already runs writers one at a time.)
const LOCK_ROOM_MESSAGES: &str = "UPDATE messages SET expires_at = expires_at WHERE room_hash = $1";
const DELETE_MESSAGE: &str = "DELETE FROM messages WHERE room_hash = $1 AND id = $2";
const DELETE_RECIPIENTS: &str = "DELETE FROM recipients WHERE room_hash = $1 AND message_id = $2";
/// Messages `$2` may view: as an unviewed recipient, or open (no recipients) and not its own.
const PENDING_FOR: &str = "SELECT m.id FROM messages m WHERE m.room_hash = $1 AND m.expires_at > $3 AND ( \
       EXISTS (SELECT 1 FROM recipients r WHERE r.room_hash = m.room_hash AND r.message_id = m.id \
               AND r.participant = $2 AND NOT r.viewed) \
       OR (m.sender <> $2 AND NOT EXISTS (SELECT 1 FROM recipients r \
               WHERE r.room_hash = m.room_hash AND r.message_id = m.id))) \
     ORDER BY m.expires_at";
const DROP_UNVIEWED: &str = "DELETE FROM recipients WHERE room_hash = $1 AND participant = $2 AND NOT viewed";
/// Messages of a room whose remaining recipients have all viewed them (and there is one).
const COMPLETED_IN_ROOM: &str = "DELETE FROM messages AS m WHERE m.room_hash = $1 \
       AND EXISTS (SELECT 1 FROM recipients r WHERE r.room_hash = m.room_hash AND r.message_id = m.id) \
       AND NOT EXISTS (SELECT 1 FROM recipients r WHERE r.room_hash = m.room_hash AND r.message_id = m.id \
               AND NOT r.viewed) \
     RETURNING id";
const DELETE_ORPHAN_RECIPIENTS: &str = "DELETE FROM recipients WHERE NOT EXISTS (SELECT 1 FROM messages m \
       WHERE m.room_hash = recipients.room_hash AND m.id = recipients.message_id)";

/// Inside a transaction on `$pool`: drops participant `$who` of `$room` from the recipients of
/// what it had not viewed, deletes (and announces) the messages every remaining recipient has
/// viewed, and evaluates to their ids.
macro_rules! drop_from_recipients {
    ($store:expr, $pool:expr, $tx:expr, $room:expr, $who:expr) => {{
        sqlx::query(LOCK_ROOM_MESSAGES).bind(&$room.0[..]).execute(&mut *$tx).await?;
        sqlx::query(DROP_UNVIEWED).bind(&$room.0[..]).bind(&$who.0[..]).execute(&mut *$tx).await?;
        let rows: Vec<Vec<u8>> = sqlx::query_scalar(COMPLETED_IN_ROOM).bind(&$room.0[..]).fetch_all(&mut *$tx).await?;
        sqlx::query(DELETE_ORPHAN_RECIPIENTS).execute(&mut *$tx).await?;
        let deleted: Vec<MessageId> = rows.iter().filter_map(|id| id_from_row(id)).collect();
        let notices: Vec<String> = deleted.iter().map(|id| $store.notice($room, EventKind::Deleted(*id))).collect();
        $pool.notify(&mut $tx, &notices).await?;
        deleted
    }};
}

mod participants;
pub use participants::{Joined, Reaped, HEARTBEAT_INTERVAL, HEARTBEAT_TIMEOUT};

impl Store {
    /// Opens (creating if needed) the configured database and runs its migrations. `instance`
    /// names this process in participant rows and event notices. With SQLite, also returns the
    /// lock that keeps a second server off the file: hold it for as long as the server runs.
    pub async fn connect(
        database: &Database,
        instance: InstanceId,
    ) -> Result<(Self, Option<std::fs::File>), StoreError> {
        match database {
            Database::Sqlite { path } => {
                let (write, read, lock) = sqlite::connect(path).await?;
                let queue = WriteQueue::spawn(write.clone());
                Ok((Self { pool: Pool::Sqlite { write, read, queue }, instance }, Some(lock)))
            }
            Database::Postgres(options) => {
                Ok((Self { pool: Pool::Postgres(postgres::connect(options).await?), instance }, None))
            }
        }
    }

    /// The PostgreSQL pool, for the event listener; `None` on SQLite.
    pub fn postgres_pool(&self) -> Option<&sqlx::PgPool> {
        match &self.pool {
            Pool::Postgres(pool) => Some(pool),
            Pool::Sqlite { .. } => None,
        }
    }

    /// A room event as this instance announces it.
    fn notice(&self, room: &RoomHash, kind: EventKind) -> String {
        Notice { instance: self.instance, room: *room, kind }.encode()
    }

    /// Announces an event that goes with no write (typing) to the other instances.
    pub async fn announce(&self, room: &RoomHash, kind: EventKind) -> Result<(), StoreError> {
        if let Pool::Postgres(pool) = &self.pool {
            sqlx::query("SELECT pg_notify($1, $2)").bind(CHANNEL).bind(self.notice(room, kind)).execute(pool).await?;
        }
        Ok(())
    }

    /// Stores a message, with the room's other participants as its recipients, unless its id
    /// already waits in its room or the room holds `max_pending` unread messages.
    pub async fn insert(&self, m: NewMessage<'_>) -> Result<Inserted, StoreError> {
        let expires_at = expiry(m.ttl);
        let queue = match &self.pool {
            Pool::Sqlite { queue, .. } => queue,
            Pool::Postgres(pool) => {
                let notice = self.notice(m.room, EventKind::Message(*m.id));
                return self.insert_postgres(pool, m, expires_at, notice).await;
            }
        };
        let binds = vec![
            Bind::Blob(m.room.0.to_vec()),
            Bind::Blob(m.id.0.to_vec()),
            Bind::Blob(m.body.to_vec()),
            Bind::Int(expires_at),
            Bind::Blob(m.sender.0.to_vec()),
            Bind::Int(now_ms()),
            Bind::Int(i64::from(m.max_pending)),
        ];
        let rows = queue.write(&INSERT_SQLITE, binds).await?;
        // The first row is the read before the insert; a second is the inserted row's id.
        let (existing, pending): (Option<Vec<u8>>, i64) = match rows.first() {
            Some(row) => (row.try_get(0)?, row.try_get(1)?),
            None => return Err(StoreError::NoRow("insert")),
        };
        Ok(match existing {
            // A resend of a stored message is recognised (even in a full room).
            Some(body) => Inserted::Exists(body),
            None if rows.len() == 2 => Inserted::New,
            None if pending >= i64::from(m.max_pending) => Inserted::RoomBacklogFull,
            // Cannot happen inside SQLite's write lock, but costs nothing to handle: look again.
            None => return Box::pin(self.insert(m)).await,
        })
    }

    /// [`Store::insert`] on PostgreSQL: the same checks and writes as one statement, so one
    /// round trip instead of six (see BENCHMARKS.md).
    async fn insert_postgres(
        &self,
        pool: &sqlx::PgPool,
        m: NewMessage<'_>,
        expires_at: i64,
        notice: String,
    ) -> Result<Inserted, StoreError> {
        let (existing, pending, inserted, _notified): (Option<Vec<u8>>, i64, i64, i64) =
            sqlx::query_as(INSERT_POSTGRES)
                .bind(&m.room.0[..])
                .bind(&m.id.0[..])
                .bind(m.body)
                .bind(expires_at)
                .bind(&m.sender.0[..])
                .bind(now_ms())
                .bind(i64::from(m.max_pending))
                .bind(CHANNEL)
                .bind(notice)
                .bind(&self.instance.0[..])
                .fetch_one(pool)
                .await?;
        Ok(match existing {
            // A resend of a stored message is recognised (even in a full room).
            Some(body) => Inserted::Exists(body),
            None if inserted == 1 => Inserted::New,
            None if pending >= i64::from(m.max_pending) => Inserted::RoomBacklogFull,
            // A concurrent send of the same id won the insert: look again.
            None => return Box::pin(self.insert(m)).await,
        })
    }

    /// A waiting, unexpired message of `room`, as `who` may see it.
    pub async fn get(&self, room: &RoomHash, id: &MessageId, who: &Participant) -> Result<Option<Waiting>, StoreError> {
        let row: Option<(Vec<u8>, Vec<u8>, i64, i64)> = on_pool!(self, read pool => sqlx::query_as(SELECT_WAITING)
            .bind(&room.0[..])
            .bind(&id.0[..])
            .bind(&who.0[..])
            .bind(now_ms())
            .fetch_optional(pool)
            .await?);
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
        let queue = match &self.pool {
            Pool::Sqlite { queue, .. } => queue,
            Pool::Postgres(pool) => return self.viewed_postgres(pool, room, id, who).await,
        };
        let binds = vec![Bind::Blob(room.0.to_vec()), Bind::Blob(id.0.to_vec()), Bind::Blob(who.0.to_vec())];
        let rows = queue.write(&VIEWED_SQLITE, binds).await?;
        // The first row is the count after marking; a second is the deleted message's id.
        let (of, viewed): (i64, i64) = match rows.first() {
            Some(row) => (row.try_get(0)?, row.try_get(1)?),
            None => return Err(StoreError::NoRow("viewed")),
        };
        Ok(if rows.len() == 2 {
            Viewed::Deleted
        } else if viewed < of {
            Viewed::Progress { viewed: u32::try_from(viewed).unwrap_or(0), of: u32::try_from(of).unwrap_or(0) }
        } else {
            Viewed::Gone
        })
    }

    /// [`Store::viewed`] on PostgreSQL: the same statements in one function call, one round trip
    /// instead of eight (`migrations/postgres/0004_one_round_trip_viewed.sql`).
    async fn viewed_postgres(
        &self,
        pool: &sqlx::PgPool,
        room: &RoomHash,
        id: &MessageId,
        who: &Participant,
    ) -> Result<Viewed, StoreError> {
        let (outcome, viewed, of): (String, i64, i64) =
            sqlx::query_as("SELECT outcome, viewed_count, recipient_count FROM ec_viewed($1, $2, $3, $4, $5, $6, $7)")
                .bind(&room.0[..])
                .bind(&id.0[..])
                .bind(&who.0[..])
                .bind(&self.instance.0[..])
                .bind(CHANNEL)
                .bind(self.notice(room, EventKind::Deleted(*id)))
                .bind(Notice::receipt_prefix(self.instance, room, id))
                .fetch_one(pool)
                .await?;
        Ok(match outcome.as_str() {
            "progress" => {
                Viewed::Progress { viewed: u32::try_from(viewed).unwrap_or(0), of: u32::try_from(of).unwrap_or(0) }
            }
            "deleted" => Viewed::Deleted,
            _ => Viewed::Gone,
        })
    }

    /// Purges a message of `room` that can no longer be opened, announcing it as expired;
    /// `false` if there was none.
    pub async fn purge(&self, room: &RoomHash, id: &MessageId) -> Result<bool, StoreError> {
        let notice = self.notice(room, EventKind::Expired(*id));
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let done = sqlx::query(DELETE_MESSAGE).bind(&room.0[..]).bind(&id.0[..]).execute(&mut *tx).await?;
            sqlx::query(DELETE_RECIPIENTS).bind(&room.0[..]).bind(&id.0[..]).execute(&mut *tx).await?;
            if done.rows_affected() == 1 {
                pool.notify(&mut tx, &[notice]).await?;
            }
            tx.commit().await?;
            Ok(done.rows_affected() == 1)
        })
    }

    /// Whether a message of `room` is still stored (waiting, or expired and not yet swept).
    pub async fn exists(&self, room: &RoomHash, id: &MessageId) -> Result<bool, StoreError> {
        let sql = "SELECT COUNT(*) FROM messages WHERE room_hash = $1 AND id = $2";
        let count: i64 = on_pool!(self, read pool => sqlx::query_scalar(sql).bind(&room.0[..]).bind(&id.0[..]).fetch_one(pool).await?);
        Ok(count > 0)
    }

    /// Ids of the unexpired messages of `room` that `who` may view, oldest expiry first.
    pub async fn pending_for(&self, room: &RoomHash, who: &Participant) -> Result<Vec<MessageId>, StoreError> {
        let rows: Vec<Vec<u8>> = on_pool!(self, read pool => sqlx::query_scalar(PENDING_FOR)
            .bind(&room.0[..])
            .bind(&who.0[..])
            .bind(now_ms())
            .fetch_all(pool)
            .await?);
        Ok(rows.iter().filter_map(|id| id_from_row(id)).collect())
    }

    /// A participant with no participant row left for good: it is dropped from the recipients
    /// of what it had not viewed; messages every remaining recipient has viewed are deleted.
    /// Returns those messages' ids.
    pub async fn drop_participant(&self, room: &RoomHash, who: &Participant) -> Result<Vec<MessageId>, StoreError> {
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let deleted = drop_from_recipients!(self, pool, tx, room, who);
            tx.commit().await?;
            Ok(deleted)
        })
    }

    /// Every (room, participant) still named as a recipient: after a restart, the ones that do
    /// not come back are dropped.
    pub async fn recipient_participants(&self) -> Result<Vec<(RoomHash, Participant)>, StoreError> {
        let sql = "SELECT DISTINCT room_hash, participant FROM recipients";
        let rows: Vec<(Vec<u8>, Vec<u8>)> = on_pool!(self, read pool => sqlx::query_as(sql).fetch_all(pool).await?);
        Ok(rows.iter().filter_map(|(room, who)| Some((room_from_row(room)?, Participant::from_row(who)))).collect())
    }

    /// Deletes every expired message (and its recipients) and says which, so rooms can be told.
    pub async fn delete_expired(&self) -> Result<Vec<(RoomHash, MessageId)>, StoreError> {
        let sql = "DELETE FROM messages WHERE expires_at <= $1 RETURNING room_hash, id";
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let rows: Vec<(Vec<u8>, Vec<u8>)> = sqlx::query_as(sql).bind(now_ms()).fetch_all(&mut *tx).await?;
            let expired: Vec<(RoomHash, MessageId)> =
                rows.iter().filter_map(|(room, id)| Some((room_from_row(room)?, id_from_row(id)?))).collect();
            if !rows.is_empty() {
                sqlx::query(DELETE_ORPHAN_RECIPIENTS).execute(&mut *tx).await?;
                let notices: Vec<String> =
                    expired.iter().map(|(room, id)| self.notice(room, EventKind::Expired(*id))).collect();
                pool.notify(&mut tx, &notices).await?;
            }
            tx.commit().await?;
            Ok(expired)
        })
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
