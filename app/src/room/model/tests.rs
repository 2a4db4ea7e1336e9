//! The room model, frame by frame and action by action. Refusals and dates have files of
//! their own below.

use std::sync::Arc;
use std::time::Duration;

use super::RoomModel;
use crate::crypto::message::seal;
use crate::crypto::{Body, MessageId, RoomKeys, SenderId};
use crate::protocol::{ClientFrame, ErrorCode, RelayLimits, ServerFrame};
use crate::room::card::{CardState, SHOW_SECONDS};
use crate::room::effect::{
    ConnectionState, Effect, NotSent, RoomEvent, Timer, FIRST_BACKOFF, MAX_BACKOFF, RETRY_AFTER,
};

mod choices;
mod dates;
mod files;
mod refusals;

/// The time every model below reads, unless a test moves its own clock.
const NOW: u64 = 1_750_000_000_000;

fn keys() -> RoomKeys {
    RoomKeys::from_ikm(&[7; 32])
}

/// A page not yet connected, whose clock says [`NOW`].
fn model() -> RoomModel {
    RoomModel::with_clock(keys(), Arc::new(|| NOW))
}

/// `joined` of a room of `participants` with nothing waiting, from a relay that states no limits.
fn joined_frame(participants: u32) -> ServerFrame {
    ServerFrame::Joined { participants, pending: Vec::new(), limits: RelayLimits::default(), files: Default::default() }
}

/// A model that has joined a room of `participants` with nothing waiting.
fn joined(participants: u32) -> RoomModel {
    let mut model = model();
    model.start();
    model.on_connected();
    model.on_frame(joined_frame(participants));
    model
}

/// A message from someone else in the room, sent a second before [`NOW`]: its id and sealed
/// payload (base64url).
fn from_peer(text: &str) -> (MessageId, String) {
    from_peer_at(text, NOW - 1_000)
}

/// A message from someone else in the room, sent at `sent_at`.
fn from_peer_at(text: &str, sent_at: u64) -> (MessageId, String) {
    let id = MessageId::generate();
    let body =
        Body { id, sender: SenderId([9; 8]), text: text.into(), sent_at, file: None, chosen: Default::default() };
    (id, seal(&keys(), &body).unwrap().to_base64())
}

fn frames(effects: &[Effect]) -> Vec<ClientFrame> {
    effects
        .iter()
        .filter_map(|effect| match effect {
            Effect::Send(frame) => Some(frame.clone()),
            _ => None,
        })
        .collect()
}

fn events(effects: &[Effect]) -> Vec<RoomEvent> {
    effects
        .iter()
        .filter_map(|effect| match effect {
            Effect::Event(event) => Some(event.clone()),
            _ => None,
        })
        .collect()
}

fn message(id: MessageId) -> ServerFrame {
    ServerFrame::Message { message_id: id.to_hex(), chunks: 0 }
}

fn fetch(id: MessageId) -> ClientFrame {
    ClientFrame::Fetch { message_id: id.to_hex() }
}

fn viewed(id: MessageId) -> ClientFrame {
    ClientFrame::Viewed { message_id: id.to_hex() }
}

/// A model showing the peer's message `text`: arrived, opened and confirmed viewed.
fn showing(text: &str) -> (RoomModel, MessageId) {
    let mut model = joined(2);
    let (id, sealed) = from_peer(text);
    model.on_frame(message(id));
    model.open(id);
    model.on_frame(ServerFrame::Payload { message_id: id.to_hex(), sealed });
    (model, id)
}

/// Sends `text` and returns its id and sealed payload as the `send` frame carried them.
fn send(model: &mut RoomModel, text: &str) -> (MessageId, String) {
    let effects = model.send(text, 1_000).unwrap();
    match frames(&effects).first() {
        Some(ClientFrame::Send { message_id, sealed, .. }) => (MessageId::parse(message_id).unwrap(), sealed.clone()),
        other => panic!("expected a send frame, got {other:?}"),
    }
}

