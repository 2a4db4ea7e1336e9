//! One WebSocket connection: reads client frames, applies them to the store and the hub, and
//! forwards the room's events. One task owns the socket; nothing here outlives the connection.

use std::sync::Arc;
use std::time::Instant;

use app::crypto::{MessageId, RoomId, SealedPayload};
use app::protocol::{ClientFrame, ErrorCode, ServerFrame};
use axum::extract::ws::{CloseFrame, Message, WebSocket};
use subtle::ConstantTimeEq;
use tokio::sync::broadcast::{self, error::RecvError};

use super::held::HeldMessage;
use super::hub::{ConnectionId, EventKind, Participant, RoomEvent};
use super::limits::TokenBucket;
use super::{CLOSE_GRACE, PING_INTERVAL};
use crate::at_rest::{AtRestError, RoomHash};
use crate::startup::Relay;
use crate::store::{now_ms, Inserted, NewMessage, StoreError, Viewed};

/// WebSocket close code 1009: message too big (RFC 6455 §7.4.1).
const CLOSE_TOO_BIG: u16 = 1009;
/// WebSocket close code 1001: going away (idle timeout).
const CLOSE_GOING_AWAY: u16 = 1001;
/// WebSocket close code 1008: policy violation (a flood past the rate limit).
const CLOSE_POLICY: u16 = 1008;

/// A refused frame: the code to send back.
type Refusal = ErrorCode;

/// The room a connection joined, as which participant.
#[derive(Clone, Copy)]
struct Joined {
    room: RoomHash,
    who: Participant,
}

/// One connection's protocol state.
pub struct Session {
    relay: Arc<Relay>,
    id: ConnectionId,
    joined: Option<Joined>,
    /// The participant count this connection was last told: presence is sent only when it
    /// differs (counts are re-read after every change, so the same one can come more than once).
    told_presence: Option<u32>,
    /// Whether the count read after this connection's own join has arrived. Counts published
    /// before it were read before the join and are older than the `joined` count: skipped.
    presence_current: bool,
    /// Messages this connection stored that it has not yet been told are gone, with when they
    /// expire: if it falls behind its room's channel and misses their `deleted` or `expired`,
    /// the resync tells it (bounded by the room's backlog limit).
    sent: std::collections::HashMap<MessageId, Instant>,
    /// Of those, the ones a resync said are gone, and when: their own `deleted` or `expired`
    /// event may still be queued in the room's channel (or on its way from another instance),
    /// and is then not passed on a second time. Kept until that event comes, or for
    /// [`TOLD_GONE_KEPT`] if it never does (a later lag skipped it).
    told_gone: std::collections::HashMap<MessageId, Instant>,
}

/// How long a resync remembers telling a message gone. Its event, if still to come, was queued
/// in the room's channel or notified by another instance before the resync read the store.
const TOLD_GONE_KEPT: std::time::Duration = std::time::Duration::from_secs(60);

