//! Pages as the browser runs them (the room model, driven by `loadgen::page`) against the real
//! relay: what a person sees, event by event, and what the store keeps.

use std::time::Duration;

use app::crypto::MessageId;
use app::room::{CardState, RoomEvent, RoomModel};
use loadgen::page::Page;

use super::helpers::{spawn_app, Backend, TestApp, TestRoom};

on_both_backends!(
    a_message_between_pages_is_shown_once_and_burns,
    the_sender_sees_receipts_then_the_burn,
    typing_on_one_page_shows_on_the_other,
);

/// Waits for `wanted` among a page's events, failing on the page stopping or a timeout.
async fn until(page: &mut Page, wanted: impl Fn(&RoomEvent) -> bool, what: &str) -> RoomEvent {
    let found = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match page.next_event().await {
                Some(event) if wanted(&event) => return event,
                Some(_) => {}
                None => panic!("the page stopped before {what}"),
            }
        }
    })
    .await;
    found.unwrap_or_else(|_| panic!("no {what} within 10 s"))
}

/// Waits until `look` finds what it looks for on the page (what its person sees).
async fn eventually<T: Send + 'static>(
    page: &Page,
    what: &str,
    look: impl Fn(&RoomModel) -> Option<T> + Clone + Send + 'static,
) -> T {
    let found = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Some(found) = page.inspect(look.clone()).await.flatten() {
                return found;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    found.unwrap_or_else(|_| panic!("no {what} within 10 s"))
}

/// Two pages in `room`, both joined.
async fn two_pages(app: &TestApp, room: &TestRoom) -> (Page, Page) {
    let mut alice = Page::open(room.keys.clone(), &app.ws_url());
    let mut bob = Page::open(room.keys.clone(), &app.ws_url());
    joined(&mut alice).await;
    joined(&mut bob).await;
    (alice, bob)
}

async fn joined(page: &mut Page) {
    until(page, |e| *e == RoomEvent::Joined, "join").await;
}

async fn arrived(page: &mut Page) -> MessageId {
    match until(page, |e| matches!(e, RoomEvent::Arrived(_)), "a sealed message").await {
        RoomEvent::Arrived(id) => id,
        _ => unreachable!(),
    }
}

async fn a_message_between_pages_is_shown_once_and_burns(backend: Backend) {
    let app = spawn_app(backend).await;
    let room = TestRoom::new();
    let (mut alice, mut bob) = two_pages(&app, &room).await;

    let id = alice.send("meet at noon").await.expect("sent");
    until(&mut alice, |e| *e == RoomEvent::Stored(id), "the relay's confirmation").await;
    assert_eq!(arrived(&mut bob).await, id);
    assert_eq!(bob.cards().await[0].state, CardState::Sealed, "nothing opens by itself");
    assert_eq!(app.row_count().await, 1);

    bob.open_card(id);
    until(&mut bob, |e| *e == RoomEvent::Opened(id), "the message opening").await;
    assert_eq!(bob.cards().await[0].state, CardState::Open("meet at noon".into()));
    until(&mut bob, |e| *e == RoomEvent::Burned(id), "the reader's burn").await;
    until(&mut alice, |e| *e == RoomEvent::Burned(id), "the sender's burn").await;
    assert_eq!(alice.cards().await[0].state, CardState::Burned("meet at noon".into()));
    assert_eq!(app.row_count().await, 0, "a viewed message leaves no row");
    alice.leave().await;
    bob.leave().await;
}

async fn the_sender_sees_receipts_then_the_burn(backend: Backend) {
    let app = spawn_app(backend).await;
    let room = TestRoom::new();
    let mut alice = Page::open(room.keys.clone(), &app.ws_url());
    joined(&mut alice).await;
    let mut readers = Vec::new();
    for _ in 0..2 {
        let mut reader = Page::open(room.keys.clone(), &app.ws_url());
        joined(&mut reader).await;
        readers.push(reader);
    }
    let id = alice.send("for both of you").await.expect("sent");
    for reader in &mut readers {
        assert_eq!(arrived(reader).await, id);
    }
    readers[0].open_card(id);
    until(&mut readers[0], |e| *e == RoomEvent::Opened(id), "the first reader's view").await;
    let seen = eventually(&alice, "receipt", |page| match page.cards().first().map(|card| &card.state) {
        Some(CardState::Mine { seen, .. }) => *seen,
        _ => None,
    })
    .await;
    assert_eq!(seen, (1, 2));
    assert_eq!(app.row_count().await, 1, "one reader left to read it");
    readers[1].open_card(id);
    until(&mut alice, |e| *e == RoomEvent::Burned(id), "the burn").await;
    assert_eq!(app.row_count().await, 0);
}

async fn typing_on_one_page_shows_on_the_other(backend: Backend) {
    let app = spawn_app(backend).await;
    let room = TestRoom::new();
    let (alice, bob) = two_pages(&app, &room).await;
    alice.typed();
    eventually(&bob, "typing notice", |page| page.peer_typing().then_some(())).await;
}
