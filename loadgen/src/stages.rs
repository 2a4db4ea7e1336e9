//! Where a delivery's time went: each message's journey cut at the points the load generator
//! sees, so a slow percentile can be traced to the stage that made it slow.
//!
//! The points, all on the load generator's one clock:
//! - `scheduled`: when the message was due (open loop) or taken up (closed loop);
//! - `written`: when its sender handed the `send` frame to its socket's writer;
//! - `acked`: when its sender heard `sent` (the server had stored it and told the room);
//! - `noticed`: when the receiver heard the `message` notice;
//! - `delivered`: when the receiver had the plaintext.
//!
//! `acked` and `noticed` come over two sockets from one instant on the server (the room is told,
//! then the sender): when the notice comes much later than the acknowledgement, it waited in the
//! receiver's connection, not in the store.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// One message's points; a stage is known once both its ends are. With more than one receiver,
/// `noticed` and `delivered` are whichever receiver's came last (the bench has one per room).
#[derive(Debug, Clone, Copy)]
pub struct Timeline {
    pub scheduled: Instant,
    pub written: Option<Instant>,
    pub acked: Option<Instant>,
    pub noticed: Option<Instant>,
    pub delivered: Option<Instant>,
}

impl Timeline {
    pub fn new(scheduled: Instant) -> Self {
        Self { scheduled, written: None, acked: None, noticed: None, delivered: None }
    }

    /// The message's stages, once every point is known.
    pub fn sample(&self) -> Option<StageSample> {
        let (written, acked, noticed, delivered) = (self.written?, self.acked?, self.noticed?, self.delivered?);
        Some(StageSample {
            queued: written.saturating_duration_since(self.scheduled),
            to_ack: acked.saturating_duration_since(written),
            to_notice: noticed.saturating_duration_since(written),
            to_payload: delivered.saturating_duration_since(noticed),
            delivery: delivered.saturating_duration_since(self.scheduled),
        })
    }
}

/// One message's stages. `queued + to_notice + to_payload = delivery`; `to_ack` runs beside
/// `to_notice`, from the same start.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StageSample {
    /// Due, to the `send` frame handed to the socket: the sender's window and scheduling.
    pub queued: Duration,
    /// Frame written, to `sent` at the sender: the sender's connection and the store's insert.
    pub to_ack: Duration,
    /// Frame written, to the notice at the receiver.
    pub to_notice: Duration,
    /// Notice, to the plaintext: the fetch's round trip and the open.
    pub to_payload: Duration,
    /// Due, to the plaintext.
    pub delivery: Duration,
}

/// Mean stages over a set of messages, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct StageMeans {
    pub samples: usize,
    pub queued_ms: f64,
    pub to_ack_ms: f64,
    pub to_notice_ms: f64,
    pub to_payload_ms: f64,
    pub delivery_ms: f64,
}

/// Mean stages over every message, and over the slowest percent of deliveries.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Stages {
    pub all: StageMeans,
    /// The messages whose delivery took at least the 99th percentile's time.
    pub slowest_percent: StageMeans,
}

impl Stages {
    /// `None` when no message has every point: an empty run has no stages.
    pub fn of(mut samples: Vec<StageSample>) -> Option<Self> {
        if samples.is_empty() {
            return None;
        }
        samples.sort_unstable_by_key(|s| s.delivery);
        // The same nearest rank as the p99 of `stats`: the slowest percent starts at it.
        let p99 = ((0.99 * samples.len() as f64).ceil() as usize).clamp(1, samples.len()) - 1;
        Some(Self { all: means(&samples), slowest_percent: means(&samples[p99..]) })
    }
}

fn means(samples: &[StageSample]) -> StageMeans {
    let mean = |stage: fn(&StageSample) -> Duration| {
        samples.iter().map(|s| stage(s).as_secs_f64()).sum::<f64>() * 1000.0 / samples.len() as f64
    };
    StageMeans {
        samples: samples.len(),
        queued_ms: mean(|s| s.queued),
        to_ack_ms: mean(|s| s.to_ack),
        to_notice_ms: mean(|s| s.to_notice),
        to_payload_ms: mean(|s| s.to_payload),
        delivery_ms: mean(|s| s.delivery),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timeline(points_ms: [u64; 5]) -> Timeline {
        let start = Instant::now();
        let at = |ms: u64| Some(start + Duration::from_millis(ms));
        Timeline {
            scheduled: start + Duration::from_millis(points_ms[0]),
            written: at(points_ms[1]),
            acked: at(points_ms[2]),
            noticed: at(points_ms[3]),
            delivered: at(points_ms[4]),
        }
    }

    #[test]
    fn a_delivery_is_its_queue_its_notice_and_its_fetch() {
        let sample = timeline([0, 2, 5, 9, 10]).sample().unwrap();
        assert_eq!(sample.queued, Duration::from_millis(2));
        assert_eq!(sample.to_ack, Duration::from_millis(3));
        assert_eq!(sample.to_notice, Duration::from_millis(7));
        assert_eq!(sample.to_payload, Duration::from_millis(1));
        assert_eq!(sample.delivery, sample.queued + sample.to_notice + sample.to_payload);
    }

    #[test]
    fn a_message_missing_a_point_has_no_stages() {
        let mut unfinished = timeline([0, 1, 2, 3, 4]);
        unfinished.noticed = None;
        assert_eq!(unfinished.sample(), None);
        assert_eq!(Stages::of(Vec::new()), None);
    }

    #[test]
    fn the_slowest_percent_is_the_deliveries_from_the_99th_percentile_up() {
        // 98 fast messages, and two slow ones whose notice waited long after the store had
        // acknowledged them: the tail shows that wait, the whole run hardly does.
        let mut samples: Vec<StageSample> = (0..98).map(|_| timeline([0, 0, 1, 1, 2]).sample().unwrap()).collect();
        samples.push(timeline([0, 0, 1, 30, 31]).sample().unwrap());
        samples.push(timeline([0, 0, 1, 40, 41]).sample().unwrap());
        let stages = Stages::of(samples).unwrap();
        let close = |ms: f64, expected: f64| (ms - expected).abs() < 1e-9;
        assert_eq!(stages.slowest_percent.samples, 2);
        assert!(close(stages.slowest_percent.to_ack_ms, 1.0));
        assert!(close(stages.slowest_percent.to_notice_ms, 35.0));
        assert!(close(stages.slowest_percent.delivery_ms, 36.0));
        assert_eq!(stages.all.samples, 100);
        assert!(stages.all.to_notice_ms < 2.0);
    }
}
