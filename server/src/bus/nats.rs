//! Room events between instances over NATS (`BUS_URL`), subscribed per room.
//!
//! **Subjects.** A room's subject is `ec.r.` and 32 hex digits of a keyed hash of its room hash,
//! keyed by a subkey of the relay's at-rest key ([`SubjectKey`]): the broker's subjects match
//! no column of the database and nothing a client sends, and a reader of the broker's traffic
//! cannot tell which stored room a subject is. Every instance also hears `ec.all.` and a hash of
//! its own, where an instance asks all the others to resync every room.
//!
//! **Subscriptions.** An instance subscribes to a room's subject exactly while someone is in the
//! room here (the hub follows and unfollows it), so the broker sends it only its rooms' events
//! (Centrifugo's model). A join waits until its room's subscription is registered at the
//! server ([`Link::settled`]) before its own write, so any event committed after that write is
//! heard: with a publish after every commit, a participant that moves to this instance while a
//! message is sent finds it in its pending list, hears it, or both. The client's own `flush`
//! only empties its socket buffer, so the proof is a probe: the instance publishes on a subject
//! of its own, which a second connection of its own subscribes to, and the server handles one
//! connection's commands in order, so the probe's arrival means every subscription asked for
//! before it is in place.
//!
//! **Publishing.** Every event is published after its commit, by one task per instance, in the
//! order the relay handed them over; the connection's own events are not echoed back to it.
//!
//! **Nothing lost.** NATS delivers at most once, so every gap is closed by a resync from the
//! store:
//! - this instance's link drops (NATS restarts, or the connection is cut): what others
//!   published meanwhile is lost to it; on reconnecting it resyncs every room here, as after a
//!   lost `LISTEN`;
//! - what *it* published just before the drop may be lost to the others: it remembers each room
//!   it published to until a probe sent after it has come back (one a second), and on
//!   reconnecting publishes a resync to those rooms and to every room it is in. Past
//!   [`UNCONFIRMED_ROOMS_MAX`] rooms, or when its outgoing queue overflowed, it asks every
//!   instance to resync everything instead;
//! - a notice published before such a drop can arrive after the room heard the message burned
//!   (NATS orders one instance's events, not several instances'): the hub drops it.
//! - it dies between a commit and its publish: the survivors see its heartbeat stop and resync
//!   the rooms its participants were in (`relay::tasks::heartbeat`).
//!
//! **Carried messages.** A message notice carries the message as stored: its body sealed at
//! rest (never plaintext, never the client's layer alone), sender, recipients and expiry, and when
//! it was stored. The other instances in the room hold it for their fetches, as the storing
//! instance holds its own (`relay/held.rs`), so a fetch there needs no read from PostgreSQL. A
//! held copy must never outlive its row, and the relay drops it when it hears the message's
//! deletion; so a copy is passed on only when this instance has heard every event of the room
//! since the message was stored:
//! - this instance's subscription to the room was in place at the server (confirmed by a probe)
//!   [`CLOCK_SKEW_ALLOWED`] before the message was stored, by the two instances' clocks, and
//!   the client is still on the connection it was confirmed on. A deletion of the message comes
//!   after its insert, so it was published while this instance listened: the room here heard it
//!   before this notice (and drops the copy: `Hub::hear`), or hears it after (and releases it);
//! - and the message was stored at most [`CARRIED_FRESH`] ago (a notice held up by its
//!   publisher's lost link arrives later, and goes on without it), so the room here still
//!   remembers every deletion since (`Hub::hear`).
//!
//! The relay holds a carried copy only for its recipients (an open message is fetched from the
//! store), for at most [`CARRIED_HELD_FOR`](crate::domain::bounds::CARRIED_HELD_FOR).

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_nats::{Client, ConnectOptions, Event, Message, ServerAddr, Statistics};
use futures::stream::{BoxStream, SelectAll};
use futures::StreamExt as _;
use tokio::sync::{mpsc, oneshot};
use zeroize::Zeroizing;

use super::{BusEvent, BusIdentity};
use crate::at_rest::KeyRing;
use crate::domain::bounds::{
    BUS_CONFIRM_INTERVAL, BUS_MAX_RECONNECT_WAIT, BUS_PING_INTERVAL, BUS_PUBLISH_QUEUE, BUS_SETTLE_WAIT, CARRIED_FRESH,
    CLOCK_SKEW_ALLOWED, UNCONFIRMED_ROOMS_MAX,
};
use crate::domain::{now_ms, EventKind, InstanceId, Notice, Participant, RoomHash, StoredMessage};
use crate::telemetry::metrics;