#[test]
fn it_connects_then_joins_with_the_room_id_and_a_fresh_session() {
    let mut model = model();
    assert_eq!(model.start(), vec![Effect::Connect { after: Duration::ZERO }]);
    assert_eq!(model.connection(), ConnectionState::Connecting);
    let [Effect::Send(ClientFrame::Join { room_id, session })] = &model.on_connected()[..] else {
        panic!("expected one join frame")
    };
    assert_eq!(room_id, &keys().room_id.to_hex());
    assert!(session.len() == 32 && session.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_ne!(session, &RoomModel::new(keys()).session, "each page has its own session");
    assert_eq!(model.limits(), &RelayLimits::default(), "before any joined, what every relay accepts");
}

#[test]
fn joined_brings_the_room_online_with_a_sealed_card_per_waiting_message() {
    let mut model = model();
    model.start();
    model.on_connected();
    let (a, b) = (MessageId::generate(), MessageId::generate());
    let pending = vec![a.to_hex(), "nonsense".into(), b.to_hex()];
    let effects = model.on_frame(ServerFrame::Joined {
        participants: 3,
        pending,
        limits: RelayLimits::default(),
        files: Default::default(),
    });
    assert_eq!(model.connection(), ConnectionState::Online);
    assert_eq!(model.participants(), 3);
    assert_eq!(events(&effects), vec![RoomEvent::Joined, RoomEvent::Arrived(a), RoomEvent::Arrived(b)]);
    assert_eq!(
        model.cards().iter().map(|c| (c.id, c.state.clone())).collect::<Vec<_>>(),
        vec![(a, CardState::Sealed), (b, CardState::Sealed)]
    );
    assert_eq!(model.announcement(), "New encrypted message. 2 waiting to be opened.");
    assert!(frames(&effects).is_empty(), "nothing is fetched until a person opens it");
}

#[test]
fn a_message_notice_adds_one_sealed_card_and_ends_the_peers_typing() {
    let mut model = joined(2);
    model.on_frame(ServerFrame::Typing { active: true });
    let id = MessageId::generate();
    assert_eq!(events(&model.on_frame(message(id))), vec![RoomEvent::Arrived(id)]);
    assert!(!model.peer_typing());
    assert!(model.on_frame(message(id)).is_empty(), "a second notice of the same id is dropped");
    assert_eq!(model.cards().len(), 1);
    assert!(model.on_frame(ServerFrame::Message { message_id: "XYZ".into(), chunks: 0 }).is_empty());
}

#[test]
fn opening_fetches_and_a_payload_shows_the_text_and_confirms_it_viewed() {
    let mut model = joined(2);
    let (id, sealed) = from_peer("hello");
    model.on_frame(message(id));
    assert_eq!(frames(&model.open(id)), vec![fetch(id)]);
    assert_eq!(model.card(id).unwrap().state, CardState::Opening);
    assert!(model.open(id).is_empty(), "a card already opening is not fetched twice");
    let effects = model.on_frame(ServerFrame::Payload { message_id: id.to_hex(), sealed: sealed.clone() });
    assert_eq!(model.card(id).unwrap().state, CardState::Open("hello".into()));
    assert_eq!(frames(&effects), vec![viewed(id)]);
    assert_eq!(events(&effects), vec![RoomEvent::Opened(id)]);
    assert!(effects.contains(&Effect::Schedule { timer: Timer::Countdown(id), after: Duration::from_secs(1) }));
    assert_eq!(model.card(id).unwrap().left, Some(SHOW_SECONDS));
}

#[test]
fn a_payload_nobody_asked_for_is_ignored() {
    let mut model = joined(2);
    let (id, sealed) = from_peer("unasked");
    model.on_frame(message(id));
    assert!(model.on_frame(ServerFrame::Payload { message_id: id.to_hex(), sealed }).is_empty());
    assert_eq!(model.card(id).unwrap().state, CardState::Sealed);
}

#[test]
fn a_payload_that_fails_to_open_is_unreadable_and_may_be_fetched_again() {
    let mut model = joined(2);
    let (id, _) = from_peer("hello");
    let (_, other_sealed) = from_peer("another id's payload");
    model.on_frame(message(id));
    model.open(id);
    let effects = model.on_frame(ServerFrame::Payload { message_id: id.to_hex(), sealed: other_sealed });
    assert_eq!(events(&effects), vec![RoomEvent::Unreadable(id)]);
    assert!(frames(&effects).is_empty(), "nothing unread is confirmed viewed");
    assert_eq!(model.card(id).unwrap().state, CardState::Unreadable);
    assert_eq!(frames(&model.open(id)), vec![fetch(id)]);
}

#[test]
fn our_own_message_reflected_back_is_dropped_unread() {
    let mut model = joined(2);
    let id = MessageId::generate();
    let body =
        Body { id, sender: model.sender, text: "mine".into(), sent_at: NOW, file: None, chosen: Default::default() };
    let sealed = seal(&keys(), &body).unwrap().to_base64();
    model.on_frame(message(id));
    model.open(id);
    let effects = model.on_frame(ServerFrame::Payload { message_id: id.to_hex(), sealed });
    assert!(frames(&effects).is_empty(), "not for us to burn");
    assert!(model.card(id).is_none());
}

#[test]
fn a_message_already_shown_is_never_shown_again_but_confirmed_viewed() {
    let (mut model, id) = showing("once");
    let effects = model.on_frame(message(id));
    assert_eq!(events(&effects), vec![RoomEvent::SeenAgain(id)]);
    assert_eq!(frames(&effects), vec![fetch(id)]);
    let (_, copy) = from_peer("a copy");
    let effects = model.on_frame(ServerFrame::Payload { message_id: id.to_hex(), sealed: copy });
    assert_eq!(frames(&effects), vec![viewed(id)]);
    assert!(events(&effects).is_empty());
    assert_eq!(model.card(id).unwrap().state, CardState::Open("once".into()));
}

#[test]
fn sending_seals_and_queues_until_stored() {
    let mut model = joined(2);
    let effects = model.send("secret", 5).unwrap();
    let sent = frames(&effects);
    let [ClientFrame::Send { message_id, sealed, .. }] = &sent[..] else { panic!("expected one send, got {sent:?}") };
    assert!(!sealed.contains("secret"));
    let id = MessageId::parse(message_id).unwrap();
    assert_eq!(model.card(id).unwrap().state, CardState::Mine { text: "secret".into(), stored: false, seen: None });
    assert_eq!(model.unacknowledged(), 1);
    assert_eq!(
        events(&model.on_frame(ServerFrame::Sent { message_id: message_id.clone() })),
        vec![RoomEvent::Stored(id)]
    );
    assert!(model.on_frame(ServerFrame::Sent { message_id: message_id.clone() }).is_empty());
    assert_eq!(model.unacknowledged(), 0);
    assert_eq!(model.card(id).unwrap().state, CardState::Mine { text: "secret".into(), stored: true, seen: None });
}

#[test]
fn sending_ends_the_typing_notice_the_room_was_given() {
    let mut model = joined(2);
    model.typed(1_000);
    let sent = frames(&model.send("typed, then sent", 1_500).unwrap());
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[1], ClientFrame::Typing { active: false });
    assert_eq!(frames(&model.typed(1_600)), vec![ClientFrame::Typing { active: true }], "a new notice after a send");
}

