//! Non-reading sockets: WebSocket clients with a receive buffer of a few KiB that join a busy
//! room, ask again and again for a 16 KiB message's payload, and never read a byte. The server's
//! writes to each stall (its send queue towards it stops moving, as `/proc/net/tcp` shows); each
//! must then be dropped within `WRITE_TIMEOUT`, and leave the room's presence count, while honest
//! journeys in other rooms go on.
//!
//! Each busy room has a feeder: an ordinary client that sends the 16 KiB message the non-readers
//! fetch, keeps sending more (every one announced to them), and watches the room's presence.

use std::path::Path;
use std::time::{Duration, Instant};

use app::crypto::{MessageId, RoomKeys};
use app::protocol::{ClientFrame, ServerFrame};
use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::attacker::{random_room, Attacker, Sent, Via};
use super::honest::{Honest, HonestReport};
use super::sockets::server_sockets;
use super::{seconds, HostileError, Sizes, Target};
use loadgen::stats::Spread;

/// Time a stalled socket may stay open past `WRITE_TIMEOUT`: a write that began just before the
/// stall was seen, the sampling interval, and a loaded machine's scheduling.
pub const DROP_MARGIN: Duration = Duration::from_secs(2);
/// Non-readers per busy room (a room holds 10 by default: these, and the feeder).
const PER_ROOM: usize = 5;
/// `SO_RCVBUF` of a non-reader; the kernel makes it its minimum, a couple of KiB.
const TINY_RECV_BUFFER: u32 = 1024;
/// Fetches a non-reader sends at once, then one every [`FETCH_EVERY`]: together far more than
/// the server's send buffer holds, so its writes stall within moments.
const FETCH_BURST: usize = 256;
const FETCH_EVERY: Duration = Duration::from_millis(50);
/// The feeder sends a 16 KiB message this often, at most [`FEED_MAX`] (a room's backlog is 500).
const FEED_EVERY: Duration = Duration::from_millis(250);
const FEED_MAX: usize = 200;
/// How often the server's sockets are looked at.
const SAMPLE_EVERY: Duration = Duration::from_millis(20);
/// Bytes the server must have queued towards a non-reader for its writes to count as stalled
/// (one payload frame is about 22 KB).
const MIN_STALLED_BYTES: u64 = 16 << 10;

#[derive(Debug, Clone, Serialize)]
pub struct NonReadingReport {
    pub clients: usize,
    pub busy_rooms: usize,
    pub recv_buffer_bytes: u32,
    pub write_timeout_s: f64,
    /// Each must be dropped within this of its writes stalling.
    pub bound_s: f64,
    pub dropped: usize,
    /// Still held open by the server when the harness gave up: the bound broken.
    pub not_dropped: usize,
    /// Whose writes never filled the send buffer: the attack did not happen to them.
    pub never_stalled: usize,
    /// From the attack's start until the server's writes to each stalled.
    pub stalled_after: Option<Spread>,
    /// The most bytes the server had queued towards one non-reader.
    pub most_queued_bytes: u64,
    /// From each one's stall until the server closed its connection.
    pub dropped_after_stall: Option<Spread>,
    /// From each busy room's last stall until its presence count no longer counted them.
    pub presence_left_after_stall: Option<Spread>,
    /// Busy rooms whose count still included a non-reader at the end.
    pub rooms_still_counting: usize,
    pub honest: HonestReport,
}

impl NonReadingReport {
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.not_dropped > 0 || self.dropped != self.clients {
            problems.push(format!(
                "non-reading: of {} non-reading sockets {} were dropped, {} still open",
                self.clients, self.dropped, self.not_dropped
            ));
        }
        if self.never_stalled > 0 {
            problems.push(format!(
                "non-reading: the server's writes to {} non-readers never stalled (less than {} bytes queued)",
                self.never_stalled, MIN_STALLED_BYTES
            ));
        }
        for (what, spread) in
            [("dropped", &self.dropped_after_stall), ("left the presence count", &self.presence_left_after_stall)]
        {
            if let Some(spread) = spread.as_ref().filter(|s| s.max > self.bound_s) {
                problems.push(format!(
                    "non-reading: a non-reader {what} {:.2} s after its writes stalled, past WRITE_TIMEOUT {:.0} s + {:.0} s",
                    spread.max,
                    self.write_timeout_s,
                    DROP_MARGIN.as_secs_f64()
                ));
            }
        }
        if self.rooms_still_counting > 0 || self.presence_left_after_stall.is_none() {
            problems.push(format!(
                "non-reading: {} of {} busy rooms still counted a non-reader as present",
                self.rooms_still_counting, self.busy_rooms
            ));
        }
        problems.extend(self.honest.problems("non-reading", None));
        problems
    }
}

