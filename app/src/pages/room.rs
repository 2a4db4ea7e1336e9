//! The room page: reads the code from the URL fragment (then removes it from the address bar),
//! derives the keys in the browser and shows the conversation.

use leptos::prelude::*;

use crate::components::hydration::{busy_until_hydrated, label_once_hydrated, use_hydrated, LOADING};
use crate::components::message_card::{size_in_words, MessageCard};
use crate::crypto::message::MAX_NAME_CHARS;
use crate::crypto::RoomCode;
use crate::room::{lifetime_words, now_ms, ConnectionState, RoomClient, SHOW_SECONDS, VIEW_TIMES};

/// How often the cards' "sent … ago" are brought up to date: they count in minutes.
const SENT_AGO_EVERY: std::time::Duration = std::time::Duration::from_secs(15);

/// Takes the code from `location.hash` and replaces the address with the bare path, so the code
/// does not stay in the address bar or the history entry.
fn take_code_from_url() -> Option<RoomCode> {
    let location = window().location();
    let hash = location.hash().ok()?;
    if let Ok(history) = window().history() {
        let _ = history.replace_state_with_url(
            &wasm_bindgen::JsValue::NULL,
            "",
            Some(&location.pathname().unwrap_or_default()),
        );
    }
    RoomCode::parse(&hash).ok()
}

#[component]
pub fn RoomPage() -> impl IntoView {
    let room = RoomClient::new();
    let invalid = RwSignal::new(false);
    Effect::new(move |_| match take_code_from_url() {
        Some(code) => {
            // Let the page paint "Deriving keys…" before a derivation in WASM (no WebCrypto)
            // blocks it.
            set_timeout(move || room.start(code), std::time::Duration::from_millis(0));
        }
        None => invalid.set(true),
    });
    view! {
        <Show
            when=move || !invalid.get()
            fallback=|| view! {
                <section class="panel">
                    <h1>"No valid room code"</h1>
                    <p role="alert" class="error">"This link has no valid room code. Ask for the link again, or enter the code."</p>
                    <a href="/">"Go to the start page"</a>
                </section>
            }
        >
            <RoomView room/>
        </Show>
    }
}

#[component]
fn RoomView(room: RoomClient) -> impl IntoView {
    let hydrated = use_hydrated();
    let status = move || match room.connection.get() {
        _ if !hydrated.get() => LOADING,
        ConnectionState::Deriving => "Deriving keys…",
        ConnectionState::Connecting => "Connecting…",
        ConnectionState::Online => "Connected",
        ConnectionState::Reconnecting => "Connection lost, reconnecting…",
        ConnectionState::Unreachable => "Cannot reach the server. Still trying…",
        ConnectionState::Full => "Not connected",
    };
    // While the tab is hidden, new messages count in the title; looking at the tab reads them.
    Effect::new(move |_| {
        let title = match room.unread.get() {
            0 => "Ephemeral Chat".to_owned(),
            n => format!("({n}) Ephemeral Chat"),
        };
        document().set_title(&title);
    });
    let visibility = window_event_listener(leptos::ev::visibilitychange, move |_| {
        if document().visibility_state() == web_sys::VisibilityState::Visible {
            room.seen();
        }
    });
    on_cleanup(move || visibility.remove());
    // The clock the cards' "sent … ago" read. Started in an effect: the page's clock, and its
    // timer, exist only in the browser.
    let now = RwSignal::new(0);
    Effect::new(move |_| {
        now.set(now_ms());
        if let Ok(ticker) = set_interval_with_handle(move || now.set(now_ms()), SENT_AGO_EVERY) {
            on_cleanup(move || ticker.clear());
        }
    });
    let people = move || match room.participants.get() {
        0 => String::new(),
        1 => "Only you are here".to_owned(),
        n => format!("{n} people here"),
    };
    let leave = move |_| {
        room.leave();
        let _ = window().location().assign("/");
    };
    // The name box takes typing from the start, as the composer's does: what was typed before
    // the page was hydrated is read once it is.
    let name_box = NodeRef::<leptos::html::Input>::new();
    Effect::new(move |_| {
        if let Some(el) = name_box.get_untracked() {
            room.name.set(el.value());
        }
    });
    view! {
        <header class="room-header">
            <h1>"Room"</h1>
            <p class="fingerprint">
                "Fingerprint: "
                <strong aria-label="Room fingerprint">{move || room.fingerprint.get().unwrap_or_else(|| "…".into())}</strong>
            </p>
            <p class="name-note">
                "A name is a label, not an identity: anyone with the code can type any name. \
                 Compare the fingerprint to know you share the room."
            </p>
            <label class="name">
                "Your name in this room (optional): "
                <input
                    type="text"
                    id="display-name"
                    node_ref=name_box
                    maxlength=MAX_NAME_CHARS.to_string()
                    autocomplete="off"
                    placeholder="Someone"
                    on:input=move |ev| room.name.set(event_target_value(&ev))
                />
            </label>
            <p class="connection" role="status" data-state=move || format!("{:?}", room.connection.get()).to_lowercase()>
                {status} " · " {people}
            </p>
            <button
                class="secondary"
                disabled=move || !hydrated.get()
                aria-busy=busy_until_hydrated(hydrated)
                on:click=leave
            >
                {label_once_hydrated(hydrated, "Leave")}
            </button>
            <label class="toggle">
                <input
                    type="checkbox"
                    disabled=move || !hydrated.get()
                    aria-busy=busy_until_hydrated(hydrated)
                    prop:checked=move || room.sound.get()
                    on:change=move |ev| room.set_sound(event_target_checked(&ev))
                />
                " Sound for messages that arrive while this tab is hidden"
            </label>
        </header>
        <Show when=move || room.connection.get() == ConnectionState::Full>
            <div class="panel" role="alert">
                <p class="error">"This room is full: it holds as many people as the server allows. Try again when someone has left."</p>
                <button class="primary" on:click=move |_| room.retry()>"Try again"</button>
            </div>
        </Show>
        <ul class="cards" aria-label="Messages">
            <For each=move || room.cards.get() key=|card| card.id let:card>
                <MessageCard card room now/>
            </For>
        </ul>
        <p class="visually-hidden" aria-live="polite" id="announcer">{move || room.announcement.get()}</p>
        <p class="typing" aria-live="polite">{move || room.peer_typing.get().then_some("typing…")}</p>
        <p class="error" role="alert">{move || room.notice.get()}</p>
        <Composer room/>
    }
}

