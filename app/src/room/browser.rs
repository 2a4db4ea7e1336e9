//! The browser's driver of a [`RoomModel`]: derives the keys, keeps the socket, runs the
//! model's timers, mirrors its state into signals, and plays the new-message tone.

use futures::channel::mpsc::{unbounded, UnboundedSender};
use futures::{SinkExt as _, StreamExt as _};
use gloo_net::websocket::{futures::WebSocket, Message};
use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::crypto::{MessageId, RoomCode};
use crate::protocol::{RelayLimits, FEATURE_FILES, WS_PATH};
use crate::room::card::{FileBytes, FileInfo};
use crate::room::effect::ChunkJob;
use crate::room::model::max_chars;
use crate::room::{CardState, ConnectionState, Effect, RoomEvent, RoomModel};

/// One message on screen, as signals, so a card re-renders alone.
#[derive(Clone, Copy, Debug)]
pub struct CardView {
    pub id: MessageId,
    pub state: RwSignal<CardState>,
    /// Seconds before the card leaves the screen, once counting.
    pub left: RwSignal<Option<u32>>,
    /// When the message was sent (milliseconds since the Unix epoch), once known.
    pub sent_at: RwSignal<Option<u64>>,
    /// The file it carries, with its progress, once known.
    pub file: RwSignal<Option<FileInfo>>,
    /// A sealed file card's size as the relay announced it (fixed when the card arrives).
    pub announced: Option<u64>,
    /// Who it is from, as the card says it: "You", the sender's name once opened, or "Someone".
    pub from: RwSignal<String>,
}

/// A room as the page shows it. All fields are handles, so it is `Copy` into closures.
#[derive(Clone, Copy)]
pub struct RoomClient {
    pub connection: RwSignal<ConnectionState>,
    pub participants: RwSignal<u32>,
    pub peer_typing: RwSignal<bool>,
    pub cards: RwSignal<Vec<CardView>>,
    pub fingerprint: RwSignal<Option<String>>,
    pub notice: RwSignal<Option<String>>,
    /// New sealed messages that arrived while the tab was hidden (shown in the title).
    pub unread: RwSignal<u32>,
    /// The latest thing to announce to screen readers (an `aria-live` region shows it).
    pub announcement: RwSignal<String>,
    /// Play a short tone for a message that arrives while the tab is hidden.
    pub sound: RwSignal<bool>,
    /// The most characters the composer takes: what the relay's largest message holds.
    pub max_chars: RwSignal<usize>,
    /// The largest file the relay takes, in bytes of padded plaintext; 0: it takes none.
    pub max_file: RwSignal<u64>,
    /// The unread lifetimes the relay lets a sender choose (seconds); empty: no choice.
    pub lifetimes: RwSignal<Vec<u32>>,
    /// The relay's own TTL in seconds (the default lifetime); 0: not said.
    pub relay_ttl: RwSignal<u64>,
    /// The composer's choices: the name shown to the room (empty: none), how long what is sent
    /// waits unread (`None`: the relay's TTL) and stays on screen (`None`: 10 s). Handed to the
    /// model before each send.
    pub name: RwSignal<String>,
    pub lifetime: RwSignal<Option<u32>>,
    pub view_time: RwSignal<Option<u32>>,
    audio: StoredValue<Option<web_sys::AudioContext>, LocalStorage>,
    /// The room, once the keys are derived; `None` again after leaving.
    model: StoredValue<Option<RoomModel>>,
    outbox: StoredValue<Option<UnboundedSender<Message>>>,
    /// Counts sockets, so the end of one the model already let go of is not reported.
    socket_generation: StoredValue<u64>,
    /// A keystroke while the keys were being derived (its time), handed to the model.
    typed_early: StoredValue<Option<u64>>,
    /// Set by "Leave": the derivation in flight, if any, is dropped.
    left: StoredValue<bool>,
}

impl Default for RoomClient {
    fn default() -> Self {
        Self::new()
    }
}

impl RoomClient {
    pub fn new() -> Self {
        Self {
            connection: RwSignal::new(ConnectionState::Deriving),
            participants: RwSignal::new(0),
            peer_typing: RwSignal::new(false),
            cards: RwSignal::new(Vec::new()),
            fingerprint: RwSignal::new(None),
            notice: RwSignal::new(None),
            unread: RwSignal::new(0),
            announcement: RwSignal::new(String::new()),
            sound: RwSignal::new(false),
            // Until a relay says otherwise, what every relay accepts.
            max_chars: RwSignal::new(max_chars(RelayLimits::default().max_message)),
            max_file: RwSignal::new(0),
            lifetimes: RwSignal::new(Vec::new()),
            relay_ttl: RwSignal::new(0),
            name: RwSignal::new(String::new()),
            lifetime: RwSignal::new(None),
            view_time: RwSignal::new(None),
            audio: StoredValue::new_local(None),
            model: StoredValue::new(None),
            outbox: StoredValue::new(None),
            socket_generation: StoredValue::new(0),
            typed_early: StoredValue::new(None),
            left: StoredValue::new(false),
        }
    }

