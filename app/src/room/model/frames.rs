//! What the room model does with each server frame, and what it owes the relay.

use std::collections::BTreeMap;
use std::time::Duration;

use super::{RoomModel, Socket};
use crate::crypto::file::CHUNK_LEN;
use crate::crypto::message::open;
use crate::crypto::{Body, MessageId, SealedPayload};
use crate::protocol::{ClientFrame, RelayLimits};
use crate::room::card::{Card, CardState, SHOW_SECONDS};
use crate::room::effect::{
    ConnectionState, Effect, RoomEvent, Timer, FIRST_BACKOFF, MAX_BACKOFF, TYPING_SHOWN_FOR, UNREACHABLE_AFTER,
};

impl RoomModel {
    pub(super) fn joined(
        &mut self,
        participants: u32,
        pending: &[String],
        files: &BTreeMap<String, u32>,
        limits: RelayLimits,
        out: &mut Vec<Effect>,
    ) {
        self.socket = Socket::Joined;
        self.connection = ConnectionState::Online;
        self.failures = 0;
        self.notice = None;
        self.backoff = FIRST_BACKOFF;
        self.participants = participants;
        self.limits = limits;
        out.push(Effect::Event(RoomEvent::Joined));
        // Each waiting message, with its file's chunk count (0 for text).
        let waiting: Vec<(MessageId, u32)> = pending
            .iter()
            .filter_map(|hex| Some((MessageId::parse(hex)?, files.get(hex).copied().unwrap_or(0))))
            .collect();
        let pending: Vec<MessageId> = waiting.iter().map(|&(id, _)| id).collect();
        // What waited and waits no more was burned or expired while this page was away.
        let gone: Vec<MessageId> =
            self.cards.iter().filter(|c| c.state.is_unread() && !pending.contains(&c.id)).map(|c| c.id).collect();
        for id in gone {
            self.set_gone(id, "No longer available", out);
        }
        let mut burned: Vec<MessageId> = self.viewing.iter().filter(|id| !pending.contains(id)).copied().collect();
        burned.sort();
        for id in burned {
            self.viewing.remove(&id);
            out.push(Effect::Event(RoomEvent::Burned(id)));
        }
        for (id, chunks) in waiting {
            self.arrived(id, chunks, true, out);
        }
        // A new connection: every copy sent on the old one is answered or gone with it.
        for unacked in &mut self.unacked {
            unacked.refused = false;
            out.push(Effect::Send(unacked.frame()));
        }
        self.rejoined_upload(out);
        if let Some(at) = self.typed_before_joining.take() {
            self.last_typing_sent = Some(at);
            out.push(Effect::Send(ClientFrame::Typing { active: true }));
        }
    }

    /// A message waits for this page: from a notice, or listed on (re)joining. `chunks` is its
    /// file's chunk count as the relay announced it (0 for text).
    pub(super) fn arrived(&mut self, id: MessageId, chunks: u32, rejoining: bool, out: &mut Vec<Effect>) {
        if self.shown.contains(&id) {
            out.push(Effect::Event(RoomEvent::SeenAgain(id)));
            out.push(Effect::Send(ClientFrame::Fetch { message_id: id.to_hex() }));
            return;
        }
        match self.card(id).map(|card| &card.state) {
            // The fetch may have been lost with the last connection.
            Some(CardState::Opening) if rejoining => {
                out.push(Effect::Send(ClientFrame::Fetch { message_id: id.to_hex() }));
            }
            Some(_) => {}
            None => {
                let mut card = Card::new(id, CardState::Sealed);
                card.announced = (chunks > 0).then(|| u64::from(chunks) * CHUNK_LEN as u64);
                self.cards.push(card);
                let waiting = self.cards.iter().filter(|c| c.state == CardState::Sealed).count();
                let what = if chunks > 0 { "file" } else { "message" };
                self.announcement = format!("New encrypted {what}. {waiting} waiting to be opened.");
                out.push(Effect::Event(RoomEvent::Arrived(id)));
            }
        }
    }

    pub(super) fn stored(&mut self, id: MessageId, out: &mut Vec<Effect>) {
        self.unacked.retain(|unacked| unacked.id != id);
        self.file_stored(id);
        self.notice = None;
        if let Some(CardState::Mine { stored, .. }) = self.state_mut(id) {
            if !*stored {
                *stored = true;
                out.push(Effect::Event(RoomEvent::Stored(id)));
            }
        }
    }

    pub(super) fn payload(&mut self, id: MessageId, sealed: &str, out: &mut Vec<Effect>) {
        let opening = self.card(id).is_some_and(|card| card.state == CardState::Opening);
        if self.shown.contains(&id) && !opening {
            // The copy of a message already shown (see `arrived`): confirm it, show nothing.
            self.confirm_viewed(id, out);
            return;
        }
        if !opening {
            return;
        }
        let opened = SealedPayload::from_base64(sealed).ok().and_then(|sealed| open(&self.keys, &id, &sealed).ok());
        match opened {
            // Our own message reflected back: not for us to read or burn.
            Some(body) if body.sender == self.sender => self.cards.retain(|card| card.id != id),
            Some(body) => self.opened(id, body, out),
            None => {
                self.set_state(id, CardState::Unreadable);
                out.push(Effect::Event(RoomEvent::Unreadable(id)));
            }
        }
    }

