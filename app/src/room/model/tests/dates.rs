//! Send times: every card carries one, and a body dated where no genuine message can be is not
//! shown. The model's clock is injected, so the edges are exact.

use std::sync::atomic::{AtomicU64, Ordering};

use super::*;
use crate::room::model::dates::{FROM_THE_FUTURE, TOO_OLD};
use crate::room::model::{CLOCK_SKEW, MAX_MESSAGE_AGE};

const SECOND: u64 = 1_000;

/// The oldest date a genuine message opened at [`NOW`] can have.
fn oldest() -> u64 {
    NOW - (MAX_MESSAGE_AGE + CLOCK_SKEW).as_millis() as u64
}

fn skew() -> u64 {
    CLOCK_SKEW.as_millis() as u64
}

/// Opens, in a joined model, a peer's message dated `sent_at`: its id and what opening it did.
fn open_dated(model: &mut RoomModel, sent_at: u64) -> (MessageId, Vec<Effect>) {
    let (id, sealed) = from_peer_at("dated", sent_at);
    model.on_frame(message(id));
    model.open(id);
    (id, model.on_frame(ServerFrame::Payload { message_id: id.to_hex(), sealed }))
}

/// What a misdated message leaves: a marked card with its date, no text, no `viewed`.
fn assert_not_shown(model: &mut RoomModel, id: MessageId, effects: &[Effect], why: &'static str, sent_at: u64) {
    assert_eq!(events(effects), vec![RoomEvent::Misdated(id)]);
    assert!(frames(effects).is_empty(), "not confirmed viewed: nobody saw it");
    let card = model.card(id).unwrap();
    assert_eq!((&card.state, card.sent_at, card.left), (&CardState::Misdated(why), Some(sent_at), None));
    assert!(model.open(id).is_empty(), "fetching it again would bring the same date");
    assert!(model.on_frame(message(id)).is_empty(), "never counted as shown");
}

#[test]
fn a_body_dated_a_second_inside_the_longest_ttl_and_skew_shows() {
    let mut model = joined(2);
    let (id, effects) = open_dated(&mut model, oldest() + SECOND);
    assert_eq!(events(&effects), vec![RoomEvent::Opened(id)]);
    assert_eq!(frames(&effects), vec![viewed(id)]);
    let card = model.card(id).unwrap();
    assert_eq!((&card.state, card.sent_at), (&CardState::Open("dated".into()), Some(oldest() + SECOND)));
}

#[test]
fn a_body_dated_a_second_past_the_longest_ttl_and_skew_is_too_old_to_be_genuine() {
    let mut model = joined(2);
    let (id, effects) = open_dated(&mut model, oldest() - SECOND);
    assert_not_shown(&mut model, id, &effects, TOO_OLD, oldest() - SECOND);
    assert_eq!(model.announcement(), "A message too old to be genuine was not shown.");
}

#[test]
fn a_body_dated_past_the_skew_ahead_is_not_shown_and_one_within_it_is() {
    let mut model = joined(2);
    let (id, effects) = open_dated(&mut model, NOW + skew() + SECOND);
    assert_not_shown(&mut model, id, &effects, FROM_THE_FUTURE, NOW + skew() + SECOND);
    let (id, effects) = open_dated(&mut model, NOW + skew() - SECOND);
    assert_eq!(events(&effects), vec![RoomEvent::Opened(id)]);
    let (id, effects) = open_dated(&mut model, u64::MAX);
    assert_not_shown(&mut model, id, &effects, FROM_THE_FUTURE, u64::MAX);
}

#[test]
fn the_date_is_judged_by_the_clock_when_the_payload_opens() {
    let clock = Arc::new(AtomicU64::new(NOW));
    let reading = Arc::clone(&clock);
    let mut model = RoomModel::with_clock(keys(), Arc::new(move || reading.load(Ordering::Relaxed)));
    model.start();
    model.on_connected();
    model.on_frame(joined_frame(2));
    let (id, sealed) = from_peer_at("served again later", NOW);
    model.on_frame(message(id));
    model.open(id);
    clock.store(NOW + (MAX_MESSAGE_AGE + CLOCK_SKEW).as_millis() as u64 + SECOND, Ordering::Relaxed);
    let effects = model.on_frame(ServerFrame::Payload { message_id: id.to_hex(), sealed });
    assert_not_shown(&mut model, id, &effects, TOO_OLD, NOW);
}

#[test]
fn a_misdated_message_is_unread_and_leaves_as_unread_ones_do() {
    let mut model = joined(2);
    let (id, _) = open_dated(&mut model, 1);
    model.on_frame(ServerFrame::Deleted { message_id: id.to_hex() });
    assert_eq!(model.card(id).unwrap().state, CardState::Gone("Read by someone else"));
}

#[test]
fn our_own_cards_carry_the_time_they_were_sent_and_sealed_ones_none() {
    let mut model = joined(2);
    model.send("mine", NOW - 3 * 60 * SECOND).unwrap();
    assert_eq!(model.cards()[0].sent_at, Some(NOW - 3 * 60 * SECOND));
    let sealed = MessageId::generate();
    model.on_frame(message(sealed));
    assert_eq!(model.card(sealed).unwrap().sent_at, None, "the date is inside the sealed body");
}
