//! The rooms of a fault or soak run: each a sender and a receiver, pages as the browser runs
//! them (the room model, driven by [`Page`]), and an account of what became of each message.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::{Duration, Instant};

use app::crypto::{MessageId, RoomKeys};
use app::protocol::ErrorCode;
use app::room::RoomEvent;
use loadgen::page::Page;
use tokio::task::JoinSet;

use crate::report::FaultReport;

/// In every plaintext, so that a search of the data can find any of them.
pub const PLAINTEXT_MARKER: &str = "ec-faults-plaintext";

/// The WebSocket URL of each instance, updated as instances are restarted.
pub(crate) type Urls = Arc<RwLock<Vec<String>>>;

pub(crate) fn url_of(urls: &Urls, instance: usize) -> String {
    let urls = urls.read().unwrap_or_else(std::sync::PoisonError::into_inner);
    urls[instance % urls.len()].clone()
}

pub(crate) fn set_url(urls: &Urls, instance: usize, url: String) {
    urls.write().unwrap_or_else(std::sync::PoisonError::into_inner)[instance] = url;
}

/// How long a receiver's connection must have been joined after a message was acknowledged
/// for that connection to be expected to hear of it: a notice takes milliseconds; this is the
/// margin for a loaded machine.
const HEARD_WITHIN: Duration = Duration::from_secs(2);

/// Receivers that hop: each drops its connection after a random time in this range (as a
/// network loss would) and reconnects to the next instance, while messages keep coming.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Hops {
    pub every: (Duration, Duration),
}

/// The rooms' tasks, sending until told to stop.
pub(crate) struct Load {
    /// Set when sending stops: from then on each room has the drain time to finish.
    stopped_at: Arc<OnceLock<Instant>>,
    tasks: JoinSet<RoomOutcome>,
}

impl Load {
    /// Starts one task per room; with several instances, each room's sender and receiver are
    /// on different ones.
    pub(crate) fn start(
        rooms: &[RoomKeys],
        urls: &Urls,
        interval: Duration,
        drain: Duration,
        instances: usize,
        hops: Option<Hops>,
    ) -> Self {
        let stopped_at = Arc::new(OnceLock::new());
        let mut tasks = JoinSet::new();
        for (index, keys) in rooms.iter().enumerate() {
            let room = RoomRun {
                index,
                keys: keys.clone(),
                urls: urls.clone(),
                sender_instance: index % instances,
                receiver_instance: (index + 1) % instances,
                interval,
                drain,
                stopped_at: stopped_at.clone(),
                instances,
                hops,
            };
            tasks.spawn(room.run());
        }
        Self { stopped_at, tasks }
    }

    /// Stops sending, lets each room finish (or give up after the drain time), and adds up.
    pub(crate) async fn finish(self, report: &mut FaultReport) {
        let _ = self.stopped_at.set(Instant::now());
        for outcome in self.tasks.join_all().await {
            outcome.add_to(report);
        }
    }
}

#[derive(Default)]
struct RoomOutcome {
    sent: usize,
    acknowledged: usize,
    delivered: usize,
    burned: usize,
    lost: usize,
    duplicates: usize,
    resent_after_burn: usize,
    refetched: usize,
    open_failures: usize,
    reconnects: usize,
    hops: usize,
    missed_notices: usize,
    errors: BTreeMap<String, usize>,
}

impl RoomOutcome {
    fn add_to(&self, report: &mut FaultReport) {
        report.sent += self.sent;
        report.acknowledged += self.acknowledged;
        report.delivered += self.delivered;
        report.burned += self.burned;
        report.lost += self.lost;
        report.duplicates += self.duplicates;
        report.resent_after_burn += self.resent_after_burn;
        report.refetched += self.refetched;
        report.open_failures += self.open_failures;
        report.reconnects += self.reconnects;
        report.hops += self.hops;
        report.missed_notices += self.missed_notices;
        for (code, n) in &self.errors {
            *report.errors.entry(code.clone()).or_default() += n;
        }
    }
}

/// One room: a sender and a receiver on their instances, sending every `interval` until told
/// to stop, then draining.
struct RoomRun {
    index: usize,
    keys: RoomKeys,
    urls: Urls,
    sender_instance: usize,
    receiver_instance: usize,
    interval: Duration,
    drain: Duration,
    stopped_at: Arc<OnceLock<Instant>>,
    instances: usize,
    hops: Option<Hops>,
}

/// What the harness saw of one message, from both pages.
#[derive(Default)]
struct Account {
    /// When the relay first confirmed it stored (the sender's `sent`).
    acknowledged: Option<Instant>,
    /// Whether the receiver's page opened and showed it.
    opened: bool,
    /// When the receiver's burn was first confirmed: `deleted` after its `viewed`, or its
    /// absence from the next `joined`'s pending list.
    burned: Option<Instant>,
    /// Which of the receiver's connections (counted by its joins) it first arrived on.
    arrived_on: Option<usize>,
    /// And which it was burned on.
    burned_on: Option<usize>,
}

