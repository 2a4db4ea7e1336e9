//! What a public relay must survive: slow and silent HTTP connections, a cap on all connections,
//! clients that stop reading, a whole IPv6 block posing as many clients, and senders filling
//! the storage. Each test fails without its fix.

use std::time::{Duration, Instant};

use app::protocol::{ClientFrame, ErrorCode, ServerFrame};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use futures::SinkExt as _;
use tokio_tungstenite::tungstenite::Message;

use super::helpers::{http_get, new_session, spawn_app_with, Backend, Client, TestApp, TestRoom, FRAME_TIMEOUT};

/// Reads until the server closes the connection; how long that took, or `None` if it was still
/// open after `limit`.
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(limit.saturating_sub(start.elapsed()), stream.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return Some(start.elapsed()),
            Ok(Ok(_)) => continue,
            Err(_) => return None,
        }
    }
}

/// Sends `text` and waits for its `sent`, letting the room's other news pass (counts, earlier
/// messages' deletions and expiries).
async fn send_ok(client: &mut Client, room: &TestRoom, text: &str) -> String {
    let (id, sealed) = room.seal(text, app::crypto::SenderId([5; 8]));
    let message_id = id.to_hex();
    client.send(&ClientFrame::Send { message_id: message_id.clone(), sealed: sealed.to_base64(), ttl: None }).await;
    loop {
        match client.recv().await {
            ServerFrame::Sent { message_id: sent } if sent == message_id => return message_id,
            frame @ ServerFrame::Error { .. } => panic!("{message_id} refused: {frame:?}"),
            _ => continue,
        }
    }
}

/// The next frame that is a message's payload (other news passes).
async fn payload(client: &mut Client) {
    loop {
        match client.recv().await {
            ServerFrame::Payload { .. } => return,
            frame @ ServerFrame::Error { .. } => panic!("fetch refused: {frame:?}"),
            _ => continue,
        }
    }
}

/// A message journey: sent, fetched, viewed, burned; how long it took.
/// Waits for the notice of `message_id` (the first message notice that comes must be it).
async fn noticed(client: &mut Client, message_id: &str) {
    loop {
        if let ServerFrame::Message { message_id: got, chunks: 0 } = client.recv_skipping_presence().await {
            assert_eq!(got, message_id);
            return;
        }
    }
}

async fn journey(app: &TestApp) -> Duration {
    let room = TestRoom::new();
    let (mut alice, _, _) = app.joined(&room).await;
    let (mut bob, _, _) = app.joined(&room).await;
    let start = Instant::now();
    let message_id = send_ok(&mut alice, &room, "still here").await;
    noticed(&mut bob, &message_id).await;
    bob.send(&ClientFrame::Fetch { message_id: message_id.clone() }).await;
    payload(&mut bob).await;
    bob.send(&ClientFrame::Viewed { message_id: message_id.clone() }).await;
    loop {
        if alice.recv_skipping_presence().await == (ServerFrame::Deleted { message_id: message_id.clone() }) {
            return start.elapsed();
        }
    }
}

#[tokio::test]
async fn slow_headers_are_cut_off_while_pages_and_journeys_go_on() {
    let app = spawn_app_with(Backend::Sqlite, &["--header-timeout", "2s"]).await;
    let mut slow = Vec::new();
    for _ in 0..200 {
        let mut stream = TcpStream::connect(("127.0.0.1", app.port)).await.unwrap();
        stream.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
        slow.push(stream);
    }
    // Dribble a header line each half second: never a whole head.
    let dribble = async {
        for n in 0..3 {
            tokio::time::sleep(Duration::from_millis(500)).await;
            for stream in &mut slow {
                let _ = stream.write_all(format!("X-Slow-{n}: 1\r\n").as_bytes()).await;
            }
        }
    };
    let served = async {
        let page = http_get(app.port, "/").await;
        assert!(page.starts_with("HTTP/1.1 200"), "{}", page.lines().next().unwrap_or_default());
        journey(&app).await
    };
    let ((), took) = tokio::join!(dribble, served);
    assert!(took < Duration::from_secs(2), "a journey during the attack took {took:?}");
    for stream in &mut slow {
        let closed = closed_within(stream, Duration::from_secs(5)).await;
        assert!(closed.is_some(), "a slow connection was still open past its header timeout");
    }
}

