//! The full message journey under load, as pages make it: a sender seals and sends, each
//! receiver gets the notice, fetches, opens and confirms it viewed, the sender hears `deleted`.
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

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use app::crypto::message::{open, seal};
use app::crypto::{Body, MessageId, RoomCode, RoomKeys, SealedPayload, SenderId};
use app::protocol::{ClientFrame, ServerFrame};
use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt as _, StreamExt as _};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, Notify, Semaphore};
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::Message;

use crate::client::{self, ClientError, Ws};
use crate::stages::{StageSample, Stages, Timeline};
use crate::stats::Percentiles;

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

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JourneyReport {
    pub rooms: usize,
    pub clients_per_room: usize,
    pub window: usize,
    pub payload_bytes: usize,
    pub target_rate: Option<f64>,
    pub sent: u64,
    /// Journeys that ended with the sender's `deleted` notice.
    pub completed: u64,
    /// Plaintexts opened by receivers.
    pub delivered: u64,
    /// Payloads a receiver got twice, or `deleted` notices for no message in flight.
    pub duplicates: u64,
    pub open_failures: u64,
    /// Error frames by code, and client-side failures.
    pub errors: BTreeMap<String, u64>,
    pub elapsed_s: f64,
    pub journeys_per_s: f64,
    pub delivery: Option<Percentiles>,
    pub journey: Option<Percentiles>,
    /// Where the delivery time went, over every message and over the slowest percent.
    #[serde(default)]
    pub stages: Option<Stages>,
}

impl JourneyReport {
    /// Every message acknowledged, delivered to every receiver, opened, and burned; nothing
    /// else happened.
    pub fn is_clean(&self) -> bool {
        let expected_deliveries = self.sent * (self.clients_per_room as u64 - 1);
        // A journey has stages once its `sent` came too (see `stages`).
        let staged = self.stages.map_or(0, |stages| stages.all.samples as u64);
        self.errors.is_empty()
            && self.open_failures == 0
            && self.duplicates == 0
            && self.completed == self.sent
            && self.delivered == expected_deliveries
            && staged == self.completed
    }
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

/// Shared by every client of one room.
struct RoomState {
    keys: RoomKeys,
    /// Each message in flight: when it was due, and the points of its journey heard so far.
    timelines: Mutex<HashMap<MessageId, Timeline>>,
    window: Semaphore,
}

impl RoomState {
    fn timelines(&self) -> std::sync::MutexGuard<'_, HashMap<MessageId, Timeline>> {
        self.timelines.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records a point of a message in flight; returns its timeline so far (`None`: not in
    /// flight, so a duplicate or a stranger's).
    fn mark(&self, id: &MessageId, point: impl FnOnce(&mut Timeline)) -> Option<Timeline> {
        let mut timelines = self.timelines();
        let timeline = timelines.get_mut(id)?;
        point(timeline);
        Some(*timeline)
    }
}

#[derive(Default)]
struct Metrics {
    delivery: Vec<Duration>,
    journey: Vec<Duration>,
    stages: Vec<StageSample>,
    errors: BTreeMap<String, u64>,
    delivered: u64,
    completed: u64,
    duplicates: u64,
    open_failures: u64,
    last_completion: Option<Instant>,
}

struct Shared {
    metrics: Mutex<Metrics>,
    sent: AtomicU64,
    expected: u64,
    all_done: Notify,
}

impl Shared {
    fn metrics(&self) -> std::sync::MutexGuard<'_, Metrics> {
        self.metrics.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn error(&self, what: String) {
        *self.metrics().errors.entry(what).or_default() += 1;
    }
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
    let mut outboxes = Vec::new();
    for (room_index, room_sockets) in sockets.into_iter().enumerate() {
        for (client_index, ws) in room_sockets.into_iter().enumerate() {
            let (sink, stream) = ws.split();
            let (out, inbox) = mpsc::channel(OUTBOX);
            writers.spawn(write(sink, inbox));
            let room = states[room_index].clone();
            if client_index == 0 {
                // The reader holds the outbox too, so the socket stays open after the last send.
                readers.spawn(read_as_sender(stream, out.clone(), room, shared.clone()));
                outboxes.push(out);
            } else {
                readers.spawn(read_as_receiver(stream, out, room, shared.clone(), options.payload));
            }
        }
    }