    /// Derives the keys from `code` (the slow step, by WebCrypto where the page has it) and
    /// connects, unless the page was left meanwhile.
    pub fn start(self, code: RoomCode) {
        spawn_local(async move {
            let keys = crate::webcrypto::derive(&code).await;
            if self.left.try_get_value() != Some(false) {
                return;
            }
            let mut model = RoomModel::new(keys);
            if let Some(at) = self.typed_early.get_value() {
                model.typed(at);
            }
            self.fingerprint.set(Some(model.fingerprint()));
            self.model.set_value(Some(model));
            self.apply(RoomModel::start);
        });
    }

    /// Forgets the keys (zeroed on drop) and every message, closes the socket and stops
    /// reconnecting.
    pub fn leave(self) {
        self.left.set_value(true);
        self.apply(RoomModel::leave);
        self.model.set_value(None);
        self.fingerprint.set(None);
        self.cards.set(Vec::new());
        self.notice.set(None);
        self.unread.set(0);
        self.audio.set_value(None);
    }

    /// After a full room: try to join again (someone may have left).
    pub fn retry(self) {
        self.apply(RoomModel::retry);
    }

    /// A click on a sealed card: ask for its payload. Nothing else fetches.
    pub fn open_card(self, id: MessageId) {
        self.apply(|model| model.open(id));
    }

    /// Hands the composer's choices to the model; false (the model's notice says why) if the
    /// name is not one the spec allows.
    fn choose(self, model: &mut RoomModel) -> bool {
        model.set_lifetime(self.lifetime.get_untracked());
        model.set_view_time(self.view_time.get_untracked());
        self.name.with_untracked(|name| model.set_name(name)).is_ok()
    }

    /// Seals `text` and sends it. Returns false (with a notice where it helps) if it was not.
    pub fn send_text(self, text: String) -> bool {
        let now = now_ms();
        let sent = self
            .model
            .try_update_value(|model| {
                let model = model.as_mut()?;
                self.choose(model).then(|| model.send(&text, now))
            })
            .flatten();
        self.render();
        match sent {
            Some(Ok(effects)) => {
                self.carry_out(effects);
                true
            }
            Some(Err(_)) | None => false,
        }
    }

    /// Reads a file the person picked, dropped or pasted, and sends it (a notice says why if
    /// it cannot be).
    pub fn send_file(self, file: web_sys::File) {
        spawn_local(async move {
            let Ok(buffer) = wasm_bindgen_futures::JsFuture::from(file.array_buffer()).await else {
                self.notice.set(Some("That file could not be read.".into()));
                return;
            };
            let array = js_sys::Uint8Array::new(&buffer);
            let bytes = array.to_vec();
            array.fill(0, 0, array.length());
            let (name, mime) = (file.name(), file.type_());
            let now = now_ms();
            self.apply(|model| {
                if !self.choose(model) {
                    return Vec::new();
                }
                model.send_file(&name, &mime, bytes, now).unwrap_or_default()
            });
        });
    }

    /// "Save" on a decrypted file: the browser gets it, and the relay is told it was viewed.
    pub fn save_card(self, id: MessageId) {
        self.apply(|model| model.save(id));
    }

    /// "Send again" on our message the relay refused: sent anew (a notice says it if it cannot).
    pub fn resend_card(self, id: MessageId) {
        let now = now_ms();
        self.apply(|model| model.resend(id, now).unwrap_or_default());
    }

    /// Called on each keystroke: the model tells the room, at most every two seconds, and
    /// once joined if the page is not yet.
    pub fn typed(self) {
        let now = now_ms();
        if self.model.with_value(Option::is_none) {
            self.typed_early.set_value(Some(now));
            return;
        }
        self.apply(|model| model.typed(now));
    }

    /// Switches the new-message tone on or off. The audio context is made here, in the click,
    /// because browsers only let a page make sound after a person has interacted with it.
    pub fn set_sound(self, on: bool) {
        if on && self.audio.with_value(Option::is_none) {
            self.audio.set_value(web_sys::AudioContext::new().ok());
        }
        self.sound.set(on);
    }

    /// The tab became visible: the unread count is read.
    pub fn seen(self) {
        self.unread.set(0);
    }

    /// Runs one step of the model, shows its new state and carries out its effects.
    fn apply(self, step: impl FnOnce(&mut RoomModel) -> Vec<Effect>) {
        let Some(effects) = self.model.try_update_value(|model| model.as_mut().map(step)).flatten() else { return };
        self.render();
        self.carry_out(effects);
    }

