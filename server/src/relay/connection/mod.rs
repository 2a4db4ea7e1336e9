//! One connection's side of the relay: its state, the frames it sends dispatched to their
//! operations, and its membership of a room (join, and how it ends). The transport
//! (`ws/session.rs`) owns the socket and calls these; frames in, frames out.
//!
//! - [`messages`]: the operations on a room's messages: send, fetch, viewed, typing.
//! - [`files`]: a file's upload and its chunks' download (a file is a message with chunks).
//! - [`events`]: what the room's events, and a resync after missing some, tell this connection.

mod events;
mod files;
mod messages;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use app::crypto::RoomId;
use app::protocol::{ClientFrame, ErrorCode, ServerFrame};
use tokio::sync::broadcast;

use super::departure::leave_after_grace;
use super::hub::RoomEvent;
use super::Relay;
use crate::domain::{ClientBlock, ConnectionId, EventKind, MessageId, Participant, RoomHash};
use crate::store::StoreError;

/// A refused frame: the code to send back.
type Refusal = ErrorCode;

/// What a connection sends back: a protocol frame (JSON text), or a file's chunk (binary).
#[derive(Debug)]
pub enum Outgoing {
    Frame(ServerFrame),
    Chunk(Vec<u8>),
}

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
    /// Whose share of the stored bytes this connection's messages count against.
    client: ClientBlock,
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
    /// [`events::TOLD_GONE_KEPT`] if it never does (a later lag skipped it).
    told_gone: HashMap<MessageId, Instant>,
    /// The file this connection is uploading, until its card is stored or it is abandoned.
    upload: Option<files::Upload>,
}

impl Connection {
    pub fn new(relay: Arc<Relay>, client: ClientBlock) -> Self {
        Self {
            id: relay.hub.connection_id(),
            client,
            relay,
            member: None,
            events: None,
            told_presence: None,
            presence_current: false,
            sent: HashMap::new(),
            told_gone: HashMap::new(),
            upload: None,
        }
    }

    /// The connection ended, as `ending` says.
    pub async fn end(mut self, ending: Ending) {
        // An upload cut off is never offered: what it stored goes now.
        self.abandon_upload().await;
        if let Some(member) = self.member {
            self.events = None;
            self.disconnect(member, ending).await;
        }
    }

    /// Applies one client frame; returns the frames to send back to this connection.
    pub async fn handle(&mut self, frame: ClientFrame) -> Vec<ServerFrame> {
        let (result, about) = match frame {
            ClientFrame::Join { room_id, session } => (self.join(&room_id, &session).await, None),
            ClientFrame::Send { message_id, sealed, ttl } => {
                (self.send(&message_id, &sealed, ttl).await, Some(message_id))
            }
            ClientFrame::Fetch { message_id } => (self.fetch(&message_id).await, Some(message_id)),
            ClientFrame::Viewed { message_id } => (self.viewed(&message_id).await, Some(message_id)),
            ClientFrame::Typing { active } => (self.typing(active).await, None),
            ClientFrame::Upload { message_id, chunks } => (self.upload(&message_id, chunks).await, Some(message_id)),
        };
        match result {
            Ok(frames) => frames,
            // An error about a message names it (when the id was well-formed), so the page marks
            // that message's card and not another one waiting for an answer.
            Err(code) => match about.filter(|id| MessageId::parse(id).is_some()) {
                Some(id) => vec![ServerFrame::error_about(code, &id)],
                None => vec![ServerFrame::error(code)],
            },
        }
    }

    /// The relay this connection belongs to.
    pub fn relay(&self) -> &Relay {
        &self.relay
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
        self.relay.hub.settled().await;
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
        self.relay.participants_changed(room, Some(self.id));
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
        let files = pending.iter().filter(|p| p.chunks > 0).map(|p| (p.id.to_hex(), p.chunks)).collect();
        let pending = pending.into_iter().map(|p| p.id.to_hex()).collect();
        let limits = self.relay.stated_limits();
        Ok(vec![ServerFrame::Joined { participants: admitted.connected, pending, limits, files }])
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
                    self.relay.participants_changed(room, Some(self.id));
                }
                Ending::Lost => {
                    self.relay.participants_changed(room, Some(self.id));
                    tokio::spawn(leave_after_grace(self.relay.clone(), room, who, generation, true));
                }
                // The store keeps the row; the other instances' counts are read again (this
                // server waits for the bus to take this before it stops: `Hub::drained`).
                Ending::ServerStopping => self.relay.hub.tell_others(&room, EventKind::PresenceChanged),
            },
            Ok(None) => {}
            Err(err) => tracing::error!("store: a connection ended: {err}"),
        }
    }

    /// Message `id` (or a chunk of its file) no longer opens at rest: its key was rotated away,
    /// or its row is corrupt. Nobody can ever read it, so it goes as its time running out would:
    /// the copy held here is dropped, the row purged, and the room told it expired.
    async fn purge_unreadable(&self, room: &RoomHash, id: MessageId) -> Result<(), Refusal> {
        self.relay.hub.release(room, &id);
        if self.relay.store.purge(room, &id).await.map_err(|err| internal(&err))? {
            self.relay.hub.announce(room, None, EventKind::Expired(id));
        }
        Ok(())
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
