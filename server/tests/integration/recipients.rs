//! Who must view a message before it burns: recipients at send time, grace periods, open
//! messages, reconnects.

use std::time::{Duration, Instant};

use app::crypto::MessageId;
use app::protocol::{ClientFrame, ErrorCode, ServerFrame};
use server::domain::RoomHash;
use server::domain::{EventKind, Participant};
use sqlx::{ConnectOptions as _, Connection as _};

use super::helpers::{spawn_app, spawn_app_with, Backend, Client, TestApp, TestRoom};

async fn send(client: &mut Client, room: &TestRoom, text: &str) -> MessageId {
    client.send_message(room, text).await.0
}

pub async fn fetch_and_view(client: &mut Client, room: &TestRoom, id: &MessageId) {
    client.send(&ClientFrame::Fetch { message_id: id.to_hex() }).await;
    let frame = until(client, |f| matches!(f, ServerFrame::Payload { .. } | ServerFrame::Error { .. })).await;
    let ServerFrame::Payload { message_id, sealed } = frame else { panic!("expected payload, got {frame:?}") };
    room.open(&message_id, &sealed);
    client.send(&ClientFrame::Viewed { message_id: id.to_hex() }).await;
}

/// Skips room traffic (notices, presence) until an error, which must have `code`.
async fn until_error(client: &mut Client, code: ErrorCode) {
    match until(client, |f| matches!(f, ServerFrame::Error { .. })).await {
        ServerFrame::Error { code: got, .. } => assert_eq!(got, code),
        _ => unreachable!("until returned a non-error"),
    }
}

/// Reads frames until one satisfies `wanted` (other room traffic such as presence is skipped).
pub async fn until(client: &mut Client, wanted: impl Fn(&ServerFrame) -> bool) -> ServerFrame {
    loop {
        let frame = client.recv().await;
        if wanted(&frame) {
            return frame;
        }
    }
}

/// Joins three clients to a fresh room; returns them with presence frames drained.
pub async fn three(app: &TestApp, room: &TestRoom) -> (Client, Client, Client) {
    let (mut a, _, _) = app.joined(room).await;
    let (mut b, _, _) = app.joined(room).await;
    let (c, _, _) = app.joined(room).await;
    until(&mut a, |f| *f == ServerFrame::Presence { participants: 3 }).await;
    until(&mut b, |f| *f == ServerFrame::Presence { participants: 3 }).await;
    (a, b, c)
}

pub async fn a_message_burns_when_every_recipient_has_viewed_it(backend: Backend) {
    let app = spawn_app(backend).await;
    let room = TestRoom::new();
    let (mut alice, mut bob, mut carol) = three(&app, &room).await;
    let id = send(&mut alice, &room, "for both of you").await;
    fetch_and_view(&mut bob, &room, &id).await;
    let receipt = ServerFrame::Receipt { message_id: id.to_hex(), viewed: 1, of: 2 };
    assert_eq!(until(&mut alice, |f| matches!(f, ServerFrame::Receipt { .. })).await, receipt);
    assert_eq!(app.row_count().await, 1, "carol has not read it yet");
    // A repeated viewed gets the same answer and changes nothing.
    bob.send(&ClientFrame::Viewed { message_id: id.to_hex() }).await;
    assert_eq!(until(&mut bob, |f| matches!(f, ServerFrame::Receipt { .. })).await, receipt);
    until(&mut carol, |f| *f == ServerFrame::Message { message_id: id.to_hex(), chunks: 0 }).await;
    fetch_and_view(&mut carol, &room, &id).await;
    let deleted = ServerFrame::Deleted { message_id: id.to_hex() };
    assert_eq!(until(&mut alice, |f| matches!(f, ServerFrame::Deleted { .. })).await, deleted);
    assert_eq!(app.row_count().await, 0);
}

pub async fn a_recipient_who_leaves_is_dropped_and_the_message_burns(backend: Backend) {
    let app = spawn_app_with(backend, &["--session-grace", "1s"]).await;
    let room = TestRoom::new();
    let (mut alice, mut bob, carol) = three(&app, &room).await;
    let id = send(&mut alice, &room, "carol will not stay").await;
    fetch_and_view(&mut bob, &room, &id).await;
    until(&mut alice, |f| matches!(f, ServerFrame::Receipt { viewed: 1, of: 2, .. })).await;
    drop(carol);
    // After carol's grace period she has left: bob was the last who had to read it.
    let deleted = ServerFrame::Deleted { message_id: id.to_hex() };
    assert_eq!(until(&mut alice, |f| matches!(f, ServerFrame::Deleted { .. })).await, deleted);
    assert_eq!(app.row_count().await, 0);
}

