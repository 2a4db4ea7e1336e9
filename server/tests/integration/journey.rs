//! A message's journey over the socket, frame by frame: delivered, read once, deleted; what a
//! joining client is told; resends; malformed and refused frames; expiry; presence and typing.

use app::crypto::{MessageId, SenderId};
use app::protocol::{ClientFrame, ErrorCode, ServerFrame};
use tokio_tungstenite::tungstenite::Message;

use super::helpers::{self, base64_url, contains, spawn_app, spawn_app_with, Backend, TestRoom};

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
    a_sender_chosen_lifetime_is_enforced_and_a_bad_one_refused,
    presence_and_typing_reach_the_others_only,
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
    alice.send(&ClientFrame::Send { message_id: id.to_hex(), sealed: sealed.to_base64(), ttl: None }).await;
    assert_eq!(alice.recv().await, ServerFrame::Sent { message_id: id.to_hex() });
    // The notice carries the id and nothing else.
    assert_eq!(bob.recv().await, ServerFrame::Message { message_id: id.to_hex(), chunks: 0 });

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
    alice.send(&ClientFrame::Send { message_id: id.to_hex(), sealed: sealed.to_base64(), ttl: None }).await;
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
    let send = ClientFrame::Send { message_id: id.to_hex(), sealed: sealed.to_base64(), ttl: None };
    alice.send(&send).await;
    assert_eq!(alice.recv().await, ServerFrame::Sent { message_id: id.to_hex() });
    alice.send(&send).await;
    assert_eq!(alice.recv().await, ServerFrame::Sent { message_id: id.to_hex() });
    let (_, other) = room.seal("twice", SenderId([1; 8]));
    alice.send(&ClientFrame::Send { message_id: id.to_hex(), sealed: other.to_base64(), ttl: None }).await;
    alice.expect_error(ErrorCode::IdConflict).await;
    // Bob was notified once, and the stored payload is the first one.
    assert_eq!(bob.recv().await, ServerFrame::Message { message_id: id.to_hex(), chunks: 0 });
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
    alice.send(&ClientFrame::Send { message_id: id.to_hex(), sealed: sealed.to_base64(), ttl: None }).await;
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
    alice.send(&ClientFrame::Send { message_id: id.to_hex(), sealed: sealed.to_base64(), ttl: None }).await;
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
    let send = |sealed: String| ClientFrame::Send { message_id: id.to_hex(), sealed, ttl: None };
    alice.send(&send("!!!not base64!!!".into())).await;
    alice.expect_error(ErrorCode::BadEncoding).await;
    alice.send(&send(sealed.to_base64()[..100].into())).await;
    alice.expect_error(ErrorCode::BadSize).await;
    // 0x01 is a message and 0x02 a file card: 0x03 is no version.
    let mut wrong_version = sealed.as_bytes().to_vec();
    wrong_version[0] = 3;
    let encoded = base64_url(&wrong_version);
    alice.send(&send(encoded)).await;
    alice.expect_error(ErrorCode::BadVersion).await;
    alice.send(&ClientFrame::Send { message_id: "00".into(), sealed: sealed.to_base64(), ttl: None }).await;
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
    alice.send(&ClientFrame::Send { message_id: id.to_hex(), sealed: sealed.to_base64(), ttl: None }).await;
    let _ = alice.recv().await; // sent
    assert_eq!(bob.recv().await, ServerFrame::Message { message_id: id.to_hex(), chunks: 0 });
    assert_eq!(bob.recv().await, ServerFrame::Expired { message_id: id.to_hex() });
    assert_eq!(alice.recv().await, ServerFrame::Expired { message_id: id.to_hex() });
    assert_eq!(app.row_count().await, 0);
}

/// A `send` may say how long its message waits unread (`ttl`, up to the relay's TTL): the relay
/// stores that as its expiry. A `ttl` of 0 or past the relay's TTL is `bad_ttl`, stores nothing,
/// and the connection goes on.
async fn a_sender_chosen_lifetime_is_enforced_and_a_bad_one_refused(backend: Backend) {
    let app = spawn_app_with(backend, &["--message-ttl", "4s"]).await;
    let room = TestRoom::new();
    let (mut alice, _, _) = app.joined(&room).await;
    let mut bob = app.client().await;
    bob.send(&ClientFrame::Join { room_id: room.keys.room_id.to_hex(), session: helpers::new_session() }).await;
    let ServerFrame::Joined { limits, .. } = bob.recv().await else { panic!("expected joined") };
    assert!(limits.features.iter().any(|f| f == "ttl"), "{limits:?}");
    assert_eq!(limits.message_ttl, 4);
    let _ = alice.recv().await; // presence
    for (ttl, what) in [(0, "zero"), (5, "past the relay's TTL")] {
        let (id, sealed) = room.seal("refused", SenderId([1; 8]));
        alice.send(&ClientFrame::Send { message_id: id.to_hex(), sealed: sealed.to_base64(), ttl: Some(ttl) }).await;
        let ServerFrame::Error { code, message_id, .. } = alice.recv().await else {
            panic!("{what}: expected an error")
        };
        assert_eq!((code, message_id), (ErrorCode::BadTtl, Some(id.to_hex())), "{what}");
    }
    assert_eq!(app.row_count().await, 0, "nothing stored");
    let (short, sealed) = room.seal("one second", SenderId([1; 8]));
    alice.send(&ClientFrame::Send { message_id: short.to_hex(), sealed: sealed.to_base64(), ttl: Some(1) }).await;
    assert_eq!(alice.recv().await, ServerFrame::Sent { message_id: short.to_hex() });
    let (long, sealed) = room.seal("the relay's four", SenderId([1; 8]));
    alice.send(&ClientFrame::Send { message_id: long.to_hex(), sealed: sealed.to_base64(), ttl: None }).await;
    assert_eq!(alice.recv().await, ServerFrame::Sent { message_id: long.to_hex() });
    assert_eq!(bob.recv().await, ServerFrame::Message { message_id: short.to_hex(), chunks: 0 });
    assert_eq!(bob.recv().await, ServerFrame::Message { message_id: long.to_hex(), chunks: 0 });
    // The sweep runs every second at this TTL: the one-second message goes first, alone.
    assert_eq!(bob.recv().await, ServerFrame::Expired { message_id: short.to_hex() });
    bob.send(&ClientFrame::Fetch { message_id: long.to_hex() }).await;
    assert!(matches!(bob.recv().await, ServerFrame::Payload { message_id, .. } if message_id == long.to_hex()));
    assert_eq!(app.row_count().await, 1, "the other still waits");
    assert_eq!(bob.recv().await, ServerFrame::Expired { message_id: long.to_hex() });
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
