//! Integration tests: the real server on a real port, real WebSocket clients, a fresh SQLite
//! file or PostgreSQL database per test, assertions on frames and on the rows left behind.

mod assets;
mod audit;
mod flood;
mod held;
mod helpers;
mod instances;
mod limits;
mod process;
mod proxy;
mod recipients;
mod restarts;
mod scenarios;
mod schema;

use app::crypto::{MessageId, SenderId};
use app::protocol::{ClientFrame, ErrorCode, ServerFrame};
use audit::*;
use flood::*;
use held::*;
use helpers::{spawn_app, spawn_app_with, Backend, TestRoom};
use limits::*;
use recipients::*;
use restarts::*;
use tokio_tungstenite::tungstenite::Message;

/// Runs an async test body once per backend, as two separately named tests.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(super::Backend::Sqlite).await })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(super::Backend::Postgres).await })*
        }
    };
}

on_both_backends!(
    a_message_is_delivered_read_once_and_deleted,
    a_joining_client_is_told_what_waits,
    a_resent_message_is_idempotent_and_a_changed_one_conflicts,
    malformed_frames_get_errors_and_the_connection_survives,
    ids_from_elsewhere_are_unknown,
    viewed_needs_a_fetch_and_is_idempotent,
    bad_payloads_are_refused_and_nothing_is_stored,
    an_oversized_frame_closes_only_that_connection,
    unread_messages_expire_and_the_room_is_told,
    presence_and_typing_reach_the_others_only,
    keys_rotate_without_losing_waiting_messages,
    a_killed_server_delivers_waiting_messages_after_restart,
    a_stopped_server_closes_every_socket_and_burns_nothing,
    logs_never_name_an_address_room_message_code_key_or_payload,
    frames_past_the_rate_limit_are_refused_and_a_flood_is_cut_off,
    a_full_room_refuses_the_next_join,
    a_room_holds_a_bounded_number_of_waiting_messages,
    an_address_holds_a_bounded_number_of_connections,
    a_message_burns_when_every_recipient_has_viewed_it,
    a_recipient_who_leaves_is_dropped_and_the_message_burns,
    an_unread_message_whose_recipients_left_is_open_to_the_next_reader,
    a_recipient_on_the_sending_instance_is_answered_from_memory,
    a_burned_or_expired_message_leaves_nothing_held,
    a_reconnect_within_the_grace_period_is_the_same_participant,
    a_malformed_session_is_refused,
    participants_in_their_grace_period_still_fill_the_room,
    a_burned_message_leaves_no_bytes_behind,
    two_readers_racing_for_an_open_message_burn_it_once,
    a_lower_message_size_limit_refuses_larger_payloads,
    a_page_that_closes_its_socket_has_left_at_once,
    two_last_readers_viewing_at_once_burn_the_message,
    a_resync_does_not_repeat_a_deleted_notice,
    a_dump_of_the_store_the_data_directory_and_the_output_holds_no_secret,
    a_flood_of_hostile_frames_leaves_an_honest_room_working,
);

async fn a_message_is_delivered_read_once_and_deleted(backend: Backend) {
    let app = spawn_app(backend).await;
    let room = TestRoom::new();
    let elsewhere = TestRoom::new();
    let (mut alice, _, _) = app.joined(&room).await;
    let (mut bob, participants, pending) = app.joined(&room).await;
    assert_eq!((participants, pending.len()), (2, 0));
    let (mut carol, _, _) = app.joined(&elsewhere).await;
    assert_eq!(alice.recv().await, ServerFrame::Presence { participants: 2 });

    let (id, sealed) = room.seal("hello from A", SenderId([1; 8]));
    alice.send(&ClientFrame::Send { message_id: id.to_hex(), sealed: sealed.to_base64() }).await;
    assert_eq!(alice.recv().await, ServerFrame::Sent { message_id: id.to_hex() });
    // The notice carries the id and nothing else.
    assert_eq!(bob.recv().await, ServerFrame::Message { message_id: id.to_hex() });

    // At rest: one row, holding neither the plaintext nor the client's sealed payload.
    let bodies = app.stored_bodies().await;
    assert_eq!(bodies.len(), 1);
    let client_bytes = sealed.as_bytes();
    assert!(!contains(&bodies[0], b"hello from A"));
    assert!(!contains(&bodies[0], &client_bytes[13..45]), "client ciphertext stored as is");

    bob.send(&ClientFrame::Fetch { message_id: id.to_hex() }).await;
    let ServerFrame::Payload { message_id, sealed: got } = bob.recv().await else { panic!("expected payload") };
    assert_eq!(room.open(&message_id, &got).text, "hello from A");
    assert_eq!(app.row_count().await, 1, "fetching is not destructive");

    bob.send(&ClientFrame::Viewed { message_id: id.to_hex() }).await;
    assert_eq!(bob.recv().await, ServerFrame::Deleted { message_id: id.to_hex() });
    assert_eq!(alice.recv().await, ServerFrame::Deleted { message_id: id.to_hex() });
    assert_eq!(app.row_count().await, 0);

    carol.assert_quiet_and_alive().await;
    bob.send(&ClientFrame::Fetch { message_id: id.to_hex() }).await;
    bob.expect_error(ErrorCode::UnknownMessage).await;
}

