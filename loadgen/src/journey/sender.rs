//! A room's sender: a page (the room model) that sends its messages (on a schedule, or as fast
//! as its window allows), and hears each acknowledged (`sent`) and burned (`deleted`), which
//! ends its journey.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use app::crypto::MessageId;
use app::room::{RoomEvent, RoomModel};
use futures::stream::SplitStream;
use futures::StreamExt as _;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use super::shared::{RoomState, Shared};
use super::JourneyOptions;
use crate::client::{self, Ws};
use crate::page::{at_once, Step};
use crate::stages::Timeline;

/// When one room's sender sends: its place among the rooms, the run's start, and the options.
pub(super) struct SendPlan {
    pub(super) room_index: usize,
    pub(super) rooms: usize,
    pub(super) start: Instant,
    pub(super) options: JourneyOptions,
}

impl SendPlan {
    /// In rate mode, when message `i` of this room is due: rooms take turns, so the total is
    /// `rate` messages per second, evenly spread.
    fn due(&self, i: usize) -> Option<Instant> {
        let rate = self.options.rate?;
        Some(self.start + Duration::from_secs_f64((i * self.rooms + self.room_index) as f64 / rate))
    }
}

/// Seals and sends the room's messages through its page, each when it is due (open loop) or
/// when the window has room (closed loop).
pub(super) async fn send_all(
    plan: SendPlan,
    out: mpsc::Sender<Message>,
    room: Arc<RoomState>,
    shared: Arc<Shared>,
    page: Arc<Mutex<RoomModel>>,
) {
    let text = "x".repeat(plan.options.payload);
    for i in 0..plan.options.messages {
        let due = plan.due(i);
        if let Some(due) = due {
            tokio::time::sleep_until(due.into()).await;
        }
        let Ok(permit) = room.window.acquire().await else { return };
        permit.forget(); // given back when the `deleted` notice comes
        let started = due.unwrap_or_else(Instant::now);
        let mut frames = Vec::new();
        let sent = {
            let mut page = lock(&page);
            let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
            page.send(&text, now_ms).map(|effects| {
                let id = page.cards().last().map(|card| card.id);
                at_once(&mut page, effects, |_, step| {
                    if let Step::Frame(frame) = step {
                        frames.push(frame);
                    }
                    Vec::new()
                });
                id
            })
        };
        let id = match sent {
            Ok(Some(id)) => id,
            Ok(None) => return shared.error("client: the page lost its message".into()),
            Err(err) => return shared.error(format!("client: {err}")),
        };
        // Written before it goes: its `sent` can come back before this task runs again.
        room.timelines().insert(id, Timeline { written: Some(Instant::now()), ..Timeline::new(started) });
        for frame in frames {
            if out.send(client::text(&frame)).await.is_err() {
                return shared.error("client: socket closed while sending".into());
            }
        }
        shared.sent.fetch_add(1, Ordering::Relaxed);
    }
}

/// The sender's socket, read by its page: `sent` marks a message acknowledged, its burn ends its
/// journey and frees its place in the window.
pub(super) async fn read_as_sender(
    mut stream: SplitStream<Ws>,
    outbox: mpsc::Sender<Message>,
    room: Arc<RoomState>,
    shared: Arc<Shared>,
    page: Arc<Mutex<RoomModel>>,
) {
    while let Some(Ok(message)) = stream.next().await {
        let Message::Text(text) = &message else { continue };
        let mut frames = Vec::new();
        {
            let mut page = lock(&page);
            let effects = page.on_text(text.as_str());
            at_once(&mut page, effects, |_, step| {
                match step {
                    Step::Frame(frame) => frames.push(frame),
                    Step::Event(RoomEvent::Stored(id)) => {
                        room.mark(&id, |timeline| timeline.acked = Some(Instant::now()));
                    }
                    Step::Event(RoomEvent::Burned(id)) => burned(&room, &shared, &id),
                    Step::Event(RoomEvent::Refused(code)) => shared.error(format!("{code:?}")),
                    Step::Event(_) | Step::Binary(_) => {}
                }
                Vec::new()
            });
        }
        for frame in frames {
            if outbox.send(client::text(&frame)).await.is_err() {
                return;
            }
        }
    }
}

/// A message's journey is over: timed, and its place in the window given back.
fn burned(room: &RoomState, shared: &Shared, id: &MessageId) {
    let now = Instant::now();
    let timeline = room.timelines().remove(id);
    let mut metrics = shared.metrics();
    let Some(timeline) = timeline else {
        metrics.duplicates += 1;
        return;
    };
    metrics.journey.push(now - timeline.scheduled);
    metrics.stages.extend(timeline.sample());
    metrics.completed += 1;
    metrics.last_completion = Some(now);
    if metrics.completed == shared.expected {
        shared.all_done.notify_one();
    }
    drop(metrics);
    room.window.add_permits(1);
}

fn lock(page: &Mutex<RoomModel>) -> std::sync::MutexGuard<'_, RoomModel> {
    page.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(room_index: usize, rate: Option<f64>) -> SendPlan {
        let options = JourneyOptions {
            urls: vec!["ws://127.0.0.1:1/ws".into()],
            clients_per_room: 2,
            messages: 10,
            window: 1,
            payload: 10,
            rate,
            drain_timeout: Duration::from_secs(1),
        };
        SendPlan { room_index, rooms: 4, start: Instant::now(), options }
    }

    #[test]
    fn in_an_open_loop_the_rooms_take_turns_at_the_whole_rate() {
        // Four rooms at 100 messages/s: each room sends every 40 ms, room 1 10 ms after room 0.
        let seconds_after_start = |room: &SendPlan, i: usize| (room.due(i).unwrap() - room.start).as_secs_f64();
        let close = |seconds: f64, expected: f64| (seconds - expected).abs() < 1e-6;
        assert!(close(seconds_after_start(&plan(0, Some(100.0)), 0), 0.0));
        assert!(close(seconds_after_start(&plan(1, Some(100.0)), 0), 0.010));
        assert!(close(seconds_after_start(&plan(1, Some(100.0)), 2), 0.090));
        assert!(close(seconds_after_start(&plan(3, Some(100.0)), 9), 0.390));
    }

    #[test]
    fn in_a_closed_loop_nothing_is_scheduled() {
        assert_eq!(plan(1, None).due(0), None);
    }
}