#[test]
fn empty_or_too_long_messages_are_not_sent() {
    let mut model = joined(2);
    assert_eq!(model.send("  \n", 1), Err(NotSent::Empty));
    assert_eq!(model.send(&"x".repeat(20_000), 1), Err(NotSent::TooLong));
    assert_eq!(model.notice(), Some("That message is too long to send: this relay takes messages of up to 16 KiB."));
    assert!(model.cards().is_empty());
}

#[test]
fn receipts_count_on_our_own_card() {
    let mut model = joined(3);
    let (id, _) = send(&mut model, "to two");
    model.on_frame(ServerFrame::Receipt { message_id: id.to_hex(), viewed: 1, of: 2 });
    assert_eq!(
        model.card(id).unwrap().state,
        CardState::Mine { text: "to two".into(), stored: false, seen: Some((1, 2)) }
    );
}

#[test]
fn deleted_burns_our_message_and_marks_others_gone() {
    let mut model = joined(2);
    let (mine, _) = send(&mut model, "mine");
    let theirs = MessageId::generate();
    model.on_frame(message(theirs));
    let effects = model.on_frame(ServerFrame::Deleted { message_id: mine.to_hex() });
    assert_eq!(events(&effects), vec![RoomEvent::Burned(mine)]);
    assert_eq!(model.card(mine).unwrap().state, CardState::Burned("mine".into()));
    assert_eq!(model.unacknowledged(), 0, "a deleted message was stored: never sent again");
    assert_eq!(model.announcement(), "Everyone has read your message: it has burned.");
    model.on_frame(ServerFrame::Deleted { message_id: theirs.to_hex() });
    assert_eq!(model.card(theirs).unwrap().state, CardState::Gone("Read by someone else"));
}

