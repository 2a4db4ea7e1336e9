//! The full message journey under load, as pages make it: a sender seals and sends, each
//! receiver gets the notice, fetches, opens and confirms it viewed, the sender hears `deleted`.
//! Every client is the page's own room model ([`RoomModel`]), run with a clock that jumps
//! ([`crate::page::at_once`]) so its timers cost the measured machine nothing.
//!
//! Each room has one sender and `clients_per_room - 1` receivers; one PBKDF2 per room (done
//! beforehand by [`derive_rooms`]), AES-GCM per message at both ends. Two figures come out:
//! - delivery latency: from the send (its scheduled time, in rate mode) to the plaintext at a
//!   receiver, one sample per receiver per message;
//! - journey latency and throughput: from the send to the sender's `deleted` notice, which the
//!   server sends once the row is gone.
//!
//! Each message's points on the way (its `send` written, `sent` back, the notice, the plaintext)
//! are kept too, for where its delivery time went (`stages`).

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use app::crypto::{RoomCode, RoomKeys};
use app::room::RoomModel;
use futures::stream::SplitSink;
use futures::{SinkExt as _, StreamExt as _};
use tokio::sync::{mpsc, Notify, Semaphore};
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::Message;

use self::receiver::read_as_receiver;
use self::report::report;
use self::sender::{read_as_sender, send_all, SendPlan};
use self::shared::{RoomState, Shared};
use crate::client::{ClientError, Ws};
use crate::page;

mod receiver;
mod report;
mod sender;
mod shared;

pub use self::report::JourneyReport;

/// Frames a client may have queued for its socket before its reader waits.
const OUTBOX: usize = 1024;
/// Sockets opened at once while setting up.
const CONNECT_PARALLELISM: usize = 64;

#[derive(Debug, Clone)]
pub struct JourneyOptions {
    /// WebSocket URLs; client `j` of room `r` uses `urls[(r + j) % len]`, so with two instances
    /// every sender's receivers sit on the other instance.
    pub urls: Vec<String>,
    pub clients_per_room: usize,
    /// Messages each room's sender sends.
    pub messages: usize,
    /// Messages a sender may have in flight (sent, not yet deleted).
    pub window: usize,
    /// Bytes of message text.
    pub payload: usize,
    /// Open loop: messages per second over all rooms, each sent at its scheduled time and timed
    /// from it. `None`: closed loop, as fast as the windows allow.
    pub rate: Option<f64>,
    /// Give up on journeys not finished this long after the last send.
    pub drain_timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum JourneyError {
    #[error("a room needs a sender and at least one receiver (clients per room >= 2)")]
    TooFewClients,
    #[error("no server URL given")]
    NoUrl,
    #[error(transparent)]
    Client(#[from] ClientError),
}

/// Room keys for `n` fresh random codes, derived on every core.
pub async fn derive_rooms(n: usize) -> Vec<RoomKeys> {
    let mut tasks = JoinSet::new();
    for index in 0..n {
        tasks.spawn_blocking(move || (index, RoomKeys::derive(&RoomCode::generate())));
    }
    let mut rooms = tasks.join_all().await;
    rooms.sort_by_key(|(index, _)| *index);
    rooms.into_iter().map(|(_, keys)| keys).collect()
}

/// Runs the journey over `rooms` and reports. Connections are closed (with a close frame, as a
/// page that leaves) before it returns.
pub async fn run(rooms: &[RoomKeys], options: &JourneyOptions) -> Result<JourneyReport, JourneyError> {
    if options.clients_per_room < 2 {
        return Err(JourneyError::TooFewClients);
    }
    if options.urls.is_empty() {
        return Err(JourneyError::NoUrl);
    }
    let shared = Arc::new(Shared {
        metrics: Mutex::default(),
        sent: AtomicU64::new(0),
        expected: (rooms.len() * options.messages) as u64,
        all_done: Notify::new(),
    });
    let states: Vec<Arc<RoomState>> = rooms
        .iter()
        .map(|keys| {
            Arc::new(RoomState {
                keys: keys.clone(),
                timelines: Mutex::default(),
                window: Semaphore::new(options.window.max(1)),
            })
        })
        .collect();

    let sockets = connect_rooms(&states, options).await?;
    let mut readers = JoinSet::new();
    let mut writers = JoinSet::new();
    let mut senders_pages = Vec::new();
    for (room_index, room_sockets) in sockets.into_iter().enumerate() {
        for (client_index, (ws, page)) in room_sockets.into_iter().enumerate() {
            let (sink, stream) = ws.split();
            let (out, inbox) = mpsc::channel(OUTBOX);
            writers.spawn(write(sink, inbox));
            let room = states[room_index].clone();
            if client_index == 0 {
                // The reader holds the outbox too, so the socket stays open after the last send.
                let page = Arc::new(Mutex::new(page));
                readers.spawn(read_as_sender(stream, out.clone(), room, shared.clone(), page.clone()));
                senders_pages.push((out, page));
            } else {
                readers.spawn(read_as_receiver(stream, out, room, shared.clone(), options.payload, page));
            }
        }
    }

    let start = Instant::now();
    let mut senders = JoinSet::new();
    for (room_index, (out, page)) in senders_pages.into_iter().enumerate() {
        let plan = SendPlan { room_index, rooms: states.len(), start, options: options.clone() };
        senders.spawn(send_all(plan, out, states[room_index].clone(), shared.clone(), page));
    }
    wait_for_journeys(&shared, &mut senders, options.drain_timeout).await;
    senders.abort_all();
    readers.abort_all();
    while readers.join_next().await.is_some() {}
    while writers.join_next().await.is_some() {}
    Ok(report(rooms.len(), options, start, &shared))
}

/// Waits until every journey is done, or until none has finished for `stall` (a sender blocked
/// on a full window counts as stalled too): a run that loses messages ends and says so.
async fn wait_for_journeys(shared: &Shared, senders: &mut JoinSet<()>, stall: Duration) {
    let mut last = (0, Instant::now());
    loop {
        let completed = shared.metrics().completed;
        if completed == shared.expected {
            return;
        }
        if completed != last.0 {
            last = (completed, Instant::now());
        } else if last.1.elapsed() > stall && senders.is_empty() || last.1.elapsed() > 2 * stall {
            return;
        }
        tokio::select! {
            Some(_) = senders.join_next() => {}
            () = shared.all_done.notified() => {}
            () = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
    }
}

/// Connects and joins every client of every room, each a page; a room's sender joins last, so
/// every receiver is already a recipient of its first message.
async fn connect_rooms(
    states: &[Arc<RoomState>],
    options: &JourneyOptions,
) -> Result<Vec<Vec<(Ws, RoomModel)>>, ClientError> {
    let jobs = states.iter().enumerate().map(|(room_index, state)| async move {
        let mut sockets = Vec::with_capacity(options.clients_per_room);
        for client_index in (0..options.clients_per_room).rev() {
            let url = &options.urls[(room_index + client_index) % options.urls.len()];
            sockets.push(page::join(url, &state.keys).await?);
        }
        sockets.reverse();
        Ok::<_, ClientError>(sockets)
    });
    futures::stream::iter(jobs).buffered(CONNECT_PARALLELISM).collect::<Vec<_>>().await.into_iter().collect()
}

async fn write(mut sink: SplitSink<Ws, Message>, mut inbox: mpsc::Receiver<Message>) {
    while let Some(message) = inbox.recv().await {
        if sink.send(message).await.is_err() {
            return;
        }
    }
    // Every sender of this socket is gone: leave as a page does, with a close frame.
    let _ = sink.close().await;
}
