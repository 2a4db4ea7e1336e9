//! Messages held in memory for the room they were sent to, so that a recipient connected to
//! the same instance as the sender fetches one without a round trip to the store. Over NATS the
//! room's other instances hold it too, as its notice carried it, under the rules of
//! `bus/nats.rs` ("Carried messages") and `Hub::hear`: for its recipients only, and briefly.
//!
//! On PostgreSQL a fetch was one of a journey's three round trips to the database, and its read
//! a fifth to a quarter of what the database spends on a journey (pgbench, in
//! `docs/experiments/postgres-fewer-round-trips`). What is held is exactly what
//! the store holds: the body sealed at rest, its sender, its recipients and its expiry; a fetch
//! opens it as it would the row. The store stays the authority: `viewed` goes to it, and so does
//! every fetch of a message this instance does not hold.
//!
//! A held message must never outlive its row. It lives in its room's entry of the hub, which is
//! dropped with the room's last local connection, and it is dropped:
//! - when the hub publishes the message's deletion or expiry (from this instance, or from
//!   another through the bus: a deletion elsewhere is notified whenever a participant of the
//!   room is on another instance, as the ones connected here are);
//! - when the room resyncs (events from other instances may have been missed), and for as long
//!   as the instance's link to the others is down (nothing is held then: `Hub::stop_holding`);
//! - when one of its recipients leaves (the store drops it from the row's recipients);
//! - when a view here finds the row gone;
//! - when it expires (checked on every fetch).
//!
//! A send reserves the message's place before its insert commits and fills it in after. A
//! deletion published in between (another instance burned it that fast) empties the place, and
//! the fill then finds nothing to fill: a message cannot be held after its deletion was heard.
//! A carried one is reserved and filled at once, unless its room heard it gone already.

use std::collections::HashMap;

use crate::domain::{MessageId, Participant, StoredMessage, Waiting};

impl StoredMessage {
    /// What holding it costs, as the held budget counts it: the body, the recipients, and the
    /// entry itself in its room's map (key, value and the map's control byte), so many tiny
    /// messages cannot hold more memory than the budget says.
    pub fn weight(&self) -> usize {
        self.body.len()
            + self.recipients.len() * std::mem::size_of::<Participant>()
            + std::mem::size_of::<(MessageId, Option<StoredMessage>)>()
            + 1
    }
}

/// One room's held messages. `None`: reserved by a send whose insert has not answered yet.
#[derive(Debug, Default)]
pub struct Held {
    messages: HashMap<MessageId, Option<StoredMessage>>,
}

impl Held {
    /// Reserves `id`'s place; `false` if it has one already (a resend, or a concurrent send of
    /// the same id), which this send then leaves alone.
    pub fn reserve(&mut self, id: MessageId) -> bool {
        if self.messages.contains_key(&id) {
            return false;
        }
        self.messages.insert(id, None);
        true
    }

    /// Fills a reserved place; the bytes it now holds (0 if the place is gone, or if `budget`
    /// bytes are fewer than the body, when the place is given up instead).
    pub fn fill(&mut self, id: MessageId, message: StoredMessage, budget: usize) -> usize {
        let size = message.weight();
        match self.messages.get_mut(&id) {
            Some(place @ None) if size <= budget => {
                *place = Some(message);
                size
            }
            Some(None) => {
                self.messages.remove(&id);
                0
            }
            _ => 0,
        }
    }

    /// Drops `id`; the bytes that frees.
    pub fn release(&mut self, id: &MessageId) -> usize {
        self.messages.remove(id).flatten().map_or(0, |m| m.weight())
    }

    /// Drops every message `who` must still view (it left, and the store no longer names it);
    /// the bytes that frees.
    pub fn release_recipient(&mut self, who: &Participant) -> usize {
        let mut freed = 0;
        self.messages.retain(|_, held| match held {
            Some(m) if m.recipients.contains(who) => {
                freed += m.weight();
                false
            }
            _ => true,
        });
        freed
    }

    /// Drops everything; the bytes that frees.
    pub fn clear(&mut self) -> usize {
        let freed = self.bytes();
        self.messages.clear();
        freed
    }

    /// What the held messages weigh ([`StoredMessage::weight`]).
    pub fn bytes(&self) -> usize {
        self.messages.values().flatten().map(StoredMessage::weight).sum()
    }

