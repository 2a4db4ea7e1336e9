//! A message on screen: sealed until clicked, then shown with a countdown before it leaves, and
//! with when it was sent, so an old message served again shows for what it is.

use leptos::either::EitherOf7;
use leptos::prelude::*;

use crate::room::card::{sent_ago, utc_datetime, wall_time};
use crate::room::{CardState, CardView, RoomClient};

/// `now` is this page's clock (milliseconds since the Unix epoch), moved on by the room page so
/// "sent 3 min ago" stays true.
#[component]
pub fn MessageCard(card: CardView, room: RoomClient, #[prop(into)] now: Signal<u64>) -> impl IntoView {
    let countdown = move || {
        card.left.get().map(|left| view! { <span class="countdown">{format!("Disappears in {left} s")}</span> })
    };
    let body = move || match card.state.get() {
        CardState::Sealed => EitherOf7::A(view! {
            <button class="sealed" on:click=move |_| room.open_card(card.id)>
                // A drawn padlock: an emoji needs a font the system may not have.
                <svg class="icon" aria-hidden="true" viewBox="0 0 16 16">
                    <path fill="currentColor" d="M4 7V5a4 4 0 0 1 8 0v2h1v8H3V7zm2 0h4V5a2 2 0 0 0-4 0z"/>
                </svg>
                " Encrypted message. Click to decrypt and view"
            </button>
        }),
        CardState::Opening => EitherOf7::B(view! { <p class="status">{"Decrypting…"}</p> }),
        CardState::Gone(why) => EitherOf7::B(view! { <p class="status">{why}</p> }),
        CardState::Open(text) => EitherOf7::C(view! { <p class="text">{text}</p> }),
        CardState::Unreadable => {
            EitherOf7::D(view! { <p class="error">{"This message could not be decrypted.".to_owned()}</p> })
        }
        CardState::Misdated(why) => EitherOf7::D(view! { <p class="error">{why.to_owned()}</p> }),
        CardState::Refused(why) => EitherOf7::D(view! { <p class="error">{why}</p> }),
        CardState::Mine { text, stored, seen } => EitherOf7::E(view! {
            <p class="text">{text}</p>
            <p class="status">
                {match (stored, seen) {
                    (false, _) => "Sending…".to_owned(),
                    (true, None) => "Waiting to be read".to_owned(),
                    (true, Some((viewed, of))) => format!("Viewed by {viewed} of {of}"),
                }}
            </p>
        }),
        CardState::Burned(text) => EitherOf7::F(view! {
            <p class="text">{text}</p>
            <p class="status">"Read and deleted from the server"</p>
        }),
        CardState::Unsent { text, why } => EitherOf7::G(view! {
            <p class="text">{text}</p>
            <p class="error">{why}</p>
            <button class="secondary" on:click=move |_| room.resend_card(card.id)>"Send again"</button>
        }),
    };
    // An unsent message was never sent: its sealing time would say otherwise.
    let sent = move || {
        let unsent = card.state.with(|state| matches!(state, CardState::Unsent { .. }));
        card.sent_at.get().filter(|_| !unsent).map(|at| view! { <SentAt at now/> })
    };
    let class = move || match card.state.get() {
        CardState::Mine { .. } | CardState::Burned(_) | CardState::Unsent { .. } => "card mine",
        _ => "card theirs",
    };
    view! {
        <li class=class>
            {body}
            {sent}
            {countdown}
        </li>
    }
}

/// "sent 3 min ago", and the exact local time on hover and on keyboard focus (the `<time>` is
/// focusable for that). Screen readers read both: the exact time is in the text, hidden from
/// sight until asked for, rather than in a `title` that only a mouse can show.
#[component]
fn SentAt(at: u64, now: Signal<u64>) -> impl IntoView {
    // The offset at that date, so a time across a daylight-saving change still reads right.
    let offset = js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(at as f64)).get_timezone_offset();
    // JavaScript counts the offset behind UTC; an invalid date (far ahead) has none.
    let offset_minutes = if offset.is_finite() { -(offset as i64) } else { 0 };
    let exact = wall_time(at, offset_minutes);
    view! {
        <time class="sent" datetime=utc_datetime(at) tabindex="0">
            {move || sent_ago(at, now.get())}
            <span class="exact">{format!(", {exact}")}</span>
        </time>
    }
}
