//! Limits: each refuses with its own error and leaves everyone else untouched.

use app::crypto::SenderId;
use app::protocol::{ClientFrame, ErrorCode, ServerFrame};

use super::helpers::{spawn_app_with, Backend, TestRoom, FRAME_TIMEOUT};

pub async fn frames_past_the_rate_limit_are_refused_and_a_flood_is_cut_off(backend: Backend) {
    let app = spawn_app_with(backend, &["--rate-limit-per-second", "1", "--rate-limit-burst", "5"]).await;
    let (room, elsewhere) = (TestRoom::new(), TestRoom::new());
    let (mut flooder, _, _) = app.joined(&room).await; // the join took one token: 4 left
    let (mut honest, _, _) = app.joined(&elsewhere).await;
    // Four tokens left: frames that always get an answer (bad_frame) show which were taken.
    for _ in 0..6 {
        flooder.send_text("x").await;
    }
    let mut replies = Vec::new();
    for _ in 0..6 {
        match flooder.recv().await {
            ServerFrame::Error { code, .. } => replies.push(code),
            other => panic!("expected errors, got {other:?}"),
        }
    }
    assert_eq!(&replies[..4], &[ErrorCode::BadFrame; 4]);
    assert_eq!(replies[5], ErrorCode::RateLimited, "{replies:?}");
    // Keep going while limited: the connection is closed as abusive.
    for _ in 0..10 {
        flooder.send_text("flood").await;
    }
    loop {
        match flooder.closed_or_frame().await {
            Ok(code) => {
                assert_eq!(code, Some(1008));
                break;
            }
            Err(ServerFrame::Error { code: ErrorCode::RateLimited | ErrorCode::BadFrame, .. }) => continue,
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    honest.assert_quiet_and_alive().await;
}

pub async fn a_full_room_refuses_the_next_join(backend: Backend) {
    let app = spawn_app_with(backend, &["--max-room-participants", "2"]).await;
    let room = TestRoom::new();
    let (_alice, _, _) = app.joined(&room).await;
    let (_bob, _, _) = app.joined(&room).await;
    let mut carol = app.client().await;
    carol
        .send(&ClientFrame::Join { room_id: room.keys.room_id.to_hex(), session: super::helpers::new_session() })
        .await;
    carol.expect_error(ErrorCode::RoomFull).await;
    // Still connected, and free to join a room with space.
    let other = TestRoom::new();
    assert_eq!(carol.join(&other).await.0, 1);
}

pub async fn a_room_holds_a_bounded_number_of_waiting_messages(backend: Backend) {
    let app = spawn_app_with(backend, &["--max-pending-per-room", "2"]).await;
    let room = TestRoom::new();
    let (mut alice, _, _) = app.joined(&room).await;
    for text in ["one", "two"] {
        let (id, sealed) = room.seal(text, SenderId([1; 8]));
        alice.send(&ClientFrame::Send { message_id: id.to_hex(), sealed: sealed.to_base64(), ttl: None }).await;
        assert_eq!(alice.recv().await, ServerFrame::Sent { message_id: id.to_hex() });
    }
    let (id, sealed) = room.seal("three", SenderId([1; 8]));
    alice.send(&ClientFrame::Send { message_id: id.to_hex(), sealed: sealed.to_base64(), ttl: None }).await;
    alice.expect_error(ErrorCode::TooManyPending).await;
    assert_eq!(app.row_count().await, 2);
    // Another room is not affected.
    let other = TestRoom::new();
    let (mut bob, _, _) = app.joined(&other).await;
    let (id, sealed) = other.seal("elsewhere", SenderId([2; 8]));
    bob.send(&ClientFrame::Send { message_id: id.to_hex(), sealed: sealed.to_base64(), ttl: None }).await;
    assert_eq!(bob.recv().await, ServerFrame::Sent { message_id: id.to_hex() });
}

pub async fn an_address_holds_a_bounded_number_of_connections(backend: Backend) {
    let app = spawn_app_with(backend, &["--max-connections-per-address", "2"]).await;
    let first = app.client().await;
    let mut second = app.client().await;
    match tokio_tungstenite::connect_async(app.ws_url()).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => assert_eq!(response.status(), 429),
        other => panic!("expected HTTP 429, got {:?}", other.map(|_| ())),
    }
    second.assert_quiet_and_alive().await;
    drop(first);
    // The slot comes back when the server has seen the close: wait for that condition.
    let deadline = std::time::Instant::now() + FRAME_TIMEOUT;
    loop {
        if tokio_tungstenite::connect_async(app.ws_url()).await.is_ok() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the slot never came back");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// A WebSocket request with extra headers.
fn request_with(
    url: &str,
    headers: &[(&'static str, &str)],
) -> tokio_tungstenite::tungstenite::handshake::client::Request {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
    let mut request = url.into_client_request().unwrap();
    for (name, value) in headers {
        request.headers_mut().insert(*name, value.parse().unwrap());
    }
    request
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_limit() {
    let app =
        spawn_app_with(Backend::Sqlite, &["--trusted-proxies", "127.0.0.0/8", "--max-connections-per-address", "1"])
            .await;
    let via = |client: &str| request_with(&app.ws_url(), &[("x-forwarded-for", client)]);
    let _first = tokio_tungstenite::connect_async(via("203.0.113.1")).await.expect("first client");
    let _second = tokio_tungstenite::connect_async(via("203.0.113.2")).await.expect("another client");
    match tokio_tungstenite::connect_async(via("203.0.113.1")).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => assert_eq!(response.status(), 429),
        other => panic!("expected HTTP 429, got {:?}", other.map(|_| ())),
    }
}

#[tokio::test]
async fn an_address_that_reconnects_too_fast_is_refused_and_others_are_not() {
    let app = spawn_app_with(
        Backend::Sqlite,
        &[
            "--trusted-proxies",
            "127.0.0.0/8",
            "--connects-per-second-per-address",
            "1",
            "--connect-burst-per-address",
            "3",
        ],
    )
    .await;
    let via = |client: &str| request_with(&app.ws_url(), &[("x-forwarded-for", client)]);
    // Three connections in a row, each closed at once: the burst.
    for _ in 0..3 {
        let (ws, _) = tokio_tungstenite::connect_async(via("203.0.113.1")).await.expect("within the burst");
        drop(ws);
    }
    match tokio_tungstenite::connect_async(via("203.0.113.1")).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 429);
            let body = String::from_utf8(response.body().clone().unwrap_or_default()).unwrap();
            assert!(body.contains("too many new connections"), "{body}");
        }
        other => panic!("expected HTTP 429, got {:?}", other.map(|_| ())),
    }
    // Another address is not affected; the first gets a new connection once a token refills.
    let _other = tokio_tungstenite::connect_async(via("203.0.113.2")).await.expect("another address");
    let deadline = std::time::Instant::now() + FRAME_TIMEOUT;
    while tokio_tungstenite::connect_async(via("203.0.113.1")).await.is_err() {
        assert!(std::time::Instant::now() < deadline, "the address never got a connection again");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn without_trusted_proxies_forwarded_headers_are_ignored() {
    let app = spawn_app_with(Backend::Sqlite, &["--max-connections-per-address", "1"]).await;
    let via = |client: &str| request_with(&app.ws_url(), &[("x-forwarded-for", client)]);
    let _first = tokio_tungstenite::connect_async(via("203.0.113.1")).await.expect("first client");
    match tokio_tungstenite::connect_async(via("203.0.113.2")).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => assert_eq!(response.status(), 429),
        other => panic!("a forged header must not buy a second slot, got {:?}", other.map(|_| ())),
    }
}

#[tokio::test]
async fn an_https_public_url_turns_on_hsts_and_allows_its_origin() {
    let app = spawn_app_with(Backend::Sqlite, &["--public-url", "https://chat.example"]).await;
    let head = super::helpers::http_get(app.port, "/").await.to_ascii_lowercase();
    assert!(head.contains("strict-transport-security: max-age=63072000; includesubdomains"), "{head}");
    let request = request_with(&app.ws_url(), &[("origin", "https://chat.example")]);
    assert!(tokio_tungstenite::connect_async(request).await.is_ok());
    let plain = spawn_app_with(Backend::Sqlite, &[]).await;
    let head = super::helpers::http_get(plain.port, "/").await.to_ascii_lowercase();
    assert!(!head.contains("strict-transport-security"), "no HSTS without an https PUBLIC_URL");
}

pub async fn a_lower_message_size_limit_refuses_larger_payloads(backend: Backend) {
    let app = spawn_app_with(backend, &["--max-padded-message", "256"]).await;
    let room = TestRoom::new();
    let (mut alice, _, _) = app.joined(&room).await;
    let (id, sealed) = room.seal(&"x".repeat(300), SenderId([1; 8])); // two 256-byte blocks
    alice.send(&ClientFrame::Send { message_id: id.to_hex(), sealed: sealed.to_base64(), ttl: None }).await;
    alice.expect_error(ErrorCode::BadSize).await;
    assert_eq!(app.row_count().await, 0);
    let (id, sealed) = room.seal("short", SenderId([1; 8]));
    alice.send(&ClientFrame::Send { message_id: id.to_hex(), sealed: sealed.to_base64(), ttl: None }).await;
    assert_eq!(alice.recv().await, ServerFrame::Sent { message_id: id.to_hex() });
}

on_both_backends!(
    frames_past_the_rate_limit_are_refused_and_a_flood_is_cut_off,
    a_full_room_refuses_the_next_join,
    a_room_holds_a_bounded_number_of_waiting_messages,
    an_address_holds_a_bounded_number_of_connections,
    a_lower_message_size_limit_refuses_larger_payloads,
);