/// Where and how to reach NATS: `BUS_URL`, `BUS_TLS_CA`, `BUS_CREDS`.
#[derive(Debug, Clone)]
pub struct NatsSettings {
    pub servers: Vec<ServerAddr>,
    pub tls_ca: Option<PathBuf>,
    pub creds: Option<PathBuf>,
}

impl NatsSettings {
    /// Parses `BUS_URL`: one or more `nats://` or `tls://` URLs, comma-separated, credentials
    /// (`USER:PASSWORD@` or a token as `TOKEN@`) in the first that has them.
    pub fn parse(urls: &str, tls_ca: Option<PathBuf>, creds: Option<PathBuf>) -> Result<Self, String> {
        let servers = urls
            .split(',')
            .map(str::trim)
            .filter(|url| !url.is_empty())
            .map(|url| {
                let scheme = url.split_once("://").map(|(scheme, _)| scheme);
                if !matches!(scheme, Some("nats" | "tls")) {
                    return Err("expected nats://HOST:PORT or tls://HOST:PORT, comma-separated".to_owned());
                }
                url.parse::<ServerAddr>().map_err(|_| "not a valid NATS server URL".to_owned())
            })
            .collect::<Result<Vec<_>, _>>()?;
        if servers.is_empty() {
            return Err("no NATS server given".to_owned());
        }
        if tls_ca.is_some() && !servers.iter().any(ServerAddr::tls_required) {
            return Err("BUS_TLS_CA is set, but no server URL is tls://".to_owned());
        }
        Ok(Self { servers, tls_ca, creds })
    }

    fn requires_tls(&self) -> bool {
        self.servers.iter().any(ServerAddr::tls_required)
    }
}

/// The key of the subjects' hashes: a subkey of the oldest at-rest key this instance holds, so
/// every instance of a rolling key rotation's first step agrees (README, "Rotating the key").
pub struct SubjectKey(Zeroizing<[u8; 32]>);

/// The label of the subject key's derivation from the at-rest key.
const SUBJECT_KEY_LABEL: &[u8] = b"ephemeral-chat/v1/nats-subjects";

impl SubjectKey {
    pub fn new(keys: &KeyRing) -> Self {
        Self(keys.oldest().subkey(SUBJECT_KEY_LABEL))
    }

    fn hash(&self, parts: &[&[u8]], out: &mut [u8]) {
        app::crypto::primitives::hkdf_sha256(self.0.as_ref(), parts, out);
    }

    /// `ec.r.<hash>`: the room's subject.
    pub fn room_subject(&self, room: &RoomHash) -> String {
        let mut h = [0u8; 16];
        self.hash(&[b"room", &room.0], &mut h);
        format!("ec.r.{}", hex::encode(h))
    }

    /// `ec.all.<hash>`: where every instance of this deployment listens for "resync everything".
    pub fn all_subject(&self) -> String {
        let mut h = [0u8; 16];
        self.hash(&[b"all"], &mut h);
        format!("ec.all.{}", hex::encode(h))
    }

    /// What this instance registers as its bus: instances whose subject keys differ would
    /// publish where the other does not listen.
    pub fn identity(&self) -> BusIdentity {
        let mut h = [0u8; 8];
        self.hash(&[b"fingerprint"], &mut h);
        BusIdentity::Nats { fingerprint: hex::encode(h) }
    }
}

/// The subject an instance's probes go to (its second connection listens there).
fn probe_subject(instance: InstanceId) -> String {
    format!("ec.probe.{}", hex::encode(instance.0))
}

/// A message notice's message, as its instance stored it: carried to the room's other
/// instances (see "Carried messages" above).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Carried {
    pub message: StoredMessage,
    /// When it was stored: milliseconds since the Unix epoch, read before its insert began.
    pub stored_at: i64,
}

/// What the relay asks of the bus task, beside publishing.
enum Control {
    Follow(RoomHash),
    Unfollow(RoomHash),
    Settle(oneshot::Sender<()>),
    /// Publish everything queued, and answer once it has reached the server.
    Drain(oneshot::Sender<()>),
}

/// One event to publish, with the message its notice carries.
type Outgoing = (RoomHash, EventKind, Option<Box<Carried>>);

/// The relay's handle on the NATS bus task (inside an [`super::Outbox`]).
#[derive(Clone, Debug)]
pub struct Link {
    control: mpsc::UnboundedSender<Control>,
    publish: mpsc::Sender<Outgoing>,
    /// Rooms whose events could not be queued (the queue was full): told to resync once the
    /// task catches up.
    overflowed: Arc<Mutex<Overflow>>,
}