/// The receiver's connections, one per join: when each joined, and when the harness dropped it
/// (`None`: it is still open, or something else ended it, at a time the harness does not know).
#[derive(Default)]
struct Connections {
    joined: Vec<Instant>,
    dropped: Vec<Option<Instant>>,
    /// The instance each went to (a hopping receiver's; for what a missed notice prints).
    instance: Vec<usize>,
}

impl Connections {
    /// Whether `m`, which arrived on a later connection, should have been heard on one before:
    /// a connection the harness dropped that had been joined, and the message acknowledged, for
    /// [`HEARD_WITHIN`] by then. (A connection ended by a fault is never counted: when it ended
    /// is not known.)
    fn missed(&self, m: &Account) -> bool {
        let (Some(arrived_on), Some(acknowledged)) = (m.arrived_on, m.acknowledged) else { return false };
        (0..arrived_on).any(|c| match self.dropped.get(c).copied().flatten() {
            Some(dropped) => dropped.saturating_duration_since(self.joined[c].max(acknowledged)) > HEARD_WITHIN,
            None => false,
        })
    }
}

impl RoomRun {
    async fn run(self) -> RoomOutcome {
        let relay = |instance: usize| {
            let urls = self.urls.clone();
            Box::new(move || url_of(&urls, instance))
        };
        let mut sender = Page::open_with(self.keys.clone(), relay(self.sender_instance));
        // A hopping receiver goes to the next instance at every connection.
        let attempts = Arc::new(AtomicUsize::new(0));
        let t0 = Instant::now();
        let mut receiver = match self.hops {
            None => Page::open_with(self.keys.clone(), relay(self.receiver_instance)),
            Some(_) => {
                let (urls, first, instances) = (self.urls.clone(), self.receiver_instance, self.instances);
                let attempts = attempts.clone();
                Page::open_with(
                    self.keys.clone(),
                    Box::new(move || url_of(&urls, first + attempts.fetch_add(1, Ordering::Relaxed) % instances)),
                )
            }
        };
        let mut connections = Connections::default();
        let mut hop_at = self.next_hop();
        let mut messages: HashMap<MessageId, Account> = HashMap::new();
        let mut outcome = RoomOutcome::default();
        let mut joins: usize = 0;
        let mut tick = tokio::time::interval(self.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let stopped = self.stopped_at.get().copied();
            let all_burned = messages.values().all(|m| m.burned.is_some());
            if stopped.is_some_and(|at| all_burned || at.elapsed() > self.drain) {
                break;
            }
            tokio::select! {
                event = sender.next_event() => match event {
                    Some(RoomEvent::Stored(id)) => {
                        if let Some(m) = messages.get_mut(&id) {
                            m.acknowledged.get_or_insert_with(Instant::now);
                        }
                    }
                    Some(RoomEvent::Refused(code)) => *outcome.errors.entry(format!("sender: {code:?}")).or_default() += 1,
                    Some(RoomEvent::Joined) => joins += 1,
                    Some(_) => {}
                    None => break,
                },
                event = receiver.next_event() => match event {
                    // The person opens every message as it arrives.
                    Some(RoomEvent::Arrived(id)) => {
                        if let Some(m) = messages.get_mut(&id) {
                            m.arrived_on.get_or_insert(connections.joined.len().saturating_sub(1));
                        }
                        receiver.open_card(id);
                    }
                    Some(RoomEvent::Opened(id)) => match messages.get_mut(&id) {
                        Some(m) => m.opened = true,
                        None => outcome.open_failures += 1,
                    },
                    Some(RoomEvent::SeenAgain(id)) => match messages.get(&id) {
                        // Back after its burn: the sender's resend of what it never saw
                        // acknowledged, or a message undead.
                        Some(Account {
                            acknowledged: Some(acknowledged), burned: Some(burned), arrived_on, burned_on, ..
                        })
                            if acknowledged < burned =>
                        {
                            outcome.duplicates += 1;
                            // What the run knows of it, for whoever looks into it (no plaintext).
                            eprintln!(
                                "faults: room {}: a message was back {:?} after its burn ({:?} after its \
                                 acknowledgement); it arrived on the receiver's connection {:?}, burned on {:?}, \
                                 this is connection {}",
                                self.index,
                                burned.elapsed(),
                                acknowledged.elapsed(),
                                arrived_on,
                                burned_on,
                                connections.joined.len().saturating_sub(1),
                            );
                        }
                        Some(Account { burned: Some(_), .. }) => outcome.resent_after_burn += 1,
                        _ => outcome.refetched += 1,
                    },
                    Some(RoomEvent::Unreadable(_)) => outcome.open_failures += 1,
                    Some(RoomEvent::Burned(id)) => {
                        if let Some(m) = messages.get_mut(&id) {
                            m.burned.get_or_insert_with(Instant::now);
                            m.burned_on.get_or_insert(connections.joined.len().saturating_sub(1));
                        }
                    }
                    // `unknown_message`: a fetch of what this page already burned on a lost connection.
                    Some(RoomEvent::Refused(code)) if code != ErrorCode::UnknownMessage => {
                        *outcome.errors.entry(format!("receiver: {code:?}")).or_default() += 1;
                    }
                    Some(RoomEvent::Joined) => {
                        joins += 1;
                        connections.joined.push(Instant::now());
                        connections.dropped.push(None);
                        connections.instance.push(
                            (self.receiver_instance + attempts.load(Ordering::Relaxed).saturating_sub(1)) % self.instances,
                        );
                    }
                    Some(_) => {}
                    None => break,
                },
                () = sleep_until(hop_at), if stopped.is_none() && hop_at.is_some() => {
                    // Only a joined connection is dropped, so each drop ends a known one.
                    if connections.dropped.last() == Some(&None) {
                        *connections.dropped.last_mut().expect("one per join") = Some(Instant::now());
                        receiver.drop_connection();
                        outcome.hops += 1;
                    }
                    hop_at = self.next_hop();
                }
                _ = tick.tick(), if stopped.is_none() => {
                    let text = format!(
                        "{PLAINTEXT_MARKER} room {} message {} {}",
                        self.index,
                        messages.len(),
                        hex::encode(app::crypto::random_bytes::<8>())
                    );
                    if let Ok(id) = sender.send(&text).await {
                        messages.insert(id, Account::default());
                    }
                }
                () = tokio::time::sleep(Duration::from_millis(100)), if stopped.is_some() => {}
            }
        }
        sender.leave().await;
        receiver.leave().await;
        // Each page's first join is not a reconnect.
        outcome.reconnects = joins.saturating_sub(2);
        for m in messages.values().filter(|m| connections.missed(m)) {
            let at = |t: Instant| t.saturating_duration_since(t0).as_millis();
            let timeline: Vec<String> = (0..connections.joined.len())
                .map(|c| {
                    format!(
                        "#{c} on {:?} joined {} dropped {:?}",
                        connections.instance.get(c),
                        at(connections.joined[c]),
                        connections.dropped[c].map(at)
                    )
                })
                .collect();
            eprintln!(
                "faults: room {} (sender on {}): a notice was missed: acknowledged at {:?} ms, arrived on #{:?}; {}",
                self.index,
                self.sender_instance,
                m.acknowledged.map(at),
                m.arrived_on,
                timeline.join(", ")
            );
        }
        RoomOutcome {
            missed_notices: messages.values().filter(|m| connections.missed(m)).count(),
            sent: messages.len(),
            acknowledged: messages.values().filter(|m| m.acknowledged.is_some()).count(),
            delivered: messages.values().filter(|m| m.opened).count(),
            burned: messages.values().filter(|m| m.burned.is_some()).count(),
            lost: messages.values().filter(|m| !m.opened).count(),
            ..outcome
        }
    }
}

