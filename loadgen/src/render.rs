//! BENCHMARKS.md from one run's results: the server side ([`Results`]) and the browser side
//! ([`Browser`], written by `end2end/bench/browser.mjs`), plus the hand-kept history.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::bench::{Results, Setup};
use crate::ceiling::PacedReport;
use crate::stages::Stages;
use crate::stats::Percentiles;
use crate::target::Backend;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Browser {
    pub chromium: String,
    pub pbkdf2: Pbkdf2,
    pub aes_gcm: AesGcm,
    /// From opening an invite link to "connected" in the real app, key derivation included.
    pub join_ms: f64,
    /// The same on a page without WebCrypto, where the app derives with its Rust code in WASM.
    #[serde(default)]
    pub join_without_webcrypto_ms: Option<f64>,
    pub sizes: Vec<FileSize>,
    /// How the server sent the WASM to Chromium: `Content-Encoding` and bytes on the wire.
    pub served_wasm_encoding: String,
    pub served_wasm_bytes: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Pbkdf2 {
    pub iterations: u32,
    pub wasm_ms: f64,
    pub webcrypto_ms: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AesGcm {
    pub bytes: usize,
    pub wasm_seal_us: f64,
    pub wasm_open_us: f64,
    pub webcrypto_seal_us: f64,
    pub webcrypto_open_us: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FileSize {
    pub build: String,
    pub file: String,
    pub raw: u64,
    pub gzip: u64,
    pub brotli: u64,
}

/// The targets of issue 6.
pub const MAX_P99_MS: f64 = 10.0;
pub const MAX_IDLE_BYTES: f64 = 8.0 * 1024.0;
pub const MAX_PBKDF2_RATIO: f64 = 2.0;
pub const MAX_JOIN_MS: f64 = 1000.0;
pub const MAX_WASM_BROTLI: u64 = 200 * 1024;

fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "**not met**"
    }
}

fn kib(bytes: u64) -> String {
    format!("{:.1} KiB", bytes as f64 / 1024.0)
}

fn percentiles(p: Option<&Percentiles>) -> String {
    p.map_or_else(|| "–".into(), |p| format!("{:.2} / {:.2} / {:.2} / {:.2}", p.p50_ms, p.p90_ms, p.p99_ms, p.max_ms))
}

/// The whole file.
pub fn markdown(results: &Results, browser: &Browser, history: &str) -> String {
    let mut out = String::new();
    let m = &results.machine;
    let _ = writeln!(out, "# Benchmarks\n");
    let _ = writeln!(
        out,
        "Written by `make bench` on {} ({:.0} s for the server part). Every figure below comes from that one run; \
         rerun with `make bench` (about 10 minutes from a fresh clone once the tools are installed). \
         How each figure is measured is under [Method](#method); what changed between runs is under [History](#history).\n",
        m.date, results.elapsed_s
    );
    let _ = writeln!(
        out,
        "Machine: {} ({} cores), {:.0} GiB RAM, Linux {}; PostgreSQL {}, SQLite {}, {}.\n",
        m.cpu, m.cores, m.memory_gib, m.kernel, m.postgres, m.sqlite, browser.chromium
    );
    targets(&mut out, results, browser);
    journeys(&mut out, results);
    rest(&mut out, results, browser);
    out.push_str(METHOD);
    let _ = writeln!(out, "\n## History\n\n{}", history.trim());
    out
}

fn targets(out: &mut String, results: &Results, browser: &Browser) {
    let _ = writeln!(out, "## Targets\n\n| Target | Measured | |\n|---|---|---|");
    for backend in [Backend::Sqlite, Backend::Postgres] {
        if let (Some(setup), Some(ceiling)) = (results.setup(backend, 1), results.best_ceiling(backend)) {
            let fraction = setup.peak_journeys_per_s / ceiling.pairs_per_s;
            let _ = writeln!(
                out,
                "| {}: journey ≥ ½ of the insert+delete ceiling | {:.0} journeys/s = {:.2} × {:.0} pairs/s | {} |",
                backend.name(),
                setup.peak_journeys_per_s,
                fraction,
                ceiling.pairs_per_s,
                verdict(fraction >= 0.5)
            );
        }
    }
    for setup in &results.setups {
        if let Some(p) = setup.half_peak().and_then(|run| run.report.delivery.as_ref()) {
            // The one commit a message waits for before its plaintext, timed without the server.
            let insert_p99 = |a: &Option<PacedReport>| a.as_ref().and_then(|a| a.insert.as_ref()).map(|i| i.p99_ms);
            let alone = match (insert_p99(&setup.database_alone), insert_p99(&setup.database_alone_notify)) {
                (Some(plain), Some(notify)) => format!(
                    " (PostgreSQL's own INSERT commit alone at that rate: p99 {plain:.2} ms; {notify:.2} ms with a \
                     NOTIFY in each commit, as the server's commits carry across instances)"
                ),
                (Some(plain), None) => {
                    format!(" (PostgreSQL's own INSERT commit alone at that rate: p99 {plain:.2} ms)")
                }
                _ => String::new(),
            };
            let _ = writeln!(
                out,
                "| {} ×{}: p99 send → plaintext < {MAX_P99_MS} ms at half peak | {:.2} ms at {:.0} messages/s{alone} | {} |",
                setup.backend.name(),
                setup.instances,
                p.p99_ms,
                setup.peak_journeys_per_s / 2.0,
                verdict(p.p99_ms < MAX_P99_MS)
            );
        }
    }
    let idle = &results.idle;
    let _ = writeln!(
        out,
        "| ≤ 8 KiB of server memory per idle connection | {:.0} bytes ({} connections) | {} |",
        idle.bytes_per_connection,
        idle.connections,
        verdict(idle.bytes_per_connection <= MAX_IDLE_BYTES)
    );
    let ratio = browser.pbkdf2.wasm_ms / browser.pbkdf2.webcrypto_ms;
    let _ = writeln!(
        out,
        "| PBKDF2 in WASM ≤ 2 × WebCrypto | {:.0} ms vs {:.0} ms = {ratio:.2} × | {} |",
        browser.pbkdf2.wasm_ms,
        browser.pbkdf2.webcrypto_ms,
        verdict(ratio <= MAX_PBKDF2_RATIO)
    );
    let fallback = browser
        .join_without_webcrypto_ms
        .map(|ms| format!("; {ms:.0} ms on a page without WebCrypto (PBKDF2 in WASM)"))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "| Joining a room, key derivation included, < 1 s | {:.0} ms (PBKDF2 by WebCrypto){fallback} | {} |",
        browser.join_ms,
        verdict(browser.join_ms < MAX_JOIN_MS && browser.join_without_webcrypto_ms.is_none_or(|ms| ms < MAX_JOIN_MS))
    );
    if let Some(wasm) = browser.sizes.iter().find(|f| f.build == "ssr" && f.file.ends_with(".wasm")) {
        let _ = writeln!(
            out,
            "| Client WASM < 200 KiB brotli | {} ({}) | {} |",
            kib(wasm.brotli),
            wasm.file,
            verdict(wasm.brotli < MAX_WASM_BROTLI)
        );
    }
    out.push('\n');
}