#[derive(Debug, Default)]
struct Overflow {
    rooms: HashSet<RoomHash>,
    everyone: bool,
}

impl std::fmt::Debug for Control {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Control")
    }
}

impl Link {
    pub(super) fn follow(&self, room: RoomHash) {
        let _ = self.control.send(Control::Follow(room));
    }

    pub(super) fn unfollow(&self, room: RoomHash) {
        let _ = self.control.send(Control::Unfollow(room));
    }

    pub(super) async fn settled(&self) {
        let (tx, rx) = oneshot::channel();
        if self.control.send(Control::Settle(tx)).is_ok() {
            // Bounded: with NATS unreachable a join goes on, and the reconnect resyncs it.
            let _ = tokio::time::timeout(BUS_SETTLE_WAIT, rx).await;
        }
    }

    pub(super) async fn drained(&self) {
        let (tx, rx) = oneshot::channel();
        if self.control.send(Control::Drain(tx)).is_ok() {
            // Bounded: a stopping server with NATS unreachable stops anyway; the survivors see
            // its registration go stale and resync its rooms (`relay::tasks::heartbeat`).
            let _ = tokio::time::timeout(BUS_SETTLE_WAIT, rx).await;
        }
    }

    pub(super) fn publish(&self, room: RoomHash, kind: EventKind, carried: Option<Box<Carried>>) {
        if self.publish.try_send((room, kind, carried)).is_err() {
            let mut overflow = self.overflowed.lock().unwrap_or_else(PoisonError::into_inner);
            if overflow.rooms.len() < UNCONFIRMED_ROOMS_MAX {
                overflow.rooms.insert(room);
            } else {
                overflow.everyone = true;
            }
            metrics::counter!(metrics::BUS_DROPPED).increment(1);
        }
    }
}

/// Connects (in the background, retrying: the relay serves meanwhile, as with PostgreSQL's
/// LISTEN) and returns the link and the task that runs the bus, which passes what it hears to
/// `events`. Fails only for settings that can never work (an unreadable credentials file).
pub async fn start(
    settings: &NatsSettings,
    key: SubjectKey,
    instance: InstanceId,
    events: mpsc::Sender<BusEvent>,
) -> anyhow::Result<(Link, impl std::future::Future<Output = ()>)> {
    let (nats_events_tx, nats_events) = mpsc::unbounded_channel();
    let options = connect_options(settings).await?.no_echo().event_callback(move |event| {
        let tx = nats_events_tx.clone();
        async move {
            let _ = tx.send(event);
        }
    });
    let client = options
        .connect(settings.servers.clone())
        .await
        .map_err(|err| anyhow::anyhow!("BUS_URL: cannot set up the NATS connection: {err}"))?;
    let prober = connect_options(settings)
        .await?
        .connect(settings.servers.clone())
        .await
        .map_err(|err| anyhow::anyhow!("BUS_URL: cannot set up the NATS connection: {err}"))?;
    let (control_tx, control) = mpsc::unbounded_channel();
    let (publish_tx, publishes) = mpsc::channel(BUS_PUBLISH_QUEUE);
    let overflowed = Arc::new(Mutex::new(Overflow::default()));
    let link = Link { control: control_tx, publish: publish_tx, overflowed: overflowed.clone() };
    let task = Task {
        statistics: client.statistics(),
        client,
        prober,
        key,
        instance,
        events,
        rooms: SelectAll::new(),
        following: HashMap::new(),
        follows_asked: VecDeque::new(),
        unconfirmed: HashSet::new(),
        confirming: HashSet::new(),
        owe_everyone: false,
        confirming_everyone: false,
        overflowed,
        connected: false,
        ever_connected: false,
        probes: 0,
        confirming_at: None,
        settling: Vec::new(),
    };
    Ok((link, task.run(control, publishes, nats_events)))
}