async fn a_joining_client_is_told_what_waits(backend: Backend) {
    let app = spawn_app(backend).await;
    let room = TestRoom::new();
    let (mut alice, _, _) = app.joined(&room).await;
    let (id, sealed) = room.seal("left for later", SenderId([1; 8]));
    alice.send(&ClientFrame::Send { message_id: id.to_hex(), sealed: sealed.to_base64() }).await;
    assert_eq!(alice.recv().await, ServerFrame::Sent { message_id: id.to_hex() });
    let (mut bob, participants, pending) = app.joined(&room).await;
    assert_eq!((participants, pending), (2, vec![id.to_hex()]));
    bob.send(&ClientFrame::Fetch { message_id: id.to_hex() }).await;
    let ServerFrame::Payload { message_id, sealed } = bob.recv().await else { panic!("expected payload") };
    assert_eq!(room.open(&message_id, &sealed).text, "left for later");
}

async fn a_resent_message_is_idempotent_and_a_changed_one_conflicts(backend: Backend) {
    let app = spawn_app(backend).await;
    let room = TestRoom::new();
    let (mut alice, _, _) = app.joined(&room).await;
    let (mut bob, _, _) = app.joined(&room).await;
    let _ = alice.recv().await; // presence
    let (id, sealed) = room.seal("once", SenderId([1; 8]));
    let send = ClientFrame::Send { message_id: id.to_hex(), sealed: sealed.to_base64() };
    alice.send(&send).await;
    assert_eq!(alice.recv().await, ServerFrame::Sent { message_id: id.to_hex() });
    alice.send(&send).await;
    assert_eq!(alice.recv().await, ServerFrame::Sent { message_id: id.to_hex() });
    let (_, other) = room.seal("twice", SenderId([1; 8]));
    alice.send(&ClientFrame::Send { message_id: id.to_hex(), sealed: other.to_base64() }).await;
    alice.expect_error(ErrorCode::IdConflict).await;
    // Bob was notified once, and the stored payload is the first one.
    assert_eq!(bob.recv().await, ServerFrame::Message { message_id: id.to_hex() });
    bob.assert_quiet_and_alive().await;
    bob.send(&ClientFrame::Fetch { message_id: id.to_hex() }).await;
    let ServerFrame::Payload { message_id, sealed } = bob.recv().await else { panic!("expected payload") };
    assert_eq!(room.open(&message_id, &sealed).text, "once");
    assert_eq!(app.row_count().await, 1);
}

