//! The browser side of a room: derives the keys, keeps the socket (reconnecting when it
//! drops), and turns server frames into message cards.
//!
//! Plaintext exists only here, in memory, for as long as a card shows it.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use futures::channel::mpsc::{unbounded, UnboundedSender};
use futures::{SinkExt as _, StreamExt as _};
use gloo_net::websocket::{futures::WebSocket, Message};
use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::crypto::message::{open, seal};
use crate::crypto::{Body, MessageId, RoomCode, RoomKeys, SealedPayload, SenderId};
use crate::protocol::{ClientFrame, ErrorCode, ServerFrame, WS_PATH};

/// Seconds a read message stays on screen before it leaves.
pub const SHOW_SECONDS: u32 = 10;
/// How long "typing…" lasts after the last typing notice.
const TYPING_SHOWN_FOR: Duration = Duration::from_secs(4);
/// Least time between two typing notices this page sends.
const TYPING_RESEND_MS: f64 = 2_000.0;
/// Longest wait between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// Failed attempts in a row after which the page says the server cannot be reached.
const UNREACHABLE_AFTER: u32 = 3;

/// The state of the connection to the relay.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Connection {
    /// Running the key derivation.
    Deriving,
    /// Opening the socket and joining.
    Connecting,
    /// Joined: messages flow.
    Online,
    /// The socket dropped; trying again.
    Reconnecting,
    /// Several attempts in a row failed; still trying.
    Unreachable,
    /// The relay refused the join: the room holds as many people as it may.
    Full,
}

/// What a card shows.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum CardState {
    /// Someone else's message, still sealed.
    Sealed,
    /// Fetching and decrypting.
    Opening,
    /// Decrypted and on screen.
    Open(String),
    /// The payload failed to open.
    Unreadable,
    /// Our own message: sent (`stored` once the server confirmed), not yet read by all; `seen`
    /// is how many of how many recipients have viewed it so far.
    Mine { text: String, stored: bool, seen: Option<(u32, u32)> },
    /// Our own message was read and deleted.
    Burned(String),
    /// Gone unread: expired, or read by someone else.
    Gone(&'static str),
}

/// One message on screen.
#[derive(Clone, Copy, Debug)]
pub struct Card {
    pub id: MessageId,
    pub state: RwSignal<CardState>,
    /// Seconds before the card leaves the screen, once counting.
    pub left: RwSignal<Option<u32>>,
}

/// A room as the page sees it. All fields are handles, so it is `Copy` into closures.
#[derive(Clone, Copy)]
pub struct RoomClient {
    pub connection: RwSignal<Connection>,
    pub participants: RwSignal<u32>,
    pub peer_typing: RwSignal<bool>,
    pub cards: RwSignal<Vec<Card>>,
    pub fingerprint: RwSignal<Option<String>>,
    pub notice: RwSignal<Option<String>>,
    /// New sealed messages that arrived while the tab was hidden (shown in the title).
    pub unread: RwSignal<u32>,
    /// The latest thing to announce to screen readers (an `aria-live` region shows it).
    pub announcement: RwSignal<String>,
    /// Play a short tone for a message that arrives while the tab is hidden.
    pub sound: RwSignal<bool>,
    audio: StoredValue<Option<web_sys::AudioContext>, LocalStorage>,
    keys: StoredValue<Option<RoomKeys>>,
    sender: StoredValue<SenderId>,
    /// This page session's token (hex): rejoining with it is the same participant.
    session: StoredValue<String>,
    outbox: StoredValue<Option<UnboundedSender<String>>>,
    /// Our messages not yet confirmed stored, by id: resent after a reconnect.
    unacked: StoredValue<HashMap<MessageId, String>>,
    /// Ids already shown: a message is never shown twice.
    shown: StoredValue<HashSet<MessageId>>,
    typing_generation: StoredValue<u64>,
    last_typing_sent: StoredValue<f64>,
    backoff: StoredValue<Duration>,
    /// Connection attempts that failed since the last successful join.
    failures: StoredValue<u32>,
    /// Set by "Leave" and by a full room: no more reconnecting.
    halted: StoredValue<bool>,
}

impl Default for RoomClient {
    fn default() -> Self {
        Self::new()
    }
}

