//! The room as a page lives it, with no I/O: frames and a person's actions in, [`Effect`]s out.
//!
//! [`RoomModel`] is the one client of the protocol. The browser's [`RoomClient`] drives it with
//! a WebSocket, timers and signals; the load generator, the faults harness and the integration
//! tests drive it with Tokio. Whoever drives it keeps one promise: every [`Effect`] it returns is
//! carried out, in order.
//!
//! [`RoomClient`]: crate::room::RoomClient

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use crate::crypto::message::{is_valid_name, seal, MAX_BODY_LEN};
use crate::crypto::{Body, Chosen, MessageId, RoomKeys, SenderId};
use crate::protocol::{ClientFrame, RelayLimits, ServerFrame, FEATURE_TTL};
use crate::room::card::{Card, CardState, SHOW_SECONDS};
use crate::room::effect::{ConnectionState, Effect, NotSent, RoomEvent, Timer, FIRST_BACKOFF, TYPING_RESEND_MS};

mod dates;
mod files;
mod frames;
mod refusals;

use dates::system_clock;
pub use dates::{Clock, CLOCK_SKEW, MAX_MESSAGE_AGE};
pub use files::WINDOW;

/// Most characters a person may type in one message, however large the relay's limit: about
/// what 16 KiB holds at 4 bytes a character.
pub const MAX_CHARS: usize = 4000;
/// Bytes of padded plaintext a body takes besides its text: the JSON of `id`, `sender` and a
/// 20-digit `sent_at`, and the padding's first byte.
const BODY_OVERHEAD: usize = 111;

/// A message sent and not yet confirmed stored: what its `send` frame says.
pub(crate) struct Unacked {
    pub(crate) id: MessageId,
    /// The sealed payload, base64url.
    sealed: String,
    /// How long it waits unread, as its sender chose (seconds).
    ttl: Option<u32>,
    /// The relay answered its last copy with a passing refusal (`internal`, `rate_limited`):
    /// the retry sends it again. One that is only unanswered is not: a second copy in flight
    /// could reach the relay after the first was stored, read and burned, and store it again.
    pub(crate) refused: bool,
}

impl Unacked {
    pub(crate) fn new(id: MessageId, sealed: String, ttl: Option<u32>) -> Self {
        Self { id, sealed, ttl, refused: false }
    }

    /// Its `send` frame.
    pub(crate) fn frame(&self) -> ClientFrame {
        ClientFrame::Send { message_id: self.id.to_hex(), sealed: self.sealed.clone(), ttl: self.ttl }
    }
}

/// Where the socket is.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Socket {
    /// No socket, or one being opened.
    Closed,
    /// Open, `join` sent, not yet answered.
    Joining,
    /// Joined: frames may be sent.
    Joined,
}

/// One page's room: keys, cards, and what it still owes the relay.
pub struct RoomModel {
    keys: RoomKeys,
    sender: SenderId,
    /// This page session's token (hex): rejoining with it is the same participant.
    session: String,
    socket: Socket,
    connection: ConnectionState,
    participants: u32,
    peer_typing: bool,
    typing_generation: u64,
    cards: Vec<Card>,
    notice: Option<String>,
    announcement: String,
    /// Messages sent but not confirmed stored, in the order they were sent: sent again on
    /// rejoining and on a retry (same id: idempotent).
    unacked: Vec<Unacked>,
    /// Ids already shown: a message is never shown twice.
    shown: HashSet<MessageId>,
    /// Ids confirmed `viewed` whose burn the relay has not yet confirmed.
    viewing: HashSet<MessageId>,
    /// When this page last told the room it is typing (milliseconds).
    last_typing_sent: Option<u64>,
    /// A keystroke before joining (its time): told to the room once joined.
    typed_before_joining: Option<u64>,
    backoff: Duration,
    /// Connection attempts that failed since the last successful join.
    failures: u32,
    retry_scheduled: bool,
    /// Set by leaving and by a full room: no more reconnecting.
    halted: bool,
    /// What the relay accepts, from its last `joined` (the protocol-1 defaults before).
    limits: RelayLimits,
    /// Dates what is opened (see [`MAX_MESSAGE_AGE`]).
    clock: Clock,
    /// The file this page is sending, until its card is sent.
    upload: Option<files::Upload>,
    /// Files this page is opening, by their card's id.
    downloads: HashMap<MessageId, files::Download>,
    /// Files this page sent that the relay has not yet stored: kept to send them again.
    sources: HashMap<MessageId, files::Source>,
    /// The name this page shows the room, inside what it seals: `None`, "Someone".
    name: Option<String>,
    /// How long what this page sends waits unread (seconds): one of [`RoomModel::lifetimes`], or
    /// `None` for the relay's TTL.
    lifetime: Option<u32>,
    /// How long what this page sends stays on screen once opened (seconds): one of
    /// [`VIEW_TIMES`], or `None` for [`SHOW_SECONDS`].
    view_time: Option<u32>,
}