/// The settings both of an instance's connections share: servers' credentials and TLS, and
/// how they reconnect.
async fn connect_options(settings: &NatsSettings) -> anyhow::Result<ConnectOptions> {
    let mut options = ConnectOptions::new()
        .retry_on_initial_connect()
        .max_reconnects(None)
        .ping_interval(BUS_PING_INTERVAL)
        .connection_timeout(Duration::from_secs(5))
        .reconnect_delay_callback(|attempts| {
            Duration::from_millis(100u64.saturating_mul(1 << attempts.min(6))).min(BUS_MAX_RECONNECT_WAIT)
        });
    if let Some(creds) = &settings.creds {
        options = options
            .credentials_file(creds)
            .await
            .map_err(|err| anyhow::anyhow!("BUS_CREDS: cannot read {}: {err}", creds.display()))?;
    }
    if let Some(url) = settings.servers.iter().find(|s| s.has_user_pass()) {
        match (url.username(), url.password()) {
            (Some(user), Some(pass)) => options = options.user_and_password(user.to_owned(), pass.to_owned()),
            (Some(token), None) => options = options.token(token.to_owned()),
            _ => {}
        }
    }
    if let Some(ca) = &settings.tls_ca {
        if !ca.is_file() {
            anyhow::bail!("BUS_TLS_CA: {} is not a readable file", ca.display());
        }
        options = options.add_root_certificates(ca.clone());
    }
    if settings.requires_tls() {
        options = options.require_tls(true);
    }
    Ok(options)
}

/// The bus task's state.
struct Task {
    client: Client,
    /// The client's counts: `connects` tells which connection a subscription is in place on.
    statistics: Arc<Statistics>,
    /// The second connection, which hears the probes [`Link::settled`] sends on the first.
    prober: Client,
    key: SubjectKey,
    instance: InstanceId,
    events: mpsc::Sender<BusEvent>,
    /// The messages of every room someone is in here, each tagged with its room. Polling it
    /// polls only the subscriptions that have something (a map of streams would poll every
    /// room's on every wake-up: with thousands of rooms, most of an instance's time).
    rooms: SelectAll<BoxStream<'static, (RoomHash, Message)>>,
    /// Each room followed: where its subscription stands, and what ends its stream (dropping
    /// it ends the stream, which drops the subscriber, which unsubscribes).
    following: HashMap<RoomHash, (Following, oneshot::Sender<()>)>,
    /// Rooms waiting for a probe to confirm their subscription, by the probe number it must pass.
    follows_asked: VecDeque<(u64, RoomHash)>,
    /// Rooms published to since the last confirming probe was sent: their publishes are not
    /// known to have reached the server.
    unconfirmed: HashSet<RoomHash>,
    /// Rooms published to before the confirming probe in flight.
    confirming: HashSet<RoomHash>,
    /// Too many rooms to name went unconfirmed: on reconnecting, everyone resyncs everything.
    owe_everyone: bool,
    /// The same, for publishes before the confirming probe in flight.
    confirming_everyone: bool,
    overflowed: Arc<Mutex<Overflow>>,
    connected: bool,
    ever_connected: bool,
    /// Probes sent so far (each carries its number).
    probes: u64,
    /// The probe whose arrival confirms the publishes to `confirming`.
    confirming_at: Option<u64>,
    /// Joins waiting for their room's subscription: each for the probe numbered as given.
    settling: Vec<(u64, oneshot::Sender<()>)>,
}

/// Where a room's subscription stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Following {
    /// Asked for after probe number `n`: in place once a probe numbered above it comes back.
    Asked(u64),
    /// In place since then (milliseconds since the Unix epoch), on the connection counted as
    /// given (`Statistics::connects`: the client counts a connection before it reads from it).
    Since(i64, u64),
}

