//! Participants as rows: who is in each room, which instance holds them, and a heartbeat.
//!
//! A participant is connected (`connection` set) or in its grace period after a disconnect
//! (`connection` NULL, `generation` bumped). Each instance renews `heartbeat_at` on its rows;
//! rows whose instance stopped renewing them (it died without cleaning up) are dropped by any
//! instance once the heartbeat timeout and the grace period have passed, as if their
//! participants had left.

use std::collections::BTreeMap;
use std::time::Duration;

use super::dialect::Param::{Blob, Int, Text};
use super::{Store, StoreError};
use crate::domain::bounds::HEARTBEAT_TIMEOUT;
use crate::domain::{now_ms, EventKind, InstanceId, MessageId, Participant, RoomHash};
use crate::telemetry::metrics::StoreTimer;

/// A join that went through: how many are connected now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admitted {
    pub connected: u32,
}

/// A room whose participants from a vanished instance were dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reaped {
    pub room: RoomHash,
    /// Messages that burned because their last unviewed recipients were among them.
    pub deleted: Vec<MessageId>,
}

const COUNT_OTHERS: &str = "SELECT COUNT(*) FROM participants WHERE room_hash = $1 AND participant <> $2";
const IS_PARTICIPANT: &str = "SELECT COUNT(*) FROM participants WHERE room_hash = $1 AND participant = $2";
const UPSERT: &str = "INSERT INTO participants (room_hash, participant, instance, connection, heartbeat_at) \
     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (room_hash, participant) DO UPDATE \
     SET instance = excluded.instance, connection = excluded.connection, heartbeat_at = excluded.heartbeat_at";
/// Connected participants whose instance is alive.
const COUNT_CONNECTED: &str =
    "SELECT COUNT(*) FROM participants WHERE room_hash = $1 AND connection IS NOT NULL AND heartbeat_at > $2";
const DISCONNECT: &str = "UPDATE participants SET connection = NULL, generation = generation + 1, heartbeat_at = $5 \
     WHERE room_hash = $1 AND participant = $2 AND instance = $3 AND connection = $4 RETURNING generation";
const LEAVE: &str =
    "DELETE FROM participants WHERE room_hash = $1 AND participant = $2 AND connection IS NULL AND generation = $3";
const HEARTBEAT: &str = "UPDATE participants SET heartbeat_at = $2 WHERE instance = $1";
const REGISTER: &str = "INSERT INTO instances (instance, bus, heartbeat_at) VALUES ($1, $2, $3) \
     ON CONFLICT (instance) DO UPDATE SET bus = excluded.bus, heartbeat_at = excluded.heartbeat_at";
/// The buses of the other live instances that differ from `$3`.
const OTHER_BUSES: &str =
    "SELECT DISTINCT bus FROM instances WHERE instance <> $1 AND heartbeat_at > $2 AND bus <> $3 ORDER BY bus";
const RENEW: &str = "UPDATE instances SET heartbeat_at = $2 WHERE instance = $1";
/// Each instance that stopped renewing its row, with the rooms its participants are still in.
const DEAD: &str = "SELECT i.instance, p.room_hash FROM instances i \
     LEFT JOIN participants p ON p.instance = i.instance WHERE i.instance <> $1 AND i.heartbeat_at <= $2";
const FORGET_DEAD: &str = "DELETE FROM instances WHERE heartbeat_at <= $1";
const REAP: &str = "DELETE FROM participants WHERE heartbeat_at < $1 RETURNING room_hash, participant";

