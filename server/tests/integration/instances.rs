//! Several instances over one PostgreSQL database: rooms span instances, an instance can die,
//! the LISTEN connection can drop. And SQLite, which is one instance per file, says so.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use app::protocol::{ClientFrame, ServerFrame};
use clap::Parser as _;
use sqlx::ConnectOptions as _;

use super::helpers::{spawn_app, spawn_app_on, Backend, TestApp, TestDatabase, TestRoom, FRAME_TIMEOUT, TEST_KEY};
use super::process::ServerProcess;
use super::recipients::{fetch_and_view, until};

/// Two in-process instances over one fresh PostgreSQL database.
async fn two_instances(extra: &[&str]) -> (TestApp, TestApp) {
    let db = Arc::new(TestDatabase::new(Backend::Postgres));
    let a = spawn_app_on(db.clone(), extra).await;
    let b = spawn_app_on(db, extra).await;
    (a, b)
}

/// Runs one statement on the test database's server, as its administrator.
async fn admin(db: &TestDatabase, sql: &str) {
    let admin = db.url.rsplit_once('/').map(|(base, _)| format!("{base}/postgres")).unwrap();
    let mut conn = admin.parse::<sqlx::postgres::PgConnectOptions>().unwrap().connect().await.unwrap();
    sqlx::query(sql).execute(&mut conn).await.unwrap();
}

