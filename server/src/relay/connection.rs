//! One connection's side of the relay: the operations its frames ask for (join, send, fetch,
//! view, typing), the room events it is to hear, what a resync tells it, and how it ends. The
//! transport (`ws/session.rs`) owns the socket and calls these; frames in, frames out.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use app::crypto::message::PayloadError;
use app::crypto::{RoomId, SealedPayload};
use app::protocol::{ClientFrame, ErrorCode, ServerFrame};
use subtle::ConstantTimeEq;
use tokio::sync::broadcast::{self, error::RecvError};

use super::departure::leave_after_grace;
use super::held::HeldMessage;
use super::hub::RoomEvent;
use super::Relay;
use crate::at_rest::AtRestError;
use crate::domain::{
    now_ms, ConnectionId, EventKind, FetchRefusal, Inserted, MessageId, NewMessage, Participant, RoomHash, Viewed,
};
use crate::store::StoreError;

/// A refused frame: the code to send back.
type Refusal = ErrorCode;

/// How long a resync remembers telling a message gone. Its event, if still to come, was queued
/// in the room's channel or notified by another instance before the resync read the store.
const TOLD_GONE_KEPT: std::time::Duration = std::time::Duration::from_secs(60);

/// The room a connection joined, as which participant.
#[derive(Clone, Copy)]
struct Member {
    room: RoomHash,
    who: Participant,
}

/// How a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// The page closed the socket itself (Leave, or the page going away). Its session token
    /// lives only in the page's memory, so it cannot come back: it leaves at once.
    PageClosed,
    /// The socket broke or idled out: the participant may come back within its grace period.
    Lost,
    /// This server is stopping: as after a network loss, but nothing is left running here to
    /// end the grace period. Rows stay; a page that reconnects to the next process within the
    /// grace period is the same participant, and one that does not is dropped as after a crash.
    ServerStopping,
}

/// One connection's protocol state.
pub struct Connection {
    relay: Arc<Relay>,
    id: ConnectionId,
    member: Option<Member>,
    /// The room's events, once joined.
    events: Option<broadcast::Receiver<RoomEvent>>,
    /// The participant count this connection was last told: presence is sent only when it
    /// differs (counts are re-read after every change, so the same one can come more than once).
    told_presence: Option<u32>,
    /// Whether the count read after this connection's own join has arrived. Counts published
    /// before it were read before the join and are older than the `joined` count: skipped.
    presence_current: bool,
    /// Messages this connection stored that it has not yet been told are gone, with when they
    /// expire: if it falls behind its room's channel and misses their `deleted` or `expired`,
    /// the resync tells it (bounded by the room's backlog limit).
    sent: HashMap<MessageId, Instant>,
    /// Of those, the ones a resync said are gone, and when: their own `deleted` or `expired`
    /// event may still be queued in the room's channel (or on its way from another instance),
    /// and is then not passed on a second time. Kept until that event comes, or for
    /// [`TOLD_GONE_KEPT`] if it never does (a later lag skipped it).
    told_gone: HashMap<MessageId, Instant>,
}

impl Connection {
    pub fn new(relay: Arc<Relay>) -> Self {
        Self {
            id: relay.hub.connection_id(),
            relay,
            member: None,
            events: None,
            told_presence: None,
            presence_current: false,
            sent: HashMap::new(),
            told_gone: HashMap::new(),
        }
    }

    /// The next event of the room this connection joined; never, before it joined.
    pub async fn next_event(&mut self) -> Result<RoomEvent, RecvError> {
        match &mut self.events {
            Some(rx) => rx.recv().await,
            None => std::future::pending().await,
        }
    }

    /// The frames this connection gets for what [`Connection::next_event`] gave; `None` when the
    /// room's channel closed (the connection should end).
    pub async fn on_event(&mut self, event: Result<RoomEvent, RecvError>) -> Option<Vec<ServerFrame>> {
        Some(match event {
            Ok(RoomEvent { kind: EventKind::Resync, .. }) | Err(RecvError::Lagged(_)) => self.resync().await,
            Ok(event) => self.frame_for(event).into_iter().collect(),
            Err(RecvError::Closed) => return None,
        })
    }

