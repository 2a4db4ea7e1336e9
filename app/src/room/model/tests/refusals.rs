//! Refusals from the relay: the card each is about, what it says, and what is tried again.

use super::*;

/// An error frame about the message `id`, as a relay that names messages sends it.
fn error_about(code: ErrorCode, message: &str, id: MessageId) -> ServerFrame {
    ServerFrame::Error { code, message: message.into(), message_id: Some(id.to_hex()) }
}

fn sends(effects: &[Effect]) -> Vec<String> {
    frames(effects)
        .into_iter()
        .filter_map(|frame| match frame {
            ClientFrame::Send { message_id, .. } => Some(message_id),
            _ => None,
        })
        .collect()
}

fn mine_sending(text: &str) -> CardState {
    CardState::Mine { text: text.into(), stored: false, seen: None }
}

/// A refusal that lasts, about a send: the card says `why`, keeps the text, and nothing sends it
/// again but the person.
fn a_lasting_refusal_keeps_the_text_and_waits_for_the_person(code: ErrorCode, why: &str) {
    let mut model = joined(2);
    let (id, _) = send(&mut model, "hold on to this");
    let effects = model.on_frame(error_about(code, code.describe(), id));
    assert_eq!(events(&effects), vec![RoomEvent::Refused(code)]);
    assert!(!effects.iter().any(|e| matches!(e, Effect::Schedule { .. })), "{code:?}: no retry is scheduled");
    let card = model.card(id).unwrap();
    assert_eq!(card.state, CardState::Unsent { text: "hold on to this".into(), why: why.into() });
    assert_eq!(model.unacknowledged(), 0);
    // Neither a retry after a passing error nor a rejoin sends it by itself.
    model.on_frame(error(ErrorCode::Internal));
    assert!(sends(&model.on_timer(Timer::Retry)).is_empty(), "{code:?}");
    model.on_closed();
    model.on_connected();
    assert!(sends(&model.on_frame(joined_frame(2))).is_empty(), "{code:?}");
    // The person does: the same text, sealed anew under a new id, its card last.
    let effects = model.resend(id, NOW + 5_000).unwrap();
    let [again] = &sends(&effects)[..] else { panic!("{code:?}: expected one send, got {effects:?}") };
    assert_ne!(again, &id.to_hex());
    assert!(model.card(id).is_none());
    let card = model.cards().last().unwrap();
    assert_eq!((card.id.to_hex(), &card.state), (again.clone(), &mine_sending("hold on to this")));
    assert_eq!(card.sent_at, Some(NOW + 5_000), "dated when it really went out");
}

#[test]
fn a_full_relay_says_so_on_the_card_and_keeps_the_unsent_text() {
    a_lasting_refusal_keeps_the_text_and_waits_for_the_person(
        ErrorCode::StorageFull,
        "Not sent: the relay is full. Try again later.",
    );
}

#[test]
fn an_address_over_its_quota_says_so_on_the_card_and_keeps_the_unsent_text() {
    a_lasting_refusal_keeps_the_text_and_waits_for_the_person(
        ErrorCode::QuotaExceeded,
        "Not sent: too much from your address waits unread. Try again once some of it is read.",
    );
}