fn journeys(out: &mut String, results: &Results) {
    let _ = writeln!(out, "## Message journey\n");
    let _ = writeln!(
        out,
        "{} rooms of a sender and a receiver, {}-byte texts. Latencies in ms as p50 / p90 / p99 / max. \
         *I/O stalled*: the share of the run (connecting and leaving included) during which some task on the machine waited for storage \
         (`/proc/pressure/io`); commits wait on it, so a run that stalls on the disk shows it here. \
         *CPU waited*: the share during which some runnable task waited for a processor \
         (`/proc/pressure/cpu`); a message is late by whatever wait its server, database or client had.\n",
        results.size.rooms, results.size.payload
    );
    let _ = writeln!(
        out,
        "| Backend | Instances | Run | Messages | Journeys/s | Send → plaintext | Send → deleted | Errors | Rows left | I/O stalled | CPU waited |\n|---|---|---|---|---|---|---|---|---|---|---|"
    );
    for setup in &results.setups {
        for run in &setup.runs {
            let r = &run.report;
            let mode = match r.target_rate {
                Some(rate) => format!("open loop, {rate:.0}/s"),
                None => format!("closed, window {}", r.window),
            };
            let errors = if r.is_clean() { "0".to_owned() } else { format!("{:?}", r.errors) };
            let waits = run
                .cpu
                .waits()
                .map_or("– | –".into(), |(io, cpu)| format!("{:.0} % | {:.0} %", io * 100.0, cpu * 100.0));
            let _ = writeln!(
                out,
                "| {} | {} | {mode} | {} | {:.0} | {} | {} | {errors} | {} | {waits} |",
                setup.backend.name(),
                setup.instances,
                r.sent,
                r.journeys_per_s,
                percentiles(r.delivery.as_ref()),
                percentiles(r.journey.as_ref()),
                run.rows_left,
            );
        }
    }
    stages(out, results);
    let _ = writeln!(out, "\nServer peak RSS per setup (VmHWM):\n");
    for setup in &results.setups {
        let rss: Vec<String> = setup.peak_rss_kib.iter().map(|k| format!("{:.1} MiB", *k as f64 / 1024.0)).collect();
        let _ = writeln!(out, "- {} ×{}: {}", setup.backend.name(), setup.instances, rss.join(", "));
    }
    if let (Some(one), Some(two)) = (results.setup(Backend::Postgres, 1), results.setup(Backend::Postgres, 2)) {
        notify_cost(out, one, two);
    }
    out.push('\n');
    processor_time(out, results);
}

