//! Filling the relay: hostile connections, each in a room of its own with nobody to read, send
//! the largest messages one after another until the relay refuses with the code under test; and
//! what the database then holds, read from the SQLite file (read-only) as the relay counts it:
//! the stored records' lengths.

use std::collections::BTreeMap;
use std::str::FromStr as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use app::crypto::RoomId;
use app::protocol::ErrorCode;
use loadgen::target::Database;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::ConnectOptions as _;
use tokio::task::JoinSet;

use super::attacker::{random_room, Attacker, Sent, Via, BIG_SEALED_BYTES};
use super::HostileError;

/// Messages one connection sends at most: below a room's backlog (`MAX_PENDING_PER_ROOM`, 500),
/// which would refuse for a reason that is not under test.
pub const PER_CONNECTION: u64 = 400;
/// How often a refused connection tries again: twice the default rate limit of one connection,
/// as an attacker with a few connections would.
const RETRY_EVERY: Duration = Duration::from_millis(100);

/// A flood to carry out.
pub struct FloodPlan {
    pub port: u16,
    /// One connection each.
    pub vias: Vec<Via>,
    /// The refusal the flood runs into; each connection stops at its first.
    pub until: ErrorCode,
    /// Sealed bytes stored past which the bound is broken anyway: every connection stops.
    pub ceiling: u64,
    /// How long the attack goes on, refused, from its start (so that honest journeys are
    /// measured during it, not only during the moments it takes to fill).
    pub hold: Duration,
}

/// What a flood stored and how it was refused.
#[derive(Default)]
pub struct Flood {
    /// Every connection's room: the attack's messages are the rows of these.
    pub rooms: Vec<RoomId>,
    pub stored_messages: u64,
    /// From the start until the first refusal with the code under test.
    pub refused_after: Option<Duration>,
    /// Connections refused with the code under test.
    pub refused_connections: usize,
    /// Connections that sent all they may without a refusal.
    pub exhausted_connections: usize,
    /// Whether the ceiling stopped the flood.
    pub hit_ceiling: bool,
    /// Messages stored by connections after they had been refused.
    pub stored_after_refusal: u64,
    /// Refusals with other codes, and failures: each a problem.
    pub unexpected: BTreeMap<String, usize>,
    /// Kept open until the database is counted ([`Flood::close`]).
    sockets: Vec<Attacker>,
}

impl Flood {
    /// Closes the flood's sockets, as pages that leave.
    pub async fn close(&mut self) {
        for socket in std::mem::take(&mut self.sockets) {
            socket.close().await;
        }
    }
}

/// What one connection did.
#[derive(Default)]
struct Outcome {
    /// Refused with the code under test.
    refused: bool,
    /// Sent all it may without a refusal.
    exhausted: bool,
    /// Stored after it had been refused.
    stored_after_refusal: u64,
    unexpected: Option<String>,
}

/// Runs `plan`: every connection joins its own fresh room, then all send at once, each as fast as
/// the relay answers, until it is refused; then each goes on trying every [`RETRY_EVERY`], as an
/// attacker would, until `plan.hold` has passed since the start.
pub async fn flood(plan: &FloodPlan) -> Result<Flood, HostileError> {
    let mut connections = Vec::new();
    let mut rooms = Vec::new();
    for via in &plan.vias {
        let room = random_room();
        let mut attacker = Attacker::connect(plan.port, via).await?;
        attacker.join(room).await?;
        connections.push(attacker);
        rooms.push(room);
    }
    let shared = Arc::new(Shared {
        stored: AtomicU64::new(0),
        stop: AtomicBool::new(false),
        first_refusal: Mutex::new(None),
        started: Instant::now(),
    });
    let mut tasks = JoinSet::new();
    for attacker in connections {
        tasks.spawn(send_until_refused(attacker, shared.clone(), plan.until, plan.ceiling, plan.hold));
    }
    let mut flood = Flood { rooms, ..Flood::default() };
    for (attacker, outcome) in tasks.join_all().await {
        flood.sockets.push(attacker);
        flood.refused_connections += usize::from(outcome.refused);
        flood.exhausted_connections += usize::from(outcome.exhausted);
        flood.stored_after_refusal += outcome.stored_after_refusal;
        if let Some(what) = outcome.unexpected {
            *flood.unexpected.entry(what).or_default() += 1;
        }
    }
    flood.stored_messages = shared.stored.load(Ordering::Relaxed);
    flood.hit_ceiling = shared.stop.load(Ordering::Relaxed);
    let refused_at = *shared.first_refusal.lock().unwrap_or_else(PoisonError::into_inner);
    flood.refused_after = refused_at.map(|at| at - shared.started);
    Ok(flood)
}

