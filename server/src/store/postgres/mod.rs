//! The PostgreSQL store: for production and for several instances over one database.

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgConnection, PgPool};

use super::{InsertFound, StoreError};
use crate::domain::bounds::POSTGRES_PING_IDLE_AFTER;
use crate::domain::{now_ms, InstanceId, MessageId, NewMessage, Participant, RoomHash, Viewed, CHANNEL};

/// SQLSTATE of "database does not exist".
const INVALID_CATALOG_NAME: &str = "3D000";

/// A pool of at most `connections` to the database at `options`, created if missing.
pub(super) async fn connect(options: &PgConnectOptions, connections: u32) -> Result<PgPool, StoreError> {
    let pool = match pool_options(connections).connect_with(options.clone()).await {
        Err(sqlx::Error::Database(err)) if err.code().as_deref() == Some(INVALID_CATALOG_NAME) => {
            create_database(options).await?;
            pool_options(connections).connect_with(options.clone()).await?
        }
        other => other?,
    };
    sqlx::migrate!("../migrations/postgres").run(&pool).await?;
    Ok(pool)
}

/// The pool's options. sqlx pings every connection as it goes back to the pool, and by default
/// again before lending it out: two round trips to the database beside every statement's own,
/// which at the peak took a quarter of the relay's processor time, and their share of the
/// database's (docs/benchmark-history.md). A connection back for less than
/// [`POSTGRES_PING_IDLE_AFTER`] answered its ping then and is lent without another (HikariCP's
/// "alive bypass window" does the same); one idle longer (across a restart of the database, say)
/// is pinged first, and replaced if it does not answer.
fn pool_options(connections: u32) -> PgPoolOptions {
    PgPoolOptions::new().max_connections(connections).test_before_acquire(false).before_acquire(|conn, meta| {
        Box::pin(async move {
            if meta.idle_for >= POSTGRES_PING_IDLE_AFTER {
                conn.ping().await?;
            }
            Ok(true)
        })
    })
}

/// The row [`INSERT`] evaluates to: (existing body, backlog, the inserted row's recipients (NULL
/// if none was inserted), notices sent).
type InsertRow = (Option<Vec<u8>>, i64, Option<Vec<Vec<u8>>>, i64);

/// [`INSERT`]: the same checks and writes as SQLite's, as one statement, so one round trip
/// (BENCHMARKS.md). `notice` is the stored message's event, NOTIFYd only if another instance can
/// care.
pub(super) async fn insert(
    pool: &PgPool,
    m: &NewMessage<'_>,
    expires_at: i64,
    here: InstanceId,
    notify: bool,
    notice: String,
) -> Result<InsertFound, StoreError> {
    let (existing, pending, recipients, _notified): InsertRow = sqlx::query_as(INSERT)
        .bind(&m.room.0[..])
        .bind(&m.id.0[..])
        .bind(m.body)
        .bind(expires_at)
        .bind(&m.sender.0[..])
        .bind(now_ms())
        .bind(i64::from(m.max_pending))
        .bind(CHANNEL)
        .bind(notice)
        .bind(&here.0[..])
        .bind(i64::from(m.chunks))
        .bind(notify)
        .fetch_one(pool)
        .await?;
    let recipients = recipients.map(|rows| rows.iter().map(|who| Participant::from_row(who)).collect());
    Ok(InsertFound { existing, pending, recipients })
}

/// [`VIEWED`]: one call of `ec_viewed`, which deletes the message at once when this view
/// completes it (`migrations/postgres/0007_instances_and_buses.sql`), NOTIFYing `deleted` or
/// the receipt (`receipt_prefix` and its counts) on `channel` when another instance can care
/// (never without a channel: the NATS bus).
#[allow(clippy::too_many_arguments)]
pub(super) async fn viewed(
    pool: &PgPool,
    room: &RoomHash,
    id: &MessageId,
    who: &Participant,
    here: InstanceId,
    channel: Option<&str>,
    deleted: String,
    receipt_prefix: String,
) -> Result<Viewed, StoreError> {
    let (outcome, viewed, of): (String, i64, i64) = sqlx::query_as(VIEWED)
        .bind(&room.0[..])
        .bind(&id.0[..])
        .bind(&who.0[..])
        .bind(&here.0[..])
        .bind(channel)
        .bind(deleted)
        .bind(receipt_prefix)
        .fetch_one(pool)
        .await?;
    match outcome.as_str() {
        "progress" => {
            Ok(Viewed::Progress { viewed: u32::try_from(viewed).unwrap_or(0), of: u32::try_from(of).unwrap_or(0) })
        }
        "deleted" => Ok(Viewed::Deleted),
        "gone" => Ok(Viewed::Gone),
        _ => Err(StoreError::NoRow("viewed")),
    }
}

