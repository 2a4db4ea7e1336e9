//! What a run's tasks share: each room's keys, messages in flight and window, and the run's
//! metrics, which its clients record and its report is made of.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::AtomicU64;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use app::crypto::{MessageId, RoomKeys};
use tokio::sync::{Notify, Semaphore};

use crate::stages::{StageSample, Timeline};

/// Shared by every client of one room.
pub(super) struct RoomState {
    pub(super) keys: RoomKeys,
    /// Each message in flight: when it was due, and the points of its journey heard so far.
    pub(super) timelines: Mutex<HashMap<MessageId, Timeline>>,
    pub(super) window: Semaphore,
}

impl RoomState {
    pub(super) fn timelines(&self) -> std::sync::MutexGuard<'_, HashMap<MessageId, Timeline>> {
        self.timelines.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records a point of a message in flight; returns its timeline so far (`None`: not in
    /// flight, so a duplicate or a stranger's).
    pub(super) fn mark(&self, id: &MessageId, point: impl FnOnce(&mut Timeline)) -> Option<Timeline> {
        let mut timelines = self.timelines();
        let timeline = timelines.get_mut(id)?;
        point(timeline);
        Some(*timeline)
    }
}

/// What the run's clients record, for its report.
#[derive(Default)]
pub(super) struct Metrics {
    pub(super) delivery: Vec<Duration>,
    pub(super) journey: Vec<Duration>,
    pub(super) stages: Vec<StageSample>,
    pub(super) errors: BTreeMap<String, u64>,
    pub(super) delivered: u64,
    pub(super) completed: u64,
    pub(super) duplicates: u64,
    pub(super) open_failures: u64,
    pub(super) last_completion: Option<Instant>,
}

/// Shared by every task of the run.
pub(super) struct Shared {
    pub(super) metrics: Mutex<Metrics>,
    /// Messages handed to their sender's socket.
    pub(super) sent: AtomicU64,
    /// Journeys the run makes when none is lost: rooms × messages.
    pub(super) expected: u64,
    /// Told when the last expected journey completes.
    pub(super) all_done: Notify,
}

impl Shared {
    pub(super) fn metrics(&self) -> std::sync::MutexGuard<'_, Metrics> {
        self.metrics.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(super) fn error(&self, what: String) {
        *self.metrics().errors.entry(what).or_default() += 1;
    }
}
