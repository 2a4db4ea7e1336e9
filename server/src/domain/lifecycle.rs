//! The message lifecycle, as pure functions over plain data: the one statement of the burn rule.
//!
//! - A message is stored with the room's other participants (connected or in their grace
//!   period) as its recipients; with none, it is *open*.
//! - It may be fetched by a recipient, or, while open, by anyone but its sender. Fetching never
//!   changes it.
//! - A view by a recipient marks it; it burns (is deleted) when every remaining recipient has
//!   viewed it. An open message burns at its first view.
//! - A recipient that leaves is dropped from what it has not viewed; a message whose remaining
//!   recipients have all viewed it burns then. One left with no recipient is open to the first
//!   other participant.
//! - Unviewed, it expires at its expiry time.
//!
//! The stores enforce this in SQL, atomically, one statement or transaction per operation (they
//! must, with several instances over one database); [`Ledger`] is the same rule over a map, the
//! reference the store scenarios are checked against (`server/tests/integration/scenarios.rs`).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::ids::{MessageId, Participant, RoomHash};

/// Milliseconds since the Unix epoch, as stored in `expires_at`.
pub fn now_ms() -> i64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
}

/// `now` plus `ttl`, in the same milliseconds, saturating.
pub fn expiry(now: i64, ttl: Duration) -> i64 {
    now.saturating_add(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX))
}

/// A message to store.
#[derive(Clone, Copy)]
pub struct NewMessage<'a> {
    pub room: &'a RoomHash,
    pub id: &'a MessageId,
    /// The at-rest-sealed payload.
    pub body: &'a [u8],
    pub ttl: Duration,
    pub sender: &'a Participant,
    /// Refuse it when this many messages already wait in the room.
    pub max_pending: u32,
    /// How many chunks of a file wait beside it (a file card), stored before it; 0 for text.
    /// They go when it goes, whichever way.
    pub chunks: u32,
}

/// What an insert found.
#[derive(Debug, PartialEq, Eq)]
pub enum Inserted {
    /// A new row, naming these recipients (none: it is open to anyone but its sender), expiring
    /// at `expires_at` (milliseconds since the Unix epoch).
    New { recipients: Vec<Participant>, expires_at: i64 },
    /// A row with this id already waits in the room; here is its stored body.
    Exists(Vec<u8>),
    /// The room already holds `max_pending` unread messages.
    RoomBacklogFull,
}

/// What a view did.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum Viewed {
    /// Everyone who had to has viewed it: the row is gone.
    Deleted,
    /// `viewed` of `of` recipients have viewed it; it waits for the others.
    Progress { viewed: u32, of: u32 },
    /// It was already gone (viewed, expired, or another viewer won the race).
    Gone,
}

/// Why a participant may not fetch a waiting message.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum FetchRefusal {
    /// It is the sender's own message.
    OwnMessage,
    /// The message names recipients, and this participant is not one of them.
    NotRecipient,
}

/// A message that waits for a participant, as a join or a resync lists it: its id, and its
/// file's chunk count when it is a file card (0 for text).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pending {
    pub id: MessageId,
    pub chunks: u32,
}

/// A waiting message as one participant may see it: what a fetch reads, from the store or
/// from the messages an instance holds in memory.
#[derive(Debug)]
pub struct Waiting {
    pub body: Vec<u8>,
    pub sender: Participant,
    /// Recipients it still has (none: it is open to anyone but its sender).
    pub recipients: i64,
    /// Whether the asking participant is one of them.
    pub is_recipient: bool,
}

/// A message as its row holds it, less what it is keyed by: what an instance holds in memory
/// for its fetches (`relay/held.rs`), and what a message notice carries over NATS to the room's
/// other instances (`bus/nats.rs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    /// Sealed at rest, as in its row.
    pub body: Vec<u8>,
    pub sender: Participant,
    /// Who must view it; none: it is open to anyone but its sender.
    pub recipients: Vec<Participant>,
    /// Milliseconds since the Unix epoch, as the row's `expires_at`.
    pub expires_at: i64,
}

impl Waiting {
    /// Whether `who`, the participant this was read for, may fetch it.
    pub fn may_be_fetched_by(&self, who: &Participant) -> Result<(), FetchRefusal> {
        may_fetch(&self.sender, self.recipients > 0, self.is_recipient, who)
    }
}

/// The fetch rule: a recipient may; while a message is open, anyone but its sender may.
pub fn may_fetch(
    sender: &Participant,
    has_recipients: bool,
    is_recipient: bool,
    who: &Participant,
) -> Result<(), FetchRefusal> {
    if sender == who {
        Err(FetchRefusal::OwnMessage)
    } else if has_recipients && !is_recipient {
        Err(FetchRefusal::NotRecipient)
    } else {
        Ok(())
    }
}

/// One stored message, as the rule sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub body: Vec<u8>,
    pub sender: Participant,
    /// Who must view it, in order; empty: open.
    pub recipients: BTreeSet<Participant>,
    /// Those of them who have.
    pub viewed_by: BTreeSet<Participant>,
    pub expires_at: i64,
}

