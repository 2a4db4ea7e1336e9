//! The rooms of a fault or soak run: each a sender and a receiver, pages as the browser runs
//! them (the room model, driven by [`Page`]), and an account of what became of each message.

use std::collections::{BTreeMap, HashMap};
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
}

impl RoomRun {
    async fn run(self) -> RoomOutcome {
        let relay = |instance: usize| {
            let urls = self.urls.clone();
            Box::new(move || url_of(&urls, instance))
        };
        let mut sender = Page::open_with(self.keys.clone(), relay(self.sender_instance));
        let mut receiver = Page::open_with(self.keys.clone(), relay(self.receiver_instance));
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
                    Some(RoomEvent::Arrived(id)) => receiver.open_card(id),
                    Some(RoomEvent::Opened(id)) => match messages.get_mut(&id) {
                        Some(m) => m.opened = true,
                        None => outcome.open_failures += 1,
                    },
                    Some(RoomEvent::SeenAgain(id)) => match messages.get(&id) {
                        // Back after its burn: the sender's resend of what it never saw
                        // acknowledged, or a message undead.
                        Some(Account { acknowledged: Some(acknowledged), burned: Some(burned), .. })
                            if acknowledged < burned => outcome.duplicates += 1,
                        Some(Account { burned: Some(_), .. }) => outcome.resent_after_burn += 1,
                        _ => outcome.refetched += 1,
                    },
                    Some(RoomEvent::Unreadable(_)) => outcome.open_failures += 1,
                    Some(RoomEvent::Burned(id)) => {
                        if let Some(m) = messages.get_mut(&id) {
                            m.burned.get_or_insert_with(Instant::now);
                        }
                    }
                    // `unknown_message`: a fetch of what this page already burned on a lost connection.
                    Some(RoomEvent::Refused(code)) if code != ErrorCode::UnknownMessage => {
                        *outcome.errors.entry(format!("receiver: {code:?}")).or_default() += 1;
                    }
                    Some(RoomEvent::Joined) => joins += 1,
                    Some(_) => {}
                    None => break,
                },
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
        RoomOutcome {
            sent: messages.len(),
            acknowledged: messages.values().filter(|m| m.acknowledged.is_some()).count(),
            delivered: messages.values().filter(|m| m.opened).count(),
            burned: messages.values().filter(|m| m.burned.is_some()).count(),
            lost: messages.values().filter(|m| !m.opened).count(),
            ..outcome
        }
    }
}
