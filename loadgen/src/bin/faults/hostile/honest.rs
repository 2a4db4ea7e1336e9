//! The honest side of every attack: rooms of two pages (the room model the browser runs, driven
//! by [`Page`]) making message journeys, each send timed until the sender's page hears its
//! message burned; and page loads (`GET /`) on fresh connections, as a browser arriving.
//!
//! Each room's sender sends its next message once the last is burned (or refused), at most one
//! an interval: a person's pace, so that a slow relay shows as slow journeys, not as a queue of
//! sends the harness piled up faster than the relay took them.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use app::crypto::{MessageId, RoomKeys};
use app::protocol::ErrorCode;
use app::room::{CardState, RoomEvent};
use loadgen::page::Page;
use loadgen::stats::Percentiles;
use serde::Serialize;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

/// How long both pages of a room may take to join.
const JOIN_TIMEOUT: Duration = Duration::from_secs(10);
/// How long, once sending stops, the journeys in flight may take to finish.
const DRAIN: Duration = Duration::from_secs(20);
/// A page load slower than this counts as failed.
const PAGE_LOAD_TIMEOUT: Duration = Duration::from_secs(5);
/// One page load this often.
const PAGE_LOAD_EVERY: Duration = Duration::from_millis(200);

/// What became of the honest messages sent during one attack.
#[derive(Debug, Clone, Default, Serialize)]
pub struct HonestReport {
    pub rooms: usize,
    /// Messages the sender pages sent.
    pub sent: usize,
    /// Of those, stored (the relay's `sent`).
    pub stored: usize,
    /// Opened by the receiver's page.
    pub delivered: usize,
    /// Delivered, and burned as the sender's page saw it (`deleted`).
    pub burned: usize,
    /// Refused by the relay with the reason the sender's card shows (not stored, text kept).
    pub refused: usize,
    /// Neither burned nor refused: must be 0.
    pub lost: usize,
    /// Error frames the pages got, by code.
    pub errors: BTreeMap<String, usize>,
    /// Joins after the first: an honest page that lost its connection.
    pub reconnects: usize,
    pub open_failures: usize,
    /// Rooms whose pages could not join.
    pub join_failures: usize,
    /// From the send to the receiver's plaintext.
    pub delivery: Option<Percentiles>,
    /// From the send to the sender's `deleted`: the whole journey.
    pub journey: Option<Percentiles>,
}

impl HonestReport {
    /// One clean journey of 2 ms: what the report tests of every attack start from.
    #[cfg(test)]
    pub fn one_clean_journey() -> Self {
        Self {
            sent: 1,
            stored: 1,
            delivered: 1,
            burned: 1,
            journey: loadgen::stats::Percentiles::of(vec![std::time::Duration::from_millis(2)]),
            ..Default::default()
        }
    }

    /// What is wrong with the honest side, as sentences; `refusable` is the error the attack
    /// may legitimately cause (the relay full refuses everyone's sends).
    pub fn problems(&self, attack: &str, refusable: Option<ErrorCode>) -> Vec<String> {
        let mut problems = Vec::new();
        if self.sent == 0 || self.journey.is_none() {
            problems.push(format!("{attack}: no honest journey was made"));
        }
        if self.lost > 0 || self.delivered + self.refused < self.sent || self.burned + self.refused < self.sent {
            problems.push(format!(
                "{attack}: honest messages: {} sent, {} delivered, {} burned, {} refused, {} lost",
                self.sent, self.delivered, self.burned, self.refused, self.lost
            ));
        }
        let allowed = refusable.map(|code| format!("sender: {code:?}"));
        let unexpected: Vec<_> = self.errors.keys().filter(|code| Some(*code) != allowed.as_ref()).collect();
        if !unexpected.is_empty() || (self.refused > 0 && allowed.is_none()) {
            problems.push(format!("{attack}: honest pages were refused: {:?}", self.errors));
        }
        if self.reconnects > 0 || self.join_failures > 0 || self.open_failures > 0 {
            problems.push(format!(
                "{attack}: honest pages: {} reconnects, {} rooms that could not join, {} payloads that did not open",
                self.reconnects, self.join_failures, self.open_failures
            ));
        }
        problems
    }
}

/// Honest rooms making journeys until [`Honest::finish`].
pub struct Honest {
    stop: watch::Sender<bool>,
    tasks: JoinSet<Tally>,
    rooms: usize,
}

impl Honest {
    /// Opens both pages of every room on `url` and, once all have joined, starts sending.
    pub async fn start(rooms: &[RoomKeys], url: &str, interval: Duration) -> Self {
        let (stop, stopped) = watch::channel(false);
        let (joined_tx, mut joined) = tokio::sync::mpsc::channel(rooms.len().max(1));
        let mut tasks = JoinSet::new();
        for keys in rooms {
            let room = HonestRoom { keys: keys.clone(), url: url.to_owned(), interval, stop: stopped.clone() };
            tasks.spawn(room.run(joined_tx.clone()));
        }
        drop(joined_tx);
        // Every room says when it has joined (or given up), so no send goes before a receiver.
        while joined.recv().await.is_some() {}
        Self { stop, tasks, rooms: rooms.len() }
    }