/// How long what is sent waits unread (what the relay offers, up to its TTL; its TTL by
/// default) and stays on screen once opened (10 s by default). Both travel sealed; the relay is
/// told the first so it deletes the message then.
#[component]
fn Choices(room: RoomClient) -> impl IntoView {
    let hydrated = use_hydrated();
    let parse = |value: String| value.parse::<u32>().ok();
    let lifetime = move || {
        let lifetimes = room.lifetimes.get();
        (!lifetimes.is_empty()).then(|| {
            let ttl = room.relay_ttl.get();
            let chosen = room.lifetime.get_untracked();
            view! {
                <label class="choice">
                    "Waits unread for "
                    <select id="lifetime" on:change=move |ev| room.lifetime.set(parse(event_target_value(&ev)))>
                        // The select keeps its own choice; drawn again (a relay with other
                        // limits), it starts from what was chosen.
                        <option value="" selected=chosen.is_none()>{format!("{} (the longest)", lifetime_words(ttl))}</option>
                        {lifetimes
                            .into_iter()
                            .filter(|&seconds| u64::from(seconds) < ttl)
                            .map(|seconds| view! {
                                <option value=seconds.to_string() selected=chosen == Some(seconds)>{lifetime_words(seconds.into())}</option>
                            })
                            .collect_view()}
                    </select>
                </label>
            }
        })
    };
    view! {
        <div class="choices">
            {lifetime}
            <label class="choice">
                "Shown for "
                <select
                    id="view-time"
                    disabled=move || !hydrated.get()
                    aria-busy=busy_until_hydrated(hydrated)
                    on:change=move |ev| room.view_time.set(parse(event_target_value(&ev)))
                >
                    {VIEW_TIMES
                        .into_iter()
                        .map(|seconds| {
                            let value = if seconds == SHOW_SECONDS { String::new() } else { seconds.to_string() };
                            view! { <option value=value selected=seconds == SHOW_SECONDS>{format!("{seconds} s")}</option> }
                        })
                        .collect_view()}
                </select>
                " once opened"
            </label>
        </div>
    }
}

