//! The relay's background tasks. Each is given only what it uses, runs until the server stops
//! (its handle is aborted then) and logs its failures without a row value in them.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::departure::participant_left;
use super::hub::Hub;
use super::presence::Presence;
use crate::bus::BusEvent;
use crate::domain::bounds::{
    ABANDONED_UPLOAD_AGE, DEAD_INSTANCES_KEPT, GONE_REMEMBERED, HEARTBEAT_INTERVAL, MAX_SWEEP_INTERVAL,
};
use crate::domain::{now_ms, EventKind, InstanceId};
use crate::store::Store;

/// Deletes expired messages now and then, telling their rooms (their files' chunks go with
/// them), and the chunks of uploads abandoned by an instance that died.
pub async fn sweep_expired(store: Store, hub: Arc<Hub>, message_ttl: Duration) {
    let period = (message_ttl / 4).clamp(Duration::from_secs(1), MAX_SWEEP_INTERVAL);
    let mut tick = tokio::time::interval(period);
    loop {
        tick.tick().await;
        match store.delete_expired().await {
            Ok(expired) => {
                for (room, id) in expired {
                    hub.announce(&room, None, EventKind::Expired(id));
                }
            }
            Err(err) => tracing::error!("expiry sweep failed: {err}"),
        }
        let abandoned_before = now_ms().saturating_sub(millis(ABANDONED_UPLOAD_AGE));
        if let Err(err) = store.purge_abandoned_uploads(abandoned_before).await {
            tracing::error!("sweep of abandoned uploads failed: {err}");
        }
    }
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// After a restart, recipients are named in the store but nobody is connected: those that do
/// not come back within the grace period have left, as if they had left at the restart.
pub async fn drop_absent_recipients(store: Store, hub: Arc<Hub>, session_grace: Duration) {
    tokio::time::sleep(session_grace).await;
    let named = match store.recipient_participants().await {
        Ok(named) => named,
        Err(err) => return tracing::error!("cannot list recipients after start-up: {err}"),
    };
    for (room, who) in named {
        match store.is_participant(&room, &who).await {
            Ok(true) => {}
            Ok(false) => participant_left(&store, &hub, &room, &who).await,
            Err(err) => tracing::error!("cannot check a recipient after start-up: {err}"),
        }
    }
}

/// Renews this instance's rows, and drops those of instances that stopped renewing theirs (they
/// died without cleaning up), telling the rooms here what that changed.
///
/// An instance's death is seen here first when its heartbeat stops (well before its
/// participants are dropped, after their grace period): every room here that one of its
/// participants was in resyncs from the store at once. With NATS, it may have died between a
/// commit and its publish, and the resync delivers what that publish would have.
pub async fn heartbeat(
    store: Store,
    hub: Arc<Hub>,
    presence: Presence,
    message_ttl: Duration,
    session_grace: Duration,
) {
    let mut tick = tokio::time::interval(HEARTBEAT_INTERVAL);
    let mut known_dead: HashSet<InstanceId> = HashSet::new();
    loop {
        tick.tick().await;
        // Every message fetched that long ago has expired, and its gone-notice aged out too.
        hub.forget_fetched_before(message_ttl + GONE_REMEMBERED);
        hub.charges.expire(std::time::Instant::now());
        if let Err(err) = store.heartbeat().await {
            tracing::error!("participant heartbeat failed: {err}");
        }
        match store.dead_instances(DEAD_INSTANCES_KEPT).await {
            Ok(dead) => {
                known_dead.retain(|instance| dead.iter().any(|(d, _)| d == instance));
                for (instance, rooms) in dead {
                    if known_dead.insert(instance) {
                        rooms.iter().for_each(|room| hub.publish(room, None, EventKind::Resync));
                        tracing::warn!(rooms = rooms.len(), "an instance died; the rooms here it served resync");
                    }
                }
            }
            Err(err) => tracing::error!("looking for instances that died failed: {err}"),
        }
        match store.reap(session_grace).await {
            Ok(reaped) => {
                for room in reaped {
                    for id in room.deleted {
                        hub.announce(&room.room, None, EventKind::Deleted(id));
                    }
                    presence.changed(room.room, None);
                    hub.tell_others(&room.room, EventKind::PresenceChanged);
                }
            }
            Err(err) => tracing::error!("dropping vanished instances' participants failed: {err}"),
        }
    }
}

/// Delivers what the bus hears from the other instances to the connections here, as if it had
/// happened here. Messages are held for fetches only while this instance hears the others'
/// deletions; after the link was down, every room here resyncs from the store.
///
/// `ready` is told at the first `Listening`: the server waits for that before it accepts
/// connections, so no event falls between starting and listening. (If it stopped waiting and
/// serves already, that first `Listening` resyncs as a later one would.)
pub async fn hear_other_instances(
    hub: Arc<Hub>,
    presence: Presence,
    reconnects: Arc<AtomicU64>,
    heard: Arc<AtomicU64>,
    mut bus: mpsc::Receiver<BusEvent>,
    ready: oneshot::Sender<()>,
) {
    let mut ready = Some(ready);
    hub.stop_holding();
    while let Some(event) = bus.recv().await {
        if let BusEvent::Notice(_) = event {
            heard.fetch_add(1, Ordering::Relaxed);
        }
        match event {
            BusEvent::Listening { again } => {
                let before_serving = ready.take().is_some_and(|tx| tx.send(()).is_ok());
                if again || !before_serving {
                    reconnects.fetch_add(u64::from(again), Ordering::Relaxed);
                    hub.publish_everywhere(EventKind::Resync);
                    tracing::info!("listening for other instances' events again; local rooms resynced");
                }
                hub.start_holding();
            }
            // Deletions elsewhere go unheard until it listens again: what is held here may
            // outlive its row meanwhile.
            BusEvent::Lost => hub.stop_holding(),
            BusEvent::Notice(notice) if notice.kind == EventKind::PresenceChanged => {
                presence.changed(notice.room, None);
            }
            BusEvent::Notice(notice) => hub.hear(&notice.room, notice.kind, None),
            BusEvent::Stored(notice, message) => hub.hear(&notice.room, notice.kind, Some(*message)),
            BusEvent::ResyncAll => hub.publish_everywhere(EventKind::Resync),
        }
    }
}