    /// Stops sending, lets the journeys in flight finish, and adds up.
    pub async fn finish(self) -> HonestReport {
        let _ = self.stop.send(true);
        let mut report = HonestReport { rooms: self.rooms, ..Default::default() };
        let (mut delivery, mut journey) = (Vec::new(), Vec::new());
        for tally in self.tasks.join_all().await {
            tally.add_to(&mut report, &mut delivery, &mut journey);
        }
        report.delivery = Percentiles::of(delivery);
        report.journey = Percentiles::of(journey);
        report
    }
}

/// One message, as both pages saw it.
struct Journey {
    sent_at: Instant,
    stored: bool,
    opened: Option<Instant>,
    burned: Option<Instant>,
}

#[derive(Default)]
struct Tally {
    journeys: HashMap<MessageId, Journey>,
    /// Ids whose cards say the relay refused them.
    unsent: HashSet<MessageId>,
    errors: BTreeMap<String, usize>,
    joins: usize,
    open_failures: usize,
    join_failed: bool,
}

impl Tally {
    fn add_to(self, report: &mut HonestReport, delivery: &mut Vec<Duration>, journey: &mut Vec<Duration>) {
        report.sent += self.journeys.len();
        report.join_failures += usize::from(self.join_failed);
        report.reconnects += self.joins.saturating_sub(2);
        report.open_failures += self.open_failures;
        for (code, n) in self.errors {
            *report.errors.entry(code).or_default() += n;
        }
        for (id, j) in &self.journeys {
            report.stored += usize::from(j.stored);
            if let Some(opened) = j.opened {
                report.delivered += 1;
                delivery.push(opened - j.sent_at);
            }
            match (j.opened, j.burned) {
                (Some(_), Some(burned)) => {
                    report.burned += 1;
                    journey.push(burned - j.sent_at);
                }
                _ if self.unsent.contains(id) => report.refused += 1,
                _ => report.lost += 1,
            }
        }
    }

    /// Delivered and burned.
    fn done(&self, id: MessageId) -> bool {
        self.journeys.get(&id).is_some_and(|j| j.opened.is_some() && j.burned.is_some())
    }

    fn settled(&self) -> bool {
        self.journeys.iter().all(|(id, j)| (j.opened.is_some() && j.burned.is_some()) || self.unsent.contains(id))
    }
}

struct HonestRoom {
    keys: RoomKeys,
    url: String,
    interval: Duration,
    stop: watch::Receiver<bool>,
}

impl HonestRoom {
    async fn run(mut self, joined: tokio::sync::mpsc::Sender<()>) -> Tally {
        let mut sender = Page::open(self.keys.clone(), &self.url);
        let mut receiver = Page::open(self.keys.clone(), &self.url);
        let mut tally = Tally::default();
        let both = tokio::time::timeout(JOIN_TIMEOUT, async {
            let (mut sender_in, mut receiver_in) = (false, false);
            while !(sender_in && receiver_in) {
                tokio::select! {
                    event = sender.next_event(), if !sender_in => sender_in = matches!(event, Some(RoomEvent::Joined)),
                    event = receiver.next_event(), if !receiver_in => receiver_in = matches!(event, Some(RoomEvent::Joined)),
                }
            }
        });
        tally.join_failed = both.await.is_err();
        tally.joins = 2;
        drop(joined);
        if !tally.join_failed {
            self.journeys(&mut sender, &mut receiver, &mut tally).await;
        }
        sender.leave().await;
        receiver.leave().await;
        tally
    }