    /// The connection ended, as `ending` says.
    pub async fn end(mut self, ending: Ending) {
        if let Some(member) = self.member {
            self.events = None;
            self.disconnect(member, ending).await;
        }
    }

    /// Applies one client frame; returns the frames to send back to this connection.
    pub async fn handle(&mut self, frame: ClientFrame) -> Vec<ServerFrame> {
        let result = match frame {
            ClientFrame::Join { room_id, session } => self.join(&room_id, &session).await,
            ClientFrame::Send { message_id, sealed } => self.send(&message_id, &sealed).await,
            ClientFrame::Fetch { message_id } => self.fetch(&message_id).await,
            ClientFrame::Viewed { message_id } => self.viewed(&message_id).await,
            ClientFrame::Typing { active } => self.typing(active).await,
        };
        match result {
            Ok(frames) => frames,
            Err(code) => vec![ServerFrame::error(code)],
        }
    }

    fn member(&self) -> Result<Member, Refusal> {
        self.member.ok_or(ErrorCode::NotJoined)
    }

    async fn join(&mut self, room_id: &str, session: &str) -> Result<Vec<ServerFrame>, Refusal> {
        if self.member.is_some() {
            return Err(ErrorCode::AlreadyJoined);
        }
        let room = RoomHash(RoomId::parse(room_id).ok_or(ErrorCode::BadRoomId)?.storage_hash());
        let token = MessageId::parse(session).ok_or(ErrorCode::BadSession)?; // 16 bytes of hex, like an id
        let who = Participant::from_token(&token.0);
        // Subscribe before joining and before reading what waits, so an event from then on is
        // heard, and a message stored meanwhile is in the pending list, heard, or both.
        let rx = self.relay.hub.subscribe(room);
        let max = self.relay.limits.max_room_participants;
        let admitted = match self.relay.store.join(&room, &who, self.id, max).await {
            Ok(Some(admitted)) => admitted,
            Ok(None) => {
                self.relay.hub.unsubscribe(&room);
                return Err(ErrorCode::RoomFull);
            }
            Err(err) => {
                self.relay.hub.unsubscribe(&room);
                return Err(internal(&err));
            }
        };
        self.relay.presence.changed(room, Some(self.id)).await;
        let pending = match self.relay.store.pending_for(&room, &who).await {
            Ok(pending) => pending,
            Err(err) => {
                // Not joined after all: undo, so a retried join starts afresh.
                self.disconnect(Member { room, who }, Ending::Lost).await;
                return Err(internal(&err));
            }
        };
        self.member = Some(Member { room, who });
        self.told_presence = Some(admitted.connected);
        self.presence_current = false;
        self.events = Some(rx);
        let pending = pending.into_iter().map(MessageId::to_hex).collect();
        Ok(vec![ServerFrame::Joined { participants: admitted.connected, pending }])
    }

    /// This connection leaves its room: the participant enters its grace period (unless
    /// another connection took it over; none if the page closed the socket itself, which means
    /// it is gone for good), and the room hears how many are left.
    async fn disconnect(&mut self, member: Member, ending: Ending) {
        let Member { room, who } = member;
        self.member = None;
        self.relay.hub.unsubscribe(&room);
        match self.relay.store.disconnect(&room, &who, self.id).await {
            Ok(Some(generation)) => match ending {
                Ending::PageClosed => {
                    // Gone for good: leave before the room hears of it, so a join that follows
                    // the new count finds the place free.
                    leave_after_grace(self.relay.clone(), room, who, generation, false).await;
                    self.relay.presence.changed(room, Some(self.id)).await;
                }
                Ending::Lost => {
                    self.relay.presence.changed(room, Some(self.id)).await;
                    tokio::spawn(leave_after_grace(self.relay.clone(), room, who, generation, true));
                }
                Ending::ServerStopping => {}
            },
            Ok(None) => {}
            Err(err) => tracing::error!("store: a connection ended: {err}"),
        }
    }

