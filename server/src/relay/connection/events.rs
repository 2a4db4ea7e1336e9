//! What the room's events tell one connection: the frame, if any, for each event, and after it
//! fell behind (or events from other instances may have been missed) a resync from the store.

use std::time::{Duration, Instant};

use app::protocol::ServerFrame;
use tokio::sync::broadcast::error::RecvError;

use super::{internal, Connection, Member};
use crate::domain::{EventKind, MessageId, Pending};
use crate::relay::hub::RoomEvent;

/// How long a resync remembers telling a message gone. Its event, if still to come, was queued
/// in the room's channel or notified by another instance before the resync read the store.
pub(super) const TOLD_GONE_KEPT: Duration = Duration::from_secs(60);

impl Connection {
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

    /// The frame, if any, this connection gets for a room event.
    fn frame_for(&mut self, event: RoomEvent) -> Option<ServerFrame> {
        let own = event.origin == Some(self.id);
        match event.kind {
            EventKind::Message { id, chunks } if !own => Some(ServerFrame::Message { message_id: id.to_hex(), chunks }),
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
                .map(|Pending { id, chunks }| ServerFrame::Message { message_id: id.to_hex(), chunks })
                .chain(self.presence(participants))
                .collect(),
            (Err(err), _) | (_, Err(err)) => return vec![ServerFrame::error(internal(&err))],
        };
        // A second lag can come before the first resync's events are through: what the first
        // told stays remembered (forgetting it passed those events on twice).
        self.told_gone.retain(|_, told| told.elapsed() < TOLD_GONE_KEPT);
        if self.sent.is_empty() {
            return frames;
        }
        let stored = match self.relay.store.stored_ids(&room).await {
            Ok(stored) => stored,
            Err(err) => return vec![ServerFrame::error(internal(&err))],
        };
        let gone: Vec<(MessageId, Instant)> =
            self.sent.iter().filter(|(id, _)| !stored.contains(id)).map(|(id, at)| (*id, *at)).collect();
        for (id, expires) in gone {
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
