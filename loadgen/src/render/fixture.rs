//! A small fixed bench run for the renderer's tests: SQLite ×1, PostgreSQL ×1 and ×2, one ceiling
//! each (and PostgreSQL's with NOTIFY), idle connections, and a browser run. Its figures are
//! chosen so that each rendered one can be worked out by hand.

use super::{AesGcm, Browser, FileSize, Pbkdf2};
use crate::bench::{FilesRun, Idle, JourneyRun, Machine, Pair, Results, Setup, Size};
use crate::ceiling::{CeilingReport, PacedReport};
use crate::cpu::CpuTime;
use crate::journey::JourneyReport;
use crate::stages::{StageMeans, Stages};
use crate::stats::Percentiles;
use crate::target::Backend;
use crate::transfer::TransferReport;

/// The lines a section wrote.
pub(super) fn lines(out: &str) -> Vec<&str> {
    out.lines().collect()
}

/// The table whose header line is `header`: that line and the table lines after it.
pub(super) fn table<'a>(out: &'a str, header: &str) -> Vec<&'a str> {
    let start = out.lines().position(|line| line == header).unwrap_or_else(|| panic!("no {header:?} in:\n{out}"));
    out.lines().skip(start).take_while(|line| line.starts_with('|')).collect()
}

/// Four latencies in ms: p50, p90, p99, max.
pub(super) fn percentiles(p50_ms: f64, p90_ms: f64, p99_ms: f64, max_ms: f64) -> Percentiles {
    Percentiles { samples: 10, p50_ms, p90_ms, p99_ms, max_ms }
}

/// One journey run of ten messages in rooms of two: every one delivered and burned, 10 % of it
/// stalled on storage and 5 % waiting for a processor, and 10 ms of processor time in all.
pub(super) fn run(mode: &str, window: usize, rate: Option<f64>, journeys_per_s: f64, p99_ms: f64) -> JourneyRun {
    let all = StageMeans {
        samples: 10,
        queued_ms: 0.1,
        to_ack_ms: 0.5,
        to_notice_ms: 0.6,
        to_payload_ms: 0.4,
        delivery_ms: 1.1,
    };
    let slowest = StageMeans {
        samples: 1,
        queued_ms: 0.2,
        to_ack_ms: 1.0,
        to_notice_ms: 2.0,
        to_payload_ms: 0.3,
        delivery_ms: 2.5,
    };
    JourneyRun {
        mode: mode.into(),
        report: JourneyReport {
            rooms: 2,
            clients_per_room: 2,
            window,
            payload_bytes: 200,
            target_rate: rate,
            sent: 10,
            completed: 10,
            delivered: 10,
            duplicates: 0,
            open_failures: 0,
            errors: Default::default(),
            elapsed_s: 10.0 / journeys_per_s,
            journeys_per_s,
            delivery: Some(percentiles(1.0, 2.0, p99_ms, p99_ms + 1.0)),
            journey: Some(percentiles(2.0, 3.0, p99_ms + 1.0, p99_ms + 2.0)),
            stages: Some(Stages { all, slowest_percent: slowest }),
        },
        rows_left: 0,
        cpu: run_cpu(0.005, 0.0, 0.005),
        bus_received: Vec::new(),
        carried_held: Vec::new(),
    }
}

/// `pairs` transfers of 10 MiB.
fn transfer(pairs: usize, upload_s: f64, download_s: f64, wall_s: f64, throughput_mb_s: f64) -> TransferReport {
    TransferReport { size: 10 << 20, pairs, completed: pairs, upload_s, download_s, wall_s, throughput_mb_s }
}

/// A journey run's processor seconds (servers, PostgreSQL, load generator) over one second in
/// which 10 % of the time some task stalled on storage and 5 % waited for a processor.
pub(super) fn run_cpu(servers_s: f64, postgres_s: f64, loadgen_s: f64) -> CpuTime {
    CpuTime { servers_s, postgres_s, loadgen_s, nats_s: 0.0, io_stalled_s: 0.1, cpu_waited_s: 0.05, wall_s: 1.0 }
}