    async fn journeys(&mut self, sender: &mut Page, receiver: &mut Page, tally: &mut Tally) {
        let mut tick = tokio::time::interval(self.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut drain_until: Option<Instant> = None;
        // One journey at a time, as a person sends, watches it burn and sends the next.
        let mut in_flight: Option<MessageId> = None;
        let mut check = tokio::time::interval(Duration::from_millis(100));
        loop {
            tokio::select! {
                event = sender.next_event() => match event {
                    Some(RoomEvent::Stored(id)) => if let Some(j) = tally.journeys.get_mut(&id) { j.stored = true },
                    Some(RoomEvent::Burned(id)) => if let Some(j) = tally.journeys.get_mut(&id) { j.burned.get_or_insert_with(Instant::now); },
                    Some(RoomEvent::Refused(code)) => *tally.errors.entry(format!("sender: {code:?}")).or_default() += 1,
                    Some(RoomEvent::Joined) => tally.joins += 1,
                    Some(_) => {}
                    None => return,
                },
                event = receiver.next_event() => match event {
                    Some(RoomEvent::Arrived(id)) => receiver.open_card(id),
                    Some(RoomEvent::Opened(id)) => match tally.journeys.get_mut(&id) {
                        Some(j) => { j.opened.get_or_insert_with(Instant::now); }
                        None => tally.open_failures += 1,
                    },
                    Some(RoomEvent::Unreadable(_) | RoomEvent::Misdated(_)) => tally.open_failures += 1,
                    Some(RoomEvent::Refused(code)) => *tally.errors.entry(format!("receiver: {code:?}")).or_default() += 1,
                    Some(RoomEvent::Joined) => tally.joins += 1,
                    Some(_) => {}
                    None => return,
                },
                _ = tick.tick(), if drain_until.is_none() => {
                    if let Some(id) = in_flight.filter(|id| !tally.done(*id)) {
                        tally.unsent = unsent(sender).await;
                        if !tally.unsent.contains(&id) {
                            continue;
                        }
                    }
                    let text = format!("honest journey {}", tally.journeys.len());
                    let sent_at = Instant::now();
                    if let Ok(id) = sender.send(&text).await {
                        tally.journeys.insert(id, Journey { sent_at, stored: false, opened: None, burned: None });
                        in_flight = Some(id);
                    }
                }
                _ = self.stop.changed(), if drain_until.is_none() => drain_until = Some(Instant::now() + DRAIN),
                _ = check.tick(), if drain_until.is_some() => {
                    tally.unsent = unsent(sender).await;
                    if tally.settled() || drain_until.is_some_and(|until| Instant::now() > until) {
                        return;
                    }
                }
            }
        }
    }
}

/// The ids of the sender's cards the relay refused to store.
async fn unsent(sender: &Page) -> HashSet<MessageId> {
    let look = |model: &app::room::RoomModel| {
        model.cards().iter().filter(|card| matches!(card.state, CardState::Unsent { .. })).map(|card| card.id).collect()
    };
    sender.inspect(look).await.unwrap_or_default()
}

/// Page loads during an attack.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PageLoadReport {
    pub loads: usize,
    /// Loads that did not bring a whole `200 OK` page within [`PAGE_LOAD_TIMEOUT`].
    pub failures: usize,
    pub first_failure: Option<String>,
    pub latency: Option<Percentiles>,
}

/// `GET /` on a fresh connection every [`PAGE_LOAD_EVERY`], until [`PageLoads::finish`].
pub struct PageLoads {
    stop: watch::Sender<bool>,
    task: JoinHandle<Vec<Result<Duration, String>>>,
}

impl PageLoads {
    pub fn start(port: u16) -> Self {
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            let mut loads = Vec::new();
            let mut tick = tokio::time::interval(PAGE_LOAD_EVERY);
            loop {
                tokio::select! {
                    _ = tick.tick() => loads.push(load_page(port).await),
                    _ = stopped.changed() => return loads,
                }
            }
        });
        Self { stop, task }
    }

    pub async fn finish(self) -> PageLoadReport {
        let _ = self.stop.send(true);
        let loads = self.task.await.unwrap_or_default();
        let failures: Vec<&String> = loads.iter().filter_map(|load| load.as_ref().err()).collect();
        PageLoadReport {
            loads: loads.len(),
            failures: failures.len(),
            first_failure: failures.first().map(|f| (*f).clone()),
            latency: Percentiles::of(loads.iter().filter_map(|load| load.as_ref().ok().copied()).collect()),
        }
    }
}

/// One page load: the time to the last byte of a `200 OK` response.
async fn load_page(port: u16) -> Result<Duration, String> {
    let started = Instant::now();
    let load = async {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        let request = format!("GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await?;
        Ok::<_, std::io::Error>(response)
    };
    match tokio::time::timeout(PAGE_LOAD_TIMEOUT, load).await {
        Ok(Ok(response)) if response.starts_with(b"HTTP/1.1 200") => Ok(started.elapsed()),
        Ok(Ok(response)) => Err(format!("answered {:?}", String::from_utf8_lossy(&response[..response.len().min(40)]))),
        Ok(Err(err)) => Err(format!("failed: {err}")),
        Err(_) => Err(format!("no whole page within {PAGE_LOAD_TIMEOUT:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clean() -> HonestReport {
        let journey = Percentiles::of(vec![Duration::from_millis(3)]);
        HonestReport { rooms: 1, sent: 3, stored: 3, delivered: 3, burned: 3, journey, ..Default::default() }
    }

    #[test]
    fn a_lost_message_a_refusal_or_a_reconnect_is_a_problem() {
        assert!(clean().problems("x", None).is_empty());
        let refused_full = BTreeMap::from([("sender: StorageFull".to_owned(), 1)]);
        for broken in [
            HonestReport { burned: 2, lost: 1, ..clean() },
            HonestReport { delivered: 2, burned: 2, ..clean() },
            HonestReport { refused: 1, burned: 2, delivered: 2, errors: refused_full.clone(), ..clean() },
            HonestReport { reconnects: 1, ..clean() },
            HonestReport { sent: 0, journey: None, ..clean() },
        ] {
            assert!(!broken.problems("x", None).is_empty(), "{broken:?}");
        }
        let full = HonestReport { refused: 1, burned: 2, delivered: 2, errors: refused_full, ..clean() };
        assert!(full.problems("x", Some(ErrorCode::StorageFull)).is_empty(), "a full relay refuses everyone");
        assert!(!full.problems("x", Some(ErrorCode::QuotaExceeded)).is_empty());
    }
}
