//! Messages held in memory by the instance that stored them (`server/src/ws/held.rs`): its
//! recipients there are answered from memory, and nothing stays held once the row is gone.

use app::protocol::{ClientFrame, ErrorCode, ServerFrame};

use super::helpers::{spawn_app, spawn_app_on, spawn_app_with, Backend, TestDatabase, TestRoom};
use super::recipients::{fetch_and_view, until};

/// The row is deleted behind the server's back only to show where the answer comes from: the
/// fetch of a message held here does not ask the store.
pub async fn a_recipient_on_the_sending_instance_is_answered_from_memory(backend: Backend) {
    let app = spawn_app(backend).await;
    let room = TestRoom::new();
    let (mut alice, _, _) = app.joined(&room).await;
    let (mut bob, _, _) = app.joined(&room).await;
    until(&mut alice, |f| *f == ServerFrame::Presence { participants: 2 }).await;
    let (id, _) = alice.send_message(&room, "from memory").await;
    until(&mut bob, |f| *f == ServerFrame::Message { message_id: id.to_hex(), chunks: 0 }).await;
    assert!(app.relay.hub.held_bytes() > 0, "the sending instance holds the message");
    assert_eq!(app.db.execute("DELETE FROM messages").await, 1);

    bob.send(&ClientFrame::Fetch { message_id: id.to_hex() }).await;
    let frame = until(&mut bob, |f| matches!(f, ServerFrame::Payload { .. } | ServerFrame::Error { .. })).await;
    let ServerFrame::Payload { message_id, sealed } = frame else { panic!("expected the payload, got {frame:?}") };
    assert_eq!(room.open(&message_id, &sealed).text, "from memory");
}

/// Burned (viewed by its recipient) or expired unread, a message leaves neither its row nor
/// its body in the server's memory.
pub async fn a_burned_or_expired_message_leaves_nothing_held(backend: Backend) {
    let app = spawn_app_with(backend, &["--message-ttl", "2s"]).await;
    let room = TestRoom::new();
    let (mut alice, _, _) = app.joined(&room).await;
    let (mut bob, _, _) = app.joined(&room).await;
    until(&mut alice, |f| *f == ServerFrame::Presence { participants: 2 }).await;
    let (burned, _) = alice.send_message(&room, "read me").await;
    let (expired, _) = alice.send_message(&room, "never read").await;
    fetch_and_view(&mut bob, &room, &burned).await;
    until(&mut alice, |f| *f == ServerFrame::Deleted { message_id: burned.to_hex() }).await;
    assert!(app.relay.hub.held_bytes() > 0, "the unread one is still held");
    until(&mut alice, |f| *f == ServerFrame::Expired { message_id: expired.to_hex() }).await;
    assert_eq!(app.relay.hub.held_bytes(), 0);
    assert_eq!(app.row_count().await, 0);

    // Nor is either served again.
    until(&mut bob, |f| *f == ServerFrame::Expired { message_id: expired.to_hex() }).await;
    for id in [burned, expired] {
        bob.send(&ClientFrame::Fetch { message_id: id.to_hex() }).await;
        bob.expect_error(ErrorCode::UnknownMessage).await;
    }
}

/// An open message (sent to an empty room) sent on A and burned on B is announced to A through
/// the bus, and A stops holding it: a reader joining A afterwards cannot fetch it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_message_burned_on_another_instance_is_no_longer_served_where_it_was_sent() {
    let db = std::sync::Arc::new(TestDatabase::new(Backend::Postgres));
    let a = spawn_app_on(db.clone(), &[]).await;
    let b = spawn_app_on(db, &[]).await;
    let room = TestRoom::new();
    let (mut alice, _, _) = a.joined(&room).await;
    let (id, _) = alice.send_message(&room, "first come").await;
    assert!(a.relay.hub.held_bytes() > 0);

    let (mut carol, _, pending) = b.joined(&room).await;
    assert_eq!(pending, vec![id.to_hex()]);
    fetch_and_view(&mut carol, &room, &id).await;
    // The hub drops what it holds of a message before it tells the room of its deletion.
    until(&mut alice, |f| *f == ServerFrame::Deleted { message_id: id.to_hex() }).await;
    assert_eq!(a.relay.hub.held_bytes(), 0);

    let (mut dave, _, pending) = a.joined(&room).await;
    assert!(pending.is_empty());
    dave.send(&ClientFrame::Fetch { message_id: id.to_hex() }).await;
    dave.expect_error(ErrorCode::UnknownMessage).await;
}

on_both_backends!(
    a_recipient_on_the_sending_instance_is_answered_from_memory,
    a_burned_or_expired_message_leaves_nothing_held,
);