/// The server's view of one non-reader, sampled.
struct Watched {
    room: usize,
    port: u16,
    last_queued: u64,
    /// When the server's send queue towards it last moved: once it stops, its writes stalled.
    last_moved: Instant,
    most_queued: u64,
    dropped_at: Option<Instant>,
}

pub async fn run(server_bin: &Path, sizes: &Sizes, rooms: &[RoomKeys]) -> Result<NonReadingReport, HostileError> {
    let target = Target::start(server_bin, &[("WRITE_TIMEOUT", seconds(sizes.write_timeout))]).await?;
    let port = target.port();
    let honest = Honest::start(rooms, &target.server.ws_url(), sizes.honest_interval).await;
    let (stop, stopped) = watch::channel(false);
    let started = Instant::now();
    let (mut watched, mut readers, mut feeders) = (Vec::new(), JoinSet::new(), JoinSet::new());
    let busy_rooms = sizes.non_readers.div_ceil(PER_ROOM);
    for room in 0..busy_rooms {
        let room_id = random_room();
        let mut feeder = Attacker::connect(port, &Via::default()).await?;
        feeder.join(room_id).await?;
        let mut sockets = Vec::new();
        for _ in 0..PER_ROOM.min(sizes.non_readers - room * PER_ROOM) {
            let via = Via { recv_buffer: Some(TINY_RECV_BUFFER), ..Via::default() };
            let mut socket = Attacker::connect(port, &via).await?;
            socket.join(room_id).await?;
            watched.push(Watched {
                room,
                port: socket.local.port(),
                last_queued: 0,
                last_moved: started,
                most_queued: 0,
                dropped_at: None,
            });
            sockets.push(socket);
        }
        // Sent once they are all in the room: each is one of its recipients, and may fetch it.
        let (id, sent) = feeder.send_big().await?;
        if sent != Sent::Stored {
            return Err(HostileError::Setup(format!("the busy room's first message was refused: {sent:?}")));
        }
        for socket in sockets {
            readers.spawn(never_read(socket, id, stopped.clone()));
        }
        feeders.spawn(feed(room, feeder, stopped.clone()));
    }

    let give_up = sizes.write_timeout + DROP_MARGIN + Duration::from_secs(5);
    watch_until_dropped(port, &mut watched, started, give_up).await?;
    // The presence count follows the drops within moments; give it the margin.
    tokio::time::sleep(DROP_MARGIN).await;
    let _ = stop.send(true);
    let emptied = feeders.join_all().await;
    readers.join_all().await;
    let honest = honest.finish().await;
    drop(target);
    Ok(report(sizes, busy_rooms, started, &watched, &emptied, honest))
}

fn report(
    sizes: &Sizes,
    busy_rooms: usize,
    started: Instant,
    watched: &[Watched],
    emptied: &[(usize, Option<Instant>)],
    honest: HonestReport,
) -> NonReadingReport {
    let stalled: Vec<&Watched> = watched.iter().filter(|w| w.most_queued >= MIN_STALLED_BYTES).collect();
    let presence_left = emptied.iter().filter_map(|(room, at)| {
        let last_stall = stalled.iter().filter(|w| w.room == *room).map(|w| w.last_moved).max()?;
        Some(at.as_ref()?.saturating_duration_since(last_stall))
    });
    NonReadingReport {
        clients: sizes.non_readers,
        busy_rooms,
        recv_buffer_bytes: TINY_RECV_BUFFER,
        write_timeout_s: sizes.write_timeout.as_secs_f64(),
        bound_s: (sizes.write_timeout + DROP_MARGIN).as_secs_f64(),
        dropped: watched.iter().filter(|w| w.dropped_at.is_some()).count(),
        not_dropped: watched.iter().filter(|w| w.dropped_at.is_none()).count(),
        never_stalled: watched.len() - stalled.len(),
        stalled_after: Spread::of(stalled.iter().map(|w| (w.last_moved - started).as_secs_f64())),
        most_queued_bytes: watched.iter().map(|w| w.most_queued).max().unwrap_or(0),
        dropped_after_stall: Spread::of(
            stalled.iter().filter_map(|w| Some(w.dropped_at?.saturating_duration_since(w.last_moved).as_secs_f64())),
        ),
        presence_left_after_stall: Spread::of(presence_left.map(|after| after.as_secs_f64())),
        rooms_still_counting: emptied.iter().filter(|(_, at)| at.is_none()).count(),
        honest,
    }
}

