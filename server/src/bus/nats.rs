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

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_nats::{Client, ConnectOptions, Event, ServerAddr, Subscriber};
use futures::StreamExt as _;
use tokio::sync::{mpsc, oneshot};
use tokio_stream::StreamMap;
use zeroize::Zeroizing;

use super::{BusEvent, BusIdentity};
use crate::at_rest::KeyRing;
use crate::domain::bounds::{
    BUS_CONFIRM_INTERVAL, BUS_MAX_RECONNECT_WAIT, BUS_PING_INTERVAL, BUS_PUBLISH_QUEUE, BUS_SETTLE_WAIT,
    UNCONFIRMED_ROOMS_MAX,
};
use crate::domain::{EventKind, InstanceId, Notice, RoomHash};
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

/// What the relay asks of the bus task, beside publishing.
enum Control {
    Follow(RoomHash),
    Unfollow(RoomHash),
    Settle(oneshot::Sender<()>),
}

/// The relay's handle on the NATS bus task (inside an [`super::Outbox`]).
#[derive(Clone, Debug)]
pub struct Link {
    control: mpsc::UnboundedSender<Control>,
    publish: mpsc::Sender<(RoomHash, EventKind)>,
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

    pub(super) fn publish(&self, room: RoomHash, kind: EventKind) {
        if self.publish.try_send((room, kind)).is_err() {
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
        client,
        prober,
        key,
        instance,
        events,
        rooms: StreamMap::new(),
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
    /// The second connection, which hears the probes [`Link::settled`] sends on the first.
    prober: Client,
    key: SubjectKey,
    instance: InstanceId,
    events: mpsc::Sender<BusEvent>,
    /// The subscription of every room someone is in here.
    rooms: StreamMap<RoomHash, Subscriber>,
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

impl Task {
    async fn run(
        mut self,
        mut control: mpsc::UnboundedReceiver<Control>,
        mut publishes: mpsc::Receiver<(RoomHash, EventKind)>,
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
                Some(command) = control.recv() => self.control(command).await,
                Some((room, kind)) = publishes.recv() => self.publish(room, kind).await,
                Some((room, message)) = self.rooms.next() => {
                    metrics::counter!(metrics::BUS_RECEIVED).increment(1);
                    let notice = std::str::from_utf8(&message.payload).ok().and_then(Notice::decode);
                    match notice {
                        Some(notice) if notice.room == room && notice.instance != self.instance => {
                            if self.events.send(BusEvent::Notice(notice)).await.is_err() {
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
                    if !self.settling.is_empty() {
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
                if self.rooms.contains_key(&room) {
                    return;
                }
                match self.client.subscribe(self.key.room_subject(&room)).await {
                    Ok(subscriber) => {
                        self.rooms.insert(room, subscriber);
                    }
                    // Only when the client is closed: nothing more will be heard anyway.
                    Err(err) => tracing::error!("NATS bus: cannot subscribe to a room: {err}"),
                }
            }
            // Dropping the subscriber unsubscribes.
            Control::Unfollow(room) => drop(self.rooms.remove(&room)),
            Control::Settle(done) => {
                self.probes += 1;
                self.settling.push((self.probes, done));
                self.send_probe().await;
            }
        }
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

    async fn publish(&mut self, room: RoomHash, kind: EventKind) {
        let notice = Notice { instance: self.instance, room, kind }.encode();
        match self.client.publish(self.key.room_subject(&room), notice.into()).await {
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
        rooms.extend(self.rooms.keys().copied());
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
            self.publish(room, EventKind::Resync).await;
        }
    }
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
}