/// The unread lifetimes a composer offers, in seconds (5 minutes, an hour, a day, 7 days): those
/// up to the relay's `message_ttl` ([`RoomModel::lifetimes`]).
pub const LIFETIMES: [u32; 4] = [300, 3_600, 86_400, 604_800];
/// The on-screen times a composer offers, in seconds; [`SHOW_SECONDS`] (10) is the default.
pub const VIEW_TIMES: [u32; 4] = [5, 10, 30, 60];

/// Why a display name was not taken.
#[derive(Clone, Copy, PartialEq, Eq, Debug, thiserror::Error)]
#[error("a name is 1 to 64 characters, with no control characters")]
pub struct BadName;

impl RoomModel {
    /// A page in the room of `keys`, with a fresh sender id and session token, not yet
    /// connected: call [`start`](Self::start).
    pub fn new(keys: RoomKeys) -> Self {
        Self::with_clock(keys, Arc::new(system_clock))
    }

    /// [`new`](Self::new), reading the time from `clock` rather than this machine's.
    pub fn with_clock(keys: RoomKeys, clock: Clock) -> Self {
        Self {
            keys,
            sender: SenderId::generate(),
            session: hex::encode(crate::crypto::random_bytes::<16>()),
            socket: Socket::Closed,
            connection: ConnectionState::Connecting,
            participants: 0,
            peer_typing: false,
            typing_generation: 0,
            cards: Vec::new(),
            notice: None,
            announcement: String::new(),
            unacked: Vec::new(),
            shown: HashSet::new(),
            viewing: HashSet::new(),
            last_typing_sent: None,
            typed_before_joining: None,
            backoff: FIRST_BACKOFF,
            failures: 0,
            retry_scheduled: false,
            halted: false,
            limits: RelayLimits::default(),
            clock,
            upload: None,
            downloads: HashMap::new(),
            sources: HashMap::new(),
            name: None,
            lifetime: None,
            view_time: None,
        }
    }

    /// Connects now.
    pub fn start(&mut self) -> Vec<Effect> {
        self.connection = ConnectionState::Connecting;
        vec![Effect::Connect { after: Duration::ZERO }]
    }

    /// The socket opened: join.
    pub fn on_connected(&mut self) -> Vec<Effect> {
        if self.halted {
            return vec![Effect::Disconnect];
        }
        self.socket = Socket::Joining;
        let join = ClientFrame::Join { room_id: self.keys.room_id.to_hex(), session: self.session.clone() };
        vec![Effect::Send(join)]
    }

    /// The socket closed, or could not be opened: reconnect after a back-off.
    pub fn on_closed(&mut self) -> Vec<Effect> {
        if self.halted {
            return Vec::new();
        }
        if self.connection == ConnectionState::Online {
            self.failures = 0;
        } else {
            self.failures += 1;
        }
        self.reconnect_later()
    }