impl RoomClient {
    pub fn new() -> Self {
        Self {
            connection: RwSignal::new(Connection::Deriving),
            participants: RwSignal::new(0),
            peer_typing: RwSignal::new(false),
            cards: RwSignal::new(Vec::new()),
            fingerprint: RwSignal::new(None),
            notice: RwSignal::new(None),
            unread: RwSignal::new(0),
            announcement: RwSignal::new(String::new()),
            sound: RwSignal::new(false),
            audio: StoredValue::new_local(None),
            keys: StoredValue::new(None),
            sender: StoredValue::new(SenderId([0; 8])),
            session: StoredValue::new(String::new()),
            outbox: StoredValue::new(None),
            unacked: StoredValue::new(HashMap::new()),
            shown: StoredValue::new(HashSet::new()),
            typing_generation: StoredValue::new(0),
            last_typing_sent: StoredValue::new(0.0),
            backoff: StoredValue::new(Duration::from_millis(500)),
            failures: StoredValue::new(0),
            halted: StoredValue::new(false),
        }
    }

    /// Derives the keys from `code` (the slow step, by WebCrypto where the page has it) and
    /// connects, unless the page was left meanwhile.
    pub fn start(self, code: RoomCode) {
        spawn_local(async move {
            let keys = crate::webcrypto::derive(&code).await;
            if self.halted.try_get_value() == Some(false) {
                self.keyed(keys);
            }
        });
    }

    fn keyed(self, keys: RoomKeys) {
        self.fingerprint.set(Some(keys.fingerprint.display()));
        self.keys.set_value(Some(keys));
        self.sender.set_value(SenderId::generate());
        self.session.set_value(hex::encode(crate::crypto::random_bytes::<16>()));
        self.connect();
    }

    /// Forgets the keys (zeroed on drop) and every message, closes the socket and stops
    /// reconnecting.
    pub fn leave(self) {
        self.halted.set_value(true);
        self.keys.set_value(None);
        self.outbox.set_value(None); // dropping the sender closes the socket
        self.unacked.update_value(HashMap::clear);
        self.shown.update_value(HashSet::clear);
        self.session.set_value(String::new());
        self.sender.set_value(SenderId([0; 8]));
        self.fingerprint.set(None);
        self.cards.set(Vec::new());
        self.notice.set(None);
        self.unread.set(0);
        self.audio.set_value(None);
    }

    /// After a full room: try to join again (someone may have left).
    pub fn retry(self) {
        if self.keys.with_value(Option::is_some) {
            self.halted.set_value(false);
            self.failures.set_value(0);
            self.notice.set(None);
            self.connect();
        }
    }

    fn connect(self) {
        if self.halted.get_value() {
            return;
        }
        let Some(room_id) = self.keys.with_value(|k| k.as_ref().map(|k| k.room_id.to_hex())) else { return };
        self.connection.set(Connection::Connecting);
        let Ok(socket) = WebSocket::open(&ws_url()) else {
            self.reconnect_later();
            return;
        };
        let (mut write, mut read) = socket.split();
        let (tx, mut rx) = unbounded::<String>();
        let join = ClientFrame::Join { room_id, session: self.session.get_value() };
        let _ = tx.unbounded_send(serde_json::to_string(&join).unwrap_or_default());
        self.outbox.set_value(Some(tx));
        spawn_local(async move {
            while let Some(text) = rx.next().await {
                if write.send(Message::Text(text)).await.is_err() {
                    break;
                }
            }
            let _ = write.close().await;
        });
        spawn_local(async move {
            while let Some(Ok(message)) = read.next().await {
                if let Message::Text(text) = message {
                    self.on_frame(&text);
                }
            }
            self.on_closed();
        });
    }

    fn on_closed(self) {
        self.outbox.set_value(None);
        if self.halted.get_value() {
            return;
        }
        if self.connection.get_untracked() == Connection::Online {
            self.failures.set_value(0);
        } else {
            self.failures.update_value(|n| *n += 1);
        }
        self.connection.set(if self.failures.get_value() >= UNREACHABLE_AFTER {
            Connection::Unreachable
        } else {
            Connection::Reconnecting
        });
        self.reconnect_later();
    }

    fn reconnect_later(self) {
        let wait = self.backoff.get_value();
        self.backoff.set_value((wait * 2).min(MAX_BACKOFF));
        set_timeout(move || self.connect(), wait);
    }

    fn send_frame(self, frame: &ClientFrame) {
        self.outbox.with_value(|outbox| {
            if let Some(tx) = outbox {
                let _ = tx.unbounded_send(serde_json::to_string(frame).unwrap_or_default());
            }
        });
    }

