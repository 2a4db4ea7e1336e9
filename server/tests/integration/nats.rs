//! Instances over one PostgreSQL database with their room events on NATS (`BUS_URL`), and the
//! rejoin gap closed on both buses. Each NATS test
//! runs a nats-server of its own (Debian's `nats-server`, on a free port), so it can stop and
//! restart it without disturbing anything else on the machine.

use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use app::crypto::SenderId;
use app::protocol::{ClientFrame, ServerFrame};
use clap::Parser as _;
use server::bus::nats::{encode, Carried, SubjectKey};
use server::domain::bounds::{CARRIED_FRESH, CLOCK_SKEW_ALLOWED};
use server::domain::{
    EventKind, Inserted, InstanceId, MessageId, NewMessage, Notice, Participant, RoomHash, StoredMessage,
};
use server::store::Store;
use sqlx::Connection as _;

use super::helpers::{spawn_app_on, Backend, TestApp, TestDatabase, TestRoom, FRAME_TIMEOUT, TEST_KEY};
use super::process::ServerProcess;
use super::recipients::{fetch_and_view, until};

/// A nats-server of the test's own.
pub struct NatsServer {
    child: Child,
    pub port: u16,
}

impl NatsServer {
    pub fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        Self::start_on(port)
    }

    fn start_on(port: u16) -> Self {
        let child = Command::new(std::env::var("NATS_SERVER_BIN").unwrap_or_else(|_| "nats-server".into()))
            .args(["-a", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server runs (make setup installs Debian's nats-server)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "nats-server did not start listening");
            std::thread::sleep(Duration::from_millis(20));
        }
        Self { child, port }
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Stops it hard (every connection cut, nothing kept), as a crash would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts it again on the same port.
    pub fn restart(&mut self) {
        self.kill();
        *self = Self::start_on(self.port);
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Two in-process instances over one fresh PostgreSQL database, their events on `nats`.
async fn two_instances(nats: &NatsServer) -> (TestApp, TestApp) {
    let db = Arc::new(TestDatabase::new(Backend::Postgres));
    let url = nats.url();
    let a = spawn_app_on(db.clone(), &["--bus-url", &url]).await;
    let b = spawn_app_on(db, &["--bus-url", &url]).await;
    (a, b)
}

/// Waits until `relay` hears the bus again after it was cut.
async fn reconnected(app: &TestApp, before: u64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while app.relay.bus_reconnects.load(Ordering::Relaxed) <= before {
        assert!(Instant::now() < deadline, "the instance did not reconnect to NATS");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_on_two_instances_share_presence_typing_messages_and_receipts_over_nats() {
    let nats = NatsServer::start();
    let (a, b) = two_instances(&nats).await;
    // Nothing goes over LISTEN/NOTIFY: a listener on the relay's channel hears nothing.
    let mut listener = sqlx::postgres::PgListener::connect(&a.db.url).await.unwrap();
    listener.listen(server::domain::CHANNEL).await.unwrap();

    super::instances::share_presence_typing_messages_and_receipts(&a, &b).await;
    let heard = tokio::time::timeout(Duration::from_millis(300), listener.recv()).await;
    assert!(heard.is_err(), "a NOTIFY was sent: {heard:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_hears_only_the_rooms_it_serves() {
    let nats = NatsServer::start();
    let (a, b) = two_instances(&nats).await;
    // A room wholly on B, busy: A hears none of it.
    let on_b = TestRoom::new();
    let (mut sender, _, _) = b.joined(&on_b).await;
    let (mut receiver, _, _) = b.joined(&on_b).await;
    for n in 0..5 {
        let (id, _) = sender.send_message(&on_b, &format!("only on B {n}")).await;
        until(&mut receiver, |f| matches!(f, ServerFrame::Message { .. })).await;
        fetch_and_view(&mut receiver, &on_b, &id).await;
        until(&mut sender, |f| matches!(f, ServerFrame::Deleted { .. })).await;
    }
    assert_eq!(a.relay.bus_heard.load(Ordering::Relaxed), 0, "A heard a room nobody there is in");
    assert_eq!(b.relay.bus_heard.load(Ordering::Relaxed), 0, "B heard its own events back");

    // A room on both: each hears the other's events of it.
    let shared = TestRoom::new();
    let (mut alice, _, _) = a.joined(&shared).await;
    let (mut bob, _, _) = b.joined(&shared).await;
    until(&mut alice, |f| *f == ServerFrame::Presence { participants: 2 }).await;
    let (id, _) = alice.send_message(&shared, "both").await;
    until(&mut bob, |f| matches!(f, ServerFrame::Message { .. })).await;
    fetch_and_view(&mut bob, &shared, &id).await;
    until(&mut alice, |f| matches!(f, ServerFrame::Deleted { .. })).await;
    assert!(a.relay.bus_heard.load(Ordering::Relaxed) >= 2, "A heard B's join and the burn");
    assert!(b.relay.bus_heard.load(Ordering::Relaxed) >= 1, "B heard the message");

    // Once everyone on A has left the shared room, A hears no more of it.
    drop(alice);
    until(&mut bob, |f| *f == ServerFrame::Presence { participants: 1 }).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = a.relay.bus_heard.load(Ordering::Relaxed);
    bob.send(&ClientFrame::Typing { active: true }).await;
    let (_, _) = bob.send_message(&shared, "nobody on A").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(a.relay.bus_heard.load(Ordering::Relaxed), before, "A still subscribed after its last participant left");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_lost_while_nats_restarts() {
    let mut nats = NatsServer::start();
    let (a, b) = two_instances(&nats).await;
    let room = TestRoom::new();
    let (mut alice, _, _) = a.joined(&room).await;
    let (mut bob, _, _) = b.joined(&room).await;
    until(&mut alice, |f| *f == ServerFrame::Presence { participants: 2 }).await;
    let (a_before, b_before) =
        (a.relay.bus_reconnects.load(Ordering::Relaxed), b.relay.bus_reconnects.load(Ordering::Relaxed));

    // Sent while NATS is down: stored, and its publish goes nowhere.
    nats.kill();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (id, _) = alice.send_message(&room, "sent while the bus was down").await;
    nats.restart();
    reconnected(&a, a_before).await;
    reconnected(&b, b_before).await;

    // Bob hears of it (a resync after the reconnect), opens it, and Alice hears the burn.
    let notice = ServerFrame::Message { message_id: id.to_hex(), chunks: 0 };
    assert_eq!(until(&mut bob, |f| matches!(f, ServerFrame::Message { .. })).await, notice);
    fetch_and_view(&mut bob, &room, &id).await;
    let deleted = ServerFrame::Deleted { message_id: id.to_hex() };
    assert_eq!(until(&mut alice, |f| matches!(f, ServerFrame::Deleted { .. })).await, deleted);
    assert_eq!(a.row_count().await, 0);

    // And the bus works as before.
    let (id, _) = alice.send_message(&room, "after").await;
    let notice = ServerFrame::Message { message_id: id.to_hex(), chunks: 0 };
    assert_eq!(until(&mut bob, |f| matches!(f, ServerFrame::Message { .. })).await, notice);
}

/// Another instance over the same database, played by the test: it stores messages as an
/// instance would, and publishes (or not) what an instance would publish.
struct Elsewhere {
    instance: InstanceId,
    store: Store,
    keys: server::at_rest::KeyRing,
    /// Its participant in the rooms it entered.
    sender: Participant,
}

impl Elsewhere {
    /// Registered on the NATS bus beside the test's instances.
    async fn beside(db: &TestDatabase) -> Self {
        let database =
            server::config::Config::try_parse_from(["server", "--database-url", &db.url]).unwrap().database().unwrap();
        let instance = InstanceId::generate();
        let (store, _) = Store::connect(&database, instance, false).await.unwrap();
        let keys =
            server::at_rest::KeyRing::new(server::at_rest::ServerKey::from_hex(TEST_KEY).unwrap(), None).unwrap();
        let bus = SubjectKey::new(&keys).identity().as_text();
        assert_eq!(store.register(&bus).await.unwrap(), Vec::<String>::new(), "it runs beside the others");
        Self { instance, store, keys, sender: Participant([7; 32]) }
    }

    /// Its participant joins `room`.
    async fn enter(&self, room: &TestRoom) {
        let room = RoomHash(room.keys.room_id.storage_hash());
        self.store.join(&room, &self.sender, 1, 10).await.unwrap().expect("admitted");
    }

    /// Stores a message in `room` from its participant, as a send would: the message as
    /// stored, and when (read before the insert).
    async fn store(&self, room: &TestRoom, text: &str) -> (MessageId, Carried) {
        let room_hash = RoomHash(room.keys.room_id.storage_hash());
        let (id, sealed) = room.seal(text, SenderId::generate());
        let body = self.keys.seal(&room_hash.0, &id, &sealed);
        let stored_at = server::domain::now_ms();
        let message = NewMessage {
            room: &room_hash,
            id: &id,
            body: &body,
            ttl: Duration::from_secs(600),
            sender: &self.sender,
            max_pending: 100,
            chunks: 0,
        };
        let Inserted::New { recipients, expires_at } = self.store.insert(message).await.unwrap() else {
            panic!("not stored")
        };
        (id, Carried { message: StoredMessage { body, sender: self.sender, recipients, expires_at }, stored_at })
    }

    /// Publishes the message's notice on `nats`, carrying `carried`.
    async fn publish(&self, nats: &async_nats::Client, room: &TestRoom, id: MessageId, carried: &Carried) {
        let room_hash = RoomHash(room.keys.room_id.storage_hash());
        let notice = Notice { instance: self.instance, room: room_hash, kind: EventKind::Message { id, chunks: 0 } };
        let subject = SubjectKey::new(&self.keys).room_subject(&room_hash);
        nats.publish(subject, encode(&notice, Some(carried)).into()).await.unwrap();
        nats.flush().await.unwrap();
    }

    /// Stores `text` in `room`, publishes its notice carrying the message as `change` leaves it,
    /// and waits for `client` to hear of it. Returns the message's id and the notice's age (by
    /// the storing time it carried) once heard: at least its age when the relay judged it.
    async fn send_carried(
        &self,
        nats: &async_nats::Client,
        room: &TestRoom,
        client: &mut super::helpers::Client,
        text: &str,
        change: impl FnOnce(&mut Carried),
    ) -> (MessageId, i64) {
        let (id, mut carried) = self.store(room, text).await;
        change(&mut carried);
        self.publish(nats, room, id, &carried).await;
        heard(client, id).await;
        (id, server::domain::now_ms() - carried.stored_at)
    }
}

/// Waits for `client` to hear of message `id`.
async fn heard(client: &mut super::helpers::Client, id: MessageId) {
    let notice = ServerFrame::Message { message_id: id.to_hex(), chunks: 0 };
    assert_eq!(until(client, |f| matches!(f, ServerFrame::Message { .. })).await, notice);
}

/// Fetches and views message `id` as `client`, and waits until the relay has burned it.
async fn view_and_burn(client: &mut super::helpers::Client, room: &TestRoom, id: MessageId) {
    fetch_and_view(client, room, &id).await;
    let deleted = ServerFrame::Deleted { message_id: id.to_hex() };
    until(client, |f| *f == deleted).await;
}

/// Whether a carried notice heard `age` ms after its storing shows what a check needs: that it
/// came within [`CARRIED_FRESH`]. A machine too loaded for that (a test suite beside it) gets
/// another attempt, `attempt` being this one's number, up to five.
fn fresh_enough(age: i64, attempt: u32) -> bool {
    let fresh = age < CARRIED_FRESH.as_millis() as i64;
    assert!(
        fresh || attempt < 5,
        "the machine was too slow for this check five times: the last notice came {age} ms after its storing"
    );
    fresh
}

/// A message another instance's notice carries is held here for its fetches (which then read
/// no row), but only when this instance has heard every event of the room since the message
/// was stored: the room's subscription in place before it, and the notice fresh. The other
/// instance is the test, publishing as one would. Each check that needs the notice fresh is
/// tried again when the machine was too slow for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_carried_message_is_held_only_when_no_event_since_its_storing_was_missed() {
    let nats = NatsServer::start();
    let db = Arc::new(TestDatabase::new(Backend::Postgres));
    let b = spawn_app_on(db.clone(), &["--bus-url", &nats.url()]).await;
    let client = async_nats::connect(nats.url()).await.unwrap();
    let held = |b: &TestApp| (b.relay.hub.carried_held(), b.relay.hub.held_bytes());

    // Stored before the room's subscription here was in place (a burn before it may have been
    // missed): not held. Each attempt a room, and so a subscription, of its own.
    let x = Elsewhere::beside(&db).await;
    let mut attempt = 0;
    let (room, mut bob) = loop {
        attempt += 1;
        let room = TestRoom::new();
        x.enter(&room).await;
        let mut bob = b.client().await;
        let before_join = server::domain::now_ms();
        bob.join(&room).await;
        let text = "stored before the subscription";
        let (first, age) = x.send_carried(&client, &room, &mut bob, text, |c| c.stored_at = before_join - 100).await;
        assert_eq!(held(&b), (0, 0));
        view_and_burn(&mut bob, &room, first).await;
        if fresh_enough(age, attempt) {
            break (room, bob);
        }
    };

    // Stored after the subscription, but the notice held up on its way (5 s): not held.
    tokio::time::sleep(CLOCK_SKEW_ALLOWED * 2).await;
    let (late, _) = x.send_carried(&client, &room, &mut bob, "held up", |c| c.stored_at -= 5_000).await;
    assert_eq!(held(&b), (0, 0));
    view_and_burn(&mut bob, &room, late).await;

    // Stored after the subscription, and fresh: held, fetched from memory, released with the
    // burn.
    for attempt in 1.. {
        let before = b.relay.hub.carried_held();
        let (fresh, age) = x.send_carried(&client, &room, &mut bob, "fresh", |_| {}).await;
        let (carried_held, held_bytes) = held(&b);
        view_and_burn(&mut bob, &room, fresh).await;
        assert_eq!((b.relay.hub.held_bytes(), b.row_count().await), (0, 0));
        if fresh_enough(age, attempt) {
            assert_eq!(carried_held, before + 1);
            assert!(held_bytes > 0);
            break;
        }
    }

    // A carried copy damaged on its way is held, but a fetch that cannot open it reads the row
    // instead: the row is neither purged nor lost.
    for attempt in 1.. {
        let before = b.relay.hub.carried_held();
        let damage = |c: &mut Carried| *c.message.body.last_mut().unwrap() ^= 1;
        let (damaged, age) = x.send_carried(&client, &room, &mut bob, "damaged on its way", damage).await;
        let carried_held = b.relay.hub.carried_held();
        view_and_burn(&mut bob, &room, damaged).await;
        assert_eq!((b.relay.hub.held_bytes(), b.row_count().await), (0, 0));
        if fresh_enough(age, attempt) {
            assert_eq!(carried_held, before + 1);
            break;
        }
    }
}

/// A server stopping gracefully keeps its participants (they may reconnect within their grace
/// period), and the other instances' counts drop at once, on either bus.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_stopping_is_seen_in_the_other_instances_count() {
    for nats in [None, Some(NatsServer::start())] {
        let db = TestDatabase::new(Backend::Postgres);
        let url = nats.as_ref().map(NatsServer::url);
        let mut env = vec![("DATABASE_URL", db.url.as_str()), ("ENCRYPTION_KEY", TEST_KEY)];
        env.extend(url.as_deref().map(|url| ("BUS_URL", url)));
        let log = |name: &str| db.dir.path().join(name);
        let mut stopping = ServerProcess::start(&env, log("stopping.log")).await;
        let staying = ServerProcess::start(&env, log("staying.log")).await;
        let room = TestRoom::new();
        let mut alice = stopping.client_from([127, 0, 0, 1]).await;
        alice.join(&room).await;
        let mut bob = staying.client_from([127, 0, 0, 1]).await;
        assert_eq!(bob.join(&room).await.0, 2);

        let status = stopping.terminate();
        assert!(status.success(), "{status}: {}", stopping.output_text());
        let counted = until(&mut bob, |f| matches!(f, ServerFrame::Presence { .. })).await;
        assert_eq!(counted, ServerFrame::Presence { participants: 1 }, "bus: {url:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_an_instance_committed_and_died_before_publishing_is_delivered() {
    let nats = NatsServer::start();
    let db = Arc::new(TestDatabase::new(Backend::Postgres));
    let b = spawn_app_on(db.clone(), &["--bus-url", &nats.url()]).await;
    let room = TestRoom::new();
    let (mut bob, _, _) = b.joined(&room).await;

    // Another instance, X, stores a message for Bob and never publishes it: it died.
    let x = Elsewhere::beside(&db).await;
    x.enter(&room).await;
    let (id, _) = x.store(&room, "committed, never published").await;
    let quiet = tokio::time::timeout(Duration::from_millis(500), bob.recv_skipping_presence()).await;
    assert!(quiet.is_err(), "heard before X died: {quiet:?}");

    // X's heartbeat stops: B sees it within a heartbeat and resyncs the rooms X served.
    let stopped = server::domain::now_ms() - 20_000;
    let sql =
        format!("UPDATE instances SET heartbeat_at = {stopped} WHERE instance = '\\x{}'", hex::encode(x.instance.0));
    assert_eq!(db.execute(&sql).await, 1);
    let notice = ServerFrame::Message { message_id: id.to_hex(), chunks: 0 };
    let heard = tokio::time::timeout(Duration::from_secs(10) + FRAME_TIMEOUT, async {
        loop {
            if let frame @ ServerFrame::Message { .. } = bob.recv_skipping_presence().await {
                return frame;
            }
        }
    })
    .await
    .expect("B resynced the room of the instance that died");
    assert_eq!(heard, notice);
    view_and_burn(&mut bob, &room, id).await;
    assert_eq!(b.row_count().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_on_different_buses_refuse_to_run_together() {
    let nats = NatsServer::start();
    let db = Arc::new(TestDatabase::new(Backend::Postgres));
    let _a = spawn_app_on(db.clone(), &["--bus-url", &nats.url()]).await;
    let refused = |extra: Vec<String>| {
        let db = db.clone();
        async move {
            let mut args: Vec<String> =
                ["server", "--port", "0", "--database-url", &db.url, "--site-root", "target/site"]
                    .iter()
                    .map(|s| s.to_string())
                    .collect();
            args.extend(extra);
            let config = server::config::Config::try_parse_from(args).unwrap();
            match server::startup::Application::build(config).await {
                Ok(_) => panic!("an instance on another bus started"),
                Err(err) => format!("{err:#}"),
            }
        }
    };
    let err = refused(vec!["--encryption-key".into(), TEST_KEY.into()]).await;
    assert!(err.contains("BUS_URL") && err.contains("NATS") && err.contains("LISTEN/NOTIFY"), "{err}");
    let other_key = "ff".repeat(32);
    let err = refused(vec!["--encryption-key".into(), other_key, "--bus-url".into(), nats.url()]).await;
    assert!(err.contains("ENCRYPTION_KEY"), "{err}");
    // The same bus and key is welcome.
    let _b = spawn_app_on(db, &["--bus-url", &nats.url()]).await;
}

/// The rejoin gap on the PostgreSQL bus: a participant moving to another instance locks its row
/// first, so an insert (or view) reading the room's participants at that moment is ordered with
/// it. Here a transaction holds the lock an insert takes; the rejoin waits for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejoin_waits_for_a_send_reading_the_participants_of_its_room() {
    let db = TestDatabase::new(Backend::Postgres);
    let database =
        server::config::Config::try_parse_from(["server", "--database-url", &db.url]).unwrap().database().unwrap();
    let (on_a, _) = Store::connect(&database, InstanceId::generate(), true).await.unwrap();
    let (on_b, _) = Store::connect(&database, InstanceId::generate(), true).await.unwrap();
    let room = RoomHash([3; 32]);
    let who = Participant([4; 32]);
    on_a.join(&room, &who, 1, 10).await.unwrap().expect("admitted on A");

    let mut sending = sqlx::PgConnection::connect(&db.url).await.unwrap();
    let tx = reading_participants(&mut sending, &room).await;
    let rejoin = tokio::spawn(async move { on_b.join(&room, &who, 2, 10).await.unwrap() });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!rejoin.is_finished(), "the rejoin did not wait for the send in flight");
    tx.commit().await.unwrap();
    let admitted = tokio::time::timeout(FRAME_TIMEOUT, rejoin).await.expect("the rejoin went on").unwrap();
    assert!(admitted.is_some());
    // A first join takes no such lock (there is no row), and neither does a heartbeat.
    let tx = reading_participants(&mut sending, &room).await;
    let newcomer = Participant([5; 32]);
    tokio::time::timeout(Duration::from_secs(2), on_a.join(&room, &newcomer, 3, 10)).await.unwrap().unwrap();
    tokio::time::timeout(Duration::from_secs(2), on_a.heartbeat()).await.unwrap().unwrap();
    tx.commit().await.unwrap();
}

/// A transaction holding the lock a send (or a view) takes on a room's participants.
async fn reading_participants<'c>(
    conn: &'c mut sqlx::PgConnection,
    room: &RoomHash,
) -> sqlx::Transaction<'c, sqlx::Postgres> {
    let mut tx = sqlx::Connection::begin(conn).await.unwrap();
    sqlx::query("SELECT 1 FROM participants WHERE room_hash = $1 FOR KEY SHARE")
        .bind(&room.0[..])
        .execute(&mut *tx)
        .await
        .unwrap();
    tx
}