    /// A text frame from the relay. Frame types and fields this page does not know are read
    /// leniently (see [`ServerFrame`]); a frame it cannot read at all is ignored.
    pub fn on_text(&mut self, text: &str) -> Vec<Effect> {
        serde_json::from_str::<ServerFrame>(text).map(|frame| self.on_frame(frame)).unwrap_or_default()
    }

    /// A frame from the relay.
    pub fn on_frame(&mut self, frame: ServerFrame) -> Vec<Effect> {
        let mut out = Vec::new();
        match frame {
            ServerFrame::Joined { participants, pending, limits, files } => {
                self.joined(participants, &pending, &files, limits, &mut out)
            }
            ServerFrame::Sent { message_id } => with_id(&message_id, |id| self.stored(id, &mut out)),
            ServerFrame::Message { message_id, chunks } => with_id(&message_id, |id| {
                self.peer_typing = false;
                self.arrived(id, chunks, false, &mut out);
            }),
            ServerFrame::Payload { message_id, sealed } => {
                with_id(&message_id, |id| self.payload(id, &sealed, &mut out))
            }
            ServerFrame::Deleted { message_id } => with_id(&message_id, |id| self.deleted(id, &mut out)),
            ServerFrame::Receipt { message_id, viewed, of } => with_id(&message_id, |id| {
                if self.viewing.remove(&id) {
                    out.push(Effect::Event(RoomEvent::Counted(id)));
                }
                if let Some(CardState::Mine { seen, .. }) = self.state_mut(id) {
                    *seen = Some((viewed, of));
                }
            }),
            ServerFrame::Expired { message_id } => with_id(&message_id, |id| self.expired(id, &mut out)),
            ServerFrame::Presence { participants } => self.participants = participants,
            ServerFrame::Typing { active } => self.peer_typed(active, &mut out),
            ServerFrame::Uploaded { message_id, chunks } => {
                with_id(&message_id, |id| self.uploaded(id, chunks, &mut out))
            }
            ServerFrame::Error { code, message, message_id } => {
                self.refused(code, &message, message_id.as_deref(), &mut out)
            }
            // A frame a newer relay added, which this page has no use for.
            ServerFrame::Unknown => {}
        }
        out
    }

    /// A timer of this model ran out.
    pub fn on_timer(&mut self, timer: Timer) -> Vec<Effect> {
        let mut out = Vec::new();
        match timer {
            Timer::TypingShown(generation) if generation == self.typing_generation => self.peer_typing = false,
            Timer::TypingShown(_) => {}
            Timer::Countdown(id) => match self.card_mut(id).map(|card| &mut card.left) {
                Some(Some(left)) if *left > 1 => {
                    *left -= 1;
                    out.push(Effect::Schedule { timer, after: Duration::from_secs(1) });
                }
                _ => self.cards.retain(|card| card.id != id),
            },
            Timer::Retry => {
                self.retry_scheduled = false;
                if self.socket == Socket::Joined {
                    self.resend_unconfirmed(&mut out);
                }
            }
        }
        out
    }

    /// Seals `text` and sends it (or queues it until the room is joined again), if it fits the
    /// relay's largest message.
    pub fn send(&mut self, text: &str, now_ms: u64) -> Result<Vec<Effect>, NotSent> {
        if text.trim().is_empty() {
            return Err(NotSent::Empty);
        }
        if self.halted {
            return Err(NotSent::NotInRoom);
        }
        let id = MessageId::generate();
        let body =
            Body { id, sender: self.sender, text: text.to_owned(), sent_at: now_ms, file: None, chosen: self.chosen() };
        let Some(sealed) = seal(&self.keys, &body).ok().filter(|sealed| sealed.padded_len() <= self.max_message())
        else {
            self.notice = Some(format!(
                "That message is too long to send: this relay takes messages of up to {}.",
                size_in_words(self.max_message())
            ));
            return Err(NotSent::TooLong);
        };
        let sealed = sealed.to_base64();
        let mut card = Card::new(id, CardState::Mine { text: body.text, stored: false, seen: None });
        card.sent_at = Some(now_ms);
        self.cards.push(card);
        let unacked = Unacked::new(id, sealed, self.lifetime);
        let frame = unacked.frame();
        self.unacked.push(unacked);
        self.typed_before_joining = None;
        let mut out = Vec::new();
        if self.socket == Socket::Joined {
            out.push(Effect::Send(frame));
            // The room was told this page is typing: it has stopped.
            if self.last_typing_sent.take().is_some() {
                out.push(Effect::Send(ClientFrame::Typing { active: false }));
            }
        }
        Ok(out)
    }

