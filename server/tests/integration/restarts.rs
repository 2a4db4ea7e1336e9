//! What must survive a restart: waiting messages across kill -9, and across a key rotation;
//! and what must never appear in the server's output.

use std::sync::Arc;

use app::crypto::{MessageId, SenderId};
use app::protocol::{ClientFrame, ErrorCode, ServerFrame};
use clap::Parser as _;
use server::at_rest::ServerKey;
use server::domain::bounds::POSTGRES_PING_IDLE_AFTER;
use server::domain::{InstanceId, Participant, RoomHash};
use server::store::Store;

use super::helpers::{spawn_app_on, Backend, Client, TestDatabase, TestRoom, TEST_KEY};
use super::process::ServerProcess;

/// Two keys whose id bytes differ, as a rotation needs.
fn two_keys() -> (String, String) {
    let old = ServerKey::generate();
    loop {
        let new = ServerKey::generate();
        if new.id() != old.id() {
            return (old.to_hex().to_string(), new.to_hex().to_string());
        }
    }
}

async fn send(client: &mut Client, room: &TestRoom, text: &str) -> (MessageId, String) {
    let (id, sealed) = client.send_message(room, text).await;
    (id, sealed.to_base64())
}

/// Fetches, opens and confirms a message; returns its text.
pub async fn read_and_burn(client: &mut Client, room: &TestRoom, id: &MessageId) -> String {
    client.send(&ClientFrame::Fetch { message_id: id.to_hex() }).await;
    let (message_id, sealed) = match client.recv_skipping_presence().await {
        ServerFrame::Payload { message_id, sealed } => (message_id, sealed),
        other => panic!("expected the payload, got {other:?}"),
    };
    let text = room.open(&message_id, &sealed).text;
    client.send(&ClientFrame::Viewed { message_id: id.to_hex() }).await;
    assert_eq!(client.recv_skipping_presence().await, ServerFrame::Deleted { message_id: id.to_hex() });
    text
}

pub async fn keys_rotate_without_losing_waiting_messages(backend: Backend) {
    let db = Arc::new(TestDatabase::new(backend));
    let (old, new) = two_keys();
    let room = TestRoom::new();
    let first = spawn_app_on(db.clone(), &["--encryption-key", &old]).await;
    let (mut alice, _, _) = first.joined(&room).await;
    let (kept, _) = send(&mut alice, &room, "sealed under the old key").await;
    let (lost, _) = send(&mut alice, &room, "outlives its key").await;
    drop(alice);
    first.stop().await;

    let rotating = spawn_app_on(db.clone(), &["--encryption-key", &new, "--encryption-key-previous", &old]).await;
    let (mut bob, _, pending) = rotating.joined(&room).await;
    assert_eq!(pending.len(), 2);
    assert_eq!(read_and_burn(&mut bob, &room, &kept).await, "sealed under the old key");
    drop(bob);
    rotating.stop().await;

    // The old key is gone: its record is purged as expired, never a crash or a leak.
    let rotated = spawn_app_on(db.clone(), &["--encryption-key", &new]).await;
    let (mut carol, _, pending) = rotated.joined(&room).await;
    assert_eq!(pending, vec![lost.to_hex()]);
    carol.send(&ClientFrame::Fetch { message_id: lost.to_hex() }).await;
    assert_eq!(carol.recv().await, ServerFrame::Expired { message_id: lost.to_hex() });
    assert_eq!(rotated.row_count().await, 0);
    carol.send(&ClientFrame::Fetch { message_id: lost.to_hex() }).await;
    carol.expect_error(ErrorCode::UnknownMessage).await;
}

pub async fn a_killed_server_delivers_waiting_messages_after_restart(backend: Backend) {
    let db = TestDatabase::new(backend);
    let env = [("DATABASE_URL", db.url.as_str()), ("ENCRYPTION_KEY", TEST_KEY)];
    let output = db.dir.path().join("server.log");
    let room = TestRoom::new();
    let mut server = ServerProcess::start(&env, output.clone()).await;
    let mut alice = server.client_from([127, 0, 0, 1]).await;
    alice.join(&room).await;
    let (first, _) = send(&mut alice, &room, "before the crash, one").await;
    let (second, _) = send(&mut alice, &room, "before the crash, two").await;
    server.kill9();
    drop(server);

    let restarted = ServerProcess::start(&env, output).await;
    let mut bob = restarted.client_from([127, 0, 0, 1]).await;
    let (_, pending) = bob.join(&room).await;
    assert_eq!(pending.len(), 2);
    assert!(pending.contains(&first.to_hex()) && pending.contains(&second.to_hex()));
    assert_eq!(read_and_burn(&mut bob, &room, &first).await, "before the crash, one");
    assert_eq!(read_and_burn(&mut bob, &room, &second).await, "before the crash, two");
    assert!(db.stored_bodies().await.is_empty());
}