    async fn send(&mut self, message_id: &str, sealed: &str) -> Result<Vec<ServerFrame>, Refusal> {
        let Member { room, who } = self.member()?;
        let id = parse_id(message_id)?;
        let sealed = SealedPayload::from_base64(sealed).map_err(|err| match err {
            PayloadError::Encoding => ErrorCode::BadEncoding,
            PayloadError::Size => ErrorCode::BadSize,
            PayloadError::Version => ErrorCode::BadVersion,
        })?;
        if sealed.padded_len() > self.relay.limits.max_padded_message {
            return Err(ErrorCode::BadSize);
        }
        let body = self.relay.keys.seal(&room, &id, &sealed);
        let message = NewMessage {
            room: &room,
            id: &id,
            body: &body,
            ttl: self.relay.message_ttl,
            sender: &who,
            max_pending: self.relay.limits.max_pending_per_room,
        };
        // Its place among the messages held here is reserved before the insert commits, so
        // that a deletion heard from another instance right after the commit is not missed.
        let reserved = self.relay.hub.reserve(&room, id);
        let inserted = self.relay.store.insert(message).await;
        if reserved && !matches!(inserted, Ok(Inserted::New { .. })) {
            self.relay.hub.release(&room, &id);
        }
        match inserted.map_err(|err| internal(&err))? {
            Inserted::New { recipients, expires_at } => {
                if reserved {
                    self.relay.hub.fill(&room, id, HeldMessage { body, sender: who, recipients, expires_at });
                }
                self.sent.insert(id, Instant::now() + self.relay.message_ttl);
                self.relay.hub.publish(&room, Some(self.id), EventKind::Message(id));
            }
            Inserted::RoomBacklogFull => return Err(ErrorCode::TooManyPending),
            Inserted::Exists(existing) => {
                let same = match self.relay.keys.open(&room, &id, &existing) {
                    Ok(stored) => bool::from(stored.as_bytes().ct_eq(sealed.as_bytes())),
                    Err(_) => false,
                };
                // A resend of the same message is acknowledged again and notifies nobody twice.
                if !same {
                    return Err(ErrorCode::IdConflict);
                }
            }
        }
        Ok(vec![ServerFrame::Sent { message_id: id.to_hex() }])
    }

    async fn fetch(&mut self, message_id: &str) -> Result<Vec<ServerFrame>, Refusal> {
        let id = parse_id(message_id)?;
        let Member { room, who } = self.member()?;
        let waiting = match self.relay.hub.held(&room, &id, &who, now_ms()) {
            Some(held) => held,
            None => self
                .relay
                .store
                .get(&room, &id, &who)
                .await
                .map_err(|err| internal(&err))?
                .ok_or(ErrorCode::UnknownMessage)?,
        };
        waiting.may_be_fetched_by(&who).map_err(|refusal| match refusal {
            FetchRefusal::OwnMessage => ErrorCode::OwnMessage,
            FetchRefusal::NotRecipient => ErrorCode::NotRecipient,
        })?;
        match self.relay.keys.open(&room, &id, &waiting.body) {
            Ok(sealed) => {
                self.relay.hub.mark_fetched(&room, &who, id);
                Ok(vec![ServerFrame::Payload { message_id: id.to_hex(), sealed: sealed.to_base64() }])
            }
            Err(err) => {
                // Unreadable at rest (key rotated away, or corrupt): purge it as expired.
                if matches!(err, AtRestError::Corrupt) {
                    tracing::error!("a stored message failed at-rest authentication; purging it");
                }
                self.relay.hub.release(&room, &id);
                if self.relay.store.purge(&room, &id).await.map_err(|err| internal(&err))? {
                    self.relay.hub.publish(&room, None, EventKind::Expired(id));
                }
                Ok(Vec::new())
            }
        }
    }

    async fn viewed(&mut self, message_id: &str) -> Result<Vec<ServerFrame>, Refusal> {
        let id = parse_id(message_id)?;
        let Member { room, who } = self.member()?;
        if !self.relay.hub.has_fetched(&room, &who, &id) {
            return Err(ErrorCode::NotFetched);
        }
        match self.relay.store.viewed(&room, &id, &who).await.map_err(|err| internal(&err))? {
            Viewed::Deleted => {
                // Everyone, this connection included, hears it from the room.
                self.relay.hub.publish(&room, None, EventKind::Deleted(id));
                Ok(Vec::new())
            }
            Viewed::Progress { viewed, of } => {
                self.relay.hub.publish(&room, None, EventKind::Receipt { id, viewed, of });
                Ok(Vec::new())
            }
            // Already gone: the same answer as whoever burned it got.
            Viewed::Gone => {
                self.relay.hub.release(&room, &id);
                Ok(vec![ServerFrame::Deleted { message_id: id.to_hex() }])
            }
        }
    }