pub async fn an_unread_message_whose_recipients_left_is_open_to_the_next_reader(backend: Backend) {
    let app = spawn_app_with(backend, &["--session-grace", "1s"]).await;
    let room = TestRoom::new();
    let (mut alice, _, _) = app.joined(&room).await;
    let (bob, _, _) = app.joined(&room).await;
    until(&mut alice, |f| *f == ServerFrame::Presence { participants: 2 }).await;
    let id = send(&mut alice, &room, "bob left before reading").await;
    drop(bob);
    until(&mut alice, |f| *f == ServerFrame::Presence { participants: 1 }).await;
    // A newcomer during bob's grace period is not a recipient...
    let (mut dave, _, pending) = app.joined(&room).await;
    assert!(pending.is_empty());
    dave.send(&ClientFrame::Fetch { message_id: id.to_hex() }).await;
    until_error(&mut dave, ErrorCode::NotRecipient).await;
    // ...but once bob's grace is over the message is open: the next reader who views it burns it.
    let (mut erin, _, pending) = wait_for_pending(&app, &room, &id).await;
    assert_eq!(pending, vec![id.to_hex()]);
    alice.send(&ClientFrame::Fetch { message_id: id.to_hex() }).await;
    until_error(&mut alice, ErrorCode::OwnMessage).await;
    fetch_and_view(&mut erin, &room, &id).await;
    let deleted = ServerFrame::Deleted { message_id: id.to_hex() };
    assert_eq!(until(&mut erin, |f| matches!(f, ServerFrame::Deleted { .. })).await, deleted);
    // Gone for everyone, dave included.
    dave.send(&ClientFrame::Fetch { message_id: id.to_hex() }).await;
    until_error(&mut dave, ErrorCode::UnknownMessage).await;
    assert_eq!(app.row_count().await, 0);
}

/// Joins as fresh participants until one is offered `id` (bob's grace period running out is
/// the condition waited for), leaving the others connected.
async fn wait_for_pending(app: &TestApp, room: &TestRoom, id: &MessageId) -> (Client, u32, Vec<String>) {
    let deadline = std::time::Instant::now() + super::helpers::FRAME_TIMEOUT;
    loop {
        let (client, participants, pending) = app.joined(room).await;
        if pending.contains(&id.to_hex()) {
            return (client, participants, pending);
        }
        assert!(std::time::Instant::now() < deadline, "the message never became open");
        drop(client);
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

pub async fn a_reconnect_within_the_grace_period_is_the_same_participant(backend: Backend) {
    let app = spawn_app(backend).await;
    let room = TestRoom::new();
    let (mut alice, _, _) = app.joined(&room).await;
    let (mut bob, _, _) = app.joined(&room).await;
    until(&mut alice, |f| *f == ServerFrame::Presence { participants: 2 }).await;
    let id = send(&mut alice, &room, "read me after your reconnect").await;
    bob.send(&ClientFrame::Fetch { message_id: id.to_hex() }).await;
    until(&mut bob, |f| matches!(f, ServerFrame::Payload { .. })).await;
    let session = bob.session.clone();
    drop(bob);
    until(&mut alice, |f| *f == ServerFrame::Presence { participants: 1 }).await;
    let mut again = app.client().await;
    again.session = session;
    let (participants, pending) = again.join(&room).await;
    assert_eq!((participants, pending), (2, vec![id.to_hex()]));
    // Same participant: the fetch before the drop counts, viewed needs no new fetch.
    again.send(&ClientFrame::Viewed { message_id: id.to_hex() }).await;
    assert_eq!(again.recv().await, ServerFrame::Deleted { message_id: id.to_hex() });
    assert_eq!(app.row_count().await, 0);
}

pub async fn a_malformed_session_is_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let room = TestRoom::new();
    let mut client = app.client().await;
    for session in ["", "xyz", &"AB".repeat(16), &"ab".repeat(17)] {
        client.send(&ClientFrame::Join { room_id: room.keys.room_id.to_hex(), session: session.to_owned() }).await;
        client.expect_error(ErrorCode::BadSession).await;
    }
    assert_eq!(client.join(&room).await.0, 1);
}

pub async fn participants_in_their_grace_period_still_fill_the_room(backend: Backend) {
    let app = spawn_app_with(backend, &["--max-room-participants", "2"]).await;
    let room = TestRoom::new();
    let (mut alice, _, _) = app.joined(&room).await;
    let (bob, _, _) = app.joined(&room).await;
    until(&mut alice, |f| *f == ServerFrame::Presence { participants: 2 }).await;
    let session = bob.session.clone();
    drop(bob);
    until(&mut alice, |f| *f == ServerFrame::Presence { participants: 1 }).await;
    let mut carol = app.client().await;
    carol.send(&ClientFrame::Join { room_id: room.keys.room_id.to_hex(), session: carol.session.clone() }).await;
    carol.expect_error(ErrorCode::RoomFull).await;
    let mut bob_again = app.client().await;
    bob_again.session = session;
    assert_eq!(bob_again.join(&room).await.0, 2, "bob's seat was kept for him");
}

pub async fn two_readers_racing_for_an_open_message_burn_it_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let room = TestRoom::new();
    let (mut alice, _, _) = app.joined(&room).await;
    let id = send(&mut alice, &room, "first come").await; // alone: open from the start
    let (mut bob, _, pending_b) = app.joined(&room).await;
    let (mut carol, _, pending_c) = app.joined(&room).await;
    assert_eq!((pending_b.len(), pending_c.len()), (1, 1));
    for reader in [&mut bob, &mut carol] {
        reader.send(&ClientFrame::Fetch { message_id: id.to_hex() }).await;
        until(reader, |f| matches!(f, ServerFrame::Payload { .. })).await;
    }
    // Both confirm at once: one commit deletes it, the other is told it is gone.
    bob.send(&ClientFrame::Viewed { message_id: id.to_hex() }).await;
    carol.send(&ClientFrame::Viewed { message_id: id.to_hex() }).await;
    let deleted = ServerFrame::Deleted { message_id: id.to_hex() };
    for reader in [&mut bob, &mut carol, &mut alice] {
        assert_eq!(
            until(reader, |f| matches!(f, ServerFrame::Deleted { .. } | ServerFrame::Receipt { .. })).await,
            deleted
        );
    }
    assert_eq!(app.row_count().await, 0);
}