/// PostgreSQL's own pairs at `rate`: the INSERT's p99 is `insert_p99_ms`.
fn paced(rate: f64, notify: bool, insert_p99_ms: f64) -> PacedReport {
    PacedReport {
        connections: 10,
        notify,
        rate,
        pairs: rate as u64,
        insert: Some(percentiles(1.0, 1.5, insert_p99_ms, insert_p99_ms + 1.0)),
        pair: Some(percentiles(1.5, 2.0, insert_p99_ms + 1.0, insert_p99_ms + 2.0)),
    }
}

fn ceiling(backend: Backend, notify: bool, pairs_per_s: f64, cpu: CpuTime) -> CeilingReport {
    CeilingReport { backend, connections: 4, notify, seconds: 1.0, pairs_per_s, pairs: pairs_per_s as u64, cpu }
}

/// PostgreSQL ×2 with NATS (not in [`results`]): a peak of 380 journeys/s (0.95 × one instance's
/// 400), PostgreSQL 1.05 ms per journey (one instance's 1.0 ms, +5 %), the relays 1.2 ms, NATS
/// 0.1 ms; each instance received 1 bus event per journey, and 9 of the 10 journeys' messages
/// were held as their notices carried them.
pub(super) fn nats_two() -> Setup {
    let cpu = CpuTime { nats_s: 0.001, ..run_cpu(0.012, 0.0105, 0.005) };
    Setup {
        backend: Backend::Postgres,
        instances: 2,
        nats: true,
        runs: vec![
            JourneyRun {
                cpu,
                bus_received: vec![10.0, 10.0],
                carried_held: vec![5.0, 4.0],
                ..run("closed", 4, None, 380.0, 6.0)
            },
            run("half-peak", 64, Some(190.0), 190.0, 5.0),
        ],
        peak_journeys_per_s: 380.0,
        peak_rss_kib: vec![30 * 1024, 31 * 1024],
        database_alone: None,
        database_alone_notify: None,
    }
}

/// Three pairs run in turns (not in [`results`]): one instance at 400, 500, 400 journeys/s and
/// two over NATS at 380, 400, 440 (0.95, 0.80, 1.10 ×: median 0.95); PostgreSQL per journey
/// 1.0 ms for one instance each time and 1.05, 1.2, 0.9 ms for two (+5, +20, −10 %: median +5 %).
pub(crate) fn pairs() -> Vec<Pair> {
    let side = |journeys_per_s: f64, postgres_ms: f64| JourneyRun {
        cpu: run_cpu(0.01, postgres_ms / 100.0, 0.005),
        ..run("closed", 4, None, journeys_per_s, 6.0)
    };
    vec![
        Pair { two_first: false, one: side(400.0, 1.0), two: side(380.0, 1.05), two_at_one_window: None },
        Pair { two_first: true, one: side(500.0, 1.0), two: side(400.0, 1.2), two_at_one_window: None },
        Pair { two_first: false, one: side(400.0, 1.0), two: side(440.0, 0.9), two_at_one_window: None },
    ]
}

