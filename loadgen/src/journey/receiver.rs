//! A room's receiver: fetches each message it is told of, opens and checks it, and confirms it
//! viewed.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use app::crypto::message::open;
use app::crypto::{MessageId, SealedPayload};
use app::protocol::{ClientFrame, ServerFrame};
use futures::stream::SplitStream;
use futures::StreamExt as _;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use super::shared::{RoomState, Shared};
use crate::client::{self, Ws};

/// A receiver's socket: a notice is fetched once, a payload opened once (a second is a duplicate),
/// checked against the text's length, timed, and confirmed `viewed`.
pub(super) async fn read_as_receiver(
    mut stream: SplitStream<Ws>,
    out: mpsc::Sender<Message>,
    room: Arc<RoomState>,
    shared: Arc<Shared>,
    payload: usize,
) {
    let mut fetched = HashSet::new();
    let mut opened = HashSet::new();
    while let Some(Ok(message)) = stream.next().await {
        let reply = match client::parse(&message) {
            Some(ServerFrame::Message { message_id }) if fetched.insert(message_id.clone()) => {
                if let Some(id) = MessageId::parse(&message_id) {
                    room.mark(&id, |timeline| timeline.noticed = Some(Instant::now()));
                }
                ClientFrame::Fetch { message_id }
            }
            Some(ServerFrame::Payload { message_id, sealed }) => {
                let now = Instant::now();
                if !opened.insert(message_id.clone()) {
                    shared.metrics().duplicates += 1;
                    continue;
                }
                let id = MessageId::parse(&message_id);
                let body =
                    id.zip(SealedPayload::from_base64(&sealed).ok()).and_then(|(id, s)| open(&room.keys, &id, &s).ok());
                let started = id.and_then(|id| {
                    room.mark(&id, |timeline| timeline.delivered = Some(now)).map(|timeline| timeline.scheduled)
                });
                let mut metrics = shared.metrics();
                match (body, started) {
                    (Some(body), Some(started)) if body.text.len() == payload => {
                        metrics.delivery.push(now - started);
                        metrics.delivered += 1;
                    }
                    _ => {
                        metrics.open_failures += 1;
                        continue;
                    }
                }
                ClientFrame::Viewed { message_id }
            }
            Some(ServerFrame::Error { code, .. }) => {
                shared.error(format!("{code:?}"));
                continue;
            }
            _ => continue,
        };
        if out.send(client::text(&reply)).await.is_err() {
            return;
        }
    }
}