#[tokio::test]
async fn a_kept_alive_connection_may_idle_longer_than_a_head_may_take() {
    let app = spawn_app_with(Backend::Sqlite, &["--header-timeout", "1s", "--keepalive-timeout", "3s"]).await;
    let mut stream = TcpStream::connect(("127.0.0.1", app.port)).await.unwrap();
    let request = format!("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n\r\n", app.port);
    let mut buf = [0u8; 1024];
    for _ in 0..2 {
        stream.write_all(request.as_bytes()).await.unwrap();
        let n = tokio::time::timeout(FRAME_TIMEOUT, stream.read(&mut buf)).await.unwrap().unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&buf[..n]));
        // Longer than a head may take, shorter than a kept-alive connection may idle.
        tokio::time::sleep(Duration::from_millis(1_500)).await;
    }
    let closed = closed_within(&mut stream, Duration::from_secs(5)).await.expect("closed once idle too long");
    assert!(closed < Duration::from_secs(3), "idle for {:?} more", closed);
}

#[tokio::test]
async fn a_websocket_outlives_the_http_timers() {
    // The head and kept-alive timers are for HTTP: once upgraded, a silent room keeps its sockets
    // (the session's own pings and idle timeout rule them, and they are far longer).
    let app = spawn_app_with(Backend::Sqlite, &["--header-timeout", "1s", "--keepalive-timeout", "1s"]).await;
    let room = TestRoom::new();
    let (mut alice, _, _) = app.joined(&room).await;
    let (mut bob, _, _) = app.joined(&room).await;
    // Silent for three times either timer.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let message_id = send_ok(&mut alice, &room, "after a silence").await;
    noticed(&mut bob, &message_id).await;
    bob.send(&ClientFrame::Fetch { message_id }).await;
    payload(&mut bob).await;
}

#[tokio::test]
async fn past_the_connection_cap_new_connections_are_closed_at_once() {
    let app = spawn_app_with(Backend::Sqlite, &["--max-connections", "4"]).await;
    let (mut websocket, _, _) = app.joined(&TestRoom::new()).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(TcpStream::connect(("127.0.0.1", app.port)).await.unwrap());
    }
    let mut refused = TcpStream::connect(("127.0.0.1", app.port)).await.unwrap();
    let closed = closed_within(&mut refused, Duration::from_secs(2)).await.expect("closed at once");
    assert!(closed < Duration::from_secs(1));
    // The WebSocket counts among them, and keeps working.
    websocket.assert_quiet_and_alive().await;
    drop(held.pop());
    tokio::time::sleep(Duration::from_millis(100)).await;
    let page = http_get(app.port, "/healthz").await;
    assert!(page.starts_with("HTTP/1.1 200"), "a place freed is a place taken again: {page}");
}

#[tokio::test]
async fn a_client_that_stops_reading_is_dropped_and_its_place_freed() {
    let app = spawn_app_with(
        Backend::Sqlite,
        &[
            "--write-timeout",
            "1s",
            "--rate-limit-per-second",
            "10000",
            "--rate-limit-burst",
            "10000",
            "--max-connections-per-address",
            "2",
            "--session-grace",
            "1s",
        ],
    )
    .await;
    let room = TestRoom::new();
    let (mut alice, _, _) = app.joined(&room).await;
    // A client with a tiny receive window that asks for big payloads and never reads them.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(([127, 0, 0, 1], app.port).into()).await.unwrap();
    let (mut stalled, _) = tokio_tungstenite::client_async(app.ws_url(), stream).await.unwrap();
    let big = send_ok(&mut alice, &room, &"x".repeat(16_000)).await;
    let join = ClientFrame::Join { room_id: room.keys.room_id.to_hex(), session: new_session() };
    let fetch = serde_json::to_string(&ClientFrame::Fetch { message_id: big }).unwrap();
    stalled.send(Message::Text(serde_json::to_string(&join).unwrap().into())).await.unwrap();
    let started = Instant::now();
    // The server's writes stop being taken once both sides' buffers are full; it gives up
    // after the write timeout. (This client's own writes may stall too, or fail once dropped.)
    let _ = tokio::time::timeout(Duration::from_secs(20), async {
        for _ in 0..2_000 {
            if stalled.send(Message::Text(fetch.clone().into())).await.is_err() {
                break;
            }
        }
    })
    .await;
    // Its participant is gone from the room's count within the write timeout (and grace).
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        assert!(Instant::now() < deadline, "the stalled client still counts after {:?}", started.elapsed());
        if let ServerFrame::Presence { participants: 1 } = alice.recv().await {
            break;
        }
    }
    // Its address's place is free again: two connections fit.
    let (_second, _, _) = app.joined(&room).await;
    alice.send_text("still there?").await;
    assert!(matches!(alice.recv_skipping_presence().await, ServerFrame::Error { code: ErrorCode::BadFrame, .. }));
}

