//! Metrics that identify no one: counts, gauges and timings of the relay as a whole, for
//! Prometheus (`METRICS_ADDR`). Every name is here. The only labels are closed sets the code
//! names (`code`: an error code of the protocol; `direction`: `in` or `out`; `op`: a store
//! operation): never a room, message, session, participant or address.
//!
//! Recorded through the `metrics` facade; while no recorder is installed (`METRICS_ADDR` unset)
//! each recording is a no-op. The Prometheus text is rendered by `metrics-exporter-prometheus`
//! and served on its own listener (`routes::metrics`), never on the public port.

use std::sync::{Mutex, PoisonError};

pub use ::metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// TCP connections open (HTTP and WebSocket together, as `MAX_CONNECTIONS` counts them).
pub const CONNECTIONS_OPEN: &str = "ephemeral_chat_connections_open";
/// WebSocket sessions open.
pub const WEBSOCKETS_OPEN: &str = "ephemeral_chat_websockets_open";
/// Rooms with at least one participant connected to this instance.
pub const ROOMS: &str = "ephemeral_chat_rooms_with_local_participants";
/// Messages stored (sent and accepted) through this instance.
pub const MESSAGES_STORED: &str = "ephemeral_chat_messages_stored_total";
/// Messages deleted because every recipient viewed them (or the last one left).
pub const MESSAGES_BURNED: &str = "ephemeral_chat_messages_burned_total";
/// Messages deleted unread at their expiry (or unreadable at rest).
pub const MESSAGES_EXPIRED: &str = "ephemeral_chat_messages_expired_total";
/// Bytes of stored records waiting, over every instance sharing the database (read at most once
/// a minute, when scraped).
pub const STORED_BYTES: &str = "ephemeral_chat_stored_bytes";
/// Frames answered with an error, by error code.
pub const REFUSALS: &str = "ephemeral_chat_refusals_total";
/// WebSocket frames, by direction (`in`: from pages, `out`: to pages).
pub const FRAMES: &str = "ephemeral_chat_frames_total";
/// Bytes of sealed file chunks, by direction (`in`: uploaded, `out`: downloaded).
pub const FILE_BYTES: &str = "ephemeral_chat_file_bytes_total";
/// Time a store operation took, by operation, in seconds.
pub const STORE_SECONDS: &str = "ephemeral_chat_store_seconds";
/// Times the bus's link (PostgreSQL's `LISTEN` connection, or NATS's) was lost and made again.
pub const BUS_RECONNECTS: &str = "ephemeral_chat_bus_reconnects_total";
/// Room events this instance published on NATS (PostgreSQL's NOTIFYs are sent by the database,
/// inside the writes' transactions, and not counted here).
pub const BUS_PUBLISHED: &str = "ephemeral_chat_bus_published_total";
/// Room events this instance received from the bus (either bus; its own are never sent back).
pub const BUS_RECEIVED: &str = "ephemeral_chat_bus_received_total";
/// Room events NATS could not take in time (the outgoing queue full); their rooms were told to
/// resync instead.
pub const BUS_DROPPED: &str = "ephemeral_chat_bus_dropped_total";
/// Messages from other instances held here for fetches as their NATS notices carried them
/// (each such fetch reads no row from PostgreSQL).
pub const BUS_CARRIED_HELD: &str = "ephemeral_chat_bus_carried_held_total";
/// The process's resident memory (Prometheus's standard name).
pub const RESIDENT_MEMORY: &str = "process_resident_memory_bytes";
/// The process's open file descriptors (Prometheus's standard name).
pub const OPEN_FDS: &str = "process_open_fds";

/// Store timings' buckets: from a SQLite read (tens of microseconds) to a contended commit.
const STORE_BUCKETS: [f64; 14] =
    [0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0];

/// The recorder's handle, once installed: one per process (tests start several servers in one).
static INSTALLED: Mutex<Option<PrometheusHandle>> = Mutex::new(None);