/// Samples the server's sockets towards the non-readers until every one is closed, or until
/// none has moved for `give_up` (the bound long broken).
async fn watch_until_dropped(
    port: u16,
    watched: &mut [Watched],
    started: Instant,
    give_up: Duration,
) -> Result<(), HostileError> {
    // However the queues move, the watch ends: a socket that never stalls is reported as such.
    let hard_stop = started + 3 * give_up + Duration::from_secs(30);
    loop {
        let sockets = server_sockets(port)?;
        let now = Instant::now();
        for w in watched.iter_mut().filter(|w| w.dropped_at.is_none()) {
            match sockets.get(&w.port).filter(|s| s.is_open()) {
                Some(socket) => {
                    if socket.tx_queue != w.last_queued {
                        w.last_queued = socket.tx_queue;
                        w.last_moved = now;
                    }
                    w.most_queued = w.most_queued.max(socket.tx_queue);
                }
                None => w.dropped_at = Some(now),
            }
        }
        let open: Vec<&Watched> = watched.iter().filter(|w| w.dropped_at.is_none()).collect();
        if open.is_empty() || open.iter().all(|w| now - w.last_moved > give_up) || now > hard_stop {
            return Ok(());
        }
        tokio::time::sleep(SAMPLE_EVERY).await;
    }
}

/// Asks for the payload of `id` again and again and never reads; keeps the socket until told to
/// stop (a write failing means the server is gone from the other end).
async fn never_read(mut socket: Attacker, id: MessageId, mut stop: watch::Receiver<bool>) {
    let fetch = ClientFrame::Fetch { message_id: id.to_hex() };
    let mut broken = false;
    for _ in 0..FETCH_BURST {
        broken = socket.write(&fetch).await.is_err();
        if broken {
            break;
        }
    }
    let mut tick = tokio::time::interval(FETCH_EVERY);
    loop {
        tokio::select! {
            // Its own send buffer may fill as the server stops reading: that write just waits.
            _ = tick.tick(), if !broken => {
                broken = matches!(tokio::time::timeout(FETCH_EVERY, socket.write(&fetch)).await, Ok(Err(_)));
            }
            _ = stop.changed() => return,
        }
    }
}

/// Keeps a busy room busy and says when its presence count was down to the feeder alone.
async fn feed(room: usize, mut feeder: Attacker, mut stop: watch::Receiver<bool>) -> (usize, Option<Instant>) {
    let mut emptied = None;
    let mut tick = tokio::time::interval(FEED_EVERY);
    let mut fed = 0;
    loop {
        tokio::select! {
            frame = feeder.next_frame() => match frame {
                Some(ServerFrame::Presence { participants }) => {
                    emptied = (participants <= 1).then(|| emptied.unwrap_or_else(Instant::now));
                }
                Some(_) => {}
                None => break,
            },
            _ = tick.tick(), if fed < FEED_MAX => {
                if feeder.send_big_unanswered().await.is_err() {
                    break;
                }
                fed += 1;
            }
            _ = stop.changed() => break,
        }
    }
    feeder.close().await;
    (room, emptied)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn watched(room: usize, stalled_at: Duration, dropped_after: Option<Duration>, started: Instant) -> Watched {
        let last_moved = started + stalled_at;
        Watched {
            room,
            port: 1,
            last_queued: 1 << 20,
            last_moved,
            most_queued: 1 << 20,
            dropped_at: dropped_after.map(|after| last_moved + after),
        }
    }

    #[test]
    fn a_socket_dropped_late_or_not_at_all_is_a_problem() {
        let sizes = Sizes { non_readers: 2, write_timeout: Duration::from_secs(3), ..Sizes::new(true) };
        let started = Instant::now();
        let honest = HonestReport::one_clean_journey();
        let second = Duration::from_secs(1);
        let emptied = [(0, Some(started + 5 * second))];
        let in_time = [watched(0, second, Some(3 * second), started), watched(0, second, Some(3 * second), started)];
        assert!(report(&sizes, 1, started, &in_time, &emptied, honest.clone()).problems().is_empty());
        let late = [watched(0, second, Some(3 * second), started), watched(0, second, Some(6 * second), started)];
        assert_eq!(report(&sizes, 1, started, &late, &emptied, honest.clone()).problems().len(), 1);
        let kept = [watched(0, second, Some(3 * second), started), watched(0, second, None, started)];
        let still_counted = [(0, None)];
        assert_eq!(report(&sizes, 1, started, &kept, &still_counted, honest).problems().len(), 2);
    }
}