/// A WebSocket request from `client`, as a trusted proxy forwards it.
fn forwarded(app: &TestApp, client: &str) -> tokio_tungstenite::tungstenite::handshake::client::Request {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
    let mut request = app.ws_url().into_client_request().unwrap();
    request.headers_mut().insert("x-forwarded-for", client.parse().unwrap());
    request
}

async fn refused_with_429(request: tokio_tungstenite::tungstenite::handshake::client::Request) {
    match tokio_tungstenite::connect_async(request).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => assert_eq!(response.status(), 429),
        other => panic!("expected HTTP 429, got {:?}", other.map(|_| ())),
    }
}

#[tokio::test]
async fn one_ipv6_block_is_one_client_however_many_addresses_it_uses() {
    let app =
        spawn_app_with(Backend::Sqlite, &["--trusted-proxies", "127.0.0.0/8", "--max-connections-per-address", "2"])
            .await;
    let mut open = Vec::new();
    for address in ["2001:db8:1:2::1", "2001:db8:1:2:ffff::9"] {
        open.push(tokio_tungstenite::connect_async(forwarded(&app, address)).await.expect("within the limit"));
    }
    // Any other address of that /64 is the same client.
    refused_with_429(forwarded(&app, "2001:db8:1:2:abcd::1")).await;
    // The next /64 is another.
    open.push(tokio_tungstenite::connect_async(forwarded(&app, "2001:db8:1:3::1")).await.expect("another block"));
    // An IPv4-mapped address is the IPv4 address it carries.
    open.push(tokio_tungstenite::connect_async(forwarded(&app, "203.0.113.7")).await.unwrap());
    open.push(tokio_tungstenite::connect_async(forwarded(&app, "::ffff:203.0.113.7")).await.unwrap());
    refused_with_429(forwarded(&app, "203.0.113.7")).await;

    let narrow = spawn_app_with(
        Backend::Sqlite,
        &["--trusted-proxies", "127.0.0.0/8", "--max-connections-per-address", "1", "--ipv6-prefix", "128"],
    )
    .await;
    let _a = tokio_tungstenite::connect_async(forwarded(&narrow, "2001:db8::1")).await.unwrap();
    let _b = tokio_tungstenite::connect_async(forwarded(&narrow, "2001:db8::2")).await.expect("IPV6_PREFIX=128");
}

/// Sends messages of about `size` bytes from `client` until one is refused; the bytes stored
/// before that, and the refusal.
async fn fill(client: &mut Client, room: &TestRoom, size: usize) -> (usize, ServerFrame) {
    let mut stored = 0;
    loop {
        let (id, sealed) = room.seal(&"y".repeat(size), app::crypto::SenderId([3; 8]));
        client.send(&ClientFrame::Send { message_id: id.to_hex(), sealed: sealed.to_base64(), ttl: None }).await;
        match client.recv_skipping_presence().await {
            ServerFrame::Sent { .. } => stored += sealed.as_bytes().len(),
            refusal => return (stored, refusal),
        }
        assert!(stored < 10 << 20, "never refused");
    }
}