/// What a flood's connections share.
struct Shared {
    /// Messages stored, over all connections.
    stored: AtomicU64,
    /// Set once the ceiling is passed: everyone stops.
    stop: AtomicBool,
    first_refusal: Mutex<Option<Instant>>,
    started: Instant,
}

async fn send_until_refused(
    mut attacker: Attacker,
    shared: Arc<Shared>,
    until: ErrorCode,
    ceiling: u64,
    hold: Duration,
) -> (Attacker, Outcome) {
    let mut outcome = Outcome::default();
    let mut rows = 0;
    loop {
        if shared.stop.load(Ordering::Relaxed) || (outcome.refused && shared.started.elapsed() >= hold) {
            return (attacker, outcome);
        }
        if rows == PER_CONNECTION {
            outcome.exhausted = !outcome.refused;
            return (attacker, outcome);
        }
        match attacker.send_big().await {
            Ok((_, Sent::Stored)) => {
                rows += 1;
                outcome.stored_after_refusal += u64::from(outcome.refused);
                if (shared.stored.fetch_add(1, Ordering::Relaxed) + 1) * BIG_SEALED_BYTES > ceiling {
                    shared.stop.store(true, Ordering::Relaxed);
                }
            }
            Ok((_, Sent::Refused(code))) if code == until => {
                shared.first_refusal.lock().unwrap_or_else(PoisonError::into_inner).get_or_insert_with(Instant::now);
                outcome.refused = true;
                tokio::time::sleep(RETRY_EVERY).await;
            }
            Ok((_, Sent::Refused(code))) => {
                outcome.unexpected = Some(format!("{code:?}"));
                return (attacker, outcome);
            }
            Err(err) => {
                outcome.unexpected = Some(err.to_string());
                return (attacker, outcome);
            }
        }
    }
}

/// What waits in the database, as the relay counts it (each stored record's length).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stored {
    pub bytes: u64,
    pub rows: u64,
    /// The longest record: one 16 KiB message as stored.
    pub largest: u64,
}

/// What waits in `rooms`, or in the whole database if `rooms` is `None`.
pub async fn stored(db: &Database, rooms: Option<&[RoomId]>) -> Result<Stored, HostileError> {
    let options = SqliteConnectOptions::from_str(&db.url)?.read_only(true);
    let mut conn = options.connect().await?;
    const SUMS: &str = "SELECT COALESCE(SUM(LENGTH(body)), 0), COUNT(*), COALESCE(MAX(LENGTH(body)), 0) FROM messages";
    let mut total = Stored::default();
    let mut add = |(bytes, rows, largest): (i64, i64, i64)| {
        total.bytes += bytes as u64;
        total.rows += rows as u64;
        total.largest = total.largest.max(largest as u64);
    };
    match rooms {
        None => add(sqlx::query_as(SUMS).fetch_one(&mut conn).await?),
        Some(rooms) => {
            let sql = format!("{SUMS} WHERE room_hash = ?");
            for room in rooms {
                add(sqlx::query_as(&sql).bind(room.storage_hash().to_vec()).fetch_one(&mut conn).await?);
            }
        }
    }
    Ok(total)
}
