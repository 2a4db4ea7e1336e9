//! A message on screen: sealed until clicked, then shown with a countdown before it leaves, and
//! with when it was sent, so an old message served again shows for what it is.

use leptos::either::EitherOf7;
use leptos::prelude::*;

pub use crate::room::card::size_in_words;
use crate::room::card::{sent_ago, utc_datetime, wall_time, FileBytes, FileInfo};
use crate::room::{object_url, CardState, CardView, RoomClient};

/// `now` is this page's clock (milliseconds since the Unix epoch), moved on by the room page so
/// "sent 3 min ago" stays true.
#[component]
pub fn MessageCard(card: CardView, room: RoomClient, #[prop(into)] now: Signal<u64>) -> impl IntoView {
    let countdown = move || {
        card.left.get().map(|left| view! { <span class="countdown">{format!("Disappears in {left} s")}</span> })
    };
    let body = move || {
        if let Some(file) = card.file.get() {
            return file_body(card, room, &file).into_any();
        }
        text_body(card, room).into_any()
    };
    // An unsent message was never sent: its sealing time would say otherwise.
    let sent = move || {
        let unsent = card.state.with(|state| matches!(state, CardState::Unsent { .. }));
        card.sent_at.get().filter(|_| !unsent).map(|at| view! { <SentAt at now/> })
    };
    let class = move || match (card.state.with(CardState::is_mine), card.file.with(Option::is_some)) {
        (true, false) => "card mine",
        (true, true) => "card mine file",
        (false, false) => "card theirs",
        (false, true) => "card theirs file",
    };
    // Who it is from, once it is open or ours: "Ana: ", "Someone: ", "You: ". A name travels
    // sealed, so only the room reads it; it is a label, not an identity.
    let from = move || {
        let said = card.state.with(|state| {
            matches!(state, CardState::Open(_) | CardState::Mine { .. } | CardState::File(_) | CardState::Saved)
        });
        said.then(|| view! { <span class="from">{move || format!("{}: ", card.from.get())}</span> })
    };
    view! {
        <li class=class>
            {from}
            {body}
            {sent}
            {countdown}
        </li>
    }
}

/// A text message's card.
fn text_body(card: CardView, room: RoomClient) -> impl IntoView {
    match card.state.get() {
        CardState::Sealed => EitherOf7::A(view! {
            <button class="sealed" on:click=move |_| room.open_card(card.id)>
                // A drawn padlock: an emoji needs a font the system may not have.
                <svg class="icon" aria-hidden="true" viewBox="0 0 16 16">
                    <path fill="currentColor" d="M4 7V5a4 4 0 0 1 8 0v2h1v8H3V7zm2 0h4V5a2 2 0 0 0-4 0z"/>
                </svg>
                {sealed_label(card.announced)}
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
        // Only file cards have these (`file_body`).
        CardState::File(_) | CardState::Saved => EitherOf7::B(view! { <p class="status">{""}</p> }),
    }
}

/// A file card: what the file is (its name, size and progress), and once decrypted, the image
/// shown or the file offered to save.
fn file_body(card: CardView, room: RoomClient, file: &FileInfo) -> impl IntoView {
    let label = format!("{} ({})", file.name, size_in_words(file.size));
    let percent = |file: &FileInfo| (100 * file.done).checked_div(file.chunks).unwrap_or(0);
    let progress = {
        let (done, chunks) = (file.done, file.chunks);
        move || view! { <progress max=chunks.to_string() value=done.to_string()></progress> }
    };
    match card.state.get() {
        CardState::Opening => view! {
            <p class="status">{format!("Encrypted file ({}). Downloading and decrypting: {} %", size_in_words(file.size), percent(file))}</p>
            {progress()}
        }
        .into_any(),
        CardState::File(bytes) if file.is_image() => view! { <Picture bytes mime=file.mime.clone() name=file.name.clone()/> }.into_any(),
        CardState::File(_) => {
            let id = card.id;
            view! {
                <p class="file-name">{label}</p>
                <button class="primary save" on:click=move |_| room.save_card(id)>"Save file"</button>
                <p class="status">"Decrypted. Saving it deletes it from the server."</p>
            }
            .into_any()
        }
        CardState::Saved => view! {
            <p class="file-name">{label}</p>
            <p class="status">"Saved: deleted from the server"</p>
        }
        .into_any(),
        CardState::Mine { stored, seen, .. } => {
            let status = match (stored, seen) {
                (false, _) if file.done < file.chunks => format!("Uploading: {} %", percent(file)),
                (false, _) => "Sending…".to_owned(),
                (true, None) => "Waiting to be opened".to_owned(),
                (true, Some((viewed, of))) => format!("Opened by {viewed} of {of}"),
            };
            let uploading = !stored && file.done < file.chunks;
            view! {
                <p class="file-name">{label}</p>
                {uploading.then(progress)}
                <p class="status">{status}</p>
            }
            .into_any()
        }
        CardState::Burned(_) => view! {
            <p class="file-name">{label}</p>
            <p class="status">"Deleted from the server"</p>
        }
        .into_any(),
        CardState::Unsent { why, .. } => {
            let id = card.id;
            view! {
                <p class="file-name">{label}</p>
                <p class="error">{why}</p>
                <button class="secondary" on:click=move |_| room.resend_card(id)>"Send again"</button>
            }
            .into_any()
        }
        CardState::Gone(why) => view! { <p class="file-name">{label}</p><p class="status">{why}</p> }.into_any(),
        CardState::Unreadable => view! { <p class="error">"This file could not be decrypted."</p> }.into_any(),
        CardState::Misdated(why) => view! { <p class="error">{why}</p> }.into_any(),
        CardState::Refused(why) => view! { <p class="error">{why}</p> }.into_any(),
        CardState::Sealed | CardState::Open(_) => view! { <p class="status">{label}</p> }.into_any(),
    }
}

/// A decrypted image, shown from a `blob:` URL for as long as its card is on screen; the URL
/// is revoked when the card leaves, and the bytes are wiped with the card.
#[component]
fn Picture(bytes: FileBytes, mime: String, name: String) -> impl IntoView {
    let url = object_url(&bytes, &mime);
    let revoke = url.clone();
    on_cleanup(move || {
        if let Some(url) = revoke {
            let _ = web_sys::Url::revoke_object_url(&url);
        }
    });
    view! { <img class="picture" src=url alt=format!("Image: {name}")/> }
}

/// What a sealed card says: a file card names the size the relay announced, which is its padded
/// size and so an upper bound ("up to").
pub fn sealed_label(announced: Option<u64>) -> String {
    match announced {
        Some(size) => format!(" Encrypted file (up to {}). Click to decrypt and view", size_in_words(size)),
        None => " Encrypted message. Click to decrypt and view".to_owned(),
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

#[cfg(test)]
mod tests {
    use super::sealed_label;

    #[test]
    fn a_sealed_card_names_a_files_announced_size_as_an_upper_bound() {
        assert_eq!(sealed_label(None), " Encrypted message. Click to decrypt and view");
        assert_eq!(sealed_label(Some(20 * 65_536)), " Encrypted file (up to 1.3 MB). Click to decrypt and view");
        assert_eq!(sealed_label(Some(65_536)), " Encrypted file (up to 66 KB). Click to decrypt and view");
    }
}