async fn malformed_frames_get_errors_and_the_connection_survives(backend: Backend) {
    let app = spawn_app(backend).await;
    let room = TestRoom::new();
    let mut client = app.client().await;
    let id = MessageId::generate().to_hex();
    client.send_text("not json").await;
    client.expect_error(ErrorCode::BadFrame).await;
    client.send_text(r#"{"type":"shout"}"#).await;
    client.expect_error(ErrorCode::BadFrame).await;
    client.send_text(r#"{"type":"join"}"#).await;
    client.expect_error(ErrorCode::BadFrame).await;
    client.send_text(&format!(r#"{{"type":"join","room_id":"{}","extra":1}}"#, room.keys.room_id.to_hex())).await;
    client.expect_error(ErrorCode::BadFrame).await;
    client.send(&ClientFrame::Fetch { message_id: id.clone() }).await;
    client.expect_error(ErrorCode::NotJoined).await;
    client.send(&ClientFrame::Typing { active: true }).await;
    client.expect_error(ErrorCode::NotJoined).await;
    client.send(&ClientFrame::Join { room_id: "ab".repeat(31), session: helpers::new_session() }).await;
    client.expect_error(ErrorCode::BadRoomId).await;
    client
        .send(&ClientFrame::Join {
            room_id: room.keys.room_id.to_hex().to_uppercase(),
            session: helpers::new_session(),
        })
        .await;
    client.expect_error(ErrorCode::BadRoomId).await;
    client.send_raw(Message::Binary(vec![1, 2, 3].into())).await;
    client.expect_error(ErrorCode::BinaryFrame).await;
    // Still usable: it can join now, once.
    client.send(&ClientFrame::Join { room_id: room.keys.room_id.to_hex(), session: helpers::new_session() }).await;
    assert!(matches!(client.recv().await, ServerFrame::Joined { participants: 1, .. }));
    client.send(&ClientFrame::Join { room_id: room.keys.room_id.to_hex(), session: helpers::new_session() }).await;
    client.expect_error(ErrorCode::AlreadyJoined).await;
    client.send(&ClientFrame::Fetch { message_id: "XYZ".into() }).await;
    client.expect_error(ErrorCode::BadMessageId).await;
    client.assert_quiet_and_alive().await;
}

async fn ids_from_elsewhere_are_unknown(backend: Backend) {
    let app = spawn_app(backend).await;
    let room = TestRoom::new();
    let other_room = TestRoom::new();
    let (mut alice, _, _) = app.joined(&room).await;
    let (mut mallory, _, _) = app.joined(&other_room).await;
    let (id, sealed) = room.seal("not for mallory", SenderId([1; 8]));
    alice.send(&ClientFrame::Send { message_id: id.to_hex(), sealed: sealed.to_base64() }).await;
    assert_eq!(alice.recv().await, ServerFrame::Sent { message_id: id.to_hex() });
    mallory.send(&ClientFrame::Fetch { message_id: id.to_hex() }).await;
    mallory.expect_error(ErrorCode::UnknownMessage).await;
    mallory.send(&ClientFrame::Viewed { message_id: id.to_hex() }).await;
    mallory.expect_error(ErrorCode::NotFetched).await;
    mallory.send(&ClientFrame::Fetch { message_id: MessageId::generate().to_hex() }).await;
    mallory.expect_error(ErrorCode::UnknownMessage).await;
    // The sender may not read or burn its own message.
    alice.send(&ClientFrame::Fetch { message_id: id.to_hex() }).await;
    alice.expect_error(ErrorCode::OwnMessage).await;
    assert_eq!(app.row_count().await, 1);
}

async fn viewed_needs_a_fetch_and_is_idempotent(backend: Backend) {
    let app = spawn_app(backend).await;
    let room = TestRoom::new();
    let (mut alice, _, _) = app.joined(&room).await;
    let (mut bob, _, _) = app.joined(&room).await;
    let _ = alice.recv().await; // presence
    let (id, sealed) = room.seal("burn me", SenderId([1; 8]));
    alice.send(&ClientFrame::Send { message_id: id.to_hex(), sealed: sealed.to_base64() }).await;
    let _ = alice.recv().await; // sent
    let _ = bob.recv().await; // notice
    bob.send(&ClientFrame::Viewed { message_id: id.to_hex() }).await;
    bob.expect_error(ErrorCode::NotFetched).await;
    assert_eq!(app.row_count().await, 1);
    bob.send(&ClientFrame::Fetch { message_id: id.to_hex() }).await;
    let _ = bob.recv().await; // payload
    bob.send(&ClientFrame::Fetch { message_id: id.to_hex() }).await;
    assert!(matches!(bob.recv().await, ServerFrame::Payload { .. }), "fetch may be repeated");
    bob.send(&ClientFrame::Viewed { message_id: id.to_hex() }).await;
    assert_eq!(bob.recv().await, ServerFrame::Deleted { message_id: id.to_hex() });
    bob.send(&ClientFrame::Viewed { message_id: id.to_hex() }).await;
    assert_eq!(bob.recv().await, ServerFrame::Deleted { message_id: id.to_hex() });
    assert_eq!(app.row_count().await, 0);
}

async fn bad_payloads_are_refused_and_nothing_is_stored(backend: Backend) {
    let app = spawn_app(backend).await;
    let room = TestRoom::new();
    let (mut alice, _, _) = app.joined(&room).await;
    let (id, sealed) = room.seal("x", SenderId([1; 8]));
    let send = |sealed: String| ClientFrame::Send { message_id: id.to_hex(), sealed };
    alice.send(&send("!!!not base64!!!".into())).await;
    alice.expect_error(ErrorCode::BadEncoding).await;
    alice.send(&send(sealed.to_base64()[..100].into())).await;
    alice.expect_error(ErrorCode::BadSize).await;
    let mut wrong_version = sealed.as_bytes().to_vec();
    wrong_version[0] = 2;
    let encoded = base64_url(&wrong_version);
    alice.send(&send(encoded)).await;
    alice.expect_error(ErrorCode::BadVersion).await;
    alice.send(&ClientFrame::Send { message_id: "00".into(), sealed: sealed.to_base64() }).await;
    alice.expect_error(ErrorCode::BadMessageId).await;
    assert_eq!(app.row_count().await, 0);
    alice.assert_quiet_and_alive().await;
}

async fn an_oversized_frame_closes_only_that_connection(backend: Backend) {
    let app = spawn_app(backend).await;
    let room = TestRoom::new();
    let (mut abuser, _, _) = app.joined(&room).await;
    let (mut honest, _, _) = app.joined(&room).await;
    let _ = abuser.recv().await; // presence
    abuser.send_text(&"x".repeat(32 * 1024 + 1)).await; // MAX_FRAME_SIZE's default, plus one
    abuser.expect_error(ErrorCode::FrameTooLarge).await;
    assert_eq!(abuser.closed().await, Some(1009));
    assert_eq!(honest.recv().await, ServerFrame::Presence { participants: 1 });
    honest.assert_quiet_and_alive().await;
}

async fn unread_messages_expire_and_the_room_is_told(backend: Backend) {
    let app = spawn_app_with(backend, &["--message-ttl", "1s"]).await;
    let room = TestRoom::new();
    let (mut alice, _, _) = app.joined(&room).await;
    let (mut bob, _, _) = app.joined(&room).await;
    let _ = alice.recv().await; // presence
    let (id, sealed) = room.seal("too late", SenderId([1; 8]));
    alice.send(&ClientFrame::Send { message_id: id.to_hex(), sealed: sealed.to_base64() }).await;
    let _ = alice.recv().await; // sent
    assert_eq!(bob.recv().await, ServerFrame::Message { message_id: id.to_hex() });
    assert_eq!(bob.recv().await, ServerFrame::Expired { message_id: id.to_hex() });
    assert_eq!(alice.recv().await, ServerFrame::Expired { message_id: id.to_hex() });
    assert_eq!(app.row_count().await, 0);
}

async fn presence_and_typing_reach_the_others_only(backend: Backend) {
    let app = spawn_app(backend).await;
    let room = TestRoom::new();
    let (mut alice, participants, _) = app.joined(&room).await;
    assert_eq!(participants, 1);
    let (mut bob, participants, _) = app.joined(&room).await;
    assert_eq!(participants, 2);
    assert_eq!(alice.recv().await, ServerFrame::Presence { participants: 2 });
    alice.send(&ClientFrame::Typing { active: true }).await;
    assert_eq!(bob.recv().await, ServerFrame::Typing { active: true });
    alice.assert_quiet_and_alive().await;
    drop(bob);
    assert_eq!(alice.recv().await, ServerFrame::Presence { participants: 1 });
    assert_eq!(app.relay.hub.room_count(), 1);
}

#[tokio::test]
async fn a_hostile_origin_is_refused_before_the_upgrade() {
    let app = spawn_app(Backend::Sqlite).await;
    let mut request =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(app.ws_url()).unwrap();
    request.headers_mut().insert("Origin", "http://evil.example".parse().unwrap());
    let err = tokio_tungstenite::connect_async(request).await.unwrap_err();
    match err {
        tokio_tungstenite::tungstenite::Error::Http(response) => assert_eq!(response.status(), 403),
        other => panic!("expected HTTP 403, got {other}"),
    }
    let mut request =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(app.ws_url()).unwrap();
    let own = format!("http://127.0.0.1:{}", app.port);
    request.headers_mut().insert("Origin", own.parse().unwrap());
    assert!(tokio_tungstenite::connect_async(request).await.is_ok());
}

#[tokio::test]
async fn each_path_gets_its_page_with_a_nonce_csp_and_hardening_headers() {
    let app = spawn_app(Backend::Sqlite).await;
    let pages = [
        ("/", "200", "Generate new code"),
        ("/room", "200", "<h1>Room"),
        ("/room/", "200", "<h1>Room"),
        ("/rooms", "404", "Page not found."),
        ("/room/x", "404", "Page not found."),
    ];
    for (path, status, content) in pages {
        let response = http_get(app.port, path).await;
        let (head, html) = response.split_once("\r\n\r\n").unwrap();
        let head = head.to_ascii_lowercase();
        assert!(head.starts_with(&format!("http/1.1 {status}")), "{path}: {head}");
        assert!(html.contains(content), "{path}: no {content:?} in {html}");
        let header = |name: &str| {
            head.lines()
                .find_map(|l| l.strip_prefix(&format!("{name}: ")).map(str::to_owned))
                .unwrap_or_else(|| panic!("{path}: no {name} header in {head}"))
        };
        // The one inline script carries the nonce the policy names; it differs per response.
        let nonce = nonce_of(html);
        let csp = header("content-security-policy");
        assert!(
            csp.contains(&format!("script-src 'self' 'nonce-{}' 'wasm-unsafe-eval'", nonce.to_ascii_lowercase())),
            "{csp}"
        );
        for directive in ["connect-src 'self'", "frame-ancestors 'none'", "base-uri 'none'", "form-action 'self'"] {
            assert!(csp.contains(directive), "{csp} lacks {directive}");
        }
        assert_eq!(header("referrer-policy"), "no-referrer");
        assert_eq!(header("x-content-type-options"), "nosniff");
        assert_eq!(header("cross-origin-opener-policy"), "same-origin");
        assert_eq!(header("cache-control"), "no-store");
        assert!(header("permissions-policy").contains("camera=()"));
    }
    let first = http_get(app.port, "/").await;
    assert!(first.contains("Generate new code") && first.contains("/pkg/ephemeral-chat.js"));
    assert_ne!(nonce_of(&first), nonce_of(&http_get(app.port, "/").await), "a fresh nonce per response");
}

fn nonce_of(response: &str) -> String {
    response.split(r#"<script type="module" nonce=""#).nth(1).and_then(|r| r.split('"').next()).unwrap().to_owned()
}

#[tokio::test]
async fn sqlite_without_a_key_generates_one_privately_and_reuses_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_arg = data.to_str().unwrap();
    let build = || async {
        let config = <server::config::Config as clap::Parser>::try_parse_from([
            "server",
            "--port",
            "0",
            "--data-dir",
            data_arg,
            "--site-root",
            "target/site",
        ])
        .unwrap();
        server::startup::Application::build(config).await.unwrap()
    };
    let first = build().await;
    let key_path = data.join(server::startup::KEY_FILE_NAME);
    let key = std::fs::read_to_string(&key_path).unwrap();
    assert_eq!(key.trim().len(), 64);
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(std::fs::metadata(&key_path).unwrap().permissions().mode() & 0o777, 0o600);
    let first_id = first.relay().keys.current().id();
    drop(first);
    let second = build().await;
    assert_eq!(second.relay().keys.current().id(), first_id);
    assert_eq!(std::fs::read_to_string(&key_path).unwrap(), key);
}

#[tokio::test]
async fn postgres_without_a_key_refuses_to_start_and_says_why() {
    let config = <server::config::Config as clap::Parser>::try_parse_from([
        "server",
        "--port",
        "0",
        "--database-url",
        "postgres://postgres@127.0.0.1:5432/unused",
    ])
    .unwrap();
    let err = server::startup::Application::build(config).await.err().expect("refuses to start");
    assert!(err.to_string().contains("ENCRYPTION_KEY is required"), "{err}");
}

#[test]
fn bad_settings_stop_the_binary_with_one_line_naming_them() {
    for (var, value, named) in [
        ("PORT", "http", "--port"),
        ("ENCRYPTION_KEY", "abc", "--encryption-key"),
        ("DATABASE_URL", "mysql://x", "--database-url"),
        ("MESSAGE_TTL", "9d", "--message-ttl"),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_server")).env(var, value).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{var}");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
        assert!(stderr.contains(named) && stderr.contains(var), "{stderr}");
        if var == "ENCRYPTION_KEY" {
            assert!(!stderr.contains("abc"), "the key's value must not be echoed: {stderr}");
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn base64_url(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

async fn http_get(port: u16, path: &str) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    response
}