/// Serves one upgraded socket until it closes, idles out or breaks.
///
/// This future lives as long as the connection, so it is kept small: the work on a frame (store
/// calls, whose futures are large) is boxed and exists only while that frame is handled. An idle
/// connection then costs little more than its socket buffers (see BENCHMARKS.md).
pub async fn run(mut socket: WebSocket, relay: Arc<Relay>) {
    let mut session = Session {
        id: relay.hub.connection_id(),
        relay,
        joined: None,
        told_presence: None,
        presence_current: false,
        sent: Default::default(),
        told_gone: Default::default(),
    };
    let mut events: Option<broadcast::Receiver<RoomEvent>> = None;
    let limits = session.relay.limits;
    let mut ping = tokio::time::interval(PING_INTERVAL.min(limits.idle_timeout / 2));
    let mut last_heard = Instant::now();
    let mut bucket = TokenBucket::new(limits.rate_limit_per_second, limits.rate_limit_burst);
    // Frames refused in a row for the rate limit; a burst's worth more means a flood.
    let mut refused_in_a_row = 0u32;
    // Whether the page closed the socket itself (Leave, or the page going away). Its session
    // token lives only in the page's memory, so it cannot come back: no grace period.
    let mut page_closed = false;
    loop {
        tokio::select! {
            incoming = socket.recv() => {
                // A read error: a broken socket, or a frame past the hard limit.
                let Some(Ok(message)) = incoming else { break };
                last_heard = Instant::now();
                if matches!(message, Message::Text(_) | Message::Binary(_)) {
                    if bucket.try_take() {
                        refused_in_a_row = 0;
                    } else {
                        refused_in_a_row += 1;
                        if refused_in_a_row > limits.rate_limit_burst {
                            close_gracefully(&mut socket, CLOSE_POLICY, "rate limit").await;
                            break;
                        }
                        if send(&mut socket, &ServerFrame::error(ErrorCode::RateLimited)).await.is_err() {
                            break;
                        }
                        continue;
                    }
                }
                if let Message::Text(text) = &message {
                    if text.len() > limits.max_frame_size as usize {
                        let _ = send(&mut socket, &ServerFrame::error(ErrorCode::FrameTooLarge)).await;
                        close_gracefully(&mut socket, CLOSE_TOO_BIG, "frame too large").await;
                        break;
                    }
                }
                let replies = match message {
                    Message::Text(text) => Box::pin(session.handle_text(text.as_str(), &mut events)).await,
                    Message::Binary(_) => vec![ServerFrame::error(ErrorCode::BinaryFrame)],
                    Message::Close(_) => {
                        page_closed = true;
                        break;
                    }
                    Message::Ping(_) | Message::Pong(_) => Vec::new(),
                };
                if send_all(&mut socket, &replies).await.is_err() {
                    break;
                }
            }
            event = next_event(&mut events) => {
                let frames = match event {
                    Ok(RoomEvent { kind: EventKind::Resync, .. }) | Err(RecvError::Lagged(_)) => Box::pin(session.resync()).await,
                    Ok(event) => session.frame_for(event).into_iter().collect(),
                    Err(RecvError::Closed) => break,
                };
                if send_all(&mut socket, &frames).await.is_err() {
                    break;
                }
            }
            _ = ping.tick() => {
                if last_heard.elapsed() > limits.idle_timeout {
                    close_gracefully(&mut socket, CLOSE_GOING_AWAY, "idle").await;
                    break;
                }
                if socket.send(Message::Ping(Default::default())).await.is_err() {
                    break;
                }
            }
        }
    }
    if let Some(joined) = session.joined {
        drop(events);
        Box::pin(session.disconnect(joined, page_closed)).await;
    }
}

/// Waits out a disconnected participant's grace period; if it did not come back (to this
/// instance or another), it has left.
async fn leave_after_grace(relay: Arc<Relay>, joined: Joined, generation: i64, grace: bool) {
    if grace {
        tokio::time::sleep(relay.session_grace).await;
    }
    match relay.store.leave(&joined.room, &joined.who, generation).await {
        Ok(Some(deleted)) => {
            relay.hub.forget(&joined.room, &joined.who);
            for id in deleted {
                relay.hub.publish(&joined.room, None, EventKind::Deleted(id));
            }
        }
        Ok(None) => {} // it came back
        Err(err) => tracing::error!("store: a participant's grace period ended: {err}"),
    }
}

/// Drops a participant with no participant row (it never came back after a restart) from the
/// recipients of what it had not viewed, and burns the messages every remaining recipient has
/// viewed.
pub async fn participant_left(relay: &Relay, room: &RoomHash, who: &Participant) {
    match relay.store.drop_participant(room, who).await {
        Ok(deleted) => {
            relay.hub.forget(room, who);
            for id in deleted {
                relay.hub.publish(room, None, EventKind::Deleted(id));
            }
        }
        Err(err) => tracing::error!("store: dropping a participant that left: {err}"),
    }
}