#[test]
fn deleted_confirms_the_burn_of_what_we_viewed() {
    let (mut model, id) = showing("read");
    let effects = model.on_frame(ServerFrame::Deleted { message_id: id.to_hex() });
    assert_eq!(events(&effects), vec![RoomEvent::Burned(id)]);
    assert_eq!(model.card(id).unwrap().state, CardState::Open("read".into()), "the text stays for its countdown");
}

#[test]
fn expired_messages_are_gone_and_announced() {
    let mut model = joined(2);
    let id = MessageId::generate();
    model.on_frame(message(id));
    let effects = model.on_frame(ServerFrame::Expired { message_id: id.to_hex() });
    assert_eq!(events(&effects), vec![RoomEvent::Expired(id)]);
    assert_eq!(model.card(id).unwrap().state, CardState::Gone("Expired unread"));
    assert_eq!(model.announcement(), "A message ran out of time before anyone read it.");
    assert!(model.on_frame(ServerFrame::Expired { message_id: MessageId::generate().to_hex() }).is_empty());
}

#[test]
fn presence_sets_the_count() {
    let mut model = joined(2);
    model.on_frame(ServerFrame::Presence { participants: 5 });
    assert_eq!(model.participants(), 5);
}

#[test]
fn the_peers_typing_shows_until_its_newest_timer_runs_out() {
    let mut model = joined(2);
    let first = model.on_frame(ServerFrame::Typing { active: true });
    let second = model.on_frame(ServerFrame::Typing { active: true });
    let timer = |effects: &[Effect]| match effects {
        [Effect::Schedule { timer, after }] => {
            assert_eq!(*after, Duration::from_secs(4));
            *timer
        }
        other => panic!("expected one timer, got {other:?}"),
    };
    let (first, second) = (timer(&first), timer(&second));
    model.on_timer(first);
    assert!(model.peer_typing(), "an older timer does not end a newer notice");
    model.on_timer(second);
    assert!(!model.peer_typing());
    model.on_frame(ServerFrame::Typing { active: true });
    assert!(model.on_frame(ServerFrame::Typing { active: false }).is_empty());
    assert!(!model.peer_typing());
}

#[test]
fn typing_is_told_at_most_every_two_seconds() {
    let mut model = joined(2);
    assert_eq!(frames(&model.typed(10_000)), vec![ClientFrame::Typing { active: true }]);
    assert!(model.typed(11_999).is_empty());
    assert_eq!(frames(&model.typed(12_000)), vec![ClientFrame::Typing { active: true }]);
}

#[test]
fn typing_and_sending_before_joining_reach_the_room_once_joined() {
    let mut model = model();
    model.start();
    assert!(model.typed(1).is_empty());
    let effects = model.send("early", 2).unwrap();
    assert!(frames(&effects).is_empty(), "nothing goes out before the join");
    let id = model.cards()[0].id;
    model.typed(3);
    model.on_connected();
    let effects = model.on_frame(joined_frame(2));
    let sent = frames(&effects);
    assert!(matches!(&sent[0], ClientFrame::Send { message_id, .. } if *message_id == id.to_hex()));
    assert_eq!(sent[1], ClientFrame::Typing { active: true });
    assert_eq!(sent.len(), 2);
}

#[test]
fn a_lost_socket_reconnects_with_a_doubling_back_off_and_resends_in_order() {
    let mut model = joined(2);
    let (a, _) = send(&mut model, "a");
    let (b, _) = send(&mut model, "b");
    assert_eq!(model.on_closed(), vec![Effect::Connect { after: FIRST_BACKOFF }]);
    assert_eq!(model.connection(), ConnectionState::Reconnecting);
    assert!(model.send("queued", 3).map(|effects| frames(&effects).is_empty()).unwrap());
    let mut waits = Vec::new();
    for _ in 0..6 {
        match &model.on_closed()[..] {
            [Effect::Connect { after }] => waits.push(*after),
            other => panic!("expected a reconnect, got {other:?}"),
        }
    }
    assert_eq!(waits[0], FIRST_BACKOFF * 2);
    assert_eq!(*waits.last().unwrap(), MAX_BACKOFF);
    assert_eq!(model.connection(), ConnectionState::Unreachable);
    model.on_connected();
    let effects = model.on_frame(joined_frame(2));
    let resent: Vec<String> = frames(&effects)
        .into_iter()
        .filter_map(|frame| match frame {
            ClientFrame::Send { message_id, .. } => Some(message_id),
            _ => None,
        })
        .collect();
    assert_eq!(resent[..2], [a.to_hex(), b.to_hex()]);
    assert_eq!(resent.len(), 3);
    assert_eq!(model.on_closed(), vec![Effect::Connect { after: FIRST_BACKOFF }], "a join resets the back-off");
}