impl Task {
    async fn run(
        mut self,
        mut control: mpsc::UnboundedReceiver<Control>,
        mut publishes: mpsc::Receiver<Outgoing>,
        mut nats_events: mpsc::UnboundedReceiver<Event>,
    ) {
        let subscribed = futures::future::try_join(
            self.client.subscribe(self.key.all_subject()),
            self.prober.subscribe(probe_subject(self.instance)),
        );
        let (mut all, mut probes) = match subscribed.await {
            Ok(subscribers) => subscribers,
            Err(err) => return tracing::error!("NATS bus: cannot subscribe: {err}"),
        };
        let mut confirm = tokio::time::interval(BUS_CONFIRM_INTERVAL);
        loop {
            tokio::select! {
                Some(command) = control.recv() => {
                    // A drain publishes everything queued before it was asked for; its probe,
                    // sent after them, then says they reached the server.
                    if let Control::Drain(_) = command {
                        while let Ok((room, kind, carried)) = publishes.try_recv() {
                            self.publish(room, kind, carried).await;
                        }
                    }
                    self.control(command).await;
                }
                Some((room, kind, carried)) = publishes.recv() => self.publish(room, kind, carried).await,
                Some((room, message)) = self.rooms.next() => {
                    metrics::counter!(metrics::BUS_RECEIVED).increment(1);
                    match decode(&message.payload) {
                        Some((notice, carried)) if notice.room == room && notice.instance != self.instance => {
                            let event = match carried {
                                Some(carried) if self.heard_all_since(&room, carried.stored_at) => {
                                    BusEvent::Stored(notice, Box::new(carried.message))
                                }
                                _ => BusEvent::Notice(notice),
                            };
                            if self.events.send(event).await.is_err() {
                                return;
                            }
                        }
                        Some(_) => {}
                        None => tracing::warn!("ignored a malformed event notice"),
                    }
                }
                Some(probe) = probes.next() => {
                    let heard: u64 = std::str::from_utf8(&probe.payload).ok().and_then(|n| n.parse().ok()).unwrap_or(0);
                    // Every probe up to this one is through, and the subscriptions before them.
                    let (through, waiting) = std::mem::take(&mut self.settling).into_iter().partition(|(n, _)| *n <= heard);
                    self.settling = waiting;
                    for (_, done) in through {
                        let _ = done.send(());
                    }
                    // And every publish before it reached the server.
                    if self.confirming_at.is_some_and(|n| n <= heard) {
                        self.confirming_at = None;
                        self.confirming.clear();
                        self.confirming_everyone = false;
                    }
                    self.follows_confirmed(heard);
                }
                Some(_) = all.next() => {
                    metrics::counter!(metrics::BUS_RECEIVED).increment(1);
                    if self.events.send(BusEvent::ResyncAll).await.is_err() {
                        return;
                    }
                }
                Some(event) = nats_events.recv() => {
                    if !self.on_event(event).await {
                        return;
                    }
                }
                _ = confirm.tick() => {
                    self.retell_overflow().await;
                    // A probe lost (sent before the second connection listened, or across a
                    // reconnect) is sent again, numbered after every join waiting.
                    self.settling.retain(|(_, done)| !done.is_closed());
                    if !self.settling.is_empty() || (self.connected && !self.follows_asked.is_empty()) {
                        self.probe().await;
                    }
                    // Publishes are confirmed by a probe sent after them; rooms whose probe has not
                    // come back by the next tick wait for that tick's probe.
                    if self.connected && (!self.unconfirmed.is_empty() || self.owe_everyone) {
                        self.confirming.extend(self.unconfirmed.drain());
                        self.confirming_everyone |= std::mem::take(&mut self.owe_everyone);
                        self.probe().await;
                        self.confirming_at = Some(self.probes);
                    }
                }
            }
        }
    }

    async fn control(&mut self, command: Control) {
        match command {
            Control::Follow(room) => {
                if self.following.contains_key(&room) {
                    return;
                }
                match self.client.subscribe(self.key.room_subject(&room)).await {
                    Ok(subscriber) => {
                        let (stop, stopped) = oneshot::channel();
                        self.rooms.push(subscriber.take_until(stopped).map(move |message| (room, message)).boxed());
                        self.following.insert(room, (Following::Asked(self.probes), stop));
                        self.follows_asked.push_back((self.probes, room));
                    }
                    // Only when the client is closed: nothing more will be heard anyway.
                    Err(err) => tracing::error!("NATS bus: cannot subscribe to a room: {err}"),
                }
            }
            // Its stream ends, and its subscriber goes with it: that unsubscribes.
            Control::Unfollow(room) => drop(self.following.remove(&room)),
            Control::Settle(done) | Control::Drain(done) => {
                self.probes += 1;
                self.settling.push((self.probes, done));
                self.send_probe().await;
            }
        }
    }

    /// Probe `heard` came back: the subscriptions asked for before it are in place, on the
    /// connection the client is on now (after a reconnect the client subscribes again before
    /// anything else it sends, so a probe from the connection before proves the new one too).
    fn follows_confirmed(&mut self, heard: u64) {
        let (now, connection) = (now_ms(), self.statistics.connects.load(Ordering::Relaxed));
        while let Some(&(asked, room)) = self.follows_asked.front().filter(|(asked, _)| *asked < heard) {
            self.follows_asked.pop_front();
            if let Some((state, _)) =
                self.following.get_mut(&room).filter(|(state, _)| *state == Following::Asked(asked))
            {
                *state = Following::Since(now, connection);
            }
        }
    }

    /// Every room's subscription is to be confirmed again (the connection changed).
    fn follows_unconfirmed(&mut self) {
        let asked = self.probes;
        for (room, (state, _)) in &mut self.following {
            *state = Following::Asked(asked);
            self.follows_asked.push_back((asked, *room));
        }
    }