fn alive_since() -> i64 {
    now_ms().saturating_sub(millis(HEARTBEAT_TIMEOUT))
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn count(n: i64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl Store {
    /// `who` joins `room` on `connection` of this instance (or comes back within its grace
    /// period, from any instance). A newcomer is refused (`None`) when the room already holds
    /// `max` participants, those in their grace period included.
    pub async fn join(
        &self,
        room: &RoomHash,
        who: &Participant,
        connection: u64,
        max: u32,
    ) -> Result<Option<Admitted>, StoreError> {
        let _timer = StoreTimer::start("join");
        let connection = i64::try_from(connection).unwrap_or(i64::MAX);
        let mut tx = self.write_pool().begin_write().await?;
        let (others,): (i64,) = tx.fetch_one(COUNT_OTHERS, &[Blob(&room.0), Blob(&who.0)]).await?;
        // On PostgreSQL the row is locked too: see `postgres::JOIN_LOCK`.
        let is_participant = self.dialect(IS_PARTICIPANT, super::postgres::JOIN_LOCK);
        let (known,): (i64,) = tx.fetch_one(is_participant, &[Blob(&room.0), Blob(&who.0)]).await?;
        if known == 0 && others >= i64::from(max) {
            tx.commit().await?;
            return Ok(None);
        }
        let row = [Blob(&room.0), Blob(&who.0), Blob(&self.instance.0), Int(connection), Int(now_ms())];
        tx.execute(UPSERT, &row).await?;
        let (connected,): (i64,) = tx.fetch_one(COUNT_CONNECTED, &[Blob(&room.0), Int(alive_since())]).await?;
        self.notify(&mut tx, &[self.notice(room, EventKind::PresenceChanged)]).await?;
        tx.commit().await?;
        Ok(Some(Admitted { connected: count(connected) }))
    }

    /// `connection` of this instance, which held `who`, ended: `who` enters its grace period.
    /// Returns the generation to pass to [`Store::leave`], or `None` if another connection
    /// (here or on another instance) has taken `who` over.
    pub async fn disconnect(
        &self,
        room: &RoomHash,
        who: &Participant,
        connection: u64,
    ) -> Result<Option<i64>, StoreError> {
        let _timer = StoreTimer::start("disconnect");
        let connection = i64::try_from(connection).unwrap_or(i64::MAX);
        let mut tx = self.write_pool().begin_write().await?;
        let params = [Blob(&room.0), Blob(&who.0), Blob(&self.instance.0), Int(connection), Int(now_ms())];
        let Some((generation,)): Option<(i64,)> = tx.fetch_optional(DISCONNECT, &params).await? else {
            tx.commit().await?;
            return Ok(None);
        };
        self.notify(&mut tx, &[self.notice(room, EventKind::PresenceChanged)]).await?;
        tx.commit().await?;
        Ok(Some(generation))
    }

    /// The grace period of `who` (disconnected at `generation`) is over. Unless it came back
    /// meanwhile, it has left: its row goes, it is dropped from the recipients of what it had
    /// not viewed, and messages that thereby have been viewed by all burn (returned).
    pub async fn leave(
        &self,
        room: &RoomHash,
        who: &Participant,
        generation: i64,
    ) -> Result<Option<Vec<MessageId>>, StoreError> {
        let _timer = StoreTimer::start("leave");
        let mut tx = self.write_pool().begin_write().await?;
        let gone = tx.execute(LEAVE, &[Blob(&room.0), Blob(&who.0), Int(generation)]).await?;
        if gone == 0 {
            tx.commit().await?;
            return Ok(None);
        }
        let deleted = self.drop_from_recipients(&mut tx, room, who).await?;
        tx.commit().await?;
        super::burned(deleted.len());
        Ok(Some(deleted))
    }

    /// Renews this instance's rows: it is alive.
    pub async fn heartbeat(&self) -> Result<(), StoreError> {
        let _timer = StoreTimer::start("heartbeat");
        let params = [Blob(&self.instance.0), Int(now_ms())];
        self.write_pool().execute(HEARTBEAT, &params).await?;
        if self.is_shared() {
            self.write_pool().execute(RENEW, &params).await?;
        }
        Ok(())
    }

    /// Registers this instance and the bus it carries room events on (`bus`, as
    /// `BusIdentity::as_text` writes it), and returns the buses of other live instances that
    /// differ from it: instances on different buses would not hear each other, so the caller
    /// refuses to run beside them. Nothing on SQLite (one instance per file).
    pub async fn register(&self, bus: &str) -> Result<Vec<String>, StoreError> {
        let _timer = StoreTimer::start("register");
        if !self.is_shared() {
            return Ok(Vec::new());
        }
        self.write_pool().execute(REGISTER, &[Blob(&self.instance.0), Text(bus), Int(now_ms())]).await?;
        let others: Vec<(String,)> =
            self.read_pool().fetch_all(OTHER_BUSES, &[Blob(&self.instance.0), Int(alive_since()), Text(bus)]).await?;
        if !others.is_empty() {
            // Refused: registered or not, this instance will not run.
            self.unregister().await?;
        }
        Ok(others.into_iter().map(|(bus,)| bus).collect())
    }

    /// This instance stops: its registration goes, so another may start on another bus at once.
    pub async fn unregister(&self) -> Result<(), StoreError> {
        if self.is_shared() {
            self.write_pool().execute("DELETE FROM instances WHERE instance = $1", &[Blob(&self.instance.0)]).await?;
        }
        Ok(())
    }

    /// Instances that stopped renewing their rows (they died), each with the rooms its
    /// participants are still in; forgets those dead for longer than `forget_after`.
    pub async fn dead_instances(&self, forget_after: Duration) -> Result<Vec<(InstanceId, Vec<RoomHash>)>, StoreError> {
        let _timer = StoreTimer::start("dead_instances");
        if !self.is_shared() {
            return Ok(Vec::new());
        }
        let rows: Vec<(Vec<u8>, Option<Vec<u8>>)> =
            self.read_pool().fetch_all(DEAD, &[Blob(&self.instance.0), Int(alive_since())]).await?;
        let forget_before = now_ms().saturating_sub(millis(HEARTBEAT_TIMEOUT).saturating_add(millis(forget_after)));
        self.write_pool().execute(FORGET_DEAD, &[Int(forget_before)]).await?;
        let mut dead: BTreeMap<[u8; 16], Vec<RoomHash>> = BTreeMap::new();
        for (instance, room) in rows {
            let Ok(instance) = <[u8; 16]>::try_from(instance.as_slice()) else { continue };
            let rooms = dead.entry(instance).or_default();
            rooms.extend(room.as_deref().and_then(RoomHash::from_row));
        }
        Ok(dead.into_iter().map(|(instance, rooms)| (InstanceId(instance), rooms)).collect())
    }

    /// Drops the participants of instances that stopped renewing their rows more than the
    /// heartbeat timeout plus `grace` ago, as if each had left (see [`Store::leave`]).
    pub async fn reap(&self, grace: Duration) -> Result<Vec<Reaped>, StoreError> {
        let _timer = StoreTimer::start("reap");
        let cutoff = now_ms().saturating_sub(millis(HEARTBEAT_TIMEOUT).saturating_add(millis(grace)));
        let mut tx = self.write_pool().begin_write().await?;
        let rows: Vec<(Vec<u8>, Vec<u8>)> = tx.fetch_all(REAP, &[Int(cutoff)]).await?;
        let mut rooms: BTreeMap<[u8; 32], Vec<MessageId>> = BTreeMap::new();
        for (room, who) in &rows {
            let Some(room) = RoomHash::from_row(room) else { continue };
            let who = Participant::from_row(who);
            let deleted = self.drop_from_recipients(&mut tx, &room, &who).await?;
            rooms.entry(room.0).or_default().extend(deleted);
        }
        let mut reaped = Vec::with_capacity(rooms.len());
        for (room, deleted) in rooms {
            let room = RoomHash(room);
            self.notify(&mut tx, &[self.notice(&room, EventKind::PresenceChanged)]).await?;
            reaped.push(Reaped { room, deleted });
        }
        tx.commit().await?;
        super::burned(reaped.iter().map(|room| room.deleted.len()).sum());
        Ok(reaped)
    }

    /// Whether `who` is in `room` (connected or in its grace period, on any instance).
    pub async fn is_participant(&self, room: &RoomHash, who: &Participant) -> Result<bool, StoreError> {
        let _timer = StoreTimer::start("is_participant");
        let (n,): (i64,) = self.read_pool().fetch_one(IS_PARTICIPANT, &[Blob(&room.0), Blob(&who.0)]).await?;
        Ok(n > 0)
    }

    /// How many are connected to `room`, over all instances.
    pub async fn count_connected(&self, room: &RoomHash) -> Result<u32, StoreError> {
        let _timer = StoreTimer::start("count_connected");
        let (n,): (i64,) = self.read_pool().fetch_one(COUNT_CONNECTED, &[Blob(&room.0), Int(alive_since())]).await?;
        Ok(count(n))
    }
}