/// SQLite ×1 peaks at 1000 journeys/s (window 4) with p99 2.5 ms at half peak; PostgreSQL ×1 at
/// 400 with 4 ms; PostgreSQL ×2 at 600 with 12 ms, over the 10 ms target.
pub(crate) fn results() -> Results {
    let sqlite = Setup {
        backend: Backend::Sqlite,
        instances: 1,
        nats: false,
        runs: vec![
            run("closed", 1, None, 500.0, 3.0),
            run("closed", 4, None, 1000.0, 3.5),
            run("half-peak", 64, Some(500.0), 500.0, 2.5),
        ],
        peak_journeys_per_s: 1000.0,
        peak_rss_kib: vec![20 * 1024],
        database_alone: None,
        database_alone_notify: None,
    };
    let postgres_cpu = run_cpu(0.01, 0.01, 0.005);
    let postgres = Setup {
        backend: Backend::Postgres,
        instances: 1,
        nats: false,
        runs: vec![
            JourneyRun { cpu: postgres_cpu, ..run("closed", 4, None, 400.0, 5.0) },
            run("half-peak", 64, Some(200.0), 200.0, 4.0),
        ],
        peak_journeys_per_s: 400.0,
        peak_rss_kib: vec![30 * 1024],
        database_alone: Some(paced(200.0, false, 2.0)),
        database_alone_notify: None,
    };
    let two = Setup {
        backend: Backend::Postgres,
        instances: 2,
        nats: false,
        runs: vec![
            JourneyRun { cpu: postgres_cpu, ..run("closed", 4, None, 600.0, 13.0) },
            run("half-peak", 64, Some(300.0), 300.0, 12.0),
        ],
        peak_journeys_per_s: 600.0,
        peak_rss_kib: vec![30 * 1024, 31 * 1024],
        database_alone: Some(paced(300.0, false, 2.0)),
        database_alone_notify: Some(paced(300.0, true, 3.0)),
    };
    Results {
        size: Size {
            rooms: 2,
            messages_per_room: 5,
            windows: vec![1, 4],
            half_peak_seconds: 1.0,
            payload: 200,
            ceiling_connections: vec![4],
            ceiling_seconds: 1.0,
            idle_connections: 100,
            file_size: 10 << 20,
            file_pairs: 2,
            beside_rate: 20.0,
            pairs: 0,
        },
        machine: Machine {
            cpu: "Test CPU".into(),
            cores: 2,
            memory_gib: 7.6,
            kernel: "6.1.0-test".into(),
            postgres: "16.4".into(),
            sqlite: "3.46.1".into(),
            date: "2025-01-02 03:04 UTC".into(),
        },
        native_key_derivation_ms: 251.4,
        ceilings: vec![
            ceiling(Backend::Sqlite, false, 2000.0, CpuTime { loadgen_s: 1.0, ..CpuTime::default() }),
            ceiling(
                Backend::Postgres,
                false,
                1000.0,
                CpuTime { postgres_s: 0.5, loadgen_s: 0.3, ..CpuTime::default() },
            ),
            ceiling(Backend::Postgres, true, 800.0, CpuTime { postgres_s: 0.8, loadgen_s: 0.3, ..CpuTime::default() }),
        ],
        setups: vec![sqlite, postgres, two],
        idle: Idle { connections: 100, rss_before_kib: 10240, rss_after_kib: 10640, bytes_per_connection: 4096.0 },
        files: vec![FilesRun {
            backend: Backend::Sqlite,
            alone: transfer(1, 1.3, 1.25, 2.56, 8.2),
            at_once: transfer(2, 2.0, 1.5, 3.0, 14.0),
            rss_before_kib: 12 * 1024,
            peak_rss_kib: 26_112,
            journeys_alone: run("half-peak", 64, Some(20.0), 20.0, 4.0).report,
            journeys_beside: run("half-peak", 64, Some(20.0), 20.0, 39.0).report,
            rows_left: 0,
        }],
        pairs: Vec::new(),
        elapsed_s: 123.4,
    }
}

/// PBKDF2 in WASM 1.5 × WebCrypto's time; joins of 450 ms, and 700 ms without WebCrypto; a
/// 150 KiB brotli WASM.
pub(super) fn browser() -> Browser {
    let size = |build: &str, file: &str, kib: [u64; 3]| FileSize {
        build: build.into(),
        file: file.into(),
        raw: kib[0] * 1024,
        gzip: kib[1] * 1024,
        brotli: kib[2] * 1024,
    };
    Browser {
        chromium: "Chromium 120.0".into(),
        pbkdf2: Pbkdf2 { iterations: 600_000, wasm_ms: 300.0, webcrypto_ms: 200.0 },
        aes_gcm: AesGcm {
            bytes: 200,
            wasm_seal_us: 4.0,
            wasm_open_us: 3.0,
            webcrypto_seal_us: 8.0,
            webcrypto_open_us: 6.0,
        },
        file_chunk: None,
        join_ms: 450.0,
        join_without_webcrypto_ms: Some(700.0),
        sizes: vec![
            size("ssr", "pkg/app.js", [40, 12, 10]),
            size("ssr", "pkg/app.wasm", [400, 180, 150]),
            size("static", "app.wasm", [410, 185, 155]),
        ],
        served_wasm_encoding: "br".into(),
        served_wasm_bytes: 150 * 1024,
        file_transfer: None,
    }
}