fn database_name(db: &TestDatabase) -> String {
    db.url.rsplit_once('/').unwrap().1.to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_on_two_instances_share_presence_typing_messages_and_receipts() {
    let (a, b) = two_instances(&[]).await;
    share_presence_typing_messages_and_receipts(&a, &b).await;
}

/// A room spread over instances `a` and `b` (on either bus): presence, typing, a message, its
/// receipts and its burn are heard across them.
pub async fn share_presence_typing_messages_and_receipts(a: &TestApp, b: &TestApp) {
    let room = TestRoom::new();
    let (mut alice, participants, _) = a.joined(&room).await;
    assert_eq!(participants, 1);
    let (mut bob, participants, _) = b.joined(&room).await;
    assert_eq!(participants, 2, "the join on B counts the participant on A");
    assert_eq!(alice.recv().await, ServerFrame::Presence { participants: 2 });

    alice.send(&ClientFrame::Typing { active: true }).await;
    assert_eq!(bob.recv().await, ServerFrame::Typing { active: true });

    let (mut carol, participants, _) = b.joined(&room).await;
    assert_eq!(participants, 3);
    until(&mut alice, |f| *f == ServerFrame::Presence { participants: 3 }).await;
    until(&mut bob, |f| *f == ServerFrame::Presence { participants: 3 }).await;

    // Sent on A: its recipients are the participants on B.
    let (id, _) = alice.send_message(&room, "across instances").await;
    let notice = ServerFrame::Message { message_id: id.to_hex(), chunks: 0 };
    assert_eq!(bob.recv().await, notice);
    assert_eq!(carol.recv().await, notice);

    fetch_and_view(&mut bob, &room, &id).await;
    let receipt = ServerFrame::Receipt { message_id: id.to_hex(), viewed: 1, of: 2 };
    assert_eq!(until(&mut alice, |f| matches!(f, ServerFrame::Receipt { .. })).await, receipt, "heard on A");
    assert_eq!(a.row_count().await, 1);
    fetch_and_view(&mut carol, &room, &id).await;
    let deleted = ServerFrame::Deleted { message_id: id.to_hex() };
    assert_eq!(until(&mut alice, |f| matches!(f, ServerFrame::Deleted { .. })).await, deleted);
    assert_eq!(until(&mut bob, |f| matches!(f, ServerFrame::Deleted { .. })).await, deleted);
    assert_eq!(a.row_count().await, 0);

    // Leaving on B is heard on A.
    drop((bob, carol));
    until(&mut alice, |f| *f == ServerFrame::Presence { participants: 1 }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_room_counts_participants_on_every_instance() {
    let (a, b) = two_instances(&["--max-room-participants", "2"]).await;
    let room = TestRoom::new();
    let (_alice, _, _) = a.joined(&room).await;
    let (_bob, _, _) = b.joined(&room).await;
    let mut carol = a.client().await;
    carol.send(&ClientFrame::Join { room_id: room.keys.room_id.to_hex(), session: carol.session.clone() }).await;
    carol.expect_error(app::protocol::ErrorCode::RoomFull).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_instance_s_client_moves_to_the_other_and_its_vanished_peers_are_dropped() {
    let db = TestDatabase::new(Backend::Postgres);
    let env = [("DATABASE_URL", db.url.as_str()), ("ENCRYPTION_KEY", TEST_KEY), ("SESSION_GRACE", "2s")];
    let log = |name: &str| db.dir.path().join(name);
    let mut doomed = ServerProcess::start(&env, log("doomed.log")).await;
    let survivor = ServerProcess::start(&env, log("survivor.log")).await;
    let room = TestRoom::new();
    let mut bob = doomed.client_from([127, 0, 0, 1]).await;
    bob.join(&room).await;
    let mut carol = doomed.client_from([127, 0, 0, 1]).await;
    carol.join(&room).await;
    let mut alice = survivor.client_from([127, 0, 0, 1]).await;
    alice.join(&room).await;
    let (first, _) = alice.send_message(&room, "one").await;
    let (second, _) = alice.send_message(&room, "two").await;
    until(&mut bob, |f| *f == ServerFrame::Message { message_id: second.to_hex(), chunks: 0 }).await;

    doomed.kill9();
    // Bob's page reconnects, as the same participant, to the instance that is left.
    let session = bob.session.clone();
    let mut bob = survivor.client_from([127, 0, 0, 1]).await;
    bob.session = session;
    let (_, pending) = bob.join(&room).await;
    assert_eq!(pending, vec![first.to_hex(), second.to_hex()]);
    for id in [&first, &second] {
        fetch_and_view(&mut bob, &room, id).await;
        let receipt = ServerFrame::Receipt { message_id: id.to_hex(), viewed: 1, of: 2 };
        assert_eq!(until(&mut alice, |f| matches!(f, ServerFrame::Receipt { .. })).await, receipt);
    }
    // Carol was on the dead instance and never comes back: once its heartbeat is overdue (and
    // her grace period with it), the survivor drops her, and what only she had left to read
    // burns.
    let started = Instant::now();
    while !db.stored_bodies().await.is_empty() {
        assert!(started.elapsed() < Duration::from_secs(45), "the vanished participant was never dropped");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(started.elapsed() >= Duration::from_secs(5), "not before the heartbeat timeout");
    for id in [&first, &second] {
        let deleted = ServerFrame::Deleted { message_id: id.to_hex() };
        assert_eq!(until(&mut alice, |f| matches!(f, ServerFrame::Deleted { .. })).await, deleted);
    }
    assert!(db.stored_bodies().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_listen_connection_loses_no_notice() {
    let (a, b) = two_instances(&[]).await;
    let room = TestRoom::new();
    let (mut bob, _, _) = a.joined(&room).await;
    let (mut alice, _, _) = b.joined(&room).await;
    until(&mut bob, |f| *f == ServerFrame::Presence { participants: 2 }).await;

    // Cut every LISTEN connection and keep them from coming back while alice sends: the
    // notice of her message reaches no other instance.
    let name = database_name(&a.db);
    admin(&a.db, &format!("ALTER DATABASE \"{name}\" ALLOW_CONNECTIONS false")).await;
    admin(
        &a.db,
        &format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}' AND query LIKE 'LISTEN%'"
        ),
    )
    .await;
    // Deaf to the others' deletions, B holds nothing for fetches (`ws/held.rs`).
    let deadline = Instant::now() + FRAME_TIMEOUT;
    while b.relay.hub.is_holding() {
        assert!(Instant::now() < deadline, "B noticed the cut");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (id, _) = alice.send_message(&room, "sent while nobody listened").await;
    assert_eq!(b.relay.hub.held_bytes(), 0);
    admin(&a.db, &format!("ALTER DATABASE \"{name}\" ALLOW_CONNECTIONS true")).await;

    // A listens again and has its connections resync: bob hears of the message after all.
    let notice = ServerFrame::Message { message_id: id.to_hex(), chunks: 0 };
    assert_eq!(until(&mut bob, |f| matches!(f, ServerFrame::Message { .. })).await, notice);
    assert!(a.relay.bus_reconnects.load(Ordering::Relaxed) >= 1);
    // Once B listens again too (a `deleted` sent while it did not is not replayed: see the
    // README), the link works both ways.
    let deadline = Instant::now() + FRAME_TIMEOUT;
    while b.relay.bus_reconnects.load(Ordering::Relaxed) == 0 || !b.relay.hub.is_holding() {
        assert!(Instant::now() < deadline, "B listens again too, and holds messages again");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    fetch_and_view(&mut bob, &room, &id).await;
    let deleted = ServerFrame::Deleted { message_id: id.to_hex() };
    assert_eq!(until(&mut alice, |f| matches!(f, ServerFrame::Deleted { .. })).await, deleted);
}

/// `POSTGRES_POOL_SIZE` bounds the connections an instance holds to PostgreSQL, under a load
/// that would open more (eight rooms sending at once), and everything sent is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_holds_no_more_postgres_connections_than_its_pool_size() {
    let db = Arc::new(TestDatabase::new(Backend::Postgres));
    let app = spawn_app_on(db.clone(), &["--postgres-pool-size", "2"]).await;
    let rooms = 8;
    let messages = 10;
    let mut senders = Vec::new();
    let mut receivers = Vec::new();
    for _ in 0..rooms {
        let room = TestRoom::new();
        let (sender, _, _) = app.joined(&room).await;
        receivers.push(app.joined(&room).await.0);
        senders.push((room, sender));
    }
    // The instance's connections (its pool, and its LISTEN connection), sampled while it works.
    let sampling = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sampler = tokio::spawn({
        let (url, sampling) = (db.url.clone(), sampling.clone());
        async move {
            let mut conn = url.parse::<sqlx::postgres::PgConnectOptions>().unwrap().connect().await.unwrap();
            let mut most = 0;
            while sampling.load(Ordering::Relaxed) {
                let held: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()",
                )
                .fetch_one(&mut conn)
                .await
                .unwrap();
                most = most.max(held);
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            most
        }
    });
    let sending = senders.into_iter().map(|(room, mut sender)| {
        tokio::spawn(async move {
            for n in 0..messages {
                sender.send_message(&room, &format!("message {n}")).await;
            }
        })
    });
    for sent in futures::future::join_all(sending).await {
        sent.unwrap();
    }
    sampling.store(false, Ordering::Relaxed);
    let most = sampler.await.unwrap();
    assert!(most >= 1, "the sampler saw the instance's connections");
    assert!(most <= 3, "{most} connections: a pool of 2, and the LISTEN connection");
    assert_eq!(app.row_count().await, rooms * messages);
    drop(receivers);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_server_on_one_sqlite_file_is_refused_with_a_clear_error() {
    let first = spawn_app(Backend::Sqlite).await;
    let config = server::config::Config::try_parse_from([
        "server",
        "--port",
        "0",
        "--database-url",
        &first.db.url,
        "--encryption-key",
        TEST_KEY,
    ])
    .unwrap();
    let err = server::startup::Application::build(config).await.err().expect("refused");
    let text = format!("{err:#}");
    assert!(text.contains("another server is already running"), "{text}");
    assert!(text.contains("PostgreSQL"), "{text}");
    // The first one is untouched.
    let room = TestRoom::new();
    let (mut alice, _, _) = first.joined(&room).await;
    alice.send_message(&room, "still here").await;
}
