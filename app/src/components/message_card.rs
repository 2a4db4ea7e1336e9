//! A message on screen: sealed until clicked, then shown with a countdown before it leaves.

use leptos::either::EitherOf7;
use leptos::prelude::*;

use crate::room::{CardState, CardView, RoomClient};

#[component]
pub fn MessageCard(card: CardView, room: RoomClient) -> impl IntoView {
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
        CardState::Opening => EitherOf7::B(view! { <p class="status">"Decrypting…"</p> }),
        CardState::Open(text) => EitherOf7::C(view! { <p class="text">{text}</p> }),
        CardState::Unreadable => EitherOf7::D(view! { <p class="error">"This message could not be decrypted."</p> }),
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
        CardState::Gone(why) => EitherOf7::G(view! { <p class="status">{why}</p> }),
    };
    let class = move || match card.state.get() {
        CardState::Mine { .. } | CardState::Burned(_) => "card mine",
        _ => "card theirs",
    };
    view! {
        <li class=class>
            {body}
            {countdown}
        </li>
    }
}