/// The text box: Enter sends, Shift+Enter breaks the line.
///
/// The box takes typing from the start, even before the page is hydrated: the text stays in the
/// element (the page never overwrites it), and the room hears of it as soon as the app runs.
/// Send works from the first join on; while reconnecting, messages are sealed and queued, and go
/// out (once) on rejoining.
#[component]
fn Composer(room: RoomClient) -> impl IntoView {
    let hydrated = use_hydrated();
    let textarea = NodeRef::<leptos::html::Textarea>::new();
    let joined = Memo::new(move |before: Option<&bool>| {
        before.copied().unwrap_or(false) || room.connection.get() == ConnectionState::Online
    });
    let can_send = move || hydrated.get() && joined.get() && room.connection.get() != ConnectionState::Full;
    let label = move || match room.connection.get() {
        _ if !hydrated.get() => LOADING,
        _ if !joined.get() => "Joining…",
        ConnectionState::Full => "Room full",
        _ => "Send",
    };
    // Text typed before the page was hydrated had no one listening: tell the room now (it
    // passes the news on once joined).
    Effect::new(move |_| {
        if textarea.get_untracked().is_some_and(|el| !el.value().is_empty()) {
            room.typed();
        }
    });
    // A file picked, dropped or pasted waits here, shown by name and size only (nothing of it
    // is previewed), until Send.
    let attached = RwSignal::new_local(None::<web_sys::File>);
    let attach = move |files: Option<web_sys::FileList>| {
        if let Some(file) = files.and_then(|files| files.get(0)) {
            attached.set(Some(file));
        }
    };
    let submit = move || {
        if !untrack(can_send) {
            return;
        }
        if let Some(file) = attached.get_untracked() {
            attached.set(None);
            room.send_file(file);
        }
        let Some(el) = textarea.get_untracked() else { return };
        if !el.value().trim().is_empty() && room.send_text(el.value()) {
            el.set_value("");
        }
    };
    let files_offered = move || room.max_file.get() > 0;
    view! {
        <form
            class="composer"
            aria-label="New message"
            on:submit=move |ev| {
                ev.prevent_default();
                submit();
            }
            on:dragover=move |ev: leptos::ev::DragEvent| {
                if files_offered() {
                    ev.prevent_default();
                }
            }
            on:drop=move |ev: leptos::ev::DragEvent| {
                if files_offered() {
                    ev.prevent_default();
                    attach(ev.data_transfer().and_then(|data| data.files()));
                }
            }
        >
            <Show when=files_offered>
                <label class="attach secondary" title="Attach a file">
                    // A drawn paperclip: an emoji needs a font the system may not have.
                    <svg class="icon" aria-hidden="true" viewBox="0 0 16 16">
                        <path fill="none" stroke="currentColor" stroke-width="1.5" d="M10.5 4.5 5.6 9.4a1.5 1.5 0 0 0 2.1 2.1l5-5a3 3 0 0 0-4.2-4.2l-5 5a4.5 4.5 0 0 0 6.4 6.4l4.2-4.2"/>
                    </svg>
                    <span class="visually-hidden">"Attach a file"</span>
                    <input
                        type="file"
                        id="attach"
                        class="visually-hidden"
                        on:change=move |ev| {
                            let input: web_sys::HtmlInputElement = event_target(&ev);
                            attach(input.files());
                            input.set_value("");
                        }
                    />
                </label>
            </Show>
            {move || attached.with(|file| file.as_ref().map(|file| {
                let label = format!("{} ({})", file.name(), size_in_words(file.size() as u64));
                view! {
                    <p class="attachment" aria-live="polite">
                        <span class="file-name">{label}</span>
                        " "
                        <button type="button" class="secondary" on:click=move |_| attached.set(None)>"Remove"</button>
                    </p>
                }
            }))}
            <Choices room/>
            <label for="message" class="visually-hidden">"Message"</label>
            <textarea
                id="message"
                node_ref=textarea
                rows="2"
                // What the relay's largest message holds: the model still checks the sealed size.
                maxlength=move || room.max_chars.get().to_string()
                autocomplete="off"
                placeholder="Write a message. It is encrypted before it leaves this page."
                on:input=move |_| room.typed()
                on:paste=move |ev: leptos::ev::ClipboardEvent| {
                    // A pasted image (a screenshot) is attached as a file; text pastes as text.
                    let files = ev.clipboard_data().and_then(|data| data.files());
                    if files_offered() && files.as_ref().is_some_and(|files| files.length() > 0) {
                        ev.prevent_default();
                        attach(files);
                    }
                }
                on:keydown=move |ev: leptos::ev::KeyboardEvent| {
                    if ev.key() == "Enter" && !ev.shift_key() && !ev.is_composing() {
                        ev.prevent_default();
                        submit();
                    }
                }
            ></textarea>
            <button
                type="submit"
                class="primary"
                disabled=move || !can_send()
                aria-busy=move || (!hydrated.get() || !joined.get()).then_some("true")
            >
                {label}
            </button>
        </form>
    }
}