    /// A keystroke in the composer: tells the room, at most every two seconds (once joined,
    /// if the page is not yet).
    pub fn typed(&mut self, now_ms: u64) -> Vec<Effect> {
        if self.socket != Socket::Joined {
            self.typed_before_joining = Some(now_ms);
            return Vec::new();
        }
        if self.last_typing_sent.is_some_and(|at| now_ms.saturating_sub(at) < TYPING_RESEND_MS) {
            return Vec::new();
        }
        self.last_typing_sent = Some(now_ms);
        vec![Effect::Send(ClientFrame::Typing { active: true })]
    }

    /// A click on a sealed (or unreadable) card: ask for its payload. Nothing else fetches
    /// a message this page has not shown.
    pub fn open(&mut self, id: MessageId) -> Vec<Effect> {
        let Some(state) = self.state_mut(id).filter(|state| state.is_openable()) else { return Vec::new() };
        *state = CardState::Opening;
        // Without a socket, the rejoin fetches every card that is opening.
        if self.socket == Socket::Joined {
            vec![Effect::Send(ClientFrame::Fetch { message_id: id.to_hex() })]
        } else {
            Vec::new()
        }
    }

    /// Sends again the text of our message the relay refused ([`CardState::Unsent`]), as a new
    /// message: sealed now (so its date is when it really went out), with a new id, its card last.
    /// Any other card is left as it is.
    pub fn resend(&mut self, id: MessageId, now_ms: u64) -> Result<Vec<Effect>, NotSent> {
        let Some(CardState::Unsent { text, .. }) = self.card(id).map(|card| card.state.clone()) else {
            return Ok(Vec::new());
        };
        if let Some(sent) = self.resend_file(id, now_ms) {
            return sent;
        }
        let effects = self.send(&text, now_ms)?;
        self.cards.retain(|card| card.id != id);
        Ok(effects)
    }

    /// After a full room: try to join again (someone may have left).
    pub fn retry(&mut self) -> Vec<Effect> {
        if self.connection != ConnectionState::Full {
            return Vec::new();
        }
        self.halted = false;
        self.failures = 0;
        self.notice = None;
        self.start()
    }

    /// Leaves the room: forgets every message and closes the socket. Drop the model after it
    /// (its keys are zeroed on drop).
    pub fn leave(&mut self) -> Vec<Effect> {
        self.halted = true;
        self.socket = Socket::Closed;
        self.cards.clear();
        self.unacked.clear();
        self.shown.clear();
        self.viewing.clear();
        self.upload = None;
        self.downloads.clear();
        self.sources.clear();
        self.notice = None;
        self.announcement.clear();
        vec![Effect::Disconnect]
    }

    pub fn connection(&self) -> ConnectionState {
        self.connection
    }

    /// Connected participants, this page included (0 before the first join).
    pub fn participants(&self) -> u32 {
        self.participants
    }

    pub fn peer_typing(&self) -> bool {
        self.peer_typing
    }

    /// The cards on screen, oldest first.
    pub fn cards(&self) -> &[Card] {
        &self.cards
    }

    pub fn card(&self, id: MessageId) -> Option<&Card> {
        self.cards.iter().find(|card| card.id == id)
    }

    /// The room's fingerprint, as people compare it.
    pub fn fingerprint(&self) -> String {
        self.keys.fingerprint.display()
    }

    /// The latest problem to show, if any.
    pub fn notice(&self) -> Option<&str> {
        self.notice.as_deref()
    }

    /// The latest thing to announce to screen readers.
    pub fn announcement(&self) -> &str {
        &self.announcement
    }