pub async fn a_page_that_closes_its_socket_has_left_at_once(backend: Backend) {
    // A long grace period: only the page's own close can free its place this quickly.
    let app = spawn_app_with(backend, &["--max-room-participants", "2", "--session-grace", "1h"]).await;
    let room = TestRoom::new();
    let (mut alice, _, _) = app.joined(&room).await;
    let (bob, _, _) = app.joined(&room).await;
    until(&mut alice, |f| *f == ServerFrame::Presence { participants: 2 }).await;
    let id = send(&mut alice, &room, "bob never reads this").await;
    bob.close().await;
    until(&mut alice, |f| *f == ServerFrame::Presence { participants: 1 }).await;
    // Bob is gone for good: his place is free and the message is open to the next reader.
    let (mut carol, participants, pending) = app.joined(&room).await;
    assert_eq!(participants, 2);
    assert_eq!(pending, vec![id.to_hex()]);
    fetch_and_view(&mut carol, &room, &id).await;
    let deleted = ServerFrame::Deleted { message_id: id.to_hex() };
    assert_eq!(until(&mut alice, |f| matches!(f, ServerFrame::Deleted { .. })).await, deleted);
    assert_eq!(app.row_count().await, 0);
}

pub async fn two_last_readers_viewing_at_once_burn_the_message(backend: Backend) {
    let app = spawn_app(backend).await;
    let room = TestRoom::new();
    let (mut alice, mut bob, mut carol) = three(&app, &room).await;
    // Several rounds: the two `viewed` race each time.
    for round in 0..5 {
        // Not `send`: a receipt from the round before may still be on its way to alice.
        let (id, sealed) = room.seal(&format!("round {round}"), app::crypto::SenderId([7; 8]));
        alice.send(&ClientFrame::Send { message_id: id.to_hex(), sealed: sealed.to_base64(), ttl: None }).await;
        until(&mut alice, |f| *f == ServerFrame::Sent { message_id: id.to_hex() }).await;
        for reader in [&mut bob, &mut carol] {
            until(reader, |f| *f == ServerFrame::Message { message_id: id.to_hex(), chunks: 0 }).await;
            reader.send(&ClientFrame::Fetch { message_id: id.to_hex() }).await;
            until(reader, |f| matches!(f, ServerFrame::Payload { .. })).await;
        }
        let viewed = ClientFrame::Viewed { message_id: id.to_hex() };
        tokio::join!(bob.send(&viewed), carol.send(&viewed));
        let deleted = ServerFrame::Deleted { message_id: id.to_hex() };
        assert_eq!(until(&mut alice, |f| matches!(f, ServerFrame::Deleted { .. })).await, deleted, "round {round}");
    }
    assert_eq!(app.row_count().await, 0);
}

