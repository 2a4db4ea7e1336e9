//! The rooms of a fault or soak run: each a sender and a receiver that behave as pages do.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use app::crypto::message::{open, seal};
use app::crypto::{Body, MessageId, RoomKeys, SealedPayload, SenderId};
use app::protocol::{ClientFrame, ErrorCode, ServerFrame};
use futures::{SinkExt as _, StreamExt as _};
use tokio::task::JoinSet;

use super::{url_of, FaultReport, Urls, PLAINTEXT_MARKER};
use crate::client::{self, Ws};

/// A message unacknowledged this long is sent again (the server recognises a resend).
const RESEND_AFTER: Duration = Duration::from_millis(1500);
/// A fetched message whose burn is unconfirmed this long is fetched again.
const REFETCH_AFTER: Duration = Duration::from_millis(1500);
/// A socket that cannot connect and join within this is given up and tried again.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const RECONNECT_DELAY: Duration = Duration::from_millis(200);

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

/// One room: a sender and a receiver, each a page that reconnects.
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

/// A page's socket: its session token outlives each connection.
struct SimulatedPage {
    session: String,
    instance: usize,
    ws: Option<Ws>,
    retry_at: Instant,
}

impl SimulatedPage {
    fn new(instance: usize) -> Self {
        Self { session: hex::encode(app::crypto::random_bytes::<16>()), instance, ws: None, retry_at: Instant::now() }
    }

    /// Connects and joins; the `joined` frame's pending ids, or `None` (try again later).
    async fn connect(&mut self, urls: &Urls, keys: &RoomKeys) -> Option<Vec<String>> {
        let url = url_of(urls, self.instance);
        let joined = tokio::time::timeout(CONNECT_TIMEOUT, async {
            let mut ws = client::connect(&url).await.ok()?;
            let join = ClientFrame::Join { room_id: keys.room_id.to_hex(), session: self.session.clone() };
            ws.send(client::text(&join)).await.ok()?;
            while let Some(Ok(message)) = ws.next().await {
                match client::parse(&message) {
                    Some(ServerFrame::Joined { pending, .. }) => return Some((ws, pending)),
                    Some(ServerFrame::Error { .. }) => return None,
                    _ => {}
                }
            }
            None
        })
        .await
        .ok()
        .flatten();
        match joined {
            Some((ws, pending)) => {
                self.ws = Some(ws);
                Some(pending)
            }
            None => {
                self.retry_at = Instant::now() + RECONNECT_DELAY;
                None
            }
        }
    }

    async fn send(&mut self, frame: &ClientFrame) {
        if let Some(ws) = &mut self.ws {
            if ws.send(client::text(frame)).await.is_err() {
                self.ws = None;
                self.retry_at = Instant::now() + RECONNECT_DELAY;
            }
        }
    }

    /// The next server frame; `None` when the socket ended (it is then dropped). Pends forever
    /// without a socket.
    async fn next(&mut self) -> Option<ServerFrame> {
        let Some(ws) = &mut self.ws else { return std::future::pending().await };
        loop {
            match ws.next().await {
                Some(Ok(message)) => {
                    if let Some(frame) = client::parse(&message) {
                        return Some(frame);
                    }
                }
                _ => {
                    self.ws = None;
                    self.retry_at = Instant::now() + RECONNECT_DELAY;
                    return None;
                }
            }
        }
    }
}

/// What the sender knows of one message.
struct Outgoing {
    sealed: SealedPayload,
    last_sent: Instant,
    /// When the server first acknowledged it.
    acknowledged: Option<Instant>,
}

/// What the receiver knows of one message.
#[derive(Default)]
struct Incoming {
    opened: usize,
    last_fetch: Option<Instant>,
    /// When the receiver's burn was first confirmed: `deleted` after its `viewed`, or, if that
    /// was lost with a connection, its absence from the next `joined`'s pending list.
    burned: Option<Instant>,
}

/// One room's run: its two pages and what each knows.
struct RoomState {
    sender: SimulatedPage,
    receiver: SimulatedPage,
    sender_id: SenderId,
    outgoing: HashMap<MessageId, Outgoing>,
    incoming: HashMap<MessageId, Incoming>,
    outcome: RoomOutcome,
    /// Messages sent so far.
    n: usize,
}