    fn on_frame(self, text: &str) {
        let Ok(frame) = serde_json::from_str::<ServerFrame>(text) else { return };
        match frame {
            ServerFrame::Joined { participants, pending } => {
                self.connection.set(Connection::Online);
                self.failures.set_value(0);
                self.notice.set(None);
                self.backoff.set_value(Duration::from_millis(500));
                self.participants.set(participants);
                pending.iter().filter_map(|id| MessageId::parse(id)).for_each(|id| self.add_sealed(id));
                // Anything we sent that the server never confirmed goes again (same id: idempotent).
                for (id, sealed) in self.unacked.get_value() {
                    self.send_frame(&ClientFrame::Send { message_id: id.to_hex(), sealed });
                }
            }
            ServerFrame::Sent { message_id } => self.with_id(&message_id, |id| {
                self.unacked.update_value(|u| {
                    u.remove(&id);
                });
                self.update_card(id, |state| {
                    if let CardState::Mine { stored, .. } = state {
                        *stored = true;
                    }
                });
            }),
            ServerFrame::Message { message_id } => self.with_id(&message_id, |id| {
                self.peer_typing.set(false);
                self.add_sealed(id);
            }),
            ServerFrame::Payload { message_id, sealed } => self.with_id(&message_id, |id| self.on_payload(id, &sealed)),
            ServerFrame::Deleted { message_id } => self.with_id(&message_id, |id| self.on_deleted(id)),
            ServerFrame::Receipt { message_id, viewed, of } => self.with_id(&message_id, |id| {
                self.update_card(id, |state| {
                    if let CardState::Mine { seen, .. } = state {
                        *seen = Some((viewed, of));
                    }
                });
            }),
            ServerFrame::Expired { message_id } => self.with_id(&message_id, |id| {
                self.update_card(id, |state| *state = CardState::Gone("Expired unread"));
                self.announcement.set("A message ran out of time before anyone read it.".into());
                self.count_down(id);
            }),
            ServerFrame::Presence { participants } => self.participants.set(participants),
            ServerFrame::Typing { active } => self.on_typing(active),
            ServerFrame::Error { code, message } => self.on_error(code, message),
        }
    }

    fn with_id(self, hex_id: &str, f: impl FnOnce(MessageId)) {
        if let Some(id) = MessageId::parse(hex_id) {
            f(id);
        }
    }

    fn card(self, id: MessageId) -> Option<Card> {
        self.cards.with_untracked(|cards| cards.iter().find(|c| c.id == id).copied())
    }

    fn update_card(self, id: MessageId, f: impl FnOnce(&mut CardState)) {
        if let Some(card) = self.card(id) {
            card.state.update(f);
        }
    }

    fn add_sealed(self, id: MessageId) {
        if self.shown.with_value(|s| s.contains(&id)) {
            // A message this page has shown waits again: its sender sent it a second time,
            // never having heard the server take the first (the server died in between), or
            // this page's `viewed` was lost with its connection. Burn it unseen: it was read.
            self.send_frame(&ClientFrame::Fetch { message_id: id.to_hex() });
            return;
        }
        if self.card(id).is_some() {
            return;
        }
        let card = Card { id, state: RwSignal::new(CardState::Sealed), left: RwSignal::new(None) };
        self.cards.update(|cards| cards.push(card));
        let waiting =
            self.cards.with_untracked(|c| c.iter().filter(|c| c.state.get_untracked() == CardState::Sealed).count());
        self.announcement.set(format!("New encrypted message. {waiting} waiting to be opened."));
        if document().visibility_state() == web_sys::VisibilityState::Hidden {
            self.unread.update(|n| *n += 1);
            if self.sound.get_untracked() {
                self.chime();
            }
        }
    }