/// SIGTERM stops the server gracefully: every socket is told "going away" (1001), the process
/// exits 0, and nothing burns: each participant is kept as after a network loss, so a page that
/// reconnects to the next process within the grace period is the same participant, and a
/// message that waited for it still does.
pub async fn a_stopped_server_closes_every_socket_and_burns_nothing(backend: Backend) {
    let db = TestDatabase::new(backend);
    let env = [("DATABASE_URL", db.url.as_str()), ("ENCRYPTION_KEY", TEST_KEY), ("SESSION_GRACE", "60s")];
    let output = db.dir.path().join("server.log");
    let room = TestRoom::new();
    let mut server = ServerProcess::start(&env, output.clone()).await;
    let mut alice = server.client_from([127, 0, 0, 1]).await;
    let mut bob = server.client_from([127, 0, 0, 1]).await;
    let mut carol = server.client_from([127, 0, 0, 1]).await;
    for client in [&mut alice, &mut bob, &mut carol] {
        client.join(&room).await;
    }
    let (id, sealed) = room.seal("waits across a restart", SenderId([7; 8]));
    alice.send(&ClientFrame::Send { message_id: id.to_hex(), sealed: sealed.to_base64(), ttl: None }).await;
    assert_eq!(alice.recv_skipping_presence().await, ServerFrame::Sent { message_id: id.to_hex() });
    // Bob reads it; it waits for Carol.
    bob.send(&ClientFrame::Fetch { message_id: id.to_hex() }).await;
    loop {
        match bob.recv_skipping_presence().await {
            ServerFrame::Payload { .. } => break,
            ServerFrame::Message { .. } => continue,
            other => panic!("expected the payload, got {other:?}"),
        }
    }
    bob.send(&ClientFrame::Viewed { message_id: id.to_hex() }).await;
    let receipt = ServerFrame::Receipt { message_id: id.to_hex(), viewed: 1, of: 2 };
    // Bob fetched without waiting for the message's notice, which can come after the payload (a
    // page ignores a notice of a message it shows).
    let answer = loop {
        match bob.recv_skipping_presence().await {
            ServerFrame::Message { .. } => continue,
            frame => break frame,
        }
    };
    assert_eq!(answer, receipt);

    let status = server.terminate();
    assert!(status.success(), "a stopped server exits 0, not {status:?}: {}", server.output_text());
    for client in [&mut alice, &mut bob, &mut carol] {
        assert_eq!(client.closed().await, Some(1001), "every socket is told the server is going away");
    }
    assert_eq!(db.stored_bodies().await.len(), 1, "nothing burned at the stop");

    let restarted = ServerProcess::start(&env, output).await;
    let mut again = restarted.client_from([127, 0, 0, 1]).await;
    again.session = carol.session.clone();
    let (_, pending) = again.join(&room).await;
    assert_eq!(pending, vec![id.to_hex()], "Carol is still a recipient after the restart");
    assert_eq!(read_and_burn(&mut again, &room, &id).await, "waits across a restart");
    assert!(db.stored_bodies().await.is_empty());
}

pub async fn logs_never_name_an_address_room_message_code_key_or_payload(backend: Backend) {
    let db = TestDatabase::new(backend);
    let env = [("DATABASE_URL", db.url.as_str()), ("ENCRYPTION_KEY", TEST_KEY), ("RUST_LOG", "trace")];
    let output = db.dir.path().join("server.log");
    let mut server = ServerProcess::start(&env, output).await;
    let room = TestRoom::new();
    let mut alice = server.client_from([127, 0, 0, 2]).await;
    let mut bob = server.client_from([127, 0, 0, 2]).await;
    alice.join(&room).await;
    bob.join(&room).await;
    let _ = alice.recv().await; // presence
    alice.send(&ClientFrame::Typing { active: true }).await;
    let (id, sealed) = send(&mut alice, &room, "a secret for the logs test").await;
    assert_eq!(bob.recv().await, ServerFrame::Typing { active: true });
    assert_eq!(bob.recv().await, ServerFrame::Message { message_id: id.to_hex(), chunks: 0 });
    assert_eq!(read_and_burn(&mut bob, &room, &id).await, "a secret for the logs test");
    // Errors are logged paths too: make some.
    bob.send(&ClientFrame::Fetch { message_id: id.to_hex() }).await;
    bob.expect_error(ErrorCode::UnknownMessage).await;
    bob.send_text("{not json").await;
    bob.expect_error(ErrorCode::BadFrame).await;
    drop((alice, bob));
    server.terminate();

    let log = server.output_text();
    assert!(log.contains("listening"), "the server logged its lifecycle: {log}");
    let room_hash = hex::encode(room.keys.room_id.storage_hash());
    for (what, needle) in [
        ("client address", "127.0.0.2".to_owned()),
        ("room id", room.keys.room_id.to_hex()),
        ("room hash", room_hash),
        ("message id", id.to_hex()),
        ("code", room.code.canonical().to_owned()),
        ("grouped code", room.code.grouped()),
        ("server key", TEST_KEY.to_owned()),
        ("sealed payload", sealed[..40].to_owned()),
        ("plaintext", "a secret for the logs test".to_owned()),
    ] {
        assert!(!log.contains(&needle), "the log names the {what}:\n{log}");
    }
}