impl RoomRun {
    /// When the receiver next drops its connection, if it hops.
    fn next_hop(&self) -> Option<Instant> {
        let Hops { every: (least, most) } = self.hops?;
        let spread = most.saturating_sub(least).as_millis() as u64;
        let jitter = u64::from_le_bytes(app::crypto::random_bytes::<8>()) % spread.max(1);
        Some(Instant::now() + least + Duration::from_millis(jitter))
    }
}

/// Sleeps until `at`; never, without one.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_is_missed_only_by_a_connection_that_was_joined_long_enough_after_it() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let connections = Connections {
            joined: vec![at(0), at(10_000), at(20_000)],
            dropped: vec![Some(at(9_000)), None, Some(at(25_000))],
            instance: vec![1, 0, 1],
        };
        let message = |acknowledged: u64, arrived_on: usize| Account {
            acknowledged: Some(at(acknowledged)),
            arrived_on: Some(arrived_on),
            ..Default::default()
        };
        assert!(!connections.missed(&message(1_000, 0)), "heard on the connection it was sent to");
        assert!(connections.missed(&message(1_000, 2)), "connection 0 stayed 8 s and never heard it");
        assert!(!connections.missed(&message(8_000, 2)), "connection 0 dropped within a second of it");
        assert!(!connections.missed(&message(12_000, 2)), "connection 1 ended by a fault: not counted");
        assert!(!connections.missed(&Account::default()), "never acknowledged or never arrived");
    }
}