impl RoomRun {
    async fn run(self) -> RoomOutcome {
        let mut room = RoomState {
            sender: SimulatedPage::new(self.sender_instance),
            receiver: SimulatedPage::new(self.receiver_instance),
            sender_id: SenderId(app::crypto::random_bytes()),
            outgoing: HashMap::new(),
            incoming: HashMap::new(),
            outcome: RoomOutcome::default(),
            n: 0,
        };
        let mut tick = tokio::time::interval(self.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let stopped = self.stopped_at.get().copied();
            if stopped.is_some_and(|at| room.all_burned() || at.elapsed() > self.drain) {
                break;
            }
            room.reconnect(&self).await;
            let retry = tokio::time::sleep(RECONNECT_DELAY);
            tokio::select! {
                frame = room.sender.next() => room.on_sender_frame(frame),
                frame = room.receiver.next() => room.on_receiver_frame(frame, &self.keys).await,
                _ = tick.tick() => {
                    if stopped.is_none() {
                        room.send_next(&self).await;
                    }
                    room.retry_overdue().await;
                },
                () = retry, if room.sender.ws.is_none() || room.receiver.ws.is_none() => {}
            }
        }
        room.finish()
    }
}

impl RoomState {
    fn all_burned(&self) -> bool {
        self.outgoing.keys().all(|id| self.incoming.get(id).is_some_and(|m| m.burned.is_some()))
    }

    /// (Re)connects whichever page has no socket, when its back-off allows, and does what a
    /// page does on joining.
    async fn reconnect(&mut self, run: &RoomRun) {
        if self.sender.ws.is_none()
            && Instant::now() >= self.sender.retry_at
            && self.sender.connect(&run.urls, &run.keys).await.is_some()
        {
            self.outcome.reconnects += usize::from(self.n > 0);
            // A page resends what it never saw acknowledged.
            let now = Instant::now();
            for (id, m) in self.outgoing.iter_mut().filter(|(_, m)| m.acknowledged.is_none()) {
                m.last_sent = now;
                self.sender.send(&ClientFrame::Send { message_id: id.to_hex(), sealed: m.sealed.to_base64() }).await;
            }
        }
        if self.receiver.ws.is_none() && Instant::now() >= self.receiver.retry_at {
            if let Some(pending) = self.receiver.connect(&run.urls, &run.keys).await {
                self.outcome.reconnects += usize::from(self.n > 0);
                // What it opened and no longer waits was burned: the `deleted` was lost with
                // the last connection.
                let now = Instant::now();
                for (id, m) in self.incoming.iter_mut().filter(|(_, m)| m.opened > 0 && m.burned.is_none()) {
                    if !pending.contains(&id.to_hex()) {
                        m.burned = Some(now);
                    }
                }
                for id in pending {
                    if let Some(parsed) = MessageId::parse(&id) {
                        self.incoming.entry(parsed).or_default().last_fetch = Some(now);
                    }
                    self.receiver.send(&ClientFrame::Fetch { message_id: id }).await;
                }
            }
        }
    }

    fn on_sender_frame(&mut self, frame: Option<ServerFrame>) {
        match frame {
            Some(ServerFrame::Sent { message_id }) => {
                if let Some(m) = MessageId::parse(&message_id).and_then(|id| self.outgoing.get_mut(&id)) {
                    m.acknowledged.get_or_insert_with(Instant::now);
                }
            }
            Some(ServerFrame::Error { code, .. }) => {
                *self.outcome.errors.entry(format!("sender: {code:?}")).or_default() += 1
            }
            _ => {}
        }
    }