/// Inside a write transaction: NOTIFYs each of `notices`, sent when (and only if) it commits.
pub(super) async fn notify(tx: &mut PgConnection, notices: &[String]) -> Result<(), sqlx::Error> {
    for notice in notices {
        sqlx::query("SELECT pg_notify($1, $2)").bind(CHANNEL).bind(notice).execute(&mut *tx).await?;
    }
    Ok(())
}

/// Inside a write transaction: drops `who` from the recipients of the messages of `room` it has
/// not viewed ([`DROP_UNVIEWED`]), deletes those that every remaining recipient has now viewed
/// ([`COMPLETED_IN_ROOM`]), and returns their ids.
pub(super) async fn drop_recipient(
    tx: &mut PgConnection,
    room: &RoomHash,
    who: &Participant,
) -> Result<Vec<Vec<u8>>, sqlx::Error> {
    sqlx::query(DROP_UNVIEWED).bind(&room.0[..]).bind(&who.0[..]).execute(&mut *tx).await?;
    sqlx::query_scalar(COMPLETED_IN_ROOM).bind(&room.0[..]).fetch_all(tx).await
}

/// Creates the configured database through the server's maintenance database.
async fn create_database(options: &PgConnectOptions) -> Result<(), StoreError> {
    let name =
        options.get_database().ok_or_else(|| StoreError::Setup("PostgreSQL: no database name configured".into()))?;
    let mut conn = options.clone().database("postgres").connect().await?;
    let quoted = format!("\"{}\"", name.replace('"', "\"\""));
    let created = sqlx::query(&format!("CREATE DATABASE {quoted}")).execute(&mut conn).await;
    conn.close().await?;
    match created {
        // Another instance created it first.
        Err(sqlx::Error::Database(err)) if err.code().as_deref() == Some("42P04") => Ok(()),
        other => other.map(drop).map_err(StoreError::from),
    }
}

// The statements that differ on PostgreSQL: a message's recipients live in its own row, in
// `recipients` (who must view it) and `viewed_by` (those of them who have), rather than in a
// table of their own as on SQLite (`migrations/postgres/0005_recipients_in_the_message_row.sql`).

/// [`Store::insert`](super::Store::insert) in one statement: the existing body and the backlog
/// are read, and the row, naming the room's other participants (connected or in their grace
/// period) as its recipients, inserted only if neither refuses it. The event is NOTIFYd only if
/// this store notifies (`$12`: the PostgreSQL bus), it was inserted and another instance can
/// care: a recipient is on another instance (`$10` is this one), or there is none (the message
/// is open to whoever joins next, wherever). A commit
/// that NOTIFYs holds a lock that serialises every such commit in the database; notifying a room
/// wholly on this instance cost most of the throughput for nobody's benefit (BENCHMARKS.md).
///
/// The recipients' participant rows are read `FOR KEY SHARE`, which waits for a leave (a row
/// DELETE) in flight and skips the row once it has committed: read without it, a participant
/// whose leave committed while this ran was made a recipient after its leave had dropped it from
/// every message, and the message could then not burn until it expired. The lock conflicts only
/// with DELETE, not with heartbeats, disconnects or rejoins (which update non-key columns). The
/// sender's own row is not locked: it is no recipient, and a lock that concurrent sends from one
/// sender would share is a multixact to PostgreSQL. A participant that first joins elsewhere
/// while this runs is not a recipient (it was not here when the message was sent), so it needs no
/// notice. A participant *re*joining another instance in the same few milliseconds locks its row
/// `FOR UPDATE` first ([`JOIN_LOCK`]), which conflicts with this lock: either the join waits for
/// this insert's commit (and then reads the message as pending), or this insert waits for the
/// join's commit, reads the row's new instance and NOTIFYs it.
///
/// The backlog is counted over the room's rows (the primary key's prefix), with the expiry as a
/// filter rather than a condition: as a condition, the generic plan of this prepared statement
/// combined the primary key with the expiry index in a bitmap, which read the expiry index for
/// every waiting message of every room, on every send (a sixth of PostgreSQL's processor time in
/// a profile of `loadgen journey` on a fresh database).
///
/// Evaluates to (existing body, backlog, the inserted row's recipients (NULL if none was), notices
/// sent): the last is read so that the `notified` query runs at all (PostgreSQL skips a SELECT in
/// WITH that nothing reads).
pub(super) const INSERT: &str = "WITH existing AS (SELECT body FROM messages WHERE room_hash = $1 AND id = $2), \
     pending AS (SELECT COUNT(*) FILTER (WHERE expires_at > $6) AS n FROM messages WHERE room_hash = $1), \
     others AS (SELECT participant, instance FROM participants WHERE room_hash = $1 AND participant <> $5 \
         FOR KEY SHARE), \
     inserted AS (INSERT INTO messages (room_hash, id, body, expires_at, sender, recipients, chunks) \
         SELECT $1, $2, $3, $4, $5, ARRAY(SELECT participant FROM others ORDER BY participant), $11 \
         WHERE NOT EXISTS (SELECT 1 FROM existing) AND (SELECT n FROM pending) < $7 \
         ON CONFLICT (room_hash, id) DO NOTHING RETURNING id, recipients), \
     notified AS (SELECT pg_notify($8, $9) FROM inserted \
         WHERE $12 AND (EXISTS (SELECT 1 FROM others WHERE instance <> $10) OR NOT EXISTS (SELECT 1 FROM others))) \
     SELECT (SELECT body FROM existing), (SELECT n FROM pending), \
         (SELECT recipients FROM inserted), (SELECT COUNT(*) FROM notified)";
