//! What a sender chooses for each message (a name, how long it waits unread, how long it stays
//! on screen), sealed into its body, and how a receiving page honours it.

use super::*;
use crate::crypto::message::open;
use crate::crypto::{Chosen, SealedPayload};
use crate::protocol::{FEATURE_FILES, FEATURE_TTL};
use crate::room::card::NO_NAME;
use crate::room::model::{BadName, LIFETIMES};

/// A model joined to a relay whose TTL is `ttl` seconds and which takes a `send`'s `ttl`.
fn joined_with_ttl(ttl: u64, takes_ttl: bool) -> RoomModel {
    let mut model = model();
    model.start();
    model.on_connected();
    let features = if takes_ttl { vec![FEATURE_TTL.into(), FEATURE_FILES.into()] } else { vec![FEATURE_FILES.into()] };
    let limits = RelayLimits { message_ttl: ttl, features, max_file: 1 << 20, ..RelayLimits::default() };
    model.on_frame(ServerFrame::Joined { participants: 2, pending: Vec::new(), limits, files: Default::default() });
    model
}

/// A peer's message carrying `chosen`, sent at `sent_at`.
fn from_peer_choosing(text: &str, sent_at: u64, chosen: Chosen) -> (MessageId, String) {
    let id = MessageId::generate();
    let body = Body { id, sender: SenderId([9; 8]), text: text.into(), sent_at, file: None, chosen };
    (id, seal(&keys(), &body).unwrap().to_base64())
}

/// Opens the peer's message `id` on `model`: notice, click, payload.
fn open_peer(model: &mut RoomModel, id: MessageId, sealed: String) -> Vec<Effect> {
    model.on_frame(message(id));
    model.open(id);
    model.on_frame(ServerFrame::Payload { message_id: id.to_hex(), sealed })
}

#[test]
fn a_relay_offers_the_lifetimes_up_to_its_ttl_and_only_if_it_takes_one() {
    assert_eq!(joined_with_ttl(86_400, true).lifetimes(), [300, 3_600, 86_400]);
    assert_eq!(joined_with_ttl(7 * 86_400, true).lifetimes(), LIFETIMES);
    assert_eq!(joined_with_ttl(600, true).lifetimes(), [300]);
    assert!(joined_with_ttl(86_400, false).lifetimes().is_empty(), "an older relay: no choice");
    assert!(joined_with_ttl(0, true).lifetimes().is_empty(), "a relay that did not say its TTL");
    let mut model = joined_with_ttl(86_400, true);
    model.set_lifetime(Some(604_800));
    assert_eq!(model.lifetime(), None, "past the relay's TTL: the default");
    model.set_lifetime(Some(123));
    assert_eq!(model.lifetime(), None, "not one offered");
    model.set_lifetime(Some(3_600));
    assert_eq!(model.lifetime(), Some(3_600));
    model.set_view_time(Some(7));
    assert_eq!(model.view_time(), None);
    model.set_view_time(Some(SHOW_SECONDS));
    assert_eq!(model.view_time(), None, "the default is not written");
    model.set_view_time(Some(30));
    assert_eq!(model.view_time(), Some(30));
}

#[test]
fn the_choices_go_inside_the_body_and_the_lifetime_to_the_relay_too_also_on_a_resend() {
    let mut model = joined_with_ttl(86_400, true);
    model.set_name("  Ana Lúcia ").unwrap();
    model.set_lifetime(Some(300));
    model.set_view_time(Some(60));
    let effects = model.send("the door code", NOW).unwrap();
    let [ClientFrame::Send { message_id, sealed, ttl }] = &frames(&effects)[..] else { panic!("{effects:?}") };
    assert_eq!(*ttl, Some(300));
    let id = MessageId::parse(message_id).unwrap();
    let body = open(&keys(), &id, &SealedPayload::from_base64(sealed).unwrap()).unwrap();
    assert_eq!(body.chosen, Chosen { name: Some("Ana Lúcia".into()), ttl: Some(300), view: Some(60) });
    // The connection drops before `sent`: the rejoin sends the same frame, lifetime included.
    model.on_closed();
    model.on_connected();
    let again = model.on_frame(joined_frame(2));
    assert!(frames(&again).contains(&ClientFrame::Send {
        message_id: message_id.clone(),
        sealed: sealed.clone(),
        ttl: Some(300)
    }));
}

