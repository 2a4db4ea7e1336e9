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
//! `sqlite.rs` and `postgres.rs`; the rest are written once here (both dialects accept `$N`
//! parameters, `ON CONFLICT`, `RETURNING`). The journey's two writes, `insert` and `viewed`,
//! take one call each: a compound statement on SQLite, a data-modifying `WITH` and a function on
//! PostgreSQL. On SQLite, those that queue while the one write connection is busy commit
//! together (`group_commit.rs`).
//!
//! Participants are rows too (`participants.rs`), so several instances over one PostgreSQL
//! database share who is in each room. On PostgreSQL every write that causes a room event
//! NOTIFYs it in the same transaction (see [`crate::bus`]); on SQLite that is a no-op.

mod checkpoint;
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
use group_commit::{Bind, WriteQueue};

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
    /// A new row, naming these recipients (none: it is open to anyone but its sender), expiring
    /// at `expires_at` (milliseconds since the Unix epoch).
    New { recipients: Vec<Participant>, expires_at: i64 },
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

impl Backend for sqlx::SqlitePool {
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

const DELETE_MESSAGE: &str = "DELETE FROM messages WHERE room_hash = $1 AND id = $2";

/// What [`postgres::INSERT`] evaluates to.
type PostgresInserted = (Option<Vec<u8>>, i64, Option<Vec<Vec<u8>>>, i64);

/// Inside a transaction on `$pool`: drops participant `$who` of `$room` from the recipients of
/// what it had not viewed, deletes (and announces) the messages every remaining recipient has
/// viewed, and evaluates to their ids.
macro_rules! drop_from_recipients {
    ($store:expr, $pool:expr, $tx:expr, $room:expr, $who:expr) => {{
        let rows = $pool.drop_recipient(&mut $tx, $room, $who).await?;
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
                checkpoint::spawn(write.connect_options().as_ref().clone(), queue.watch());
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
        let rows = queue.write(&sqlite::INSERT, binds).await?;
        // The first row is the read before the insert; a second is the inserted row's id, and
        // any further ones its recipients.
        let (existing, pending): (Option<Vec<u8>>, i64) = match rows.first() {
            Some(row) => (row.try_get(0)?, row.try_get(1)?),
            None => return Err(StoreError::NoRow("insert")),
        };
        Ok(match existing {
            // A resend of a stored message is recognised (even in a full room).
            Some(body) => Inserted::Exists(body),
            None if rows.len() >= 2 => {
                let recipients = rows
                    .iter()
                    .skip(2)
                    .map(|row| row.try_get::<Vec<u8>, _>(0).map(|who| Participant::from_row(&who)))
                    .collect::<Result<_, _>>()?;
                Inserted::New { recipients, expires_at }
            }
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
        let (existing, pending, recipients, _notified): PostgresInserted = sqlx::query_as(postgres::INSERT)
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
            None if recipients.is_some() => Inserted::New {
                recipients: recipients.iter().flatten().map(|who| Participant::from_row(who)).collect(),
                expires_at,
            },
            None if pending >= i64::from(m.max_pending) => Inserted::RoomBacklogFull,
            // A concurrent send of the same id won the insert: look again.
            None => return Box::pin(self.insert(m)).await,
        })
    }

    /// A waiting, unexpired message of `room`, as `who` may see it. (A fetch asks the hub
    /// first: the instance that stored a message holds it, `ws/held.rs`.)
    pub async fn get(&self, room: &RoomHash, id: &MessageId, who: &Participant) -> Result<Option<Waiting>, StoreError> {
        let row: Option<(Vec<u8>, Vec<u8>, i64, i64)> = on_pool!(self, read pool => sqlx::query_as(self.dialect(sqlite::SELECT_WAITING, postgres::SELECT_WAITING))
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
        let rows = queue.write(&sqlite::VIEWED, binds).await?;
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

    /// [`Store::viewed`] on PostgreSQL: one call of `ec_viewed`, which deletes the message at once
    /// when this view completes it (`migrations/postgres/0005_recipients_in_the_message_row.sql`).
    async fn viewed_postgres(
        &self,
        pool: &sqlx::PgPool,
        room: &RoomHash,
        id: &MessageId,
        who: &Participant,
    ) -> Result<Viewed, StoreError> {
        let (outcome, viewed, of): (String, i64, i64) = sqlx::query_as(postgres::VIEWED)
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
            pool.delete_recipients_of(&mut tx, room, id).await?;
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
        let rows: Vec<Vec<u8>> = on_pool!(self, read pool => sqlx::query_scalar(self.dialect(sqlite::PENDING_FOR, postgres::PENDING_FOR))
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
        let sql = self.dialect(sqlite::RECIPIENT_PARTICIPANTS, postgres::RECIPIENT_PARTICIPANTS);
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
                pool.delete_orphan_recipients(&mut tx).await?;
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
