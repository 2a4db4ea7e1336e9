//! A room's receiver: a page (the room model) that opens each message as it arrives; each
//! plaintext is checked against the text's length and timed.

use std::sync::Arc;
use std::time::Instant;

use app::room::{CardState, RoomEvent, RoomModel};
use futures::stream::SplitStream;
use futures::StreamExt as _;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use super::shared::{RoomState, Shared};
use crate::client::{self, Ws};
use crate::page::{at_once, Step};

/// A receiver's socket, read by its page: a notice is opened at once, a plaintext timed and
/// checked, a message shown twice counted as a duplicate.
pub(super) async fn read_as_receiver(
    mut stream: SplitStream<Ws>,
    out: mpsc::Sender<Message>,
    room: Arc<RoomState>,
    shared: Arc<Shared>,
    payload: usize,
    mut page: RoomModel,
) {
    while let Some(Ok(message)) = stream.next().await {
        let Message::Text(text) = &message else { continue };
        let mut frames = Vec::new();
        let effects = page.on_text(text.as_str());
        at_once(&mut page, effects, |page, step| match step {
            Step::Frame(frame) => {
                frames.push(frame);
                Vec::new()
            }
            Step::Event(RoomEvent::Arrived(id)) => {
                room.mark(&id, |timeline| timeline.noticed = Some(Instant::now()));
                page.open(id)
            }
            Step::Event(RoomEvent::Opened(id)) => {
                let now = Instant::now();
                let length = page.card(id).and_then(|card| match &card.state {
                    CardState::Open(text) => Some(text.len()),
                    _ => None,
                });
                let started = room.mark(&id, |timeline| timeline.delivered = Some(now)).map(|t| t.scheduled);
                let mut metrics = shared.metrics();
                match (length, started) {
                    (Some(length), Some(started)) if length == payload => {
                        metrics.delivery.push(now - started);
                        metrics.delivered += 1;
                    }
                    _ => metrics.open_failures += 1,
                }
                Vec::new()
            }
            Step::Event(RoomEvent::SeenAgain(_)) => {
                shared.metrics().duplicates += 1;
                Vec::new()
            }
            Step::Event(RoomEvent::Unreadable(_)) => {
                shared.metrics().open_failures += 1;
                Vec::new()
            }
            Step::Event(RoomEvent::Refused(code)) => {
                shared.error(format!("{code:?}"));
                Vec::new()
            }
            // Journeys carry text: no files, so no chunks.
            Step::Event(_) | Step::Binary(_) => Vec::new(),
        });
        for frame in frames {
            if out.send(client::text(&frame)).await.is_err() {
                return;
            }
        }
    }
}