    fn carry_out(self, effects: Vec<Effect>) {
        for effect in effects {
            match effect {
                Effect::Send(frame) => self.outbox.with_value(|outbox| {
                    if let Some(tx) = outbox {
                        let _ = tx.unbounded_send(Message::Text(serde_json::to_string(&frame).unwrap_or_default()));
                    }
                }),
                Effect::SendBinary(bytes) => self.outbox.with_value(|outbox| {
                    if let Some(tx) = outbox {
                        let _ = tx.unbounded_send(Message::Bytes(bytes));
                    }
                }),
                Effect::Seal(job) => spawn_local(async move {
                    let sealed =
                        run_chunk(true, &job).await.map(|sealed| sealed.to_vec()).unwrap_or_else(|| job.seal());
                    self.apply(|model| model.chunk_sealed(job.id, job.index, sealed));
                }),
                Effect::Open(job) => spawn_local(async move {
                    // WebCrypto refuses a chunk that fails authentication as it refuses when it
                    // is missing: the Rust reference decides which.
                    let opened = match run_chunk(false, &job).await {
                        Some(plain) => Ok(plain),
                        None => job.open(),
                    };
                    self.apply(|model| model.chunk_opened(job.id, job.index, opened));
                }),
                Effect::Save { name, bytes } => save_to_disk(&name, &bytes),
                Effect::Connect { after } if after.is_zero() => self.connect(),
                Effect::Connect { after } => set_timeout(move || self.connect(), after),
                Effect::Disconnect => {
                    self.socket_generation.update_value(|n| *n += 1);
                    self.outbox.set_value(None); // dropping the sender closes the socket
                }
                Effect::Schedule { timer, after } => {
                    set_timeout(move || self.apply(|model| model.on_timer(timer)), after)
                }
                Effect::Event(RoomEvent::Arrived(_)) => self.arrived_unseen(),
                Effect::Event(_) => {}
            }
        }
    }

    fn connect(self) {
        if self.model.with_value(Option::is_none) {
            return;
        }
        self.socket_generation.update_value(|n| *n += 1);
        let generation = self.socket_generation.get_value();
        let Ok(socket) = WebSocket::open(&ws_url()) else {
            self.apply(RoomModel::on_closed);
            return;
        };
        let (mut write, mut read) = socket.split();
        let (tx, mut rx) = unbounded::<Message>();
        self.outbox.set_value(Some(tx));
        spawn_local(async move {
            while let Some(message) = rx.next().await {
                if write.send(message).await.is_err() {
                    break;
                }
            }
            let _ = write.close().await;
        });
        let current = move || self.socket_generation.try_get_value() == Some(generation);
        spawn_local(async move {
            while let Some(Ok(message)) = read.next().await {
                if !current() {
                    continue;
                }
                match message {
                    Message::Text(text) => self.apply(|model| model.on_text(&text)),
                    Message::Bytes(bytes) => self.apply(|model| model.on_binary(&bytes)),
                }
            }
            if current() {
                self.outbox.set_value(None);
                self.apply(RoomModel::on_closed);
            }
        });
        self.apply(RoomModel::on_connected);
    }

    /// Copies the model's state into the signals, touching only what changed.
    fn render(self) {
        self.model.with_value(|model| {
            let Some(model) = model else { return };
            set_if_changed(self.connection, model.connection());
            set_if_changed(self.participants, model.participants());
            set_if_changed(self.peer_typing, model.peer_typing());
            set_if_changed(self.notice, model.notice().map(str::to_owned));
            set_if_changed(self.announcement, model.announcement().to_owned());
            set_if_changed(self.max_chars, model.max_chars());
            let files = model.limits().features.iter().any(|f| f == FEATURE_FILES);
            set_if_changed(self.max_file, if files { model.limits().max_file } else { 0 });
            set_if_changed(self.lifetimes, model.lifetimes());
            set_if_changed(self.relay_ttl, model.limits().message_ttl);
            let views = self.cards.get_untracked();
            let same_cards = views.len() == model.cards().len()
                && views.iter().zip(model.cards()).all(|(view, card)| view.id == card.id);
            let mut next = Vec::with_capacity(model.cards().len());
            for card in model.cards() {
                match views.iter().find(|view| view.id == card.id) {
                    Some(view) => {
                        set_if_changed(view.state, card.state.clone());
                        set_if_changed(view.left, card.left);
                        set_if_changed(view.sent_at, card.sent_at);
                        set_if_changed(view.file, card.file.clone());
                        set_if_changed(view.from, card.from_label().to_owned());
                        next.push(*view);
                    }
                    None => next.push(CardView {
                        id: card.id,
                        state: RwSignal::new(card.state.clone()),
                        left: RwSignal::new(card.left),
                        sent_at: RwSignal::new(card.sent_at),
                        file: RwSignal::new(card.file.clone()),
                        announced: card.announced,
                        from: RwSignal::new(card.from_label().to_owned()),
                    }),
                }
            }
            if !same_cards {
                self.cards.set(next);
            }
        });
    }