/// Installs the Prometheus recorder as the process's metrics recorder (once; later calls return
/// the same handle).
pub fn install() -> anyhow::Result<PrometheusHandle> {
    let mut installed = INSTALLED.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(handle) = installed.as_ref() {
        return Ok(handle.clone());
    }
    let recorder = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full(STORE_SECONDS.to_owned()), &STORE_BUCKETS)?
        .build_recorder();
    let handle = recorder.handle();
    ::metrics::set_global_recorder(recorder)
        .map_err(|_| anyhow::anyhow!("METRICS_ADDR: another metrics recorder is already installed"))?;
    describe();
    *installed = Some(handle.clone());
    Ok(handle)
}

/// Help text for each metric, and every counter and gauge registered at zero, so a scrape shows
/// them all from the start.
fn describe() {
    use ::metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_gauge!(CONNECTIONS_OPEN, "TCP connections open, HTTP and WebSocket together");
    describe_gauge!(WEBSOCKETS_OPEN, "WebSocket sessions open");
    describe_gauge!(ROOMS, "Rooms with at least one participant connected to this instance");
    describe_counter!(MESSAGES_STORED, "Messages stored through this instance");
    describe_counter!(MESSAGES_BURNED, "Messages deleted once every recipient viewed them");
    describe_counter!(MESSAGES_EXPIRED, "Messages deleted unread at their expiry");
    describe_gauge!(STORED_BYTES, Unit::Bytes, "Bytes of stored records waiting, every instance together");
    describe_counter!(REFUSALS, "Frames answered with an error, by error code");
    describe_counter!(FRAMES, "WebSocket frames, by direction");
    describe_counter!(FILE_BYTES, Unit::Bytes, "Bytes of sealed file chunks, by direction");
    describe_histogram!(STORE_SECONDS, Unit::Seconds, "Time a store operation took, by operation");
    describe_counter!(BUS_RECONNECTS, "Times the link to the bus carrying other instances' events was made again");
    describe_counter!(BUS_PUBLISHED, "Room events published on NATS");
    describe_counter!(BUS_RECEIVED, "Room events received from the bus");
    describe_counter!(BUS_DROPPED, "Room events NATS could not take in time (their rooms resync instead)");
    describe_counter!(
        BUS_CARRIED_HELD,
        "Other instances' messages held here for fetches as their notices carried them"
    );
    describe_gauge!(RESIDENT_MEMORY, Unit::Bytes, "Resident memory of the process");
    describe_gauge!(OPEN_FDS, "Open file descriptors of the process");
    for name in [
        MESSAGES_STORED,
        MESSAGES_BURNED,
        MESSAGES_EXPIRED,
        BUS_RECONNECTS,
        BUS_PUBLISHED,
        BUS_RECEIVED,
        BUS_DROPPED,
        BUS_CARRIED_HELD,
    ] {
        counter!(name).absolute(0);
    }
    for direction in ["in", "out"] {
        counter!(FRAMES, "direction" => direction).absolute(0);
    }
    for name in [CONNECTIONS_OPEN, WEBSOCKETS_OPEN] {
        gauge!(name).increment(0.0);
    }
}

/// Times a store operation from its creation to its drop.
pub struct StoreTimer {
    op: &'static str,
    started: std::time::Instant,
}

impl StoreTimer {
    pub fn start(op: &'static str) -> Self {
        Self { op, started: std::time::Instant::now() }
    }
}

impl Drop for StoreTimer {
    fn drop(&mut self) {
        histogram!(STORE_SECONDS, "op" => self.op).record(self.started.elapsed().as_secs_f64());
    }
}

/// The process's resident memory and open file descriptors, from `/proc/self` (Linux).
pub fn record_process() {
    if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
        // "VmRSS:     12345 kB", whatever the page size.
        let kib = status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse::<f64>().ok());
        if let Some(kib) = kib {
            gauge!(RESIDENT_MEMORY).set(kib * 1024.0);
        }
    }
    if let Ok(entries) = std::fs::read_dir("/proc/self/fd") {
        gauge!(OPEN_FDS).set(entries.count() as f64);
    }
}