#[test]
fn rejoining_refetches_what_was_opening_and_settles_what_left_meanwhile() {
    let (mut model, read) = showing("read");
    let (opening, gone) = (MessageId::generate(), MessageId::generate());
    model.on_frame(message(opening));
    model.on_frame(message(gone));
    model.open(opening);
    model.on_closed();
    model.on_connected();
    let pending = vec![opening.to_hex()];
    let effects = model.on_frame(ServerFrame::Joined {
        participants: 2,
        pending,
        limits: RelayLimits::default(),
        files: Default::default(),
    });
    assert_eq!(frames(&effects), vec![fetch(opening)]);
    assert_eq!(
        events(&effects),
        vec![RoomEvent::Joined, RoomEvent::Burned(read)],
        "a view no longer waiting was burned"
    );
    assert_eq!(model.card(gone).unwrap().state, CardState::Gone("No longer available"));
}

#[test]
fn opening_without_a_socket_fetches_on_rejoining() {
    let mut model = joined(2);
    let id = MessageId::generate();
    model.on_frame(message(id));
    model.on_closed();
    assert!(model.open(id).is_empty());
    model.on_connected();
    let pending = vec![id.to_hex()];
    let effects = model.on_frame(ServerFrame::Joined {
        participants: 2,
        pending,
        limits: RelayLimits::default(),
        files: Default::default(),
    });
    assert_eq!(frames(&effects), vec![fetch(id)]);
}

#[test]
fn cards_count_down_then_leave() {
    let (mut model, id) = showing("short-lived");
    for left in (1..SHOW_SECONDS).rev() {
        assert_eq!(
            model.on_timer(Timer::Countdown(id)),
            vec![Effect::Schedule { timer: Timer::Countdown(id), after: Duration::from_secs(1) }]
        );
        assert_eq!(model.card(id).unwrap().left, Some(left));
    }
    assert!(model.on_timer(Timer::Countdown(id)).is_empty());
    assert!(model.card(id).is_none());
}

/// Every code the relay may send. The `match` fails to compile when a code is added, so this
/// list (and the test below) grows with it.
fn every_code() -> Vec<ErrorCode> {
    use ErrorCode::*;
    let codes = vec![
        BadFrame,
        BinaryFrame,
        FrameTooLarge,
        BadRoomId,
        BadMessageId,
        BadEncoding,
        BadSize,
        BadVersion,
        BadSession,
        NotRecipient,
        NotJoined,
        AlreadyJoined,
        UnknownMessage,
        OwnMessage,
        NotFetched,
        IdConflict,
        RateLimited,
        RoomFull,
        TooManyPending,
        Internal,
        StorageFull,
        QuotaExceeded,
        FileTooLarge,
        BadChunks,
        ChunkOutOfOrder,
        BadChunkSize,
        UnknownUpload,
        UploadBusy,
        UploadIncomplete,
        BadChunkIndex,
        BadTtl,
        Unknown,
    ];
    for code in &codes {
        match code {
            BadFrame | BinaryFrame | FrameTooLarge | BadRoomId | BadMessageId | BadEncoding | BadSize | BadVersion
            | BadSession | NotRecipient | NotJoined | AlreadyJoined | UnknownMessage | OwnMessage | NotFetched
            | IdConflict | RateLimited | RoomFull | TooManyPending | Internal | StorageFull | QuotaExceeded
            | FileTooLarge | BadChunks | ChunkOutOfOrder | BadChunkSize | UnknownUpload | UploadBusy
            | UploadIncomplete | BadChunkIndex | BadTtl | Unknown => {}
        }
    }
    codes
}

/// An error frame naming no message, as a relay older than `message_id` sends them.
fn error(code: ErrorCode) -> ServerFrame {
    ServerFrame::Error { code, message: code.describe().into(), message_id: None }
}