    let start = Instant::now();
    let mut senders = JoinSet::new();
    for (room_index, out) in outboxes.into_iter().enumerate() {
        let plan = SendPlan { room_index, rooms: states.len(), start, options: options.clone() };
        senders.spawn(send_all(plan, out, states[room_index].clone(), shared.clone()));
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

/// Connects and joins every client of every room; a room's sender joins last, so every
/// receiver is already a recipient of its first message.
async fn connect_rooms(states: &[Arc<RoomState>], options: &JourneyOptions) -> Result<Vec<Vec<Ws>>, ClientError> {
    let jobs = states.iter().enumerate().map(|(room_index, state)| async move {
        let mut sockets = Vec::with_capacity(options.clients_per_room);
        for client_index in (0..options.clients_per_room).rev() {
            let url = &options.urls[(room_index + client_index) % options.urls.len()];
            let mut ws = client::connect(url).await?;
            client::join(&mut ws, &state.keys.room_id).await?;
            sockets.push(ws);
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

struct SendPlan {
    room_index: usize,
    rooms: usize,
    start: Instant,
    options: JourneyOptions,
}

impl SendPlan {
    /// In rate mode, when message `i` of this room is due: rooms take turns, so the total is
    /// `rate` messages per second, evenly spread.
    fn due(&self, i: usize) -> Option<Instant> {
        let rate = self.options.rate?;
        Some(self.start + Duration::from_secs_f64((i * self.rooms + self.room_index) as f64 / rate))
    }
}

async fn send_all(plan: SendPlan, out: mpsc::Sender<Message>, room: Arc<RoomState>, shared: Arc<Shared>) {
    let sender = SenderId::generate();
    let text = "x".repeat(plan.options.payload);
    for i in 0..plan.options.messages {
        let due = plan.due(i);
        if let Some(due) = due {
            tokio::time::sleep_until(due.into()).await;
        }
        let Ok(permit) = room.window.acquire().await else { return };
        permit.forget(); // given back when the `deleted` notice comes
        let started = due.unwrap_or_else(Instant::now);
        let id = MessageId::generate();
        let sent_at = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        let body = Body { id, sender, text: text.clone(), sent_at };
        let sealed = match seal(&room.keys, &body) {
            Ok(sealed) => sealed,
            Err(err) => return shared.error(format!("client: {err}")),
        };
        let frame = client::text(&ClientFrame::Send { message_id: id.to_hex(), sealed: sealed.to_base64() });
        // Written before it goes: its `sent` can come back before this task runs again.
        room.timelines().insert(id, Timeline { written: Some(Instant::now()), ..Timeline::new(started) });
        if out.send(frame).await.is_err() {
            return shared.error("client: socket closed while sending".into());
        }
        shared.sent.fetch_add(1, Ordering::Relaxed);
    }
}

async fn read_as_sender(
    mut stream: SplitStream<Ws>,
    _outbox: mpsc::Sender<Message>,
    room: Arc<RoomState>,
    shared: Arc<Shared>,
) {
    while let Some(Ok(message)) = stream.next().await {
        match client::parse(&message) {
            Some(ServerFrame::Sent { message_id }) => {
                if let Some(id) = MessageId::parse(&message_id) {
                    room.mark(&id, |timeline| timeline.acked = Some(Instant::now()));
                }
            }
            Some(ServerFrame::Deleted { message_id }) => {
                let now = Instant::now();
                let timeline = MessageId::parse(&message_id).and_then(|id| room.timelines().remove(&id));
                let mut metrics = shared.metrics();
                let Some(timeline) = timeline else {
                    metrics.duplicates += 1;
                    continue;
                };
                metrics.journey.push(now - timeline.scheduled);
                metrics.stages.extend(timeline.sample());
                metrics.completed += 1;
                metrics.last_completion = Some(now);
                if metrics.completed == shared.expected {
                    shared.all_done.notify_one();
                }
                drop(metrics);
                room.window.add_permits(1);
            }
            Some(ServerFrame::Error { code, .. }) => shared.error(format!("{code:?}")),
            _ => {}
        }
    }
}

async fn read_as_receiver(
    mut stream: SplitStream<Ws>,
    out: mpsc::Sender<Message>,
    room: Arc<RoomState>,
    shared: Arc<Shared>,
    payload: usize,
) {
    let mut fetched = HashSet::new();
    let mut opened = HashSet::new();
    while let Some(Ok(message)) = stream.next().await {
        let reply = match client::parse(&message) {
            Some(ServerFrame::Message { message_id }) if fetched.insert(message_id.clone()) => {
                if let Some(id) = MessageId::parse(&message_id) {
                    room.mark(&id, |timeline| timeline.noticed = Some(Instant::now()));
                }
                ClientFrame::Fetch { message_id }
            }
            Some(ServerFrame::Payload { message_id, sealed }) => {
                let now = Instant::now();
                if !opened.insert(message_id.clone()) {
                    shared.metrics().duplicates += 1;
                    continue;
                }
                let id = MessageId::parse(&message_id);
                let body =
                    id.zip(SealedPayload::from_base64(&sealed).ok()).and_then(|(id, s)| open(&room.keys, &id, &s).ok());
                let started = id.and_then(|id| {
                    room.mark(&id, |timeline| timeline.delivered = Some(now)).map(|timeline| timeline.scheduled)
                });
                let mut metrics = shared.metrics();
                match (body, started) {
                    (Some(body), Some(started)) if body.text.len() == payload => {
                        metrics.delivery.push(now - started);
                        metrics.delivered += 1;
                    }
                    _ => {
                        metrics.open_failures += 1;
                        continue;
                    }
                }
                ClientFrame::Viewed { message_id }
            }
            Some(ServerFrame::Error { code, .. }) => {
                shared.error(format!("{code:?}"));
                continue;
            }
            _ => continue,
        };
        if out.send(client::text(&reply)).await.is_err() {
            return;
        }
    }
}

fn report(rooms: usize, options: &JourneyOptions, start: Instant, shared: &Shared) -> JourneyReport {
    let mut metrics = shared.metrics();
    let elapsed = metrics.last_completion.map_or(Duration::ZERO, |end| end - start);
    let completed = metrics.completed;
    JourneyReport {
        rooms,
        clients_per_room: options.clients_per_room,
        window: options.window,
        payload_bytes: options.payload,
        target_rate: options.rate,
        sent: shared.sent.load(Ordering::Relaxed),
        completed,
        delivered: metrics.delivered,
        duplicates: metrics.duplicates,
        open_failures: metrics.open_failures,
        errors: std::mem::take(&mut metrics.errors),
        elapsed_s: elapsed.as_secs_f64(),
        journeys_per_s: if elapsed.is_zero() { 0.0 } else { completed as f64 / elapsed.as_secs_f64() },
        delivery: Percentiles::of(std::mem::take(&mut metrics.delivery)),
        journey: Percentiles::of(std::mem::take(&mut metrics.journey)),
        stages: Stages::of(std::mem::take(&mut metrics.stages)),
    }
}
