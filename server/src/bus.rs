//! Room events between server instances, over PostgreSQL's LISTEN/NOTIFY.
//!
//! Every instance LISTENs on one channel. A write that causes an event (a message stored,
//! viewed, deleted or expired, someone joining or leaving) NOTIFYs it inside the same
//! transaction, so the others hear of it exactly when it is committed; typing is notified on
//! its own. The two writes of every message's journey (stored, viewed) NOTIFY only when a
//! participant of the room is on another instance (or, for a stored message, when it has no
//! recipients): a NOTIFYing commit serialises with every other one in the database. A notice carries only the sending instance, the room hash, the event kind and
//! message ids or counts: never a payload, a code or a key. Instances deliver other instances'
//! notices to their local sockets as if the event had happened locally.
//!
//! If the LISTEN connection drops, notices sent meanwhile are lost: the listener connects
//! again, and once it is listening it tells every local connection to resync from the store.
//! SQLite has one instance per database file, so it has no bus.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use app::crypto::MessageId;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};

use crate::at_rest::RoomHash;
use crate::startup::Relay;
use crate::ws::hub::EventKind;

/// The one channel every instance listens on.
pub const CHANNEL: &str = "ephemeral_chat_events";
/// Longest wait between attempts to re-establish the LISTEN connection.
const MAX_RECONNECT_WAIT: Duration = Duration::from_secs(5);

/// A server process: random at each start, so a restarted instance is a new one.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct InstanceId(pub [u8; 16]);

impl InstanceId {
    pub fn generate() -> Self {
        Self(app::crypto::random_bytes())
    }
}

impl std::fmt::Debug for InstanceId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "InstanceId({})", hex::encode(&self.0[..4]))
    }
}

/// One room event as it travels between instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Notice {
    pub instance: InstanceId,
    pub room: RoomHash,
    pub kind: EventKind,
}

impl Notice {
    /// `<instance> <room> <kind> [fields]`, hex and decimal, space-separated.
    /// A receipt notice up to its counts, for the database to complete
    /// (`ec_viewed`, `migrations/postgres/0005_recipients_in_the_message_row.sql`).
    pub fn receipt_prefix(instance: InstanceId, room: &RoomHash, id: &MessageId) -> String {
        format!("{} {} receipt {}", hex::encode(instance.0), hex::encode(room.0), id.to_hex())
    }

    pub fn encode(&self) -> String {
        let head = format!("{} {}", hex::encode(self.instance.0), hex::encode(self.room.0));
        match self.kind {
            EventKind::Message(id) => format!("{head} message {}", id.to_hex()),
            EventKind::Deleted(id) => format!("{head} deleted {}", id.to_hex()),
            EventKind::Expired(id) => format!("{head} expired {}", id.to_hex()),
            EventKind::Receipt { id, viewed, of } => {
                format!("{} {viewed} {of}", Self::receipt_prefix(self.instance, &self.room, &id))
            }
            EventKind::Presence(_) | EventKind::PresenceChanged => format!("{head} presence"),
            EventKind::Typing(active) => format!("{head} typing {}", u8::from(active)),
            EventKind::Resync => format!("{head} resync"),
        }
    }

    /// The inverse of [`Notice::encode`]; `None` for anything else.
    pub fn decode(text: &str) -> Option<Self> {
        let mut parts = text.split(' ');
        let instance = InstanceId(decode_hex(parts.next()?)?);
        let room = RoomHash(decode_hex(parts.next()?)?);
        let kind = match parts.next()? {
            "message" => EventKind::Message(MessageId::parse(parts.next()?)?),
            "deleted" => EventKind::Deleted(MessageId::parse(parts.next()?)?),
            "expired" => EventKind::Expired(MessageId::parse(parts.next()?)?),
            "receipt" => EventKind::Receipt {
                id: MessageId::parse(parts.next()?)?,
                viewed: parts.next()?.parse().ok()?,
                of: parts.next()?.parse().ok()?,
            },
            "presence" => EventKind::PresenceChanged,
            "typing" => EventKind::Typing(match parts.next()? {
                "1" => true,
                "0" => false,
                _ => return None,
            }),
            _ => return None,
        };
        if parts.next().is_some() {
            return None;
        }
        Some(Self { instance, room, kind })
    }
}

fn decode_hex<const N: usize>(text: &str) -> Option<[u8; N]> {
    let bytes = hex::decode(text).ok()?;
    bytes.try_into().ok()
}