    /// Switches the new-message tone on or off. The audio context is made here, in the click,
    /// because browsers only let a page make sound after a person has interacted with it.
    pub fn set_sound(self, on: bool) {
        if on && self.audio.with_value(Option::is_none) {
            self.audio.set_value(web_sys::AudioContext::new().ok());
        }
        self.sound.set(on);
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

    /// The tab became visible: the unread count is read.
    pub fn seen(self) {
        self.unread.set(0);
    }

    /// A click on a sealed card: ask for its payload. Nothing else fetches.
    pub fn open_card(self, id: MessageId) {
        if let Some(card) = self.card(id) {
            if matches!(card.state.get_untracked(), CardState::Sealed | CardState::Unreadable) {
                card.state.set(CardState::Opening);
                self.send_frame(&ClientFrame::Fetch { message_id: id.to_hex() });
            }
        }
    }

    fn on_payload(self, id: MessageId, sealed: &str) {
        let card = self.card(id);
        if self.shown.with_value(|s| s.contains(&id))
            && card.is_none_or(|c| c.state.get_untracked() != CardState::Opening)
        {
            // The copy of a message already shown (see `add_sealed`).
            self.send_frame(&ClientFrame::Viewed { message_id: id.to_hex() });
            return;
        }
        let Some(card) = card else { return };
        if card.state.get_untracked() != CardState::Opening {
            return;
        }
        let opened = self.keys.with_value(|keys| {
            let keys = keys.as_ref()?;
            let sealed = SealedPayload::from_base64(sealed).ok()?;
            open(keys, &id, &sealed).ok()
        });
        match opened {
            // Our own message reflected back: not for us to read or burn.
            Some(body) if body.sender == self.sender.get_value() => self.remove_card(id),
            Some(_) if self.shown.with_value(|s| s.contains(&id)) => {}
            Some(body) => {
                self.shown.update_value(|s| {
                    s.insert(id);
                });
                card.state.set(CardState::Open(body.text));
                self.send_frame(&ClientFrame::Viewed { message_id: id.to_hex() });
                self.count_down(id);
            }
            None => card.state.set(CardState::Unreadable),
        }
    }

    fn on_deleted(self, id: MessageId) {
        let Some(card) = self.card(id) else { return };
        match card.state.get_untracked() {
            CardState::Mine { text, .. } => {
                card.state.set(CardState::Burned(text));
                self.announcement.set("Everyone has read your message: it has burned.".into());
                self.count_down(id);
            }
            CardState::Sealed | CardState::Opening | CardState::Unreadable => {
                card.state.set(CardState::Gone("Read by someone else"));
                self.count_down(id);
            }
            _ => {}
        }
    }

    fn on_typing(self, active: bool) {
        self.peer_typing.set(active);
        let generation = self.typing_generation.get_value() + 1;
        self.typing_generation.set_value(generation);
        if active {
            set_timeout(
                move || {
                    if self.typing_generation.get_value() == generation {
                        self.peer_typing.set(false);
                    }
                },
                TYPING_SHOWN_FOR,
            );
        }
    }

    fn on_error(self, code: ErrorCode, message: String) {
        if code == ErrorCode::RoomFull {
            self.halted.set_value(true);
            self.outbox.set_value(None);
            self.connection.set(Connection::Full);
            return;
        }
        if code == ErrorCode::UnknownMessage {
            // The message we asked for is gone (expired or read by someone else meanwhile).
            let opening = self
                .cards
                .with_untracked(|cards| cards.iter().find(|c| c.state.get_untracked() == CardState::Opening).copied());
            if let Some(card) = opening {
                card.state.set(CardState::Gone("No longer available"));
                self.count_down(card.id);
            }
            return;
        }
        self.notice.set(Some(message));
    }

    /// Shows a card's countdown, then removes it.
    fn count_down(self, id: MessageId) {
        let Some(card) = self.card(id) else { return };
        if card.left.get_untracked().is_some() {
            return;
        }
        card.left.set(Some(SHOW_SECONDS));
        self.tick(card);
    }

    fn tick(self, card: Card) {
        set_timeout(
            move || match card.left.get_untracked() {
                Some(left) if left > 1 => {
                    card.left.set(Some(left - 1));
                    self.tick(card);
                }
                _ => self.remove_card(card.id),
            },
            Duration::from_secs(1),
        );
    }

    fn remove_card(self, id: MessageId) {
        self.cards.update(|cards| cards.retain(|c| c.id != id));
    }

    /// Seals `text` and sends it. Returns false (with a notice) if it could not be sent.
    pub fn send_text(self, text: String) -> bool {
        if text.trim().is_empty() {
            return false;
        }
        let id = MessageId::generate();
        let body = Body { id, sender: self.sender.get_value(), text, sent_at: js_sys::Date::now() as u64 };
        let sealed = self.keys.with_value(|keys| keys.as_ref().map(|k| seal(k, &body)));
        let sealed = match sealed {
            Some(Ok(sealed)) => sealed.to_base64(),
            Some(Err(_)) => {
                self.notice.set(Some("That message is too long to send.".into()));
                return false;
            }
            None => return false,
        };
        let card = Card {
            id,
            state: RwSignal::new(CardState::Mine { text: body.text, stored: false, seen: None }),
            left: RwSignal::new(None),
        };
        self.cards.update(|cards| cards.push(card));
        self.unacked.update_value(|u| {
            u.insert(id, sealed.clone());
        });
        self.send_frame(&ClientFrame::Send { message_id: id.to_hex(), sealed });
        self.send_frame(&ClientFrame::Typing { active: false });
        self.last_typing_sent.set_value(0.0);
        true
    }

    /// Called on each keystroke: tells the room, at most every two seconds.
    pub fn typed(self) {
        let now = js_sys::Date::now();
        if now - self.last_typing_sent.get_value() >= TYPING_RESEND_MS {
            self.last_typing_sent.set_value(now);
            self.send_frame(&ClientFrame::Typing { active: true });
        }
    }
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