#[tokio::test]
async fn an_address_may_leave_only_its_share_waiting() {
    let app = spawn_app_with(
        Backend::Sqlite,
        &[
            "--trusted-proxies",
            "127.0.0.0/8",
            "--max-stored-bytes-per-address",
            "8KiB",
            "--rate-limit-per-second",
            "1000",
            "--rate-limit-burst",
            "1000",
        ],
    )
    .await;
    let room = TestRoom::new();
    let join = |address: &'static str| {
        let request = forwarded(&app, address);
        let room = &room;
        async move {
            let (ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
            let mut client = Client::from_stream(ws);
            client.join(room).await;
            client
        }
    };
    let mut greedy = join("2001:db8:5:5::1").await;
    let (stored, refusal) = fill(&mut greedy, &room, 1000).await;
    assert!((4096..=8192).contains(&stored), "stored {stored} bytes before the refusal");
    let ServerFrame::Error { code, message_id, .. } = refusal else { panic!("{refusal:?}") };
    assert_eq!(code, ErrorCode::QuotaExceeded);
    assert!(message_id.is_some(), "the refusal names the message it refuses");
    // Another address of the same /64 shares the quota; another block does not.
    let mut same_block = join("2001:db8:5:5::2").await;
    let (none, _) = fill(&mut same_block, &room, 1000).await;
    assert_eq!(none, 0);
    let mut other = join("2001:db8:5:6::1").await;
    send_ok(&mut other, &room, "from elsewhere").await;
    // A burn frees the share as it happens.
    let fresh_room = TestRoom::new();
    let mut sender = {
        let (ws, _) = tokio_tungstenite::connect_async(forwarded(&app, "2001:db8:7:7::1")).await.unwrap();
        let mut client = Client::from_stream(ws);
        client.join(&fresh_room).await;
        client
    };
    let (mut receiver, _, _) = app.joined(&fresh_room).await;
    let (stored, _) = fill(&mut sender, &fresh_room, 1000).await;
    assert!(stored >= 4096);
    // The receiver reads one message: its bytes are free again, and the sender may send one more.
    let id = loop {
        if let ServerFrame::Message { message_id, .. } = receiver.recv_skipping_presence().await {
            break message_id;
        }
    };
    receiver.send(&ClientFrame::Fetch { message_id: id.clone() }).await;
    payload(&mut receiver).await;
    receiver.send(&ClientFrame::Viewed { message_id: id.clone() }).await;
    loop {
        if sender.recv_skipping_presence().await == (ServerFrame::Deleted { message_id: id.clone() }) {
            break;
        }
    }
    send_ok(&mut sender, &fresh_room, &"z".repeat(500)).await;
}

pub async fn the_relay_stores_no_more_than_its_total(backend: Backend) {
    let app = spawn_app_with(
        backend,
        &["--max-stored-bytes", "64KiB", "--rate-limit-per-second", "1000", "--rate-limit-burst", "1000"],
    )
    .await;
    let room = TestRoom::new();
    let (mut alice, _, _) = app.joined(&room).await;
    let (_bob, _, _) = app.joined(&room).await;
    let (stored, refusal) = fill(&mut alice, &room, 4000).await;
    let ServerFrame::Error { code, .. } = refusal else { panic!("{refusal:?}") };
    assert_eq!(code, ErrorCode::StorageFull);
    let on_disk: usize = app.stored_bodies().await.iter().map(Vec::len).sum();
    assert!(on_disk <= 64 << 10, "{on_disk} bytes stored past a 64 KiB total");
    assert!(on_disk >= (64 << 10) - 2 * 5000, "refused with {on_disk} of 64 KiB stored");
    assert!(stored > 0);
    // Nothing stored was touched, and another sender is refused too.
    let rows = app.row_count().await;
    let (mut carol, _, _) = app.joined(&room).await;
    let (id, sealed) = room.seal(&"w".repeat(4000), app::crypto::SenderId([4; 8]));
    carol.send(&ClientFrame::Send { message_id: id.to_hex(), sealed: sealed.to_base64(), ttl: None }).await;
    match carol.recv_skipping_presence().await {
        ServerFrame::Error { code: ErrorCode::StorageFull, message_id, .. } => {
            assert_eq!(message_id, Some(id.to_hex()))
        }
        other => panic!("expected storage_full, got {other:?}"),
    }
    assert_eq!(app.row_count().await, rows);
}