#[test]
fn a_code_from_a_newer_relay_about_a_send_says_refused_with_its_words() {
    a_lasting_refusal_keeps_the_text_and_waits_for_the_person(ErrorCode::Unknown, "Refused: refused");
    let mut model = joined(2);
    let (id, _) = send(&mut model, "hello");
    let id_hex = id.to_hex();
    let text = format!(r#"{{"type":"error","code":"solar_flare","message":"too bright","message_id":"{id_hex}"}}"#);
    assert_eq!(events(&model.on_text(&text)), vec![RoomEvent::Refused(ErrorCode::Unknown)]);
    assert_eq!(
        model.card(id).unwrap().state,
        CardState::Unsent { text: "hello".into(), why: "Refused: too bright".into() },
        "never left saying \"sending\""
    );
}

#[test]
fn an_error_naming_the_second_of_two_sending_cards_marks_that_card() {
    let mut model = joined(2);
    let (first, _) = send(&mut model, "first");
    let (second, _) = send(&mut model, "second");
    model.on_frame(error_about(ErrorCode::StorageFull, "full", second));
    assert_eq!(model.card(first).unwrap().state, mine_sending("first"));
    assert!(matches!(&model.card(second).unwrap().state, CardState::Unsent { text, .. } if text == "second"));
    assert_eq!(model.unacknowledged(), 1);
    assert!(
        sends(&model.on_timer(Timer::Retry)).is_empty(),
        "the first is still in flight, unanswered: a second copy could store it again after its burn"
    );
}

#[test]
fn an_error_naming_the_second_of_two_opening_cards_marks_that_card() {
    let mut model = joined(2);
    let (a, b) = (MessageId::generate(), MessageId::generate());
    for id in [a, b] {
        model.on_frame(message(id));
        model.open(id);
    }
    model.on_frame(error_about(ErrorCode::UnknownMessage, "gone", b));
    assert_eq!(model.card(a).unwrap().state, CardState::Opening, "not the first opening one");
    assert_eq!(model.card(b).unwrap().state, CardState::Gone("No longer available"));
    model.on_frame(error_about(ErrorCode::Unknown, "not for you today", a));
    assert_eq!(model.card(a).unwrap().state, CardState::Refused("Refused: not for you today".into()));
    assert_eq!(model.notice(), None, "the card says it");
}

#[test]
fn a_code_from_a_newer_relay_naming_no_message_is_the_rooms_notice() {
    let mut model = joined(2);
    let (id, _) = send(&mut model, "unnamed");
    model.on_text(r#"{"type":"error","code":"solar_flare","message":"too bright"}"#);
    assert_eq!(model.notice(), Some("Refused: too bright"));
    assert_eq!(model.card(id).unwrap().state, mine_sending("unnamed"), "an older relay's guess is not made");
}

#[test]
fn a_refusal_about_a_message_on_screen_leaves_its_card_and_tells_the_room() {
    let (mut model, id) = showing("on screen");
    model.on_frame(error_about(ErrorCode::NotFetched, ErrorCode::NotFetched.describe(), id));
    assert_eq!(model.card(id).unwrap().state, CardState::Open("on screen".into()));
    assert_eq!(model.notice(), Some(ErrorCode::NotFetched.describe()));
    model.on_frame(error_about(ErrorCode::UnknownMessage, "gone", id));
    assert_eq!(model.card(id).unwrap().state, CardState::Open("on screen".into()));
}

#[test]
fn a_passing_error_naming_a_send_leaves_it_sending_and_tries_it_again() {
    for code in [ErrorCode::Internal, ErrorCode::RateLimited] {
        let mut model = joined(2);
        let (id, _) = send(&mut model, "soon");
        let effects = model.on_frame(error_about(code, code.describe(), id));
        assert!(effects.contains(&Effect::Schedule { timer: Timer::Retry, after: RETRY_AFTER }), "{code:?}");
        assert_eq!(model.card(id).unwrap().state, mine_sending("soon"));
        assert_eq!(sends(&model.on_timer(Timer::Retry)), vec![id.to_hex()], "{code:?}");
    }
}

#[test]
fn the_relays_words_are_shortened_to_a_line() {
    let mut model = joined(2);
    let (id, _) = send(&mut model, "long");
    model.on_frame(error_about(ErrorCode::Unknown, &"a".repeat(5_000), id));
    let CardState::Unsent { why, .. } = &model.card(id).unwrap().state else { panic!("not marked") };
    assert_eq!(why, &format!("Refused: {}…", "a".repeat(200)));
    let (other, _) = send(&mut model, "blank");
    model.on_frame(error_about(ErrorCode::Unknown, "  ", other));
    assert!(
        matches!(&model.card(other).unwrap().state, CardState::Unsent { why, .. } if why == "Refused by the relay.")
    );
}

#[test]
fn only_a_refused_message_is_sent_again_by_the_person() {
    let mut model = joined(2);
    let (id, _) = send(&mut model, "pending");
    assert_eq!(model.resend(id, NOW), Ok(Vec::new()));
    assert_eq!(model.resend(MessageId::generate(), NOW), Ok(Vec::new()));
    assert_eq!(model.cards().len(), 1);
}