#[test]
fn without_choices_a_message_is_todays() {
    let mut model = joined_with_ttl(86_400, true);
    let (id, sealed) = send(&mut model, "plain");
    let body = open(&keys(), &id, &SealedPayload::from_base64(&sealed).unwrap()).unwrap();
    assert_eq!(body.chosen, Chosen::default());
    let effects = model.send("plain again", NOW).unwrap();
    assert!(matches!(&frames(&effects)[..], [ClientFrame::Send { ttl: None, .. }]));
}

#[test]
fn a_bad_name_is_refused_and_an_empty_one_clears_it() {
    let mut model = joined(2);
    assert_eq!(model.set_name(&"x".repeat(65)), Err(BadName));
    assert_eq!(model.set_name("tab\there"), Err(BadName));
    assert_eq!(model.name(), None);
    model.set_name("Bo").unwrap();
    assert_eq!(model.name(), Some("Bo"));
    model.set_name("   ").unwrap();
    assert_eq!(model.name(), None);
}

#[test]
fn an_opened_card_says_who_from_and_stays_as_long_as_its_sender_chose() {
    let mut model = joined(2);
    let chosen = Chosen { name: Some("Ana".into()), ttl: Some(3_600), view: Some(30) };
    let (id, sealed) = from_peer_choosing("hi", NOW - 1_000, chosen);
    open_peer(&mut model, id, sealed);
    let card = model.card(id).unwrap();
    assert_eq!(card.state, CardState::Open("hi".into()));
    assert_eq!(card.from_label(), "Ana");
    assert_eq!(card.left, Some(30));
    // Without a name or a view time: "Someone", and the default time.
    let (other, sealed) = from_peer("no name");
    open_peer(&mut model, other, sealed);
    let card = model.card(other).unwrap();
    assert_eq!((card.from_label(), card.left), (NO_NAME, Some(SHOW_SECONDS)));
    // Our own cards say "You", whatever our name.
    model.set_name("Bo").unwrap();
    let (mine, _) = send(&mut model, "mine");
    assert_eq!(model.card(mine).unwrap().from_label(), "You");
}

#[test]
fn a_message_opened_past_the_lifetime_its_sender_gave_is_not_shown_nor_confirmed() {
    let mut model = joined(2);
    let skew = super::super::CLOCK_SKEW.as_millis() as u64;
    let chosen = Chosen { ttl: Some(300), ..Chosen::default() };
    // Within its 5 minutes and the clock skew allowed: shown.
    let (fresh, sealed) = from_peer_choosing("fresh", NOW - 300_000 - skew + 1_000, chosen.clone());
    open_peer(&mut model, fresh, sealed);
    assert_eq!(model.card(fresh).unwrap().state, CardState::Open("fresh".into()));
    // Past them: a relay kept it longer than it was told to.
    let (stale, sealed) = from_peer_choosing("stale", NOW - 300_000 - skew - 1_000, chosen);
    let effects = open_peer(&mut model, stale, sealed);
    assert!(matches!(model.card(stale).unwrap().state, CardState::Misdated(_)));
    assert_eq!(events(&effects), [RoomEvent::Misdated(stale)]);
    assert!(!frames(&effects).contains(&viewed(stale)), "not confirmed viewed");
}

#[test]
fn a_file_carries_the_choices_too() {
    let mut model = joined_with_ttl(86_400, true);
    model.set_name("Ana").unwrap();
    model.set_lifetime(Some(3_600));
    model.send_file("a.txt", "text/plain", vec![1; 100], NOW).unwrap();
    let id = model.cards().last().unwrap().id;
    let effects = model.on_frame(ServerFrame::Uploaded { message_id: id.to_hex(), chunks: 0 });
    // Seal and send the one chunk, then the relay stores it: the card goes with its lifetime.
    let mut effects: Vec<Effect> = effects;
    let mut card_frame = None;
    for _ in 0..4 {
        let mut next = Vec::new();
        for effect in effects {
            match effect {
                Effect::Seal(job) => next.extend(model.chunk_sealed(job.id, job.index, job.seal())),
                Effect::SendBinary(_) => {
                    next.extend(model.on_frame(ServerFrame::Uploaded { message_id: id.to_hex(), chunks: 1 }))
                }
                Effect::Send(frame @ ClientFrame::Send { .. }) => card_frame = Some(frame),
                _ => {}
            }
        }
        effects = next;
    }
    let Some(ClientFrame::Send { sealed, ttl, .. }) = card_frame else { panic!("no card sent") };
    assert_eq!(ttl, Some(3_600));
    let body = open(&keys(), &id, &SealedPayload::from_base64(&sealed).unwrap()).unwrap();
    assert_eq!(body.chosen.name.as_deref(), Some("Ana"));
    assert_eq!(body.chosen.ttl, Some(3_600));
}