/// PostgreSQL runs sends and leaves side by side. A leave that commits while a message is being
/// stored must not leave the leaver among its recipients: the leave has already dropped it from
/// every recipient list, so the message would wait for it until it expired. The test holds the
/// leave's first statement (the participant row's DELETE) open in a transaction of its own, so
/// the send runs into it every time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_participant_leaving_while_a_message_is_stored_does_not_keep_it_from_burning() {
    let app = spawn_app(Backend::Postgres).await;
    let room = TestRoom::new();
    let (mut alice, mut bob, carol) = three(&app, &room).await;
    let options = app.db.url.parse::<sqlx::postgres::PgConnectOptions>().unwrap();
    let (mut leaving, mut watching) = (options.connect().await.unwrap(), options.connect().await.unwrap());
    let mut leave = leaving.begin().await.unwrap();
    let carol_row = Participant::from_token(&MessageId::parse(&carol.session).unwrap().0);
    sqlx::query("DELETE FROM participants WHERE room_hash = $1 AND participant = $2")
        .bind(&room.keys.room_id.storage_hash()[..])
        .bind(&carol_row.0[..])
        .execute(&mut *leave)
        .await
        .unwrap();

    let (id, sealed) = room.seal("carol is on her way out", app::crypto::SenderId([7; 8]));
    alice.send(&ClientFrame::Send { message_id: id.to_hex(), sealed: sealed.to_base64(), ttl: None }).await;
    // The store either waits for the leave or has stored the message without waiting.
    let sql = "SELECT (SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() \
                   AND wait_event_type = 'Lock') + (SELECT COUNT(*) FROM messages)";
    let deadline = Instant::now() + Duration::from_secs(10);
    while sqlx::query_scalar::<_, i64>(sql).fetch_one(&mut watching).await.unwrap() == 0 {
        assert!(Instant::now() < deadline, "the send neither waited nor stored its message");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    leave.commit().await.unwrap();
    until(&mut alice, |f| *f == ServerFrame::Sent { message_id: id.to_hex() }).await;

    // Bob is the one recipient left: his view burns it.
    until(&mut bob, |f| *f == ServerFrame::Message { message_id: id.to_hex(), chunks: 0 }).await;
    fetch_and_view(&mut bob, &room, &id).await;
    let deleted = ServerFrame::Deleted { message_id: id.to_hex() };
    assert_eq!(
        until(&mut alice, |f| matches!(f, ServerFrame::Deleted { .. } | ServerFrame::Receipt { .. })).await,
        deleted
    );
    assert_eq!(app.row_count().await, 0);
}

/// A connection that fell behind its room's channel resyncs from the store, which tells a sender
/// its burned messages are gone; their own `deleted` events, queued behind the resync, must not
/// tell it a second time (found by the benchmark's open loop on a stalling machine).
pub async fn a_resync_does_not_repeat_a_deleted_notice(backend: Backend) {
    let app = spawn_app(backend).await;
    let room = TestRoom::new();
    let (mut alice, _, _) = app.joined(&room).await;
    let (bob, _, _) = app.joined(&room).await;
    until(&mut alice, |f| *f == ServerFrame::Presence { participants: 2 }).await;
    let id = send(&mut alice, &room, "burned while alice was behind").await;

    // Bob's view, straight in the store; then alice's connection hears a resync and, behind
    // it, the `deleted` event, as after a lag. A second lag can come before the first resync's
    // events are through (found by the benchmark's smoke run once fetches got faster): two
    // resyncs, then the event.
    let hash = RoomHash(room.keys.room_id.storage_hash());
    let bob_row = Participant::from_token(&MessageId::parse(&bob.session).unwrap().0);
    app.relay.store.viewed(&hash, &id, &bob_row).await.unwrap();
    app.relay.hub.publish(&hash, None, EventKind::Resync);
    app.relay.hub.publish(&hash, None, EventKind::Resync);
    app.relay.hub.publish(&hash, None, EventKind::Deleted(id));

    let deleted = ServerFrame::Deleted { message_id: id.to_hex() };
    assert_eq!(until(&mut alice, |f| matches!(f, ServerFrame::Deleted { .. })).await, deleted);
    // The next frame is the answer to this send, not the same `deleted` again.
    let (next, sealed) = room.seal("and then", app::crypto::SenderId([7; 8]));
    alice.send(&ClientFrame::Send { message_id: next.to_hex(), sealed: sealed.to_base64(), ttl: None }).await;
    assert_eq!(alice.recv().await, ServerFrame::Sent { message_id: next.to_hex() });
}

on_both_backends!(
    a_message_burns_when_every_recipient_has_viewed_it,
    a_recipient_who_leaves_is_dropped_and_the_message_burns,
    an_unread_message_whose_recipients_left_is_open_to_the_next_reader,
    a_reconnect_within_the_grace_period_is_the_same_participant,
    a_malformed_session_is_refused,
    participants_in_their_grace_period_still_fill_the_room,
    two_readers_racing_for_an_open_message_burn_it_once,
    a_page_that_closes_its_socket_has_left_at_once,
    two_last_readers_viewing_at_once_burn_the_message,
    a_resync_does_not_repeat_a_deleted_notice,
);