#[test]
fn every_error_code_is_reported_and_handled() {
    for code in every_code() {
        let mut model = joined(2);
        let (mine, _) = send(&mut model, "pending");
        let theirs = MessageId::generate();
        model.on_frame(message(theirs));
        model.open(theirs);
        let effects = model.on_frame(error(code));
        assert_eq!(events(&effects), vec![RoomEvent::Refused(code)], "{code:?}");
        match code {
            ErrorCode::RoomFull => {
                assert_eq!(model.connection(), ConnectionState::Full);
                assert!(effects.contains(&Effect::Disconnect));
                assert!(model.on_closed().is_empty(), "a full room is not retried by itself");
                assert_eq!(model.retry(), vec![Effect::Connect { after: Duration::ZERO }]);
            }
            ErrorCode::UnknownMessage => {
                assert_eq!(model.card(theirs).unwrap().state, CardState::Gone("No longer available"));
                assert_eq!(model.notice(), None);
            }
            // A code from a newer relay is said to be a refusal, with the relay's words.
            ErrorCode::Unknown => {
                assert_eq!(model.notice(), Some("Refused: refused"));
                assert_eq!(model.connection(), ConnectionState::Online);
            }
            ErrorCode::Internal | ErrorCode::RateLimited => {
                assert_eq!(model.notice(), Some(code.describe()));
                assert!(effects.contains(&Effect::Schedule { timer: Timer::Retry, after: RETRY_AFTER }));
                assert!(model.on_frame(error(code)).iter().all(|e| !matches!(e, Effect::Schedule { .. })), "one retry");
                let retried = frames(&model.on_timer(Timer::Retry));
                assert!(retried.contains(&fetch(theirs)), "{code:?}: the fetch is tried again");
                let resent = |frames: &[ClientFrame]| {
                    frames
                        .iter()
                        .any(|f| matches!(f, ClientFrame::Send { message_id, .. } if *message_id == mine.to_hex()))
                };
                assert!(!resent(&retried), "{code:?}: a refusal that names no send resends none");
                model.on_frame(ServerFrame::Error {
                    code,
                    message: code.describe().into(),
                    message_id: Some(mine.to_hex()),
                });
                assert!(resent(&frames(&model.on_timer(Timer::Retry))), "{code:?}: the refused send is sent again");
            }
            _ => {
                assert_eq!(model.notice(), Some(code.describe()), "{code:?}");
                assert_eq!(model.connection(), ConnectionState::Online, "{code:?}");
                assert!(!effects.iter().any(|e| matches!(e, Effect::Disconnect | Effect::Connect { .. })), "{code:?}");
            }
        }
    }
}

#[test]
fn a_join_refused_for_a_passing_reason_is_tried_again_after_the_back_off() {
    for code in [ErrorCode::Internal, ErrorCode::RateLimited] {
        let mut model = model();
        model.start();
        model.on_connected();
        let effects = model.on_frame(error(code));
        assert_eq!(effects[1..], [Effect::Disconnect, Effect::Connect { after: FIRST_BACKOFF }]);
        assert_eq!(model.connection(), ConnectionState::Reconnecting);
    }
}

#[test]
fn a_retry_sends_again_only_what_is_unconfirmed_and_only_when_joined() {
    let (mut model, read) = showing("read");
    let (mine, _) = send(&mut model, "mine");
    model.on_frame(ServerFrame::Sent { message_id: mine.to_hex() });
    assert_eq!(frames(&model.on_timer(Timer::Retry)), vec![viewed(read)]);
    model.on_frame(ServerFrame::Deleted { message_id: read.to_hex() });
    assert!(model.on_timer(Timer::Retry).is_empty());
    send(&mut model, "unacked");
    model.on_closed();
    assert!(model.on_timer(Timer::Retry).is_empty(), "the rejoin resends instead");
}

/// A retry after one send's passing refusal sends that one again, not the others still
/// unanswered: a second copy in flight could reach the relay after the first was stored, read
/// and burned, and be stored again (seen in `faults run` under a PostgreSQL restart).
#[test]
fn a_retry_resends_only_the_refused_send_not_those_still_in_flight() {
    let mut model = joined(2);
    let (refused, _) = send(&mut model, "refused");
    let (in_flight, _) = send(&mut model, "in flight");
    model.on_frame(ServerFrame::Error {
        code: ErrorCode::Internal,
        message: "internal".into(),
        message_id: Some(refused.to_hex()),
    });
    let sends: Vec<String> = frames(&model.on_timer(Timer::Retry))
        .into_iter()
        .filter_map(|f| match f {
            ClientFrame::Send { message_id, .. } => Some(message_id),
            _ => None,
        })
        .collect();
    assert_eq!(sends, vec![refused.to_hex()]);
    assert!(frames(&model.on_timer(Timer::Retry)).is_empty(), "sent again once, then in flight again");
    // A new connection sends both again: the old one's copies went with it.
    model.on_closed();
    model.on_connected();
    let rejoined = frames(&model.on_frame(ServerFrame::Joined {
        participants: 2,
        pending: vec![],
        limits: Default::default(),
        files: Default::default(),
    }));
    let resent = |id: MessageId| {
        rejoined.iter().any(|f| matches!(f, ClientFrame::Send { message_id, .. } if *message_id == id.to_hex()))
    };
    assert!(resent(refused) && resent(in_flight));
}