    async fn typing(&mut self, active: bool) -> Result<Vec<ServerFrame>, Refusal> {
        let room = self.member()?.room;
        self.relay.hub.publish(&room, Some(self.id), EventKind::Typing(active));
        self.relay.store.announce(&room, EventKind::Typing(active)).await.map_err(|err| internal(&err))?;
        Ok(Vec::new())
    }

    /// The frame, if any, this connection gets for a room event.
    fn frame_for(&mut self, event: RoomEvent) -> Option<ServerFrame> {
        let own = event.origin == Some(self.id);
        match event.kind {
            EventKind::Message(id) if !own => Some(ServerFrame::Message { message_id: id.to_hex() }),
            EventKind::Deleted(id) | EventKind::Expired(id) if self.told_gone.remove(&id).is_some() => None,
            EventKind::Deleted(id) => {
                self.sent.remove(&id);
                Some(ServerFrame::Deleted { message_id: id.to_hex() })
            }
            EventKind::Expired(id) => {
                self.sent.remove(&id);
                Some(ServerFrame::Expired { message_id: id.to_hex() })
            }
            EventKind::Receipt { id, viewed, of } => Some(ServerFrame::Receipt { message_id: id.to_hex(), viewed, of }),
            EventKind::Presence(participants) => {
                // Recounts are answered in order: the one this join asked for marks the end of
                // those asked for before it.
                self.presence_current |= own;
                if self.presence_current {
                    self.presence(participants)
                } else {
                    None
                }
            }
            EventKind::Typing(active) if !own => Some(ServerFrame::Typing { active }),
            _ => None,
        }
    }

    /// After this connection fell behind its room's channel, or events from other instances
    /// may have been missed: re-announce what waits and who is here, and which of its own
    /// messages are gone. Clients ignore notices of messages they already show.
    async fn resync(&mut self) -> Vec<ServerFrame> {
        let Some(Member { room, who }) = self.member else { return Vec::new() };
        let pending = self.relay.store.pending_for(&room, &who).await;
        let connected = self.relay.store.count_connected(&room).await;
        let mut frames: Vec<ServerFrame> = match (pending, connected) {
            (Ok(pending), Ok(participants)) => pending
                .into_iter()
                .map(|id| ServerFrame::Message { message_id: id.to_hex() })
                .chain(self.presence(participants))
                .collect(),
            (Err(err), _) | (_, Err(err)) => return vec![ServerFrame::error(internal(&err))],
        };
        // A second lag can come before the first resync's events are through: what the first
        // told stays remembered (forgetting it passed those events on twice).
        self.told_gone.retain(|_, told| told.elapsed() < TOLD_GONE_KEPT);
        let sent: Vec<(MessageId, Instant)> = self.sent.iter().map(|(id, at)| (*id, *at)).collect();
        for (id, expires) in sent {
            match self.relay.store.exists(&room, &id).await {
                Ok(true) => {}
                Ok(false) => {
                    // Gone before its expiry: viewed by everyone and burned; after: expired.
                    self.sent.remove(&id);
                    self.told_gone.insert(id, Instant::now());
                    let message_id = id.to_hex();
                    frames.push(if Instant::now() < expires {
                        ServerFrame::Deleted { message_id }
                    } else {
                        ServerFrame::Expired { message_id }
                    });
                }
                Err(err) => return vec![ServerFrame::error(internal(&err))],
            }
        }
        frames
    }

    /// A `presence` frame, unless this connection already knows that count.
    fn presence(&mut self, participants: u32) -> Option<ServerFrame> {
        (self.told_presence != Some(participants)).then(|| {
            self.told_presence = Some(participants);
            ServerFrame::Presence { participants }
        })
    }
}

fn parse_id(message_id: &str) -> Result<MessageId, Refusal> {
    MessageId::parse(message_id).ok_or(ErrorCode::BadMessageId)
}

/// Logs a store failure (its text never holds row values) and refuses with `internal`.
fn internal(err: &StoreError) -> Refusal {
    tracing::error!("store: {err}");
    ErrorCode::Internal
}
