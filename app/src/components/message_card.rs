//! A message on screen: sealed until clicked, then shown with a countdown before it leaves.

use leptos::prelude::*;

use crate::room::{Card, CardState, Room};

#[component]
pub fn MessageCard(card: Card, room: Room) -> impl IntoView {
    let countdown = move || {
        card.left.get().map(|left| view! { <span class="countdown">{format!("Disappears in {left} s")}</span> })
    };
    let body = move || match card.state.get() {
        CardState::Sealed => view! {
            <button class="sealed" on:click=move |_| room.open_card(card.id)>
                // A drawn padlock: an emoji needs a font the system may not have.
                <svg class="icon" aria-hidden="true" viewBox="0 0 16 16">
                    <path fill="currentColor" d="M4 7V5a4 4 0 0 1 8 0v2h1v8H3V7zm2 0h4V5a2 2 0 0 0-4 0z"/>
                </svg>
                " Encrypted message. Click to decrypt and view"
            </button>
        }
        .into_any(),
        CardState::Opening => view! { <p class="status">"Decrypting…"</p> }.into_any(),
        CardState::Open(text) => view! { <p class="text">{text}</p> }.into_any(),
        CardState::Unreadable => view! {
            <p class="error">"This message could not be decrypted."</p>
        }
        .into_any(),
        CardState::Mine { text, stored, seen } => view! {
            <p class="text">{text}</p>
            <p class="status">
                {match (stored, seen) {
                    (false, _) => "Sending…".to_owned(),
                    (true, None) => "Waiting to be read".to_owned(),
                    (true, Some((viewed, of))) => format!("Viewed by {viewed} of {of}"),
                }}
            </p>
        }
        .into_any(),
        CardState::Burned(text) => view! {
            <p class="text">{text}</p>
            <p class="status">"Read and deleted from the server"</p>
        }
        .into_any(),
        CardState::Gone(why) => view! { <p class="status">{why}</p> }.into_any(),
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