#[test]
fn leaving_forgets_everything_and_stops() {
    let (mut model, _) = showing("bye");
    assert_eq!(model.leave(), vec![Effect::Disconnect]);
    assert!(model.cards().is_empty());
    assert!(model.on_closed().is_empty());
    assert_eq!(model.on_connected(), vec![Effect::Disconnect]);
    assert_eq!(model.send("after", 1), Err(NotSent::NotInRoom));
}

#[test]
fn unreadable_text_from_the_relay_is_ignored() {
    let mut model = joined(2);
    assert!(model.on_text("not json").is_empty());
    assert!(model.on_text(r#"{"type":"presence"}"#).is_empty(), "a known frame missing its fields");
    model.on_text(r#"{"type":"presence","participants":4}"#);
    assert_eq!(model.participants(), 4);
}

#[test]
fn frames_and_fields_from_a_newer_relay_are_ignored_and_the_rest_read() {
    let mut model = joined(2);
    assert!(model.on_text(r#"{"type":"file_offer","size":99}"#).is_empty());
    assert_eq!(model.on_frame(ServerFrame::Unknown), Vec::new());
    model.on_text(r#"{"type":"presence","participants":4,"away":1}"#);
    assert_eq!(model.participants(), 4);
    assert_eq!(model.connection(), ConnectionState::Online);
}

/// `joined` from a relay whose largest message is `max_message` bytes.
fn joined_with_limit(max_message: u32) -> RoomModel {
    let mut model = model();
    model.start();
    model.on_connected();
    let limits = RelayLimits { max_message, ..RelayLimits::default() };
    model.on_frame(ServerFrame::Joined { participants: 2, pending: Vec::new(), limits, files: Default::default() });
    model
}

#[test]
fn a_relay_that_takes_512_bytes_gets_no_1_kib_text_and_the_page_says_why() {
    let mut model = joined_with_limit(512);
    assert_eq!(model.send(&"x".repeat(1024), NOW), Err(NotSent::TooLong));
    assert_eq!(model.notice(), Some("That message is too long to send: this relay takes messages of up to 512 bytes."));
    assert!(model.cards().is_empty());
    assert_eq!(model.unacknowledged(), 0, "nothing is queued for later either");
    assert_eq!(frames(&model.send("short", NOW).unwrap()).len(), 1, "what fits still goes");
}

#[test]
fn the_composer_takes_as_many_characters_as_the_relays_largest_message_holds() {
    assert_eq!(model().max_chars(), super::MAX_CHARS, "before any joined: the protocol-1 limit");
    let mut model = joined_with_limit(512);
    assert_eq!(model.max_chars(), 100);
    // The widest characters a person types (3 bytes each) fit, as many as the composer takes.
    assert!(model.send(&"€".repeat(model.max_chars()), u64::MAX).is_ok());
    assert!(model.send(&"€".repeat(200), NOW).is_err(), "the sealed size is still checked");
}

#[test]
fn an_older_relay_joined_next_brings_back_the_protocol_1_limits() {
    let mut model = joined_with_limit(512);
    model.on_closed();
    model.on_connected();
    model.on_text(r#"{"type":"joined","participants":2,"pending":[]}"#);
    assert_eq!(model.limits(), &RelayLimits::default());
    assert!(model.send(&"x".repeat(1024), NOW).is_ok());
}

#[test]
fn a_newer_relays_joined_with_fields_this_page_does_not_know_still_joins() {
    let mut model = model();
    model.start();
    model.on_connected();
    let effects = model.on_text(
        r#"{"type":"joined","participants":2,"pending":[],"limits":{"max_message":1024,"max_file":9},"motd":"hi"}"#,
    );
    assert_eq!(events(&effects), vec![RoomEvent::Joined]);
    assert_eq!(model.limits().max_message, 1024);
}