    /// Whether this instance has heard every event of `room` since a message was stored at
    /// `stored_at` (milliseconds since the Unix epoch, by its instance's clock), and still
    /// remembers them: see "Carried messages" above.
    fn heard_all_since(&self, room: &RoomHash, stored_at: i64) -> bool {
        let connection = self.statistics.connects.load(Ordering::Relaxed);
        self.connected && heard_all(self.following.get(room).map(|(state, _)| *state), connection, now_ms(), stored_at)
    }

    /// A probe numbered after every join waiting.
    async fn probe(&mut self) {
        self.probes += 1;
        let newest = self.probes;
        self.settling.iter_mut().for_each(|(n, _)| *n = newest);
        self.send_probe().await;
    }

    async fn send_probe(&mut self) {
        let subject = probe_subject(self.instance);
        if let Err(err) = self.client.publish(subject, self.probes.to_string().into()).await {
            tracing::warn!("NATS bus: a probe failed: {err}");
        }
    }

    async fn publish(&mut self, room: RoomHash, kind: EventKind, carried: Option<Box<Carried>>) {
        let payload = encode(&Notice { instance: self.instance, room, kind }, carried.as_deref());
        match self.client.publish(self.key.room_subject(&room), payload.into()).await {
            Ok(()) => metrics::counter!(metrics::BUS_PUBLISHED).increment(1),
            Err(err) => tracing::warn!("NATS bus: a publish failed: {err}"),
        }
        if self.unconfirmed.len() < UNCONFIRMED_ROOMS_MAX {
            self.unconfirmed.insert(room);
        } else {
            self.owe_everyone = true;
        }
    }

    /// The client's connection events; `false` when the relay has stopped listening.
    async fn on_event(&mut self, event: Event) -> bool {
        let told = match event {
            Event::Connected => {
                let again = self.ever_connected;
                self.ever_connected = true;
                self.connected = true;
                let told = self.events.send(BusEvent::Listening { again }).await;
                if again {
                    tracing::info!("NATS bus: connected again");
                    self.follows_unconfirmed();
                    self.probe().await;
                    self.retell().await;
                } else {
                    tracing::info!("NATS bus: connected");
                }
                told
            }
            Event::Disconnected => {
                self.connected = false;
                tracing::warn!("NATS bus: disconnected (reconnecting)");
                self.events.send(BusEvent::Lost).await
            }
            // The client dropped messages for a subscription that fell behind.
            Event::SlowConsumer(_) => {
                tracing::warn!("NATS bus: fell behind and dropped events; resyncing every room here");
                self.events.send(BusEvent::ResyncAll).await
            }
            Event::Closed => {
                tracing::error!("NATS bus: the connection closed for good");
                Ok(())
            }
            other => {
                tracing::warn!("NATS bus: {other}");
                Ok(())
            }
        };
        told.is_ok()
    }

    /// After a reconnect: the rooms this instance may have failed to tell, and those it is in,
    /// are asked to resync (everyone, if they are too many to name).
    async fn retell(&mut self) {
        let mut rooms: HashSet<RoomHash> = self.unconfirmed.drain().chain(self.confirming.drain()).collect();
        rooms.extend(self.following.keys().copied());
        self.confirming_at = None;
        let everyone = std::mem::take(&mut self.owe_everyone) | std::mem::take(&mut self.confirming_everyone);
        self.tell_to_resync(rooms, everyone).await;
    }

    /// Rooms whose events the relay could not queue are told to resync, once connected.
    async fn retell_overflow(&mut self) {
        if !self.connected {
            return;
        }
        let (rooms, everyone) = {
            let mut overflow = self.overflowed.lock().unwrap_or_else(PoisonError::into_inner);
            (std::mem::take(&mut overflow.rooms), std::mem::take(&mut overflow.everyone))
        };
        if !rooms.is_empty() || everyone {
            self.tell_to_resync(rooms, everyone).await;
        }
    }

    async fn tell_to_resync(&mut self, rooms: HashSet<RoomHash>, everyone: bool) {
        if everyone {
            if let Err(err) = self.client.publish(self.key.all_subject(), "resync".into()).await {
                tracing::warn!("NATS bus: a publish failed: {err}");
            }
            return;
        }
        for room in rooms {
            self.publish(room, EventKind::Resync, None).await;
        }
    }
}