pub async fn a_relay_states_what_it_accepts_when_a_page_joins(backend: Backend) {
    let app =
        spawn_app_with(backend, &["--max-padded-message", "4096", "--message-ttl", "2h", "--max-file-size", "1MiB"])
            .await;
    let mut client = app.client().await;
    let room = TestRoom::new();
    client.send(&ClientFrame::Join { room_id: room.keys.room_id.to_hex(), session: new_session() }).await;
    match client.recv().await {
        ServerFrame::Joined { limits, .. } => {
            assert_eq!((limits.max_message, limits.message_ttl), (4096, 7200));
            let features = [app::protocol::FEATURE_FILES, app::protocol::FEATURE_TTL];
            assert_eq!((limits.features, limits.max_file), (features.map(str::to_owned).to_vec(), 1 << 20));
        }
        other => panic!("expected joined, got {other:?}"),
    }
}

pub async fn a_late_or_repeated_viewed_of_an_expired_message_is_always_deleted(backend: Backend) {
    let app = spawn_app_with(backend, &["--message-ttl", "1s"]).await;
    let room = TestRoom::new();
    let (mut alice, _, _) = app.joined(&room).await;
    let (mut bob, _, _) = app.joined(&room).await;
    for _ in 0..5 {
        let message_id = send_ok(&mut alice, &room, "soon gone").await;
        bob.send(&ClientFrame::Fetch { message_id: message_id.clone() }).await;
        payload(&mut bob).await;
        loop {
            match bob.recv_skipping_presence().await {
                ServerFrame::Expired { message_id: gone } if gone == message_id => break,
                _ => continue,
            }
        }
        for _ in 0..2 {
            bob.send(&ClientFrame::Viewed { message_id: message_id.clone() }).await;
            assert_eq!(bob.recv_skipping_presence().await, ServerFrame::Deleted { message_id: message_id.clone() });
        }
    }
}

#[tokio::test]
async fn an_origin_must_have_the_scheme_the_relay_was_reached_by() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
    let app = spawn_app_with(Backend::Sqlite, &["--trusted-proxies", "127.0.0.0/8"]).await;
    let request = |origin: String, proto: Option<&str>| {
        let mut request = app.ws_url().into_client_request().unwrap();
        request.headers_mut().insert("origin", origin.parse().unwrap());
        if let Some(proto) = proto {
            request.headers_mut().insert("x-forwarded-proto", proto.parse().unwrap());
        }
        request
    };
    let own = format!("127.0.0.1:{}", app.port);
    match tokio_tungstenite::connect_async(request(format!("https://{own}"), None)).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => assert_eq!(response.status(), 403),
        other => panic!("a plain-http relay took an https origin: {:?}", other.map(|_| ())),
    }
    assert!(tokio_tungstenite::connect_async(request(format!("http://{own}"), None)).await.is_ok());
    // Behind a TLS proxy that says so, the page's https origin is its own.
    assert!(tokio_tungstenite::connect_async(request(format!("https://{own}"), Some("https"))).await.is_ok());
}

on_both_backends!(
    the_relay_stores_no_more_than_its_total,
    a_relay_states_what_it_accepts_when_a_page_joins,
    a_late_or_repeated_viewed_of_an_expired_message_is_always_deleted,
);

#[cfg(unix)]
#[tokio::test]
async fn the_database_and_key_are_private_and_a_shared_key_is_refused() {
    use clap::Parser as _;
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let build = || {
        let args = ["server", "--port", "0", "--data-dir", data.to_str().unwrap(), "--site-root", "target/site"];
        server::startup::Application::build(server::config::Config::try_parse_from(args).unwrap())
    };
    let mode = |name: &str| std::fs::metadata(data.join(name)).unwrap().permissions().mode() & 0o777;
    drop(build().await.expect("starts on a fresh directory"));
    assert_eq!(mode(""), 0o700, "the data directory");
    for file in ["ephemeral-chat.db", "ephemeral-chat.key", "ephemeral-chat.db.lock"] {
        assert_eq!(mode(file), 0o600, "{file}");
    }
    // An existing database others can read is tightened.
    std::fs::set_permissions(data.join("ephemeral-chat.db"), std::fs::Permissions::from_mode(0o644)).unwrap();
    drop(build().await.expect("starts"));
    assert_eq!(mode("ephemeral-chat.db"), 0o600);
    // A key file others can read stops the start, saying how to fix it.
    std::fs::set_permissions(data.join("ephemeral-chat.key"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = format!("{:#}", build().await.err().expect("refused"));
    assert!(err.contains("chmod 600"), "{err}");
}