    /// A sealed message arrived: counted in the title, and chimed, while the tab is hidden.
    fn arrived_unseen(self) {
        if document().visibility_state() != web_sys::VisibilityState::Hidden {
            return;
        }
        self.unread.update(|n| *n += 1);
        if self.sound.get_untracked() {
            self.chime();
        }
    }

    /// A short, quiet tone (synthesised: no audio file to fetch).
    fn chime(self) {
        self.audio.with_value(|audio| {
            let Some(ctx) = audio else { return };
            let (Ok(osc), Ok(gain)) = (ctx.create_oscillator(), ctx.create_gain()) else { return };
            let now = ctx.current_time();
            osc.frequency().set_value(880.0);
            gain.gain().set_value(0.08);
            let _ = osc.connect_with_audio_node(&gain);
            let _ = gain.connect_with_audio_node(&ctx.destination());
            let _ = osc.start();
            let _ = osc.stop_with_when(now + 0.15);
        });
    }
}

/// Seals or opens a chunk by WebCrypto; `None` where the page has none (or it refused).
async fn run_chunk(encrypt: bool, job: &ChunkJob) -> Option<zeroize::Zeroizing<Vec<u8>>> {
    crate::webcrypto::aes256gcm(encrypt, &job.key, &job.nonce, &job.aad, &job.input).await
}

/// Hands `bytes` to the browser as a download named `name`, typed so that it is never rendered.
fn save_to_disk(name: &str, bytes: &FileBytes) {
    let Some(url) = object_url(bytes, "application/octet-stream") else { return };
    if let Ok(anchor) = document().create_element("a") {
        let anchor: web_sys::HtmlAnchorElement = wasm_bindgen::JsCast::unchecked_into(anchor);
        anchor.set_href(&url);
        anchor.set_download(name);
        anchor.click();
    }
    // The download has its own copy once it started; the page's goes after a moment.
    set_timeout(move || drop(web_sys::Url::revoke_object_url(&url)), std::time::Duration::from_secs(10));
}

/// A `blob:` URL of `bytes`, typed `mime`. Revoke it when done.
pub fn object_url(bytes: &FileBytes, mime: &str) -> Option<String> {
    let array = js_sys::Uint8Array::from(&bytes.0[..]);
    let parts = js_sys::Array::of1(&array);
    let options = web_sys::BlobPropertyBag::new();
    options.set_type(mime);
    let blob = web_sys::Blob::new_with_u8_array_sequence_and_options(&parts, &options).ok()?;
    array.fill(0, 0, array.length());
    web_sys::Url::create_object_url_with_blob(&blob).ok()
}

fn set_if_changed<T: PartialEq + Send + Sync + 'static>(signal: RwSignal<T>, value: T) {
    if signal.with_untracked(|current| *current != value) {
        signal.set(value);
    }
}

/// This page's clock, in milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    js_sys::Date::now() as u64
}

/// The relay's WebSocket address: on this page's host, or in the client-only build the relay
/// named by `EC_RELAY_ORIGIN` when it was built.
fn ws_url() -> String {
    #[cfg(feature = "csr")]
    if let Some(origin) = option_env!("EC_RELAY_ORIGIN") {
        return relay_ws_url(origin);
    }
    let location = window().location();
    let scheme = if location.protocol().as_deref() == Ok("https:") { "wss" } else { "ws" };
    format!("{scheme}://{}{WS_PATH}", location.host().unwrap_or_default())
}

/// `http(s)://host[:port]` as the matching `ws(s)://host[:port]/ws`.
pub fn relay_ws_url(origin: &str) -> String {
    let origin = origin.trim_end_matches('/');
    let rest = origin.strip_prefix("https://").map(|r| ("wss", r));
    let (scheme, host) = rest.or_else(|| origin.strip_prefix("http://").map(|r| ("ws", r))).unwrap_or(("wss", origin));
    format!("{scheme}://{host}{WS_PATH}")
}

#[cfg(test)]
mod tests {
    use super::relay_ws_url;

    #[test]
    fn a_relay_origin_becomes_its_websocket_address() {
        assert_eq!(relay_ws_url("https://relay.example"), "wss://relay.example/ws");
        assert_eq!(relay_ws_url("http://127.0.0.1:3110/"), "ws://127.0.0.1:3110/ws");
        assert_eq!(relay_ws_url("relay.example:8443"), "wss://relay.example:8443/ws");
    }
}