/// The rule of [`Task::heard_all_since`], for a room whose subscription stands as `state`, the
/// client's connection counted as `connection`, at `now`, of a message stored at `stored_at`.
fn heard_all(state: Option<Following>, connection: u64, now: i64, stored_at: i64) -> bool {
    let skew = i64::try_from(CLOCK_SKEW_ALLOWED.as_millis()).unwrap_or(i64::MAX);
    let fresh = i64::try_from(CARRIED_FRESH.as_millis()).unwrap_or(i64::MAX);
    let age = now.saturating_sub(stored_at);
    let subscribed_before = matches!(
        state,
        Some(Following::Since(since, on)) if on == connection && since.saturating_add(skew) <= stored_at
    );
    subscribed_before && (-skew..=fresh).contains(&age)
}

/// A notice as NATS carries it: its text (`Notice::encode`), and for a message notice that
/// carries its message, a line break and the message: when it was stored and its expiry (8 bytes
/// each, big-endian), its sender (32), its recipients' count (2) and each recipient (32 each),
/// then its body sealed at rest, to the end.
pub fn encode(notice: &Notice, carried: Option<&Carried>) -> Vec<u8> {
    let mut payload = notice.encode().into_bytes();
    if let Some(Carried { message, stored_at }) = carried.filter(|_| matches!(notice.kind, EventKind::Message { .. })) {
        let Ok(count) = u16::try_from(message.recipients.len()) else {
            return payload; // more recipients than a room holds: sent without it
        };
        payload.reserve(1 + 8 + 8 + 32 + 2 + 32 * message.recipients.len() + message.body.len());
        payload.push(b'\n');
        payload.extend_from_slice(&stored_at.to_be_bytes());
        payload.extend_from_slice(&message.expires_at.to_be_bytes());
        payload.extend_from_slice(&message.sender.0);
        payload.extend_from_slice(&count.to_be_bytes());
        message.recipients.iter().for_each(|who| payload.extend_from_slice(&who.0));
        payload.extend_from_slice(&message.body);
    }
    payload
}

/// The inverse of [`encode`]; `None` for anything else (a message that is not a message
/// notice's, or cut short, is refused with its notice).
fn decode(payload: &[u8]) -> Option<(Notice, Option<Carried>)> {
    let (text, rest) = match payload.iter().position(|&b| b == b'\n') {
        Some(at) => (&payload[..at], Some(&payload[at + 1..])),
        None => (payload, None),
    };
    let notice = Notice::decode(std::str::from_utf8(text).ok()?)?;
    let Some(mut rest) = rest else {
        return Some((notice, None));
    };
    if !matches!(notice.kind, EventKind::Message { .. }) {
        return None;
    }
    let stored_at = i64::from_be_bytes(take(&mut rest)?);
    let expires_at = i64::from_be_bytes(take(&mut rest)?);
    let sender = Participant(take(&mut rest)?);
    let count = u16::from_be_bytes(take(&mut rest)?);
    let recipients = (0..count).map(|_| take(&mut rest).map(Participant)).collect::<Option<Vec<_>>>()?;
    let message = StoredMessage { body: rest.to_vec(), sender, recipients, expires_at };
    Some((notice, Some(Carried { message, stored_at })))
}