impl Record {
    /// Whether it waits for `who` at `now`: an unviewed recipient, or open and not its own.
    pub fn waits_for(&self, who: &Participant, now: i64) -> bool {
        self.expires_at > now
            && if self.recipients.is_empty() {
                self.sender != *who
            } else {
                self.recipients.contains(who) && !self.viewed_by.contains(who)
            }
    }

    /// It as `who` may see it (a fetch), if unexpired at `now`.
    pub fn seen_by(&self, who: &Participant, now: i64) -> Option<Waiting> {
        (self.expires_at > now).then(|| Waiting {
            body: self.body.clone(),
            sender: self.sender,
            recipients: count(self.recipients.len()).into(),
            is_recipient: self.recipients.contains(who),
        })
    }

    /// `who` viewed it: [`Viewed::Deleted`] when that completes it (the caller deletes it).
    pub fn view(&mut self, who: &Participant) -> Viewed {
        if self.recipients.contains(who) {
            self.viewed_by.insert(*who);
        }
        if self.is_complete() || self.recipients.is_empty() {
            Viewed::Deleted
        } else {
            Viewed::Progress { viewed: count(self.viewed_by.len()), of: count(self.recipients.len()) }
        }
    }

    /// `who` left the room: dropped from the recipients unless it viewed it. `true` when that
    /// completes it (the caller deletes it); a message left with no recipient is open instead.
    pub fn drop_recipient(&mut self, who: &Participant) -> bool {
        if !self.viewed_by.contains(who) && self.recipients.remove(who) {
            return self.is_complete();
        }
        false
    }

    /// Every recipient (there is one) has viewed it.
    fn is_complete(&self) -> bool {
        !self.recipients.is_empty() && self.recipients.is_subset(&self.viewed_by)
    }
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// The whole lifecycle over an in-memory map: the reference the stores are checked against.
/// Its methods mirror the store's, one for one.
#[derive(Debug, Default)]
pub struct Ledger {
    messages: BTreeMap<(RoomHash, MessageId), Record>,
    participants: BTreeMap<RoomHash, BTreeSet<Participant>>,
}

impl Ledger {
    /// `who` is in `room` (joined, or in its grace period).
    pub fn join(&mut self, room: &RoomHash, who: &Participant) {
        self.participants.entry(*room).or_default().insert(*who);
    }

    /// Stores a message unless its id already waits in the room or the room already holds
    /// `max_pending` unexpired messages at `now`.
    pub fn insert(&mut self, m: &NewMessage<'_>, now: i64) -> Inserted {
        let NewMessage { room, id, body, ttl, sender, max_pending, .. } = *m;
        let expires_at = expiry(now, ttl);
        if let Some(existing) = self.messages.get(&(*room, *id)) {
            return Inserted::Exists(existing.body.clone());
        }
        let pending = self.messages.iter().filter(|((r, _), m)| r == room && m.expires_at > now).count();
        if pending >= max_pending as usize {
            return Inserted::RoomBacklogFull;
        }
        let recipients: BTreeSet<Participant> =
            self.participants.get(room).into_iter().flatten().filter(|p| *p != sender).copied().collect();
        let record = Record {
            body: body.to_vec(),
            sender: *sender,
            recipients: recipients.clone(),
            viewed_by: BTreeSet::new(),
            expires_at,
        };
        self.messages.insert((*room, *id), record);
        Inserted::New { recipients: recipients.into_iter().collect(), expires_at }
    }

    /// What a fetch by `who` reads, unexpired at `now`.
    pub fn get(&self, room: &RoomHash, id: &MessageId, who: &Participant, now: i64) -> Option<Waiting> {
        self.messages.get(&(*room, *id))?.seen_by(who, now)
    }

    /// `who` viewed the message; it burns when that completes it.
    pub fn viewed(&mut self, room: &RoomHash, id: &MessageId, who: &Participant) -> Viewed {
        let Some(record) = self.messages.get_mut(&(*room, *id)) else { return Viewed::Gone };
        let viewed = record.view(who);
        if viewed == Viewed::Deleted {
            self.messages.remove(&(*room, *id));
        }
        viewed
    }

    /// `who` left `room` for good; returns the messages that burned because of it.
    pub fn leave(&mut self, room: &RoomHash, who: &Participant) -> Vec<MessageId> {
        if let Some(members) = self.participants.get_mut(room) {
            members.remove(who);
        }
        let burned: Vec<MessageId> = self
            .messages
            .iter_mut()
            .filter(|((r, _), _)| r == room)
            .filter_map(|((_, id), record)| record.drop_recipient(who).then_some(*id))
            .collect();
        for id in &burned {
            self.messages.remove(&(*room, *id));
        }
        burned
    }

    /// Ids of the messages that wait for `who` in `room` at `now`, oldest expiry first.
    pub fn pending_for(&self, room: &RoomHash, who: &Participant, now: i64) -> Vec<MessageId> {
        let mut waiting: Vec<(i64, MessageId)> = self
            .messages
            .iter()
            .filter(|((r, _), m)| r == room && m.waits_for(who, now))
            .map(|((_, id), m)| (m.expires_at, *id))
            .collect();
        waiting.sort();
        waiting.into_iter().map(|(_, id)| id).collect()
    }

