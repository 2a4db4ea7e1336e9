//! The operations on a room's messages a joined connection asks for: send (sealed at rest,
//! stored, announced), fetch (opened from rest for a recipient), viewed (a receipt, or the
//! burn), and typing.

use std::time::{Duration, Instant};

use app::crypto::message::PayloadError;
use app::crypto::SealedPayload;
use app::protocol::{ErrorCode, ServerFrame};
use subtle::ConstantTimeEq;

use super::{internal, parse_id, Connection, Member, Refusal};
use crate::at_rest::AtRestError;
use crate::domain::{
    now_ms, EventKind, FetchRefusal, Inserted, MessageId, NewMessage, RoomHash, StoredMessage, Viewed,
};
use crate::relay::hub::FetchedState;
use crate::relay::quota::Reservation;

impl Connection {
    /// Seals a client payload at rest, stores it for the room's other participants and tells them.
    /// It waits unread for `ttl` seconds if its sender said so, at most the relay's TTL.
    pub(super) async fn send(
        &mut self,
        message_id: &str,
        sealed: &str,
        ttl: Option<u32>,
    ) -> Result<Vec<ServerFrame>, Refusal> {
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
        let ttl = match ttl.map(|seconds| Duration::from_secs(seconds.into())) {
            None => self.relay.message_ttl,
            Some(ttl) if !ttl.is_zero() && ttl <= self.relay.message_ttl => ttl,
            Some(_) => return Err(ErrorCode::BadTtl),
        };
        // A file card names the chunks its upload stored here; a text message has none.
        let chunks = self.uploaded_chunks(&room, &id, sealed.is_file_card()).await?;
        let body = self.relay.keys.seal(&room.0, &id, &sealed);
        let (charged, _reservation) = self.reserve_storage(room, id, body.len() as u64, ttl).await?;
        let message = NewMessage {
            room: &room,
            id: &id,
            body: &body,
            ttl,
            sender: &who,
            max_pending: self.relay.limits.max_pending_per_room,
            chunks,
        };
        // Its place among the messages held here is reserved before the insert commits, so
        // that a deletion heard from another instance right after the commit is not missed.
        let reserved = self.relay.hub.reserve(&room, id);
        let stored_at = now_ms();
        let inserted = self.relay.store.insert(message).await;
        if !matches!(inserted, Ok(Inserted::New { .. })) {
            if reserved {
                self.relay.hub.release(&room, &id);
            }
            if charged {
                self.relay.hub.charges.refund(&room, &id);
            }
        }
        match inserted.map_err(|err| internal(&err))? {
            Inserted::New { recipients, expires_at } => {
                self.sent.insert(id, Instant::now() + ttl);
                self.upload_stored(&id);
                let message = StoredMessage { body, sender: who, recipients, expires_at };
                let kind = EventKind::Message { id, chunks };
                self.relay.hub.announce_stored(&room, Some(self.id), kind, message, stored_at, reserved);
            }
            Inserted::RoomBacklogFull => return Err(ErrorCode::TooManyPending),
            Inserted::Exists(existing) => {
                let same = match self.relay.keys.open(&room.0, &id, &existing) {
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

    /// Reserves `bytes` of the relay's storage (held until the insert has answered) and of this
    /// client block's share for a message about to be stored; `true` if the block was charged
    /// now (a resend was charged before). A resend of a message already stored is let through
    /// full quotas: the store answers it as a duplicate and stores nothing.
    async fn reserve_storage(
        &self,
        room: RoomHash,
        id: MessageId,
        bytes: u64,
        ttl: Duration,
    ) -> Result<(bool, Option<Reservation>), Refusal> {
        let expires = Instant::now() + ttl;
        let charged = match self.relay.hub.charges.charge(self.client, room, id, bytes, expires) {
            Ok(charged) => charged,
            Err(_) if self.already_stored(room, id).await? => return Ok((false, None)),
            Err(_) => return Err(ErrorCode::QuotaExceeded),
        };
        let store = &self.relay.store;
        let refused = match self.relay.stored.reserve(bytes, || store.stored_bytes()).await {
            Ok(Ok(reservation)) => return Ok((charged, Some(reservation))),
            Ok(Err(_)) if self.already_stored(room, id).await? => return Ok((charged, None)),
            Ok(Err(_)) => ErrorCode::StorageFull,
            Err(err) => internal(&err),
        };
        if charged {
            self.relay.hub.charges.refund(&room, &id);
        }
        Err(refused)
    }

    async fn already_stored(&self, room: RoomHash, id: MessageId) -> Result<bool, Refusal> {
        self.relay.store.exists(&room, &id).await.map_err(|err| internal(&err))
    }

    /// The payload of a message waiting for this participant, opened from rest.
    pub(super) async fn fetch(&mut self, message_id: &str) -> Result<Vec<ServerFrame>, Refusal> {
        let id = parse_id(message_id)?;
        let Member { room, who } = self.member()?;
        let mut held = self.relay.hub.held(&room, &id, &who, now_ms());
        loop {
            let from_memory = held.is_some();
            let waiting = match held.take() {
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
            return match self.relay.keys.open(&room.0, &id, &waiting.body) {
                Ok(sealed) => {
                    self.relay.hub.mark_fetched(&room, &who, id);
                    Ok(vec![ServerFrame::Payload { message_id: id.to_hex(), sealed: sealed.to_base64() }])
                }
                // A copy held here that does not open (one another instance's notice carried,
                // damaged on its way) says nothing of the row: drop it, and read the row.
                Err(_) if from_memory => {
                    tracing::warn!("a held message failed at-rest authentication; reading the store instead");
                    self.relay.hub.release(&room, &id);
                    continue;
                }
                Err(err) => {
                    // Unreadable at rest (key rotated away, or corrupt): purge it as expired.
                    if matches!(err, AtRestError::Corrupt) {
                        tracing::error!("a stored message failed at-rest authentication; purging it");
                    }
                    self.purge_unreadable(&room, id).await?;
                    Ok(Vec::new())
                }
            };
        }
    }

    /// This participant viewed a fetched message: the room hears a receipt, or the burn.
    pub(super) async fn viewed(&mut self, message_id: &str) -> Result<Vec<ServerFrame>, Refusal> {
        let id = parse_id(message_id)?;
        let Member { room, who } = self.member()?;
        match self.relay.hub.fetched_state(&room, &who, &id) {
            FetchedState::NotFetched => return Err(ErrorCode::NotFetched),
            // Burned or expired since its fetch: the answer whoever burned it got.
            FetchedState::Gone => return Ok(vec![ServerFrame::Deleted { message_id: id.to_hex() }]),
            FetchedState::Waiting => {}
        }
        match self.relay.store.viewed(&room, &id, &who).await.map_err(|err| internal(&err))? {
            Viewed::Deleted => {
                // Everyone, this connection included, hears it from the room.
                self.relay.hub.announce(&room, None, EventKind::Deleted(id));
                Ok(Vec::new())
            }
            Viewed::Progress { viewed, of } => {
                self.relay.hub.announce(&room, None, EventKind::Receipt { id, viewed, of });
                Ok(Vec::new())
            }
            // Already gone: the same answer as whoever burned it got.
            Viewed::Gone => {
                self.relay.hub.release(&room, &id);
                self.relay.hub.fetched_gone(&room, id);
                Ok(vec![ServerFrame::Deleted { message_id: id.to_hex() }])
            }
        }
    }

    /// Tells the room (on every instance) whether this participant is typing.
    pub(super) async fn typing(&mut self, active: bool) -> Result<Vec<ServerFrame>, Refusal> {
        let room = self.member()?.room;
        self.relay.hub.announce(&room, Some(self.id), EventKind::Typing(active));
        self.relay.store.announce(&room, EventKind::Typing(active)).await.map_err(|err| internal(&err))?;
        Ok(Vec::new())
    }
}