/// Where the open-loop runs' delivery time went, for every message and for the slowest percent.
fn stages(out: &mut String, results: &Results) {
    let staged: Vec<(&Setup, &Stages)> = results
        .setups
        .iter()
        .filter_map(|setup| setup.half_peak().and_then(|run| run.report.stages.as_ref()).map(|s| (setup, s)))
        .collect();
    if staged.is_empty() {
        return; // results from before stages were recorded
    }
    let _ = writeln!(
        out,
        "\nWhere the time went in the open-loop runs: each stage's mean in ms, over every message and over the \
         slowest percent of deliveries (those at or past the p99). *Queued*: due → its `send` handed to the \
         sender's socket; *to notice*: handed → the receiver hears of it; *to payload*: the notice → the \
         plaintext (the fetch). Queued + to notice + to payload = send → plaintext. *To `sent`* runs beside \
         *to notice*: handed → the sender hears `sent`, which the server sends just after storing the message \
         and telling the room, so a notice much later than its `sent` waited in the receiver's connection.\n\n\
         | Backend | Instances | Messages | Queued | To `sent` | To notice | To payload | Send → plaintext |\n\
         |---|---|---|---|---|---|---|---|"
    );
    for (setup, stages) in staged {
        for (which, m) in [("all", &stages.all), ("slowest 1 %", &stages.slowest_percent)] {
            let _ = writeln!(
                out,
                "| {} | {} | {which}: {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} |",
                setup.backend.name(),
                setup.instances,
                m.samples,
                m.queued_ms,
                m.to_ack_ms,
                m.to_notice_ms,
                m.to_payload_ms,
                m.delivery_ms
            );
        }
    }
}

