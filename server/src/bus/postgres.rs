//! The PostgreSQL bus: room events over `LISTEN`/`NOTIFY`, the default over PostgreSQL.
//!
//! Every instance LISTENs on one channel ([`CHANNEL`]). A write that causes an event (a message
//! stored, viewed, deleted or expired, someone joining or leaving) NOTIFYs it inside the same
//! transaction (the store does that), so the others hear of it exactly when it is committed;
//! typing is notified on its own. The two writes of every message's journey (stored, viewed)
//! NOTIFY only when a participant of the room is on another instance (or, for a stored message,
//! when it has no recipients): a NOTIFYing commit serialises with every other one in the
//! database. They read the participants' rows with a lock a participant's move to another
//! instance waits for (`Store::join`), so a participant moving at that moment is either seen
//! on its new instance or finds the message when its join reads what waits.
//!
//! This module only listens: it hands what it hears, and when its link goes down and comes back,
//! to the relay as [`BusEvent`]s, in order. If the LISTEN connection drops, notices sent
//! meanwhile are lost: the listener connects again and says so ([`BusEvent::Listening`] with
//! `again`), and the relay has every local connection resync from the store.

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use tokio::sync::mpsc;

use super::BusEvent;
use crate::domain::bounds::BUS_MAX_RECONNECT_WAIT;
use crate::domain::{InstanceId, Notice, CHANNEL};
use crate::telemetry::metrics;

/// Listens for other instances' notices and passes them on, for as long as `events` has a
/// receiver. Re-establishes a dropped connection, saying so.
///
/// The LISTEN connection comes from a pool of its own: sqlx's listener borrows a connection
/// from the pool it is given and hands it back when dropped, and the store's pool should
/// neither lend one of its connections for good nor get back one that broke under a listener.
pub async fn listen(instance: InstanceId, options: PgConnectOptions, events: mpsc::Sender<BusEvent>) {
    let pool = PgPoolOptions::new().max_connections(2).min_connections(0).connect_lazy_with(options);
    let mut wait = Duration::from_millis(100);
    let mut again = false;
    loop {
        let mut listener = match subscribe(&pool).await {
            Ok(listener) => listener,
            Err(err) => {
                tracing::warn!("cannot listen for other instances' events (retrying): {err}");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(BUS_MAX_RECONNECT_WAIT);
                continue;
            }
        };
        wait = Duration::from_millis(100);
        if events.send(BusEvent::Listening { again }).await.is_err() {
            return;
        }
        again = true;
        loop {
            let heard = match listener.try_recv().await {
                Ok(Some(notification)) => {
                    // Every instance hears every notice, its own included: that is this bus's cost.
                    metrics::counter!(metrics::BUS_RECEIVED).increment(1);
                    Notice::decode(notification.payload())
                }
                Ok(None) => break, // the connection was lost
                Err(err) => {
                    tracing::warn!("lost the connection listening for other instances' events: {err}");
                    break;
                }
            };
            match heard {
                Some(notice) if notice.instance != instance => {
                    if events.send(BusEvent::Notice(notice)).await.is_err() {
                        return;
                    }
                }
                Some(_) => {} // our own: already delivered locally
                None => tracing::warn!("ignored a malformed event notice"),
            }
        }
        if events.send(BusEvent::Lost).await.is_err() {
            return;
        }
    }
}

async fn subscribe(pool: &sqlx::PgPool) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(CHANNEL).await?;
    Ok(listener)
}
