//! The relay's internal bounds, in one place, each with its reason. They are not settings (an
//! operator's are in `config.rs`, each in `--help`): they are the fixed sizes and times the
//! layers are built around, and a change to one is a change to what BENCHMARKS.md measured.

use std::time::Duration;

// The buses (`bus/`).

/// Longest wait between attempts to re-establish the LISTEN connection (PostgreSQL) or the
/// NATS connection.
pub const BUS_MAX_RECONNECT_WAIT: Duration = Duration::from_secs(5);
/// NATS: how often the client pings the server; two unanswered pings and the link counts as
/// lost (a cut that sends no reset is found within three of these).
pub const BUS_PING_INTERVAL: Duration = Duration::from_secs(5);
/// NATS: how often publishes are confirmed by a flush; a room published to since the last
/// confirmation is told to resync if the link drops.
pub const BUS_CONFIRM_INTERVAL: Duration = Duration::from_secs(1);
/// NATS: the longest a join waits for its room's subscription to be registered (the server
/// unreachable: it goes on, and the reconnect resyncs it), and a confirming flush.
pub const BUS_SETTLE_WAIT: Duration = Duration::from_secs(2);
/// NATS: events queued for publishing; past it a room's events are dropped and the room told
/// to resync instead (a queue that stays full means the server is unreachable).
pub const BUS_PUBLISH_QUEUE: usize = 16_384;
/// NATS: unconfirmed rooms named one by one; past it, every instance resyncs everything.
pub const UNCONFIRMED_ROOMS_MAX: usize = 10_000;
/// NATS: a message notice carries the message as stored (sealed at rest) to the room's other
/// instances, which hold it for their fetches only when it arrives this soon after it was stored
/// (by the storing instance's clock): a room remembers the deletions of at least this long
/// (`Hub::hear`). A notice that arrives later was held up (its publisher's link was down) and goes
/// on without it: its message is fetched from the store.
pub const CARRIED_FRESH: Duration = Duration::from_secs(2);
/// NATS: how far the instances' clocks may disagree for a carried message to be held only when
/// its room's every event since its storing was heard (`bus/nats.rs`, "Carried messages"). NTP
/// keeps clocks on one network within milliseconds; message expiry already relies on them.
pub const CLOCK_SKEW_ALLOWED: Duration = Duration::from_millis(250);
/// NATS: the longest an instance holds a message a notice carried (its fetches follow the
/// notice within a moment; a later fetch reads the store): a deletion it could not hear in time
/// (its publisher's link was down) outlives the held copy by no more than this.
pub const CARRIED_HELD_FOR: Duration = Duration::from_secs(10);

// Start and stop (`startup.rs`).

/// How long start-up waits for the first LISTEN (PostgreSQL) before serving anyway.
pub const LISTEN_WAIT: Duration = Duration::from_secs(10);
/// Events from the bus waiting for the relay; past it, the listener waits.
pub const BUS_QUEUE: usize = 1024;
/// How long a stopping server waits for its sockets to close (each waits up to
/// `CLOSE_GRACE` for the page's close reply) and their participants to be kept as
/// disconnected, before it exits anyway.
pub const STOP_WAIT: Duration = Duration::from_secs(10);

// Sockets (`ws/mod.rs`).

/// How long a closing connection waits for the client's close reply.
pub const CLOSE_GRACE: Duration = Duration::from_secs(2);
/// How often the server pings (at most; more often under a short `IDLE_TIMEOUT`), keeping
/// proxies from cutting quiet connections.
pub const PING_INTERVAL: Duration = Duration::from_secs(30);

// Rooms (`relay/mod.rs`).

/// Events a room's channel buffers for its slowest member before that member lags (and then
/// re-reads from the store what waits for it, who is here and which of its own messages are
/// gone; only a receipt's intermediate "n of m" can be skipped). The channel allocates every slot
/// up front, about 80 bytes each: at 256 that was 20 KiB per room, most of an idle connection's
/// cost. A room's traffic is a few events per message among at most a few people.
pub const ROOM_CHANNEL_CAPACITY: usize = 32;

// Held messages (`relay/held.rs`).

/// What the messages one instance holds may weigh at most, over all rooms (bodies, recipients
/// and map entries: `StoredMessage::weight`). Past it, messages are not held
/// and their recipients fetch them from the store, as on another instance.
pub const HELD_BYTES_BUDGET: usize = 16 << 20;

// What participants fetched (`relay/hub.rs`).