/// The next `N` bytes of `rest`, which moves past them.
fn take<const N: usize>(rest: &mut &[u8]) -> Option<[u8; N]> {
    let (head, tail) = rest.split_first_chunk::<N>()?;
    *rest = tail;
    Some(*head)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::at_rest::ServerKey;

    fn key(hex: char) -> SubjectKey {
        SubjectKey::new(&KeyRing::new(ServerKey::from_hex(&hex.to_string().repeat(64)).unwrap(), None).unwrap())
    }

    #[test]
    fn subjects_are_keyed_and_name_no_room_hash() {
        let room = RoomHash([7; 32]);
        let subject = key('a').room_subject(&room);
        assert!(subject.starts_with("ec.r.") && subject.len() == 5 + 32, "{subject}");
        assert!(!subject.contains(&hex::encode(room.0)[..16]));
        assert_eq!(subject, key('a').room_subject(&room), "the same on every instance");
        assert_ne!(subject, key('b').room_subject(&room), "another key, another subject");
        assert_ne!(subject, key('a').room_subject(&RoomHash([8; 32])));
        assert_ne!(key('a').identity(), key('b').identity());
        assert_ne!(key('a').all_subject(), key('b').all_subject());
    }

    #[test]
    fn bus_urls_are_checked() {
        let ok = NatsSettings::parse("nats://127.0.0.1:4222, nats://user:pw@10.0.0.2:4222", None, None).unwrap();
        assert_eq!(ok.servers.len(), 2);
        assert!(!ok.requires_tls());
        assert!(NatsSettings::parse("tls://nats.example:4222", None, None).unwrap().requires_tls());
        for bad in ["", " , ", "http://127.0.0.1:4222", "127.0.0.1:4222", "nats://[::1"] {
            assert!(NatsSettings::parse(bad, None, None).is_err(), "{bad:?}");
        }
        assert!(NatsSettings::parse("nats://127.0.0.1:4222", Some("ca.pem".into()), None).is_err());
    }

    fn carried(recipients: usize) -> Carried {
        let message = StoredMessage {
            body: vec![9; 300],
            sender: Participant([1; 32]),
            recipients: (0..recipients).map(|n| Participant([n as u8 + 2; 32])).collect(),
            expires_at: 1_700_000_600_000,
        };
        Carried { message, stored_at: 1_700_000_000_000 }
    }

    #[test]
    fn a_message_notice_carries_its_message_and_others_carry_nothing() {
        let (instance, room, id) = (InstanceId([7; 16]), RoomHash([9; 32]), crate::domain::MessageId([3; 16]));
        let notice = Notice { instance, room, kind: EventKind::Message { id, chunks: 2 } };
        for recipients in [0, 1, 5] {
            let with = carried(recipients);
            assert_eq!(decode(&encode(&notice, Some(&with))), Some((notice, Some(with))));
        }
        assert_eq!(decode(&encode(&notice, None)), Some((notice, None)));
        // Without a message, the payload is the notice's text as PostgreSQL's NOTIFY carries it.
        assert_eq!(encode(&notice, None), notice.encode().into_bytes());
        let typing = Notice { instance, room, kind: EventKind::Typing(true) };
        assert_eq!(encode(&typing, Some(&carried(1))), typing.encode().into_bytes(), "only a message's notice");
    }

    #[test]
    fn a_cut_or_misplaced_message_is_refused_with_its_notice() {
        let (instance, room, id) = (InstanceId([7; 16]), RoomHash([9; 32]), crate::domain::MessageId([3; 16]));
        let notice = Notice { instance, room, kind: EventKind::Message { id, chunks: 0 } };
        let whole = encode(&notice, Some(&carried(2)));
        let head = notice.encode().len() + 1;
        // Cut inside the times, the sender, the count or the recipients: refused.
        for cut in [head, head + 7, head + 16 + 31, head + 16 + 32 + 1, head + 16 + 32 + 2 + 63] {
            assert_eq!(decode(&whole[..cut]), None, "cut at {cut}");
        }
        // Cut inside the body: the body is what is left (the at-rest seal refuses it on a fetch).
        let short = decode(&whole[..whole.len() - 1]).unwrap().1.unwrap();
        assert_eq!(short.message.body.len(), 299);
        let mut typing = Notice { instance, room, kind: EventKind::Typing(true) }.encode().into_bytes();
        typing.extend_from_slice(&whole[head - 1..]);
        assert_eq!(decode(&typing), None, "a message after a notice that is not a message's");
        assert_eq!(decode(b"\n"), None);
        assert_eq!(decode(&[0xff, b' ', b'x']), None);
    }

    #[test]
    fn a_carried_message_passes_only_when_every_event_since_its_storing_was_heard() {
        let (skew, fresh) = (CLOCK_SKEW_ALLOWED.as_millis() as i64, CARRIED_FRESH.as_millis() as i64);
        let confirmed = 1_000_000;
        let state = Some(Following::Since(confirmed, 3));
        let stored = confirmed + skew;
        assert!(heard_all(state, 3, stored + 5, stored), "subscribed a skew's worth before its storing");
        assert!(heard_all(state, 3, stored + fresh, stored), "arrived as late as allowed");
        assert!(heard_all(state, 3, stored - skew, stored), "its clock ahead, as far as allowed");
        assert!(!heard_all(state, 3, stored, stored - 1), "stored too soon after the subscription");
        assert!(!heard_all(state, 3, stored + fresh + 1, stored), "held up on its way");
        assert!(!heard_all(state, 3, stored - skew - 1, stored), "a clock too far ahead");
        assert!(!heard_all(state, 4, stored + 5, stored), "the connection changed since the confirmation");
        assert!(!heard_all(Some(Following::Asked(5)), 3, stored + 5, stored), "not confirmed");
        assert!(!heard_all(None, 3, stored + 5, stored), "not followed");
    }
}