async fn next_event(events: &mut Option<broadcast::Receiver<RoomEvent>>) -> Result<RoomEvent, RecvError> {
    match events {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn send(socket: &mut WebSocket, frame: &ServerFrame) -> Result<(), axum::Error> {
    socket.send(Message::Text(frame.to_json().into())).await
}

async fn send_all(socket: &mut WebSocket, frames: &[ServerFrame]) -> Result<(), axum::Error> {
    for frame in frames {
        send(socket, frame).await?;
    }
    Ok(())
}

/// Sends a close frame and waits (briefly) for the client's reply, so the close code arrives
/// instead of a reset from unread data.
async fn close_gracefully(socket: &mut WebSocket, code: u16, reason: &'static str) {
    if socket.send(Message::Close(Some(CloseFrame { code, reason: reason.into() }))).await.is_err() {
        return;
    }
    let _ = tokio::time::timeout(CLOSE_GRACE, async {
        while let Some(Ok(message)) = socket.recv().await {
            if matches!(message, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
}

impl Session {
    /// Applies one text frame; returns the frames to send back to this connection.
    async fn handle_text(
        &mut self,
        text: &str,
        events: &mut Option<broadcast::Receiver<RoomEvent>>,
    ) -> Vec<ServerFrame> {
        let Ok(frame) = serde_json::from_str::<ClientFrame>(text) else {
            return vec![ServerFrame::error(ErrorCode::BadFrame)];
        };
        let result = match frame {
            ClientFrame::Join { room_id, session } => self.join(&room_id, &session, events).await,
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

    fn joined(&self) -> Result<Joined, Refusal> {
        self.joined.ok_or(ErrorCode::NotJoined)
    }

    async fn join(
        &mut self,
        room_id: &str,
        session: &str,
        events: &mut Option<broadcast::Receiver<RoomEvent>>,
    ) -> Result<Vec<ServerFrame>, Refusal> {
        if self.joined.is_some() {
            return Err(ErrorCode::AlreadyJoined);
        }
        let room = RoomHash(RoomId::parse(room_id).ok_or(ErrorCode::BadRoomId)?.storage_hash());
        let token = MessageId::parse(session).ok_or(ErrorCode::BadSession)?; // 16 bytes of hex, like an id
        let who = Participant::from_token(&token.0);
        // Subscribe before joining and before reading what waits, so an event from then on is
        // heard, and a message stored meanwhile is in the pending list, heard, or both.
        let rx = self.relay.hub.subscribe(room);
        let max = self.relay.limits.max_room_participants;
        let joined = match self.relay.store.join(&room, &who, self.id, max).await {
            Ok(Some(joined)) => joined,
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
                self.disconnect(Joined { room, who }, false).await;
                return Err(internal(&err));
            }
        };
        self.joined = Some(Joined { room, who });
        self.told_presence = Some(joined.connected);
        self.presence_current = false;
        *events = Some(rx);
        let pending = pending.into_iter().map(MessageId::to_hex).collect();
        Ok(vec![ServerFrame::Joined { participants: joined.connected, pending }])
    }

    /// This connection leaves `joined`: the participant enters its grace period (unless
    /// another connection took it over; none if the page closed the socket itself, which means
    /// it is gone for good), and the room hears how many are left.
    async fn disconnect(&mut self, joined: Joined, page_closed: bool) {
        self.joined = None;
        self.relay.hub.unsubscribe(&joined.room);
        match self.relay.store.disconnect(&joined.room, &joined.who, self.id).await {
            Ok(Some(generation)) if page_closed => {
                // Gone for good: leave before the room hears of it, so a join that follows the
                // new count finds the place free.
                leave_after_grace(self.relay.clone(), joined, generation, false).await;
                self.relay.presence.changed(joined.room, Some(self.id)).await;
            }
            Ok(Some(generation)) => {
                self.relay.presence.changed(joined.room, Some(self.id)).await;
                tokio::spawn(leave_after_grace(self.relay.clone(), joined, generation, true));
            }
            Ok(None) => {}
            Err(err) => tracing::error!("store: a connection ended: {err}"),
        }
    }

    async fn send(&mut self, message_id: &str, sealed: &str) -> Result<Vec<ServerFrame>, Refusal> {
        let Joined { room, who } = self.joined()?;
        let id = parse_id(message_id)?;
        let sealed = SealedPayload::from_base64(sealed).map_err(|err| match err {
            app::crypto::message::PayloadError::Encoding => ErrorCode::BadEncoding,
            app::crypto::message::PayloadError::Size => ErrorCode::BadSize,
            app::crypto::message::PayloadError::Version => ErrorCode::BadVersion,
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
        let Joined { room, who } = self.joined()?;
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
        if waiting.sender == who {
            return Err(ErrorCode::OwnMessage);
        }
        if waiting.recipients > 0 && !waiting.is_recipient {
            return Err(ErrorCode::NotRecipient);
        }
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
        let Joined { room, who } = self.joined()?;
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
        let room = self.joined()?.room;
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
        let Some(joined) = self.joined else { return Vec::new() };
        let pending = self.relay.store.pending_for(&joined.room, &joined.who).await;
        let connected = self.relay.store.connected(&joined.room).await;
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
            match self.relay.store.exists(&joined.room, &id).await {
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
