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
use server::domain::{InstanceId, NewMessage, Participant, RoomHash};
use server::store::Store;
use sqlx::Connection as _;

use super::helpers::{spawn_app_on, Backend, TestApp, TestDatabase, TestRoom, FRAME_TIMEOUT, TEST_KEY};
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_an_instance_committed_and_died_before_publishing_is_delivered() {
    let nats = NatsServer::start();
    let db = Arc::new(TestDatabase::new(Backend::Postgres));
    let b = spawn_app_on(db.clone(), &["--bus-url", &nats.url()]).await;
    let room = TestRoom::new();
    let (mut bob, _, _) = b.joined(&room).await;
    let room_hash = RoomHash(room.keys.room_id.storage_hash());

    // Another instance, X, stores a message for Bob and never publishes it: it died.
    let database =
        server::config::Config::try_parse_from(["server", "--database-url", &db.url]).unwrap().database().unwrap();
    let x = InstanceId::generate();
    let (store_x, _) = Store::connect(&database, x, false).await.unwrap();
    let keys = server::at_rest::KeyRing::new(server::at_rest::ServerKey::from_hex(TEST_KEY).unwrap(), None).unwrap();
    let bus = server::bus::nats::SubjectKey::new(&keys).identity().as_text();
    assert_eq!(store_x.register(&bus).await.unwrap(), Vec::<String>::new(), "X runs beside B");
    let sender = Participant([7; 32]);
    store_x.join(&room_hash, &sender, 1, 10).await.unwrap().expect("admitted");
    let (id, sealed) = room.seal("committed, never published", SenderId::generate());
    let body = keys.seal(&room_hash.0, &id, &sealed);
    let message = NewMessage {
        room: &room_hash,
        id: &id,
        body: &body,
        ttl: Duration::from_secs(600),
        sender: &sender,
        max_pending: 100,
        chunks: 0,
    };
    store_x.insert(message).await.unwrap();
    let quiet = tokio::time::timeout(Duration::from_millis(500), bob.recv_skipping_presence()).await;
    assert!(quiet.is_err(), "heard before X died: {quiet:?}");

    // X's heartbeat stops: B sees it within a heartbeat and resyncs the rooms X served.
    let stopped = server::domain::now_ms() - 20_000;
    let sql = format!("UPDATE instances SET heartbeat_at = {stopped} WHERE instance = '\\x{}'", hex::encode(x.0));
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
    fetch_and_view(&mut bob, &room, &id).await;
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
