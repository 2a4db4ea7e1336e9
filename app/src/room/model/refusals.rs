//! What the room model does when the relay refuses a frame: which card the refusal is about,
//! what that card says, and whether anything is tried again by itself.

use super::{RoomModel, Socket};
use crate::crypto::MessageId;
use crate::protocol::ErrorCode;
use crate::room::card::CardState;
use crate::room::effect::{ConnectionState, Effect, RoomEvent, Timer, RETRY_AFTER};

/// Most characters of the relay's own words a card or notice shows: a relay says why in a
/// line, and one that says more does not get to fill the page.
const MAX_REASON_CHARS: usize = 200;

impl RoomModel {
    /// An `error` frame. `message_id` names the message it is about (a relay older than that
    /// field names none: then the model guesses as it always did).
    pub(super) fn refused(&mut self, code: ErrorCode, message: &str, message_id: Option<&str>, out: &mut Vec<Effect>) {
        out.push(Effect::Event(RoomEvent::Refused(code)));
        match code {
            ErrorCode::RoomFull => {
                self.halted = true;
                self.socket = Socket::Closed;
                self.connection = ConnectionState::Full;
                out.push(Effect::Disconnect);
            }
            // The join itself failed: a failed attempt, tried again after the back-off.
            ErrorCode::Internal | ErrorCode::RateLimited if self.socket == Socket::Joining => {
                self.notice = Some(message.to_owned());
                self.failures += 1;
                out.push(Effect::Disconnect);
                out.extend(self.reconnect_later());
            }
            // Passing, and safe to retry: whatever the relay has not confirmed is sent again
            // soon, the card it names included (it still says "sending" or "decrypting").
            ErrorCode::Internal | ErrorCode::RateLimited => {
                self.notice = Some(message.to_owned());
                // The send it names is sent again by the retry (a relay answers a refused send
                // with its id; a refusal that names none is not about a send).
                if let Some(id) = message_id.and_then(MessageId::parse) {
                    self.unacked
                        .iter_mut()
                        .filter(|unacked| unacked.id == id)
                        .for_each(|unacked| unacked.refused = true);
                }
                if !self.retry_scheduled {
                    self.retry_scheduled = true;
                    out.push(Effect::Schedule { timer: Timer::Retry, after: RETRY_AFTER });
                }
            }
            _ => match message_id.map(MessageId::parse) {
                Some(Some(id)) => self.refused_about(id, code, message, out),
                Some(None) => self.notice = Some(notice_for(code, message)),
                None => self.refused_unnamed(code, message, out),
            },
        }
    }

    /// A lasting refusal about one message: its card says so.
    fn refused_about(&mut self, id: MessageId, code: ErrorCode, message: &str, out: &mut Vec<Effect>) {
        // A refused upload or card goes no further, and a refused download stops.
        if self.upload.as_ref().is_some_and(|upload| upload.id() == id) {
            self.upload = None;
        }
        self.downloads.remove(&id);
        match self.card(id).map(|card| card.state.clone()) {
            // Nothing was stored. Lasting refusals are not sent again by themselves (a full
            // relay stays full for a while, and a resend loop would only add load): the card
            // keeps the text, and the person sends it again.
            Some(CardState::Mine { text, stored: false, .. }) => {
                self.unacked.retain(|unacked| unacked.id != id);
                let why = not_sent(code, message);
                self.announcement = format!("Your message was not sent. {why}");
                self.set_state(id, CardState::Unsent { text, why });
            }
            // The message asked for is gone (expired or read by someone else meanwhile).
            Some(CardState::Opening) if code == ErrorCode::UnknownMessage => {
                self.set_gone(id, "No longer available", out);
            }
            Some(CardState::Opening) => self.set_state(id, CardState::Refused(refused(message))),
            // About a message already settled here (a `viewed` of one on screen, say, or one
            // whose card has left): an `unknown_message` only says it is gone, as known.
            _ if code == ErrorCode::UnknownMessage => {}
            _ => self.notice = Some(notice_for(code, message)),
        }
    }

    /// A refusal from a relay that does not name messages.
    fn refused_unnamed(&mut self, code: ErrorCode, message: &str, out: &mut Vec<Effect>) {
        match code {
            // Most likely about the oldest fetch still waiting.
            ErrorCode::UnknownMessage => {
                if let Some(id) = self.cards.iter().find(|c| c.state == CardState::Opening).map(|c| c.id) {
                    self.set_gone(id, "No longer available", out);
                }
            }
            _ => self.notice = Some(notice_for(code, message)),
        }
    }
}

/// What the card of our refused message says.
fn not_sent(code: ErrorCode, message: &str) -> String {
    match code {
        ErrorCode::StorageFull => "Not sent: the relay is full. Try again later.".to_owned(),
        ErrorCode::QuotaExceeded => {
            "Not sent: too much from your address waits unread. Try again once some of it is read.".to_owned()
        }
        ErrorCode::TooManyPending => {
            "Not sent: too many messages wait unread in this room. Try again once some are read.".to_owned()
        }
        ErrorCode::FileTooLarge => "Not sent: the file is larger than this relay takes.".to_owned(),
        _ => refused(message),
    }
}

/// The room's notice for a refusal no card shows: a code this page knows has its `message`
/// said as it is; an unknown one is said to be a refusal.
fn notice_for(code: ErrorCode, message: &str) -> String {
    match code {
        ErrorCode::Unknown => refused(message),
        _ => message.to_owned(),
    }
}

/// "Refused: " and the relay's words, shortened.
fn refused(message: &str) -> String {
    let message = message.trim();
    if message.is_empty() {
        return "Refused by the relay.".to_owned();
    }
    let mut words: String = message.chars().take(MAX_REASON_CHARS).collect();
    if words.len() < message.len() {
        words.push('…');
    }
    format!("Refused: {words}")
}