/// The join's "is this participant known here" with its row locked `FOR UPDATE` (a row that
/// exists: a rejoin, perhaps from another instance). That lock conflicts with the `FOR KEY
/// SHARE` with which [`INSERT`] and `ec_viewed` read the room's participants, so a participant
/// moving to this instance and a message sent at that moment are ordered: one waits for the
/// other's commit (the rejoin gap, issue 24). Heartbeats and disconnects take no such lock.
pub(super) const JOIN_LOCK: &str =
    "SELECT COUNT(*) FROM (SELECT 1 FROM participants WHERE room_hash = $1 AND participant = $2 FOR UPDATE) AS mine";
/// [`Store::viewed`](super::Store::viewed) in one call (`ec_viewed` in the migrations).
pub(super) const VIEWED: &str =
    "SELECT outcome, viewed_count, recipient_count FROM ec_viewed($1, $2, $3, $4, $5, $6, $7)";
/// (body, sender, recipients, whether `$3` is one of them) of an unexpired message.
pub(super) const SELECT_WAITING: &str = "SELECT body, sender, cardinality(recipients)::BIGINT, \
       (CASE WHEN $3 = ANY (recipients) THEN 1 ELSE 0 END)::BIGINT \
     FROM messages WHERE room_hash = $1 AND id = $2 AND expires_at > $4";
/// Messages `$2` may view: as a recipient that has not viewed them yet, or open (no recipients)
/// and not its own.
pub(super) const PENDING_FOR: &str =
    "SELECT id, chunks::BIGINT FROM messages WHERE room_hash = $1 AND expires_at > $3 AND ( \
       ($2 = ANY (recipients) AND NOT $2 = ANY (viewed_by)) OR (sender <> $2 AND cardinality(recipients) = 0)) \
     ORDER BY expires_at";
/// Drops `$2` from the recipients of the messages of room `$1` it has not viewed.
const DROP_UNVIEWED: &str = "UPDATE messages SET recipients = array_remove(recipients, $2) \
     WHERE room_hash = $1 AND $2 = ANY (recipients) AND NOT $2 = ANY (viewed_by)";
/// Messages of room `$1` whose remaining recipients (there is one) have all viewed them. Run after
/// [`DROP_UNVIEWED`] in the same transaction: each statement re-reads a row a concurrent viewer
/// changed, and a viewer whose view completes a message deletes it itself (`ec_viewed`), so
/// between them every completed message burns.
const COMPLETED_IN_ROOM: &str = "DELETE FROM messages WHERE room_hash = $1 \
       AND cardinality(recipients) > 0 AND recipients <@ viewed_by RETURNING id";
/// Every (room, participant) still named as a recipient.
pub(super) const RECIPIENT_PARTICIPANTS: &str =
    "SELECT DISTINCT m.room_hash, r.participant FROM messages m, unnest(m.recipients) AS r(participant)";