    /// Deletes what expired by `now` and says which.
    pub fn expire(&mut self, now: i64) -> Vec<(RoomHash, MessageId)> {
        let expired: Vec<(RoomHash, MessageId)> =
            self.messages.iter().filter(|(_, m)| m.expires_at <= now).map(|(key, _)| *key).collect();
        for key in &expired {
            self.messages.remove(key);
        }
        expired
    }

    /// Whether a row of `room` with `id` is stored (waiting, or expired and not yet swept).
    pub fn exists(&self, room: &RoomHash, id: &MessageId) -> bool {
        self.messages.contains_key(&(*room, *id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who(n: u8) -> Participant {
        Participant([n; 32])
    }

    const ROOM: RoomHash = RoomHash([1; 32]);

    fn ledger_with(members: &[u8]) -> Ledger {
        let mut ledger = Ledger::default();
        for &n in members {
            ledger.join(&ROOM, &who(n));
        }
        ledger
    }

    fn message<'a>(id: &'a MessageId, body: &'a [u8], sender: &'a Participant, max_pending: u32) -> NewMessage<'a> {
        NewMessage { room: &ROOM, id, body, ttl: Duration::from_millis(1_000), sender, max_pending, chunks: 0 }
    }

    fn send(ledger: &mut Ledger, n: u8, from: u8) -> MessageId {
        let id = MessageId([n; 16]);
        ledger.insert(&message(&id, b"x", &who(from), 10), 0);
        id
    }

    #[test]
    fn a_message_burns_when_its_last_recipient_views_it() {
        let mut ledger = ledger_with(&[1, 2, 3]);
        let id = send(&mut ledger, 9, 1);
        assert_eq!(ledger.viewed(&ROOM, &id, &who(2)), Viewed::Progress { viewed: 1, of: 2 });
        assert_eq!(ledger.viewed(&ROOM, &id, &who(2)), Viewed::Progress { viewed: 1, of: 2 }, "twice counts once");
        assert_eq!(ledger.viewed(&ROOM, &id, &who(3)), Viewed::Deleted);
        assert_eq!(ledger.viewed(&ROOM, &id, &who(3)), Viewed::Gone);
    }

    #[test]
    fn only_recipients_and_never_the_sender_may_fetch() {
        let mut ledger = ledger_with(&[1, 2]);
        let id = send(&mut ledger, 9, 1);
        ledger.join(&ROOM, &who(3));
        let fetch = |n: u8| ledger.get(&ROOM, &id, &who(n), 0).map(|w| w.may_be_fetched_by(&who(n)));
        assert_eq!(fetch(1), Some(Err(FetchRefusal::OwnMessage)));
        assert_eq!(fetch(2), Some(Ok(())));
        assert_eq!(fetch(3), Some(Err(FetchRefusal::NotRecipient)), "joined after the send");
    }

    #[test]
    fn a_message_whose_recipients_all_left_is_open_to_the_next_reader() {
        let mut ledger = ledger_with(&[1, 2]);
        let id = send(&mut ledger, 9, 1);
        assert_eq!(ledger.leave(&ROOM, &who(2)), vec![]);
        ledger.join(&ROOM, &who(3));
        assert_eq!(ledger.pending_for(&ROOM, &who(3), 0), vec![id]);
        assert_eq!(ledger.pending_for(&ROOM, &who(1), 0), vec![], "never its sender's");
        assert_eq!(ledger.viewed(&ROOM, &id, &who(3)), Viewed::Deleted);
    }

    #[test]
    fn a_leave_burns_what_the_others_have_viewed() {
        let mut ledger = ledger_with(&[1, 2, 3]);
        let id = send(&mut ledger, 9, 1);
        ledger.viewed(&ROOM, &id, &who(2));
        assert_eq!(ledger.leave(&ROOM, &who(2)), vec![], "a viewer leaving changes nothing");
        assert_eq!(ledger.leave(&ROOM, &who(3)), vec![id]);
        assert!(!ledger.exists(&ROOM, &id));
    }

    #[test]
    fn a_full_backlog_refuses_and_a_resend_is_recognised() {
        let mut ledger = ledger_with(&[1, 2]);
        let (id, other, sender) = (MessageId([9; 16]), MessageId([8; 16]), who(1));
        assert!(matches!(ledger.insert(&message(&id, b"x", &sender, 1), 0), Inserted::New { .. }));
        assert_eq!(ledger.insert(&message(&id, b"y", &sender, 1), 0), Inserted::Exists(b"x".to_vec()));
        assert_eq!(ledger.insert(&message(&other, b"x", &sender, 1), 0), Inserted::RoomBacklogFull);
        assert_eq!(ledger.expire(1_000), vec![(ROOM, id)]);
        assert!(ledger.get(&ROOM, &id, &who(2), 0).is_none());
    }
}