/// How long a fetched message that is gone is remembered per participant, so a late or repeated
/// `viewed` of it is answered `deleted` (after this, `not_fetched`). A page confirms within
/// seconds of showing a message; two minutes covers a slow one, and a reconnect.
pub const GONE_REMEMBERED: Duration = Duration::from_secs(120);
/// The most gone messages remembered per participant: a participant can fetch (and see burn)
/// no more than its rate limit allows in [`GONE_REMEMBERED`] anyway.
pub const GONE_REMEMBERED_MAX: usize = 256;

// Presence (`relay/presence.rs`).

/// Connections remembered as asking for one room's next count (see `presence.rs`): the most
/// that can join or leave one room between two counts in normal use is its participant limit;
/// past this, the oldest askers are forgotten (they get the count, only not marked as theirs).
pub const PRESENCE_ORIGINS: usize = 64;

// Expiry (`relay/tasks.rs`).

/// Slowest expiry sweep: an expired message waits at most this long for deletion.
pub const MAX_SWEEP_INTERVAL: Duration = Duration::from_secs(30);

// Participants (`store/participants.rs`).

/// How often an instance renews its participants' rows.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(5);
/// A row not renewed for this long belongs to an instance that is gone: it no longer counts as
/// connected, and after the grace period on top it is dropped.
pub const HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a dead instance's registration is kept (its death is acted on once, by each
/// instance, within a heartbeat of its timeout); then it is deleted.
pub const DEAD_INSTANCES_KEPT: Duration = Duration::from_secs(3600);

// Files (`relay/connection/files.rs`).

/// How long an upload may take, from its `upload` to its card: past it, its next chunk is refused
/// and what it stored purged. At the default transfer budget a 10 MiB file takes seconds; this
/// leaves a slow link (1 Mbit/s: under two minutes) far inside it.
pub const UPLOAD_DEADLINE: Duration = Duration::from_secs(3600);
/// Chunks with no message row older than this belong to an upload whose instance died (a live
/// one ends by [`UPLOAD_DEADLINE`]): the expiry sweep deletes them.
pub const ABANDONED_UPLOAD_AGE: Duration = Duration::from_secs(3900);

// The store (`store/mod.rs`).

/// How often an insert that lost a race looks again before it gives up.
pub const INSERT_ATTEMPTS: usize = 3;

// PostgreSQL (`store/postgres/mod.rs`).

/// The default of `POSTGRES_POOL_SIZE`: enough for two cores' worth of concurrent requests
/// without crowding the database.
pub const POSTGRES_POOL_CONNECTIONS: u32 = 10;

/// A pooled connection idle this long is pinged before it is lent (one that went back sooner
/// answered the ping sqlx sends on its return). Under load none idles this long, so no
/// statement waits on a ping. A restart of the database takes longer than this, so every
/// connection it cut is found out before a statement is sent on it; one cut within this time of
/// its last use (`pg_terminate_backend`) fails its next statement, as a statement in flight at
/// the cut does.
pub const POSTGRES_PING_IDLE_AFTER: Duration = Duration::from_millis(100);

// SQLite (`store/sqlite/mod.rs`).

/// Read-only connections for concurrent readers; in WAL mode a writer never blocks them.
pub const SQLITE_READ_CONNECTIONS: u32 = 3;

// SQLite group commit (`store/sqlite/group_commit.rs`).

/// Writes that may wait for the write connection; a caller beyond them waits to enqueue.
pub const WRITE_QUEUE: usize = 1024;
/// The most writes in one transaction. Larger batches hold SQLite's write lock longer (the
/// other writers, joins and leaves, wait for it) for little more saving.
pub const GROUP_COMMIT_MAX_BATCH: usize = 64;
/// Longest a file chunk's write on SQLite waits for the queued journey writes to go first
/// (`WriteQueue::behind_journeys`): past it, it goes anyway, so a steady chat cannot starve an
/// upload.
pub const CHUNK_YIELD_AT_MOST: Duration = Duration::from_millis(50);

// SQLite checkpoints (`store/sqlite/checkpoint.rs`).

/// How often the log is copied back. Each copy that finds new pages syncs twice.
pub const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);
/// The log's size, in pages, at which the write connection checkpoints itself after all
/// (`wal_autocheckpoint`): 40 MB at SQLite's 4 KiB pages, which the task's copies every
/// [`CHECKPOINT_EVERY`] keep it well below.
pub const CHECKPOINT_BACKSTOP_PAGES: u32 = 10_000;
