//! What a journey run reports (counts, throughput, latencies and stages) and whether it was
//! clean.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::shared::Shared;
use super::JourneyOptions;
use crate::stages::Stages;
use crate::stats::Percentiles;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JourneyReport {
    pub rooms: usize,
    pub clients_per_room: usize,
    pub window: usize,
    pub payload_bytes: usize,
    pub target_rate: Option<f64>,
    pub sent: u64,
    /// Journeys that ended with the sender's `deleted` notice.
    pub completed: u64,
    /// Plaintexts opened by receivers.
    pub delivered: u64,
    /// Payloads a receiver got twice, or `deleted` notices for no message in flight.
    pub duplicates: u64,
    pub open_failures: u64,
    /// Error frames by code, and client-side failures.
    pub errors: BTreeMap<String, u64>,
    pub elapsed_s: f64,
    pub journeys_per_s: f64,
    pub delivery: Option<Percentiles>,
    pub journey: Option<Percentiles>,
    /// Where the delivery time went, over every message and over the slowest percent.
    #[serde(default)]
    pub stages: Option<Stages>,
}

impl JourneyReport {
    /// Every message acknowledged, delivered to every receiver, opened, and burned; nothing
    /// else happened.
    pub fn is_clean(&self) -> bool {
        let expected_deliveries = self.sent * (self.clients_per_room as u64 - 1);
        // A journey has stages once its `sent` came too (see `stages`).
        let staged = self.stages.map_or(0, |stages| stages.all.samples as u64);
        self.errors.is_empty()
            && self.open_failures == 0
            && self.duplicates == 0
            && self.completed == self.sent
            && self.delivered == expected_deliveries
            && staged == self.completed
    }
}

/// The report of a run that started at `start`, from what its clients recorded in `shared`.
pub(super) fn report(rooms: usize, options: &JourneyOptions, start: Instant, shared: &Shared) -> JourneyReport {
    let mut metrics = shared.metrics();
    let elapsed = metrics.last_completion.map_or(Duration::ZERO, |end| end - start);
    let completed = metrics.completed;
    JourneyReport {
        rooms,
        clients_per_room: options.clients_per_room,
        window: options.window,
        payload_bytes: options.payload,
        target_rate: options.rate,
        sent: shared.sent.load(Ordering::Relaxed),
        completed,
        delivered: metrics.delivered,
        duplicates: metrics.duplicates,
        open_failures: metrics.open_failures,
        errors: std::mem::take(&mut metrics.errors),
        elapsed_s: elapsed.as_secs_f64(),
        journeys_per_s: if elapsed.is_zero() { 0.0 } else { completed as f64 / elapsed.as_secs_f64() },
        delivery: Percentiles::of(std::mem::take(&mut metrics.delivery)),
        journey: Percentiles::of(std::mem::take(&mut metrics.journey)),
        stages: Stages::of(std::mem::take(&mut metrics.stages)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stages::StageMeans;

    fn stages(samples: usize) -> Stages {
        let means = StageMeans {
            samples,
            queued_ms: 0.1,
            to_ack_ms: 0.5,
            to_notice_ms: 0.6,
            to_payload_ms: 0.4,
            delivery_ms: 1.1,
        };
        Stages { all: means, slowest_percent: StageMeans { samples: 1, ..means } }
    }

    /// Four messages in rooms of three (a sender, two receivers), every journey whole.
    fn clean() -> JourneyReport {
        JourneyReport {
            rooms: 1,
            clients_per_room: 3,
            window: 1,
            payload_bytes: 200,
            target_rate: None,
            sent: 4,
            completed: 4,
            delivered: 8,
            duplicates: 0,
            open_failures: 0,
            errors: BTreeMap::new(),
            elapsed_s: 1.0,
            journeys_per_s: 4.0,
            delivery: None,
            journey: None,
            stages: Some(stages(4)),
        }
    }

    #[test]
    fn a_run_is_clean_only_when_every_message_reached_every_receiver_and_burned() {
        assert!(clean().is_clean());
        for broken in [
            JourneyReport { completed: 3, ..clean() },
            JourneyReport { delivered: 7, ..clean() },
            JourneyReport { duplicates: 1, ..clean() },
            JourneyReport { open_failures: 1, ..clean() },
            JourneyReport { errors: BTreeMap::from([("Internal".to_owned(), 1)]), ..clean() },
            // A journey whose `sent` never came has no stages.
            JourneyReport { stages: Some(stages(3)), ..clean() },
            JourneyReport { stages: None, ..clean() },
        ] {
            assert!(!broken.is_clean(), "{broken:?}");
        }
    }
}