    /// Shows an opened body and confirms it viewed, unless it is dated where no genuine message
    /// can be. That one is treated as an unreadable payload is: its text is dropped unseen, and
    /// it is not confirmed viewed, since `viewed` tells the sender a person read the message and
    /// lets the relay burn it. (A replaying relay deletes what it likes anyway; an honest relay
    /// serving a message whose sender's clock is far off keeps it for the others, until it
    /// expires.) Its card keeps the date, so the person sees how old it claims to be.
    fn opened(&mut self, id: MessageId, body: Body, out: &mut Vec<Effect>) {
        if let Some(card) = self.card_mut(id) {
            card.sent_at = Some(body.sent_at);
            card.from = body.chosen.name.clone();
            card.view = body.chosen.view;
        }
        if let Some((why, announcement)) = self.misdated(body.sent_at, body.chosen.ttl) {
            self.set_state(id, CardState::Misdated(why));
            self.announcement = announcement.to_owned();
            out.push(Effect::Event(RoomEvent::Misdated(id)));
            return;
        }
        // A file card: its chunks come next, and it shows once they are all open.
        if let Some(file) = body.file {
            self.opened_file_card(id, file, out);
            return;
        }
        self.shown.insert(id);
        self.set_state(id, CardState::Open(body.text));
        out.push(Effect::Event(RoomEvent::Opened(id)));
        self.confirm_viewed(id, out);
        self.count_down(id, out);
    }

    pub(super) fn confirm_viewed(&mut self, id: MessageId, out: &mut Vec<Effect>) {
        self.viewing.insert(id);
        out.push(Effect::Send(ClientFrame::Viewed { message_id: id.to_hex() }));
    }

    pub(super) fn deleted(&mut self, id: MessageId, out: &mut Vec<Effect>) {
        // A `deleted` of our own message also says it was stored.
        self.unacked.retain(|unacked| unacked.id != id);
        if self.viewing.remove(&id) {
            out.push(Effect::Event(RoomEvent::Burned(id)));
        }
        match self.card(id).map(|card| card.state.clone()) {
            Some(CardState::Mine { text, .. }) => {
                self.set_state(id, CardState::Burned(text));
                self.announcement = "Everyone has read your message: it has burned.".into();
                out.push(Effect::Event(RoomEvent::Burned(id)));
                self.count_down(id, out);
            }
            Some(state) if state.is_unread() => self.set_gone(id, "Read by someone else", out),
            _ => {}
        }
    }

    pub(super) fn expired(&mut self, id: MessageId, out: &mut Vec<Effect>) {
        self.unacked.retain(|unacked| unacked.id != id);
        self.viewing.remove(&id);
        if self.card(id).is_some() {
            self.set_gone(id, "Expired unread", out);
            self.announcement = "A message ran out of time before anyone read it.".into();
            out.push(Effect::Event(RoomEvent::Expired(id)));
        }
    }

    pub(super) fn peer_typed(&mut self, active: bool, out: &mut Vec<Effect>) {
        self.peer_typing = active;
        self.typing_generation += 1;
        if active {
            out.push(Effect::Schedule { timer: Timer::TypingShown(self.typing_generation), after: TYPING_SHOWN_FOR });
        }
    }

    /// Sends again what the relay refused in passing (sends), and what it has not confirmed
    /// (fetches and views, which are idempotent).
    pub(super) fn resend_unconfirmed(&mut self, out: &mut Vec<Effect>) {
        for unacked in self.unacked.iter_mut().filter(|unacked| unacked.refused) {
            unacked.refused = false;
            out.push(Effect::Send(unacked.frame()));
        }
        for card in self.cards.iter().filter(|card| card.state == CardState::Opening) {
            out.push(Effect::Send(ClientFrame::Fetch { message_id: card.id.to_hex() }));
        }
        let mut viewing: Vec<MessageId> = self.viewing.iter().copied().collect();
        viewing.sort();
        for id in viewing {
            out.push(Effect::Send(ClientFrame::Viewed { message_id: id.to_hex() }));
        }
    }

    pub(super) fn reconnect_later(&mut self) -> Vec<Effect> {
        self.socket = Socket::Closed;
        self.connection = if self.failures >= UNREACHABLE_AFTER {
            ConnectionState::Unreachable
        } else {
            ConnectionState::Reconnecting
        };
        let after = self.backoff;
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
        vec![Effect::Connect { after }]
    }

    pub(super) fn set_gone(&mut self, id: MessageId, why: &'static str, out: &mut Vec<Effect>) {
        self.set_state(id, CardState::Gone(why));
        self.count_down(id, out);
    }

    /// Starts a card's countdown, once.
    pub(super) fn count_down(&mut self, id: MessageId, out: &mut Vec<Effect>) {
        if let Some(card) = self.card_mut(id).filter(|card| card.left.is_none()) {
            card.left = Some(match card.state {
                // An opened message or file stays as long as its sender chose.
                CardState::Open(_) | CardState::File(_) | CardState::Saved => card.view.unwrap_or(SHOW_SECONDS),
                _ => SHOW_SECONDS,
            });
            out.push(Effect::Schedule { timer: Timer::Countdown(id), after: Duration::from_secs(1) });
        }
    }

    pub(super) fn card_mut(&mut self, id: MessageId) -> Option<&mut Card> {
        self.cards.iter_mut().find(|card| card.id == id)
    }

    pub(super) fn state_mut(&mut self, id: MessageId) -> Option<&mut CardState> {
        self.card_mut(id).map(|card| &mut card.state)
    }

    pub(super) fn set_state(&mut self, id: MessageId, state: CardState) {
        if let Some(current) = self.state_mut(id) {
            *current = state;
        }
    }
}