    async fn on_receiver_frame(&mut self, frame: Option<ServerFrame>, keys: &RoomKeys) {
        match frame {
            Some(ServerFrame::Message { message_id }) => {
                if let Some(id) = MessageId::parse(&message_id) {
                    self.incoming.entry(id).or_default().last_fetch = Some(Instant::now());
                }
                self.receiver.send(&ClientFrame::Fetch { message_id }).await;
            }
            Some(ServerFrame::Payload { message_id, sealed }) => self.on_payload(message_id, &sealed, keys).await,
            Some(ServerFrame::Deleted { message_id }) => {
                if let Some(m) = MessageId::parse(&message_id).and_then(|id| self.incoming.get_mut(&id)) {
                    m.burned.get_or_insert_with(Instant::now);
                }
            }
            // `unknown_message`: a fetch of what this page already burned on a connection lost since.
            Some(ServerFrame::Error { code, .. }) if code != ErrorCode::UnknownMessage => {
                *self.outcome.errors.entry(format!("receiver: {code:?}")).or_default() += 1;
            }
            _ => {}
        }
    }

    /// Opens a payload, tells apart a first delivery, a refetch and a return after the burn,
    /// and confirms it viewed.
    async fn on_payload(&mut self, message_id: String, sealed: &str, keys: &RoomKeys) {
        let Some(id) = MessageId::parse(&message_id) else { return };
        let opened = SealedPayload::from_base64(sealed).ok().and_then(|s| open(keys, &id, &s).ok());
        if opened.is_none_or(|body| !self.outgoing.contains_key(&body.id)) {
            self.outcome.open_failures += 1;
            return;
        }
        let state = self.incoming.entry(id).or_default();
        if let Some(burned) = state.burned {
            // Back after its burn: the sender's resend of what it never saw acknowledged, or a
            // message undead.
            match self.outgoing.get(&id).and_then(|m| m.acknowledged) {
                Some(acknowledged) if acknowledged < burned => self.outcome.duplicates += 1,
                _ => self.outcome.resent_after_burn += 1,
            }
        } else if state.opened > 0 {
            self.outcome.refetched += 1;
        }
        state.opened += 1;
        self.receiver.send(&ClientFrame::Viewed { message_id }).await;
    }

    async fn send_next(&mut self, run: &RoomRun) {
        if self.sender.ws.is_none() {
            return;
        }
        let id = MessageId::generate();
        let text = format!(
            "{PLAINTEXT_MARKER} room {} message {} {}",
            run.index,
            self.n,
            hex::encode(app::crypto::random_bytes::<8>())
        );
        let body = Body { id, sender: self.sender_id, text, sent_at: 0 };
        let sealed = seal(&run.keys, &body).expect("invariant: a short text fits a payload");
        self.sender.send(&ClientFrame::Send { message_id: id.to_hex(), sealed: sealed.to_base64() }).await;
        self.outgoing.insert(id, Outgoing { sealed, last_sent: Instant::now(), acknowledged: None });
        self.n += 1;
    }

    /// Resends what waits too long for its acknowledgement (an `internal` error, say, while
    /// PostgreSQL restarts), and fetches again what waits too long for its burn.
    async fn retry_overdue(&mut self) {
        let now = Instant::now();
        for (id, m) in
            self.outgoing.iter_mut().filter(|(_, m)| m.acknowledged.is_none() && now - m.last_sent > RESEND_AFTER)
        {
            m.last_sent = now;
            self.sender.send(&ClientFrame::Send { message_id: id.to_hex(), sealed: m.sealed.to_base64() }).await;
        }
        for (id, m) in self
            .incoming
            .iter_mut()
            .filter(|(_, m)| m.burned.is_none() && m.last_fetch.is_none_or(|t| now - t > REFETCH_AFTER))
        {
            m.last_fetch = Some(now);
            self.receiver.send(&ClientFrame::Fetch { message_id: id.to_hex() }).await;
        }
    }

    fn finish(self) -> RoomOutcome {
        let delivered = |id: &MessageId| self.incoming.get(id).is_some_and(|m| m.opened > 0);
        RoomOutcome {
            sent: self.outgoing.len(),
            acknowledged: self.outgoing.values().filter(|m| m.acknowledged.is_some()).count(),
            delivered: self.incoming.values().filter(|m| m.opened > 0).count(),
            burned: self.incoming.values().filter(|m| m.burned.is_some()).count(),
            lost: self.outgoing.keys().filter(|id| !delivered(id)).count(),
            ..self.outcome
        }
    }
}