pub async fn a_burned_message_leaves_no_bytes_behind(backend: Backend) {
    let app = super::helpers::spawn_app(backend).await;
    let room = TestRoom::new();
    let (mut alice, _, _) = app.joined(&room).await;
    let (mut bob, _, _) = app.joined(&room).await;
    assert_eq!(alice.recv().await, ServerFrame::Presence { participants: 2 });
    let (id, _) = send(&mut alice, &room, "leave no trace").await;
    let stored = app.stored_bodies().await.pop().expect("one stored record");
    assert_eq!(bob.recv().await, ServerFrame::Message { message_id: id.to_hex(), chunks: 0 });
    assert_eq!(read_and_burn(&mut bob, &room, &id).await, "leave no trace");
    match backend {
        Backend::Sqlite => {
            // secure_delete overwrites freed cells: once the WAL is folded into the file, the
            // record's bytes are nowhere in it.
            use sqlx::ConnectOptions as _;
            let options = app.db.url.parse::<sqlx::sqlite::SqliteConnectOptions>().unwrap();
            let mut conn = options.connect().await.unwrap();
            sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").execute(&mut conn).await.unwrap();
            drop(conn);
            let path = app.db.url.strip_prefix("sqlite:").unwrap();
            let file = std::fs::read(path).unwrap();
            assert!(!file.windows(32).any(|w| w == &stored[13..45]), "the burned record is still in the file");
        }
        Backend::Postgres => {
            // Dead tuples are reclaimed by autovacuum soon, not at its table-size-scaled default.
            use sqlx::ConnectOptions as _;
            let options = app.db.url.parse::<sqlx::postgres::PgConnectOptions>().unwrap();
            let mut conn = options.connect().await.unwrap();
            for table in ["messages", "participants"] {
                let reloptions: Vec<String> =
                    sqlx::query_scalar("SELECT unnest(reloptions) FROM pg_class WHERE relname = $1")
                        .bind(table)
                        .fetch_all(&mut conn)
                        .await
                        .unwrap();
                assert!(reloptions.contains(&"autovacuum_vacuum_scale_factor=0".to_owned()), "{table}: {reloptions:?}");
                assert!(reloptions.contains(&"autovacuum_vacuum_threshold=50".to_owned()), "{table}: {reloptions:?}");
            }
        }
    }
    assert!(app.stored_bodies().await.is_empty());
}

on_both_backends!(
    keys_rotate_without_losing_waiting_messages,
    a_killed_server_delivers_waiting_messages_after_restart,
    a_stopped_server_closes_every_socket_and_burns_nothing,
    logs_never_name_an_address_room_message_code_key_or_payload,
    a_burned_message_leaves_no_bytes_behind,
);

/// The store's pool lends a connection without pinging it only shortly after it answered its
/// last ping: a connection the database dropped while it idled longer (a restart, an
/// administrator) is found out and replaced, and the next statement runs as if nothing had
/// happened.
#[tokio::test]
async fn a_pooled_connection_the_database_dropped_while_idle_is_replaced_before_its_next_statement() {
    let db = TestDatabase::new(Backend::Postgres);
    let database =
        server::config::Config::try_parse_from(["server", "--database-url", &db.url]).unwrap().database().unwrap();
    let (store, _) = Store::connect(&database, InstanceId::generate(), false).await.unwrap();
    let room = RoomHash([1; 32]);
    store.join(&room, &Participant([2; 32]), 1, 10).await.unwrap().expect("admitted");

    let sql = "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
               WHERE datname = current_database() AND pid <> pg_backend_pid()";
    assert!(db.execute(sql).await > 0, "the store's connections were cut");
    tokio::time::sleep(POSTGRES_PING_IDLE_AFTER * 2).await;
    let joined = store.join(&room, &Participant([3; 32]), 1, 10).await;
    assert!(matches!(joined, Ok(Some(_))), "{joined:?}");
}