/// What a journey and a ceiling pair cost in processor time, and what rate the machine's cores
/// allow at that cost.
fn processor_time(out: &mut String, results: &Results) {
    let cores = results.machine.cores.max(1) as f64;
    let _ = writeln!(
        out,
        "## Processor time\n\nPer journey at each setup's peak and per ceiling pair at the best ceiling, in ms of \
         processor time (user + system, from `/proc`). *Busy* is the share of the machine's {cores:.0} cores the run \
         used; *allows* is the rate the cores allow at that cost, and without the load generator's share (as if \
         the clients ran elsewhere).\n\n\
         | Run | Server | PostgreSQL | Load generator | Total | Busy | Allows | Without the load generator |\n\
         |---|---|---|---|---|---|---|---|"
    );
    let row = |out: &mut String, name: String, cpu: &crate::cpu::CpuTime, units: u64, seconds: f64, unit: &str| {
        if let Some((server, postgres, loadgen, total)) = cpu.per(units) {
            let busy = cpu.total_s() / (seconds * cores);
            let _ = writeln!(
                out,
                "| {name} | {server:.3} | {postgres:.3} | {loadgen:.3} | {total:.3} | {:.0} % | {:.0} {unit}/s | {} |",
                busy * 100.0,
                cores * 1000.0 / total,
                if server + postgres > 0.0 {
                    format!("{:.0} {unit}/s", cores * 1000.0 / (server + postgres))
                } else {
                    "–".into()
                },
            );
        }
    };
    for setup in &results.setups {
        let peak = setup
            .runs
            .iter()
            .filter(|r| r.mode == "closed")
            .max_by(|a, b| a.report.journeys_per_s.total_cmp(&b.report.journeys_per_s));
        if let Some(run) = peak {
            let name = format!("{} ×{}, window {}", setup.backend.name(), setup.instances, run.report.window);
            let seconds = run.report.completed as f64 / run.report.journeys_per_s.max(f64::MIN_POSITIVE);
            row(out, name, &run.cpu, run.report.completed, seconds, "journeys");
        }
    }
    for backend in [Backend::Sqlite, Backend::Postgres] {
        if let Some(c) = results.best_ceiling(backend) {
            let name = format!("{} ceiling, {} connections", backend.name(), c.connections);
            row(out, name, &c.cpu, c.pairs, c.seconds, "pairs");
        }
    }
    let _ = writeln!(
        out,
        "\nWith SQLite the database runs inside its user: the server's column holds it for journeys, the load \
         generator's for the ceiling. Journey figures include connecting and leaving ({} sockets per run).\n",
        results.size.rooms * 2
    );
}

fn notify_cost(out: &mut String, one: &Setup, two: &Setup) {
    let p99 = |s: &Setup| s.half_peak().and_then(|r| r.report.delivery.as_ref()).map_or(f64::NAN, |p| p.p99_ms);
    let _ = writeln!(
        out,
        "\nCross-instance NOTIFY: with two instances every receiver is on the other instance from its sender. \
         Peak {:.0} journeys/s with two instances against {:.0} with one ({:.2} ×); p99 send → plaintext at half \
         peak {:.2} ms against {:.2} ms.",
        two.peak_journeys_per_s,
        one.peak_journeys_per_s,
        two.peak_journeys_per_s / one.peak_journeys_per_s,
        p99(two),
        p99(one)
    );
}

/// PostgreSQL's own pairs at each setup's open-loop rate: the latency its commits alone allow.
fn database_alone(out: &mut String, results: &Results) {
    let alone: Vec<_> = results
        .setups
        .iter()
        .flat_map(|s| [&s.database_alone, &s.database_alone_notify].into_iter().flatten().map(|a| (s.instances, a)))
        .collect();
    if alone.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "\nThe same pairs on a schedule, at each PostgreSQL setup's open-loop rate, with no server and no clients \
         (latency in ms from each pair's scheduled start, p50 / p90 / p99 / max): what the database's commits alone \
         take at that rate on this machine.\n\n\
         | Rate of | NOTIFY in each commit | Pairs/s | Connections | Pairs | INSERT committed | DELETE committed |\n\
         |---|---|---|---|---|---|---|"
    );
    for (instances, a) in alone {
        let _ = writeln!(
            out,
            "| PostgreSQL ×{instances} | {} | {:.0} | {} | {} | {} | {} |",
            if a.notify { "yes" } else { "no" },
            a.rate,
            a.connections,
            a.pairs,
            percentiles(a.insert.as_ref()),
            percentiles(a.pair.as_ref())
        );
    }
}