    /// Messages sent and not yet confirmed stored.
    pub fn unacknowledged(&self) -> usize {
        self.unacked.len()
    }

    /// What the relay accepts, as its last `joined` said (the protocol-1 defaults before).
    pub fn limits(&self) -> &RelayLimits {
        &self.limits
    }

    /// Sets the name this page shows the room from now on (trimmed; empty: none, "Someone").
    /// It travels only inside what the page seals.
    pub fn set_name(&mut self, name: &str) -> Result<(), BadName> {
        let name = name.trim();
        if name.is_empty() {
            self.name = None;
            return Ok(());
        }
        if !is_valid_name(name) {
            self.notice = Some(format!("That name cannot be used: {BadName}."));
            return Err(BadName);
        }
        self.name = Some(name.to_owned());
        Ok(())
    }

    /// The name this page shows the room, if it gave one.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The unread lifetimes this relay lets a sender choose, in seconds: [`LIFETIMES`] up to
    /// its `message_ttl`, and none if it does not take a `ttl` (an older relay) or did not say
    /// its TTL. The default (`None`) is the relay's TTL.
    pub fn lifetimes(&self) -> Vec<u32> {
        let ttl = self.limits.message_ttl;
        if ttl == 0 || !self.limits.features.iter().any(|f| f == FEATURE_TTL) {
            return Vec::new();
        }
        LIFETIMES.into_iter().filter(|&lifetime| u64::from(lifetime) <= ttl).collect()
    }

    /// How long what this page sends from now on waits unread: one of [`Self::lifetimes`], or
    /// `None` for the relay's TTL. Anything else is `None`.
    pub fn set_lifetime(&mut self, seconds: Option<u32>) {
        self.lifetime = seconds.filter(|s| self.lifetimes().contains(s));
    }

    pub fn lifetime(&self) -> Option<u32> {
        self.lifetime
    }

    /// How long what this page sends from now on stays on screen once opened: one of
    /// [`VIEW_TIMES`], or `None` for the default ([`SHOW_SECONDS`]). Anything else is `None`.
    pub fn set_view_time(&mut self, seconds: Option<u32>) {
        self.view_time = seconds.filter(|s| VIEW_TIMES.contains(s) && *s != SHOW_SECONDS);
    }

    pub fn view_time(&self) -> Option<u32> {
        self.view_time
    }

    /// What this page seals into each body it sends: its name and the lifetimes chosen.
    fn chosen(&self) -> Chosen {
        Chosen { name: self.name.clone(), ttl: self.lifetime, view: self.view_time }
    }

    /// The most characters the composer takes: see [`max_chars`].
    pub fn max_chars(&self) -> usize {
        max_chars(self.limits.max_message)
    }

    /// The largest padded body this page sends: the relay's limit, within the protocol's.
    fn max_message(&self) -> usize {
        (self.limits.max_message as usize).min(MAX_BODY_LEN + 1)
    }
}

/// The most characters (UTF-16 units, as a text box counts them) a composer should take for a
/// relay whose largest message is `max_message` bytes: at most [`MAX_CHARS`], and few enough
/// that any text without control characters fits (it takes at most 3 bytes a unit in the body;
/// this allows 4). The model still checks the sealed size before sending.
pub fn max_chars(max_message: u32) -> usize {
    MAX_CHARS.min((max_message as usize).saturating_sub(BODY_OVERHEAD) / 4)
}

/// A size as people read it: "16 KiB", "512 bytes".
fn size_in_words(bytes: usize) -> String {
    if bytes >= 1024 && bytes.is_multiple_of(1024) {
        format!("{} KiB", bytes / 1024)
    } else {
        format!("{bytes} bytes")
    }
}

/// Runs `f` with the parsed id; a malformed id from the relay is ignored.
fn with_id(hex_id: &str, f: impl FnOnce(MessageId)) {
    if let Some(id) = MessageId::parse(hex_id) {
        f(id);
    }
}

#[cfg(test)]
mod tests;
