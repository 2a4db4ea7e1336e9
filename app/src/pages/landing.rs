//! The landing page: generate a room code, or enter one someone shared.

use leptos::prelude::*;

use crate::components::copy_button::CopyButton;
use crate::components::hydration::{busy_until_hydrated, label_once_hydrated, use_hydrated};
use crate::components::qr_code::QrCodeImage;
use crate::crypto::RoomCode;

/// Path of the room page; the code travels only in the URL fragment, which browsers never send.
pub const ROOM_PATH: &str = "/room";

/// The invite link for `code` on this page's origin.
fn invite_link(code: &RoomCode) -> String {
    let origin = window().location().origin().unwrap_or_default();
    format!("{origin}{ROOM_PATH}#{}", code.grouped())
}

/// Opens the room for `code`. A full load of `/room#code`: the same path an invite link takes.
fn enter_room(code: &RoomCode) {
    let _ = window().location().assign(&format!("{ROOM_PATH}#{}", code.canonical()));
}

#[component]
pub fn LandingPage() -> impl IntoView {
    let generated = RwSignal::new(None::<RoomCode>);
    let hydrated = use_hydrated();
    view! {
        <header class="hero">
            <h1>"Ephemeral Chat"</h1>
            <p class="lede">
                "Messages are encrypted in your browser with a key made from the room code, which never leaves it. "
                "Each message is deleted from the server the moment it has been read, or after 24 hours if nobody reads it."
            </p>
        </header>
        <section class="panel" aria-labelledby="new-room">
            <h2 id="new-room">"Start a room"</h2>
            <button
                class="primary"
                disabled=move || !hydrated.get()
                aria-busy=busy_until_hydrated(hydrated)
                on:click=move |_| generated.set(Some(RoomCode::generate()))
            >
                {label_once_hydrated(hydrated, "Generate new code")}
            </button>
            {move || generated.get().map(|code| view! { <GeneratedCode code/> })}
        </section>
        <JoinForm/>
    }
}

/// A freshly generated code, its invite link, and the way in.
#[component]
fn GeneratedCode(code: RoomCode) -> impl IntoView {
    let grouped = code.grouped();
    let link = invite_link(&code);
    let enter = code.clone();
    view! {
        <div class="generated">
            <p class="hint">"Share this code, or the link, with the person you want to talk to. Anyone who has it can read along."</p>
            <div class="code-row">
                <output class="room-code" aria-label="Room code">{grouped.clone()}</output>
                <CopyButton text=grouped label="Copy code"/>
            </div>
            <div class="code-row">
                <output class="invite-link" aria-label="Invite link">{link.clone()}</output>
                <CopyButton text=link.clone() label="Copy link"/>
            </div>
            <QrCodeImage text=link label="QR code of the invite link"/>
            <button class="primary" on:click=move |_| enter_room(&enter)>"Enter room"</button>
        </div>
    }
}

/// Join with a typed or pasted code or link. An invalid code is refused here, before any
/// network traffic.
#[component]
fn JoinForm() -> impl IntoView {
    let input = RwSignal::new(String::new());
    let error = RwSignal::new(None::<&'static str>);
    let hydrated = use_hydrated();
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        match RoomCode::parse(&input.get_untracked()) {
            Ok(code) => {
                error.set(None);
                input.set(String::new());
                enter_room(&code);
            }
            Err(_) => error.set(Some("Invalid room code. Check it for typos and try again.")),
        }
    };
    view! {
        <section class="panel" aria-labelledby="join-room">
            <h2 id="join-room">"Join a room"</h2>
            <form on:submit=submit>
                <label for="join-code">"Room code or invite link"</label>
                <div class="code-row">
                    <input
                        id="join-code"
                        type="text"
                        autocomplete="off"
                        autocapitalize="characters"
                        spellcheck="false"
                        placeholder="XXXXX-XXXXX-XXXXX-XXXXX-XXXXX"
                        aria-invalid=move || error.get().is_some().to_string()
                        aria-describedby="join-error"
                        disabled=move || !hydrated.get()
                        aria-busy=busy_until_hydrated(hydrated)
                        prop:value=move || input.get()
                        on:input=move |ev| {
                            input.set(event_target_value(&ev));
                            error.set(None);
                        }
                    />
                    <button
                        type="submit"
                        class="primary"
                        disabled=move || !hydrated.get()
                        aria-busy=busy_until_hydrated(hydrated)
                    >
                        {label_once_hydrated(hydrated, "Join")}
                    </button>
                </div>
                <p id="join-error" class="error" role="alert">{move || error.get()}</p>
            </form>
        </section>
    }
}