fn rest(out: &mut String, results: &Results, browser: &Browser) {
    let _ = writeln!(
        out,
        "## Database ceiling (insert+delete pairs)\n\n| Backend | Connections | NOTIFY in each commit | Pairs/s |\n|---|---|---|---|"
    );
    for c in &results.ceilings {
        let notify = if c.notify { "yes" } else { "no" };
        let _ = writeln!(out, "| {} | {} | {notify} | {:.0} |", c.backend.name(), c.connections, c.pairs_per_s);
    }
    database_alone(out, results);
    let idle = &results.idle;
    let _ = writeln!(
        out,
        "\n## Idle connections\n\n{} joined WebSockets: server RSS {:.1} MiB before, {:.1} MiB after: {:.0} bytes each.\n",
        idle.connections,
        idle.rss_before_kib as f64 / 1024.0,
        idle.rss_after_kib as f64 / 1024.0,
        idle.bytes_per_connection
    );
    let (p, a) = (&browser.pbkdf2, &browser.aes_gcm);
    let _ = writeln!(
        out,
        "## Client crypto in Chromium\n\n| Operation | App WASM | WebCrypto | Ratio |\n|---|---|---|---|\n\
         | PBKDF2-HMAC-SHA256, {} iterations | {:.0} ms | {:.0} ms | {:.2} |\n\
         | AES-256-GCM seal, {} bytes | {:.1} µs | {:.1} µs | {:.2} |\n\
         | AES-256-GCM open, {} bytes | {:.1} µs | {:.1} µs | {:.2} |\n",
        p.iterations,
        p.wasm_ms,
        p.webcrypto_ms,
        p.wasm_ms / p.webcrypto_ms,
        a.bytes,
        a.wasm_seal_us,
        a.webcrypto_seal_us,
        a.wasm_seal_us / a.webcrypto_seal_us,
        a.bytes,
        a.wasm_open_us,
        a.webcrypto_open_us,
        a.wasm_open_us / a.webcrypto_open_us
    );
    let _ = writeln!(
        out,
        "Native PBKDF2 and key schedule on this machine (the load generator): {:.0} ms per room. \
         Joining a room in the app, from opening the invite link to connected: {:.0} ms.\n",
        results.native_key_derivation_ms, browser.join_ms
    );
    let _ = writeln!(out, "## Bundle sizes\n\n| Build | File | Raw | gzip -9 | brotli -q 11 |\n|---|---|---|---|---|");
    for f in &browser.sizes {
        let _ = writeln!(out, "| {} | {} | {} | {} | {} |", f.build, f.file, kib(f.raw), kib(f.gzip), kib(f.brotli));
    }
    let _ = writeln!(
        out,
        "\nThe server sends the precompressed files: Chromium got the WASM with `Content-Encoding: {}`, {} on the wire.\n",
        browser.served_wasm_encoding,
        kib(browser.served_wasm_bytes)
    );
}

const METHOD: &str = r#"## Method

- **Servers**: the release `server` binary (`make build`), started by the load generator on a free
  port over a fresh database (a temp SQLite file, or a new PostgreSQL database on the local
  cluster). Abuse limits that would throttle one busy client (`RATE_LIMIT_PER_SECOND`,
  `RATE_LIMIT_BURST`, `MAX_CONNECTIONS_PER_ADDRESS`, `CONNECTS_PER_SECOND_PER_ADDRESS`,
  `CONNECT_BURST_PER_ADDRESS`) are raised, since every client here comes from one address;
  `SESSION_GRACE` is 1 s, since no client here comes back; every other setting is the default.