    /// `id` as `who` may see it, as the store's `get` would answer, if it is held and
    /// unexpired at `now` (milliseconds since the Unix epoch). An expired one is dropped: the
    /// freed bytes are the second value.
    pub fn get(&mut self, id: &MessageId, who: &Participant, now: i64) -> (Option<Waiting>, usize) {
        match self.messages.get(id) {
            Some(Some(m)) if m.expires_at > now => (
                Some(Waiting {
                    body: m.body.clone(),
                    sender: m.sender,
                    recipients: i64::try_from(m.recipients.len()).unwrap_or(i64::MAX),
                    is_recipient: m.recipients.contains(who),
                }),
                0,
            ),
            Some(Some(_)) => (None, self.release(id)),
            _ => (None, 0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who(n: u8) -> Participant {
        Participant([n; 32])
    }

    fn message(recipients: &[u8], expires_at: i64) -> StoredMessage {
        StoredMessage {
            body: vec![7; 100],
            sender: who(1),
            recipients: recipients.iter().map(|&n| who(n)).collect(),
            expires_at,
        }
    }

    #[test]
    fn a_filled_message_answers_as_the_store_would() {
        let mut held = Held::default();
        let id = MessageId([3; 16]);
        assert!(held.reserve(id));
        assert_eq!(held.get(&id, &who(2), 0).0.map(|w| w.body), None, "reserved is not yet held");
        let weight = message(&[2, 3], 1_000).weight();
        assert_eq!(held.fill(id, message(&[2, 3], 1_000), usize::MAX), weight);
        let seen = held.get(&id, &who(2), 999).0.expect("held");
        assert_eq!((seen.body, seen.sender, seen.recipients, seen.is_recipient), (vec![7; 100], who(1), 2, true));
        assert!(!held.get(&id, &who(4), 999).0.expect("held").is_recipient);
        assert_eq!(held.bytes(), weight);
    }

    #[test]
    fn the_weight_counts_the_entry_and_its_recipients_not_only_the_body() {
        let (alone, with_two) = (message(&[], 1_000).weight(), message(&[2, 3], 1_000).weight());
        assert!(alone > 100 + std::mem::size_of::<StoredMessage>(), "{alone}");
        assert_eq!(with_two - alone, 2 * std::mem::size_of::<Participant>());
    }

    #[test]
    fn a_deletion_heard_before_the_fill_keeps_the_message_out() {
        let mut held = Held::default();
        let id = MessageId([3; 16]);
        assert!(held.reserve(id));
        assert_eq!(held.release(&id), 0);
        assert_eq!(held.fill(id, message(&[2], 1_000), usize::MAX), 0);
        assert!(held.get(&id, &who(2), 0).0.is_none());
        assert_eq!(held.bytes(), 0);
    }

    #[test]
    fn a_second_reservation_of_one_id_is_refused() {
        let mut held = Held::default();
        let id = MessageId([3; 16]);
        assert!(held.reserve(id));
        assert!(!held.reserve(id));
        held.fill(id, message(&[2], 1_000), usize::MAX);
        assert!(!held.reserve(id), "a resend leaves the held message alone");
    }

    #[test]
    fn past_the_budget_the_place_is_given_up() {
        let mut held = Held::default();
        let id = MessageId([3; 16]);
        held.reserve(id);
        let weight = message(&[2], 1_000).weight();
        assert_eq!(held.fill(id, message(&[2], 1_000), weight - 1), 0);
        assert!(held.reserve(id), "nothing left behind");
    }

    #[test]
    fn an_expired_message_is_dropped_when_asked_for() {
        let mut held = Held::default();
        let id = MessageId([3; 16]);
        held.reserve(id);
        held.fill(id, message(&[2], 1_000), usize::MAX);
        let (seen, freed) = held.get(&id, &who(2), 1_000);
        assert!(seen.is_none());
        assert_eq!((freed, held.bytes()), (message(&[2], 1_000).weight(), 0));
    }

    #[test]
    fn a_recipient_leaving_drops_what_it_had_to_view() {
        let mut held = Held::default();
        for (n, recipients) in [(1u8, &[2u8, 3][..]), (2, &[3]), (3, &[])] {
            let id = MessageId([n; 16]);
            held.reserve(id);
            held.fill(id, message(recipients, 1_000), usize::MAX);
        }
        let weight = |recipients: &[u8]| message(recipients, 1_000).weight();
        assert_eq!(held.release_recipient(&who(2)), weight(&[2, 3]));
        assert!(held.get(&MessageId([1; 16]), &who(3), 0).0.is_none());
        assert!(held.get(&MessageId([2; 16]), &who(3), 0).0.is_some());
        assert!(held.get(&MessageId([3; 16]), &who(3), 0).0.is_some(), "open messages stay");
        assert_eq!(held.clear(), weight(&[3]) + weight(&[]));
        assert_eq!(held.bytes(), 0);
    }
}
