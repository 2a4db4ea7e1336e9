//! A participant leaving: after its grace period (it may come back meanwhile, to any instance),
//! at once when its page closed the socket itself, or when it never came back after a restart.
//! The store drops it from the recipients of what it had not viewed and burns what that
//! completes; this instance stops holding what it had to view and tells the room.

use std::sync::Arc;

use super::hub::Hub;
use super::Relay;
use crate::domain::{EventKind, Participant, RoomHash};
use crate::store::Store;

/// Waits out a disconnected participant's grace period (unless `grace` is false); if it did not
/// come back (to this instance or another), it has left.
pub async fn leave_after_grace(relay: Arc<Relay>, room: RoomHash, who: Participant, generation: i64, grace: bool) {
    if grace {
        tokio::time::sleep(relay.session_grace).await;
    }
    match relay.store.leave(&room, &who, generation).await {
        Ok(Some(deleted)) => {
            relay.hub.forget(&room, &who);
            for id in deleted {
                relay.hub.announce(&room, None, EventKind::Deleted(id));
            }
        }
        Ok(None) => {} // it came back
        Err(err) => tracing::error!("store: a participant's grace period ended: {err}"),
    }
}

/// Drops a participant with no participant row (it never came back after a restart) from the
/// recipients of what it had not viewed, and burns the messages every remaining recipient has
/// viewed.
pub async fn participant_left(store: &Store, hub: &Hub, room: &RoomHash, who: &Participant) {
    match store.drop_participant(room, who).await {
        Ok(deleted) => {
            hub.forget(room, who);
            for id in deleted {
                hub.announce(room, None, EventKind::Deleted(id));
            }
        }
        Err(err) => tracing::error!("store: dropping a participant that left: {err}"),
    }
}