- **Load generator** (`loadgen/`): the real protocol (`app::protocol`) and the real client crypto
  (`app::crypto`), as the browser runs them. One PBKDF2 per room, AES-256-GCM seal per message at
  the sender and open at the receiver. A receiver fetches on each notice, opens, checks the text
  and sends `viewed`; the sender counts a journey when its `deleted` notice arrives, which the
  server sends once the row is deleted. Rows left in `messages` are counted after each run.
- **Between runs**: the next run starts once the last one's clients have all left, with the
  database at rest: PostgreSQL vacuums the tables and checkpoints, SQLite checkpoints its
  write-ahead log. A run so does not pay for the cleanup after the one before it (pgbench, too,
  vacuums before it runs).
- **Closed loop**: each room's sender keeps `window` messages in flight; the best of the windows
  is the peak. **Open loop**: messages are sent on a fixed schedule at half the peak rate and
  latency is timed from each message's scheduled time, so a stalled server cannot hide its stall
  (no coordinated omission). Latency percentiles are nearest-rank over every sample.
- **Stages**: each message's journey is cut where the load generator sees it: due, its `send`
  handed to the sender's socket, `sent` back at the sender, the notice at the receiver, the
  plaintext. The server sends `sent` just after storing the message and telling the room, so a
  notice that comes well after its `sent` waited in the receiver's connection, and one that comes
  with it waited in the store. Each stage's mean is shown over every message and over the slowest
  percent (the deliveries at or past the p99). A run counts as clean only if every journey has
  every point. The load generator's timer wakes on millisecond ticks, so *queued* holds up to a
  millisecond of its own lateness; it counts in every latency here, as a client's would.
- **Two instances**: two servers over one PostgreSQL database; client `j` of room `r` connects to
  instance `(r + j) mod 2`, so every message crosses instances by LISTEN/NOTIFY.
- **Database ceiling**: INSERT of a message row and DELETE of it, each committed on its own, on the
  server's real schema and settings, from 4, 10 and 32 connections; the best is the ceiling. A
  journey commits at least that much, and also reads the row, checks the room's backlog and
  participants, and (on SQLite) writes its recipients rows. Once more with a NOTIFY in each
  commit, which is what every write costs when it must tell another instance.
  Then, for each PostgreSQL setup, the same pairs on a fixed schedule at its open-loop rate, from
  as many connections as the server's pool (10), on a fresh database with nothing else running:
  each timed from its scheduled start to its INSERT's commit (the one commit a message waits for
  before its recipient sees it) and to its DELETE's, so a commit stalled by the disk shows, and
  the latency the database alone allows at that rate can be read against the journey's. With
  two instances these pairs run twice: plain, and with a NOTIFY in each commit as the server's
  writes then carry.
- **Idle connections**: a fresh SQLite server, warmed with two connections; RSS (VmRSS) before and
  2 s after 10,000 WebSockets have joined rooms of two.
- **Client crypto**: `end2end/bench/browser.mjs` loads the app's crypto compiled to WASM with the
  release profile (the `bench` feature of `frontend` exports it) in headless Chromium, and in the
  same page load runs the same operations through WebCrypto. PBKDF2 is timed once each after a
  warm-up; AES-GCM as the mean of 2,000 operations.
- **Join time**: the real release app in Chromium: from opening an invite link to the page
  showing it is connected, PBKDF2 included. The app derives with WebCrypto where the page has it
  (`app/src/webcrypto.rs`); the join is timed again on a page without `crypto.subtle`, where it
  derives with its Rust code in WASM.
- **Sizes**: the files the server serves, compressed with gzip level 9 and brotli quality 11
  (Node's zlib), as `make build` precompresses them.
"#;