/// Listens for other instances' notices and delivers them locally, for as long as the server
/// runs. Re-establishes a dropped connection and then has every local connection resync.
///
/// The LISTEN connection comes from a pool of its own: sqlx's listener borrows a connection
/// from the pool it is given and hands it back when dropped, and the store's pool should
/// neither lend one of its connections for good nor get back one that broke under a listener.
///
/// `listening` is told once the first LISTEN is in place: the server waits for that before it
/// accepts connections, so no event falls between starting and listening.
pub async fn listen(relay: Arc<Relay>, options: PgConnectOptions, listening: tokio::sync::oneshot::Sender<()>) {
    let pool = PgPoolOptions::new().max_connections(2).min_connections(0).connect_lazy_with(options);
    let mut wait = Duration::from_millis(100);
    let mut listening = Some(listening);
    // Messages are held for fetches only while this instance hears the others' deletions.
    relay.hub.stop_holding();
    loop {
        let mut listener = match subscribe(&pool).await {
            Ok(listener) => listener,
            Err(err) => {
                tracing::warn!("cannot listen for other instances' events (retrying): {err}");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(MAX_RECONNECT_WAIT);
                continue;
            }
        };
        wait = Duration::from_millis(100);
        // The first time, before the server serves, there is nobody to resync (unless the
        // server gave up waiting and serves already: then the send fails).
        let before_serving = listening.take().is_some_and(|tx| tx.send(()).is_ok());
        if !before_serving {
            // Listening again: whatever was notified meanwhile is in the store.
            relay.bus_reconnects.fetch_add(1, Ordering::Relaxed);
            relay.hub.publish_everywhere(EventKind::Resync);
            tracing::info!("listening for other instances' events again; local rooms resynced");
        }
        relay.hub.start_holding();
        loop {
            match listener.try_recv().await {
                Ok(Some(notification)) => deliver(&relay, notification.payload()).await,
                Ok(None) => break, // the connection was lost
                Err(err) => {
                    tracing::warn!("lost the connection listening for other instances' events: {err}");
                    break;
                }
            }
        }
        // Deletions elsewhere go unheard until it listens again: what is held here may outlive
        // its row meanwhile.
        relay.hub.stop_holding();
    }
}

async fn subscribe(pool: &sqlx::PgPool) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(CHANNEL).await?;
    Ok(listener)
}

async fn deliver(relay: &Relay, payload: &str) {
    match Notice::decode(payload) {
        Some(Notice { instance, room, kind: EventKind::PresenceChanged }) if instance != relay.instance => {
            relay.presence.changed(room, None).await;
        }
        Some(notice) if notice.instance != relay.instance => {
            relay.hub.publish(&notice.room, None, notice.kind);
        }
        Some(_) => {} // our own: already delivered locally
        None => tracing::warn!("ignored a malformed event notice"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_of_notice_survives_encoding() {
        let instance = InstanceId([7; 16]);
        let room = RoomHash([9; 32]);
        let id = MessageId([3; 16]);
        for kind in [
            EventKind::Message(id),
            EventKind::Deleted(id),
            EventKind::Expired(id),
            EventKind::Receipt { id, viewed: 2, of: 5 },
            EventKind::PresenceChanged,
            EventKind::Typing(true),
            EventKind::Typing(false),
        ] {
            let notice = Notice { instance, room, kind };
            assert_eq!(Notice::decode(&notice.encode()), Some(notice), "{kind:?}");
        }
    }

    #[test]
    fn a_notice_carries_only_ids_and_counts() {
        let notice =
            Notice { instance: InstanceId([1; 16]), room: RoomHash([2; 32]), kind: EventKind::PresenceChanged };
        let text = notice.encode();
        assert_eq!(text, format!("{} {} presence", "01".repeat(16), "02".repeat(32)));
        assert!(text.len() < 200, "far below NOTIFY's 8000-byte limit");
    }

    #[test]
    fn malformed_notices_are_refused() {
        let good =
            Notice { instance: InstanceId([1; 16]), room: RoomHash([2; 32]), kind: EventKind::Typing(true) }.encode();
        for bad in [
            "",
            "garbage",
            &good.replace(" typing 1", " typing 2"),
            &good.replace(" typing 1", " shouting 1"),
            &good.replace(" typing 1", " message zz"),
            &good[2..],
            &good.replace(" typing 1", " resync"),
        ] {
            assert_eq!(Notice::decode(bad), None, "{bad:?}");
        }
    }
}
