//! The whole server-side benchmark of `make bench`, in one run: database ceilings, journeys on
//! SQLite and PostgreSQL (one and two instances), and idle connections.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use app::crypto::RoomKeys;
use serde::{Deserialize, Serialize};

use crate::ceiling::{self, CeilingReport, PacedReport};
use crate::client::ClientError;
use crate::cpu::CpuTime;
use crate::idle;
use crate::journey::{self, JourneyError, JourneyOptions, JourneyReport};
use crate::target::{self, Backend, Database, Server, ServerSpec, TargetError};
use crate::transfer::{self, TransferReport};

/// A stored message row's body: a sealed 200-byte text is 256 + 29 bytes; the at-rest layer adds
/// 29 more.
const STORED_BODY: usize = 314;
/// The server's PostgreSQL pool (`server/src/store/postgres.rs`).
const SERVER_POOL: usize = 10;

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error(transparent)]
    Target(#[from] TargetError),
    #[error(transparent)]
    Journey(#[from] JourneyError),
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("file transfers: {0}")]
    Transfer(String),
}

/// How big each part of the run is.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Size {
    pub rooms: usize,
    pub messages_per_room: usize,
    /// Closed-loop runs, one per window (messages in flight per room); the best is the peak.
    pub windows: Vec<usize>,
    /// Length of the open-loop run at half the peak rate.
    pub half_peak_seconds: f64,
    pub payload: usize,
    pub ceiling_connections: Vec<usize>,
    pub ceiling_seconds: f64,
    pub idle_connections: usize,
    /// Bytes of each file of the transfer runs, and the transfers at once of the busy run.
    #[serde(default)]
    pub file_size: usize,
    #[serde(default)]
    pub file_pairs: usize,
    /// Journeys per second of the chat load run alone and then beside the transfers.
    #[serde(default)]
    pub beside_rate: f64,
    /// Pairs of runs, one instance and two over NATS in turns, for issue 24's two figures.
    #[serde(default)]
    pub pairs: usize,
}

impl Size {
    /// `make bench`.
    pub fn full() -> Self {
        Self {
            rooms: 32,
            messages_per_room: 150,
            windows: vec![1, 4, 16],
            half_peak_seconds: 10.0,
            payload: 200,
            ceiling_connections: vec![4, 10, 32],
            ceiling_seconds: 5.0,
            idle_connections: 10_000,
            file_size: 10 << 20,
            file_pairs: 20,
            beside_rate: 100.0,
            pairs: 8,
        }
    }

    /// The smoke run inside `make test`: every code path, tiny numbers.
    pub fn smoke() -> Self {
        Self {
            rooms: 2,
            messages_per_room: 5,
            windows: vec![2],
            half_peak_seconds: 1.0,
            payload: 200,
            ceiling_connections: vec![2],
            ceiling_seconds: 0.5,
            idle_connections: 20,
            file_size: 200_000,
            file_pairs: 2,
            beside_rate: 20.0,
            pairs: 2,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Machine {
    pub cpu: String,
    pub cores: usize,
    pub memory_gib: f64,
    pub kernel: String,
    pub postgres: String,
    pub sqlite: String,
    pub date: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JourneyRun {
    /// `closed` (as fast as the window allows) or `half-peak` (open loop at half the peak).
    pub mode: String,
    pub report: JourneyReport,
    /// Rows in `messages` after the run: zero when every journey burned its message.
    pub rows_left: i64,
    /// Processor time of the run, connecting and leaving included.
    #[serde(default)]
    pub cpu: CpuTime,
    /// Room events each instance received from the bus over the run (with two or more
    /// instances; its `ephemeral_chat_bus_received_total`).
    #[serde(default)]
    pub bus_received: Vec<f64>,
    /// Messages each instance held over the run as other instances' notices carried them (NATS;
    /// its `ephemeral_chat_bus_carried_held_total`): each spares a fetch's read of the store.
    #[serde(default)]
    pub carried_held: Vec<f64>,
}

impl JourneyRun {
    /// PostgreSQL's processor time per journey of the run, in ms.
    pub fn postgres_ms(&self) -> Option<f64> {
        self.cpu.per(self.report.completed).map(|(_, postgres, _, _)| postgres)
    }

    /// Bus events each instance received per journey of the run.
    pub fn received_per_journey(&self) -> Vec<f64> {
        let journeys = self.report.completed.max(1) as f64;
        self.bus_received.iter().map(|n| n / journeys).collect()
    }

    /// The share of the run's journeys whose message another instance held as its notice
    /// carried it; `None` without such counts (one instance, or LISTEN/NOTIFY).
    pub fn carried_share(&self) -> Option<f64> {
        let held: f64 = self.carried_held.iter().sum();
        (!self.carried_held.is_empty()).then(|| held / self.report.completed.max(1) as f64)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Setup {
    pub backend: Backend,
    pub instances: usize,
    /// Room events between the instances over NATS (`BUS_URL`), not LISTEN/NOTIFY.
    #[serde(default)]
    pub nats: bool,
    pub runs: Vec<JourneyRun>,
    pub peak_journeys_per_s: f64,
    /// Each instance's peak resident memory over all its runs.
    pub peak_rss_kib: Vec<u64>,
    /// PostgreSQL: the database's own insert+delete pairs at the open-loop run's rate, with no
    /// server and no clients, on a fresh database.
    #[serde(default)]
    pub database_alone: Option<PacedReport>,
    /// The same with a NOTIFY in each commit, as the server's writes carry when a room's
    /// participants are on different instances (with two or more instances).
    #[serde(default)]
    pub database_alone_notify: Option<PacedReport>,
}

impl Setup {
    pub fn half_peak(&self) -> Option<&JourneyRun> {
        self.runs.iter().find(|run| run.mode == "half-peak")
    }

    /// The closed-loop run that made the peak.
    pub fn peak_run(&self) -> Option<&JourneyRun> {
        self.runs.iter().filter(|run| run.mode == "closed").max_by(|a, b| {
            a.report.journeys_per_s.partial_cmp(&b.report.journeys_per_s).unwrap_or(std::cmp::Ordering::Equal)
        })
    }

    /// "PostgreSQL ×2" or "PostgreSQL ×2, NATS".
    pub fn name(&self) -> String {
        setup_name(self.backend, self.instances, self.nats)
    }
}

fn setup_name(backend: Backend, instances: usize, nats: bool) -> String {
    let bus = if nats { ", NATS" } else { "" };
    format!("{} ×{instances}{bus}", backend.name())
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Idle {
    pub connections: usize,
    pub rss_before_kib: u64,
    pub rss_after_kib: u64,
    pub bytes_per_connection: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Results {
    pub size: Size,
    pub machine: Machine,
    /// Native PBKDF2 (600,000 rounds) and key schedule per room, on the load generator.
    pub native_key_derivation_ms: f64,
    pub ceilings: Vec<CeilingReport>,
    pub setups: Vec<Setup>,
    pub idle: Idle,
    /// File transfers, per backend (absent from results older than files).
    #[serde(default)]
    pub files: Vec<FilesRun>,
    /// One instance against two over NATS, run in turns (absent from older results).
    #[serde(default)]
    pub pairs: Vec<Pair>,
    pub elapsed_s: f64,
}

/// One instance's run and two instances' over NATS, one right after the other, each at the
/// window where its sweep peaked and on its servers of the whole series: the machine's speed
/// drifts over minutes (one instance's peak has swung by half between runs of one binary), so
/// issue 24's two figures compare runs made side by side, not the sweeps' peaks made many
/// minutes apart.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Pair {
    /// Whether two instances ran first (the pairs alternate, so a drift within a pair favours
    /// neither side).
    pub two_first: bool,
    /// One instance, at the window where its sweep peaked.
    pub one: JourneyRun,
    /// Two instances, at the window where their sweep peaked.
    pub two: JourneyRun,
    /// Two instances again at one instance's window, run next to it, when the windows differ:
    /// PostgreSQL's time per journey grows with the messages in flight whatever the instances,
    /// so its two figures are compared at one window.
    #[serde(default)]
    pub two_at_one_window: Option<JourneyRun>,
}

impl Pair {
    /// Two instances' journeys per second as a share of one instance's.
    pub fn share(&self) -> f64 {
        self.two.report.journeys_per_s / self.one.report.journeys_per_s
    }

    /// PostgreSQL's processor time per journey, in ms, at one window: (one instance's run, two
    /// instances').
    pub fn postgres_ms(&self) -> Option<(f64, f64)> {
        Some((self.one.postgres_ms()?, self.two_at_one_window.as_ref().unwrap_or(&self.two).postgres_ms()?))
    }
}

/// File transfers on one backend, one server with the default settings but the abuse limits
/// (so the transfer budget, 8 MiB/s per connection, holds): one transfer alone, then
/// `file_pairs` at once, then a chat load alone and beside `file_pairs` transfers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FilesRun {
    pub backend: Backend,
    pub alone: TransferReport,
    pub at_once: TransferReport,
    /// The server's resident memory before the first transfer, and its peak over both runs.
    pub rss_before_kib: u64,
    pub peak_rss_kib: u64,
    pub journeys_alone: JourneyReport,
    pub journeys_beside: JourneyReport,
    /// Rows left once everything burned (must be 0: messages and chunks).
    pub rows_left: u64,
}

impl Results {
    /// Every journey clean and every message row gone.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let mut check = |name: String, run: &JourneyRun| {
            if !run.report.is_clean() {
                problems.push(format!("{name}: not every journey completed cleanly: {:?}", run.report));
            }
            if run.rows_left != 0 {
                problems.push(format!("{name}: {} message rows left behind", run.rows_left));
            }
        };
        for setup in &self.setups {
            for run in &setup.runs {
                check(format!("{} {} window {}", setup.name(), run.mode, run.report.window), run);
            }
        }
        for (index, pair) in self.pairs.iter().enumerate() {
            check(format!("pair {}, PostgreSQL ×1", index + 1), &pair.one);
            check(format!("pair {}, PostgreSQL ×2, NATS", index + 1), &pair.two);
            if let Some(run) = &pair.two_at_one_window {
                check(format!("pair {}, PostgreSQL ×2, NATS, at one instance's window", index + 1), run);
            }
        }
        for files in &self.files {
            let name = format!("{} files", files.backend.name());
            for (what, report) in [("alone", &files.journeys_alone), ("beside transfers", &files.journeys_beside)] {
                if !report.is_clean() {
                    problems.push(format!("{name}: journeys {what}: not every journey completed cleanly: {report:?}"));
                }
            }
            if files.rows_left != 0 {
                problems.push(format!("{name}: {} rows left behind", files.rows_left));
            }
        }
        problems
    }

    /// The best plain insert+delete rate (no NOTIFY): the database's own ceiling.
    pub fn best_ceiling(&self, backend: Backend) -> Option<&CeilingReport> {
        self.ceilings
            .iter()
            .filter(|c| c.backend == backend && !c.notify)
            .max_by(|a, b| a.pairs_per_s.total_cmp(&b.pairs_per_s))
    }

    /// The setup of `instances` of `backend` over LISTEN/NOTIFY (or no bus).
    pub fn setup(&self, backend: Backend, instances: usize) -> Option<&Setup> {
        self.setups.iter().find(|s| s.backend == backend && s.instances == instances && !s.nats)
    }

    /// Two instances' peak as a share of one instance's, in each pair run in turns.
    pub fn paired_shares(&self) -> Vec<f64> {
        self.pairs.iter().map(Pair::share).filter(|share| share.is_finite()).collect()
    }

    /// How much more processor time PostgreSQL spent per journey for two instances than for
    /// one (0.1 is 10 % more), in each pair run in turns.
    pub fn paired_postgres_growths(&self) -> Vec<f64> {
        let growths = self.pairs.iter().filter_map(Pair::postgres_ms).map(|(one, two)| two / one - 1.0);
        growths.filter(|growth| growth.is_finite()).collect()
    }

    /// The setup of `instances` over PostgreSQL with their events on NATS.
    pub fn nats_setup(&self, instances: usize) -> Option<&Setup> {
        self.setups.iter().find(|s| s.backend == Backend::Postgres && s.instances == instances && s.nats)
    }
}

pub struct BenchOptions {
    pub server_bin: PathBuf,
    pub postgres_url: String,
    pub size: Size,
    /// The nats-server the NATS setups run (Debian's, which `make setup` installs).
    pub nats_server_bin: PathBuf,
}

/// Runs everything, printing progress on stderr.
pub async fn run(options: &BenchOptions) -> Result<Results, BenchError> {
    let start = Instant::now();
    let size = &options.size;
    let machine = machine(&options.postgres_url).await?;
    eprintln!("bench: deriving {} room keys (PBKDF2, 600,000 rounds each)", size.rooms);
    let derive_start = Instant::now();
    let rooms = journey::derive_rooms(size.rooms).await;
    // Derivations run on every core at once: per room, wall time × cores / rooms.
    let cores = machine.cores.min(size.rooms).max(1);
    let native_key_derivation_ms = derive_start.elapsed().as_secs_f64() * 1000.0 * cores as f64 / size.rooms as f64;

    let mut ceilings = Vec::new();
    for backend in [Backend::Sqlite, Backend::Postgres] {
        for &connections in &size.ceiling_connections {
            eprintln!("bench: {} insert+delete ceiling, {connections} connections", backend.name());
            let db = Database::new(backend, &options.postgres_url)?;
            let measured =
                ceiling::measure(&db, connections, Duration::from_secs_f64(size.ceiling_seconds), STORED_BODY, false)
                    .await;
            db.drop_database().await?;
            ceilings.push(measured?);
        }
    }
    // What NOTIFY in every commit costs PostgreSQL by itself (the server's writes carry one).
    let connections = size.ceiling_connections.iter().copied().max().unwrap_or(1);
    eprintln!("bench: PostgreSQL insert+delete ceiling with NOTIFY, {connections} connections");
    let db = Database::new(Backend::Postgres, &options.postgres_url)?;
    let measured =
        ceiling::measure(&db, connections, Duration::from_secs_f64(size.ceiling_seconds), STORED_BODY, true).await;
    db.drop_database().await?;
    ceilings.push(measured?);

    let mut setups = Vec::new();
    for (backend, instances, nats) in [
        (Backend::Sqlite, 1, false),
        (Backend::Postgres, 1, false),
        (Backend::Postgres, 2, false),
        (Backend::Postgres, 2, true),
        (Backend::Postgres, 3, false),
        (Backend::Postgres, 3, true),
    ] {
        setups.push(run_setup(options, backend, instances, nats, &rooms).await?);
    }
    let peak_window = |instances: usize, nats: bool| {
        setups
            .iter()
            .find(|s| s.backend == Backend::Postgres && s.instances == instances && s.nats == nats)
            .and_then(Setup::peak_run)
            .map_or(4, |run| run.report.window)
    };
    let pairs = run_pairs(options, (peak_window(1, false), peak_window(2, true)), &rooms).await?;
    let idle = run_idle(options).await?;
    let mut files = Vec::new();
    for backend in [Backend::Sqlite, Backend::Postgres] {
        files.push(run_files(options, backend, &rooms).await?);
    }
    Ok(Results {
        size: size.clone(),
        machine,
        native_key_derivation_ms,
        ceilings,
        setups,
        idle,
        files,
        pairs,
        elapsed_s: start.elapsed().as_secs_f64(),
    })
}

/// The servers of journey runs: the load settings, and a participant whose socket breaks is
/// freed after a second, not a minute. These clients never come back, and a socket breaks instead
/// of closing when the server was still writing to it; so the next run starts in empty rooms.
fn journey_spec(options: &BenchOptions) -> ServerSpec {
    let mut spec = ServerSpec::for_load(options.server_bin.clone());
    spec.env.push(("SESSION_GRACE".into(), "1s".into()));
    spec
}

async fn run_setup(
    options: &BenchOptions,
    backend: Backend,
    instances: usize,
    nats: bool,
    rooms: &[RoomKeys],
) -> Result<Setup, BenchError> {
    let size = &options.size;
    let mut spec = journey_spec(options);
    // Several instances count the bus events each receives.
    spec.metrics = instances > 1;
    let nats_server = if nats { Some(target::NatsServer::start(&options.nats_server_bin)?) } else { None };
    if let Some(nats) = &nats_server {
        spec.env.push(("BUS_URL".into(), nats.url()));
    }
    let name = setup_name(backend, instances, nats);
    let db = Database::new(backend, &options.postgres_url)?;
    let key = target::random_key();
    let mut servers = Vec::new();
    for index in 0..instances {
        servers.push(Server::start(&spec, &db, &key, index).await?);
    }

    let mut journey_options = JourneyOptions {
        urls: servers.iter().map(Server::ws_url).collect(),
        clients_per_room: 2,
        messages: size.messages_per_room,
        window: 1,
        payload: size.payload,
        rate: None,
        drain_timeout: Duration::from_secs(30),
    };
    let mut runs = Vec::new();
    for &window in &size.windows {
        eprintln!("bench: {name}, closed loop, window {window}");
        journey_options.window = window;
        runs.push(measured_run("closed", &db, &servers, rooms, &journey_options).await?);
        db.wait_until_everyone_left().await?;
    }
    let peak = runs.iter().map(|r| r.report.journeys_per_s).fold(0.0, f64::max);
    if peak > 0.0 {
        let rate = peak / 2.0;
        eprintln!("bench: {name}, open loop at {rate:.0} messages/s");
        journey_options.rate = Some(rate);
        journey_options.window = 64;
        journey_options.messages = ((rate * size.half_peak_seconds) / rooms.len() as f64).ceil().max(1.0) as usize;
        runs.push(measured_run("half-peak", &db, &servers, rooms, &journey_options).await?);
    }
    let peak_rss_kib = servers.iter().map(Server::peak_rss_kib).collect::<Result<_, _>>()?;
    drop(servers);
    drop(nats_server);
    db.drop_database().await?;
    // With two instances every journey's writes NOTIFY the other (with one, none do). The
    // database alone is measured for one and two instances over LISTEN/NOTIFY only.
    let (database_alone, database_alone_notify) = match (backend, journey_options.rate) {
        _ if nats || instances > 2 => (None, None),
        (Backend::Postgres, Some(rate)) if instances > 1 => {
            (Some(database_alone(options, rate, false).await?), Some(database_alone(options, rate, true).await?))
        }
        (Backend::Postgres, Some(rate)) => (Some(database_alone(options, rate, false).await?), None),
        _ => (None, None),
    };
    Ok(Setup {
        backend,
        instances,
        nats,
        runs,
        peak_journeys_per_s: peak,
        peak_rss_kib,
        database_alone,
        database_alone_notify,
    })
}

/// `size.pairs` pairs of closed-loop runs: one instance over PostgreSQL, and two over NATS, each
/// at the window where its own sweep peaked (`windows`: one's, two's), in turns, two first in
/// every other pair; when the windows differ, two instances also at one's window, between them.
/// Each side keeps its servers (and database; two, a nats-server) for the whole series, warmed
/// by a run that is not measured; the side not running sits idle, its database
/// vacuumed after its run. Neither side serves metrics (they time every store call). Each run
/// sends twice the sweeps' messages, so that the processor time, read in 10 ms ticks, is fine
/// enough against a 10 % target.
async fn run_pairs(
    options: &BenchOptions,
    windows: (usize, usize),
    rooms: &[RoomKeys],
) -> Result<Vec<Pair>, BenchError> {
    let size = &options.size;
    if size.pairs == 0 {
        return Ok(Vec::new());
    }
    let spec = journey_spec(options);
    let key = target::random_key();
    let one_db = Database::new(Backend::Postgres, &options.postgres_url)?;
    let one = vec![Server::start(&spec, &one_db, &key, 0).await?];
    let nats = target::NatsServer::start(&options.nats_server_bin)?;
    let mut nats_spec = spec.clone();
    nats_spec.env.push(("BUS_URL".into(), nats.url()));
    let two_db = Database::new(Backend::Postgres, &options.postgres_url)?;
    let mut two = Vec::new();
    for index in 0..2 {
        two.push(Server::start(&nats_spec, &two_db, &key, index).await?);
    }
    let journey_options = |servers: &[Server], window: usize, messages: usize| JourneyOptions {
        urls: servers.iter().map(Server::ws_url).collect(),
        clients_per_room: 2,
        messages,
        window,
        payload: size.payload,
        rate: None,
        drain_timeout: Duration::from_secs(30),
    };
    let sides = [("PostgreSQL ×1", &one_db, &one, windows.0), ("PostgreSQL ×2, NATS", &two_db, &two, windows.1)];
    for (name, db, servers, window) in sides {
        eprintln!("bench: pairs, {name}, warming up");
        let messages = size.messages_per_room.div_ceil(4);
        journey::run(rooms, &journey_options(servers, window, messages)).await?;
        db.wait_until_everyone_left().await?;
        db.settle().await?;
    }
    let mut pairs = Vec::with_capacity(size.pairs);
    for index in 0..size.pairs {
        let two_first = index % 2 == 1;
        // Two instances at one's window (if it differs) always run next to one instance.
        let at_one_window = (windows.0 != windows.1).then_some((sides[1].0, sides[1].1, sides[1].2, windows.0));
        let order = if two_first {
            [Some(sides[1]), at_one_window, Some(sides[0])]
        } else {
            [Some(sides[0]), at_one_window, Some(sides[1])]
        };
        let mut runs = Vec::with_capacity(3);
        for (name, db, servers, window) in order.into_iter().flatten() {
            eprintln!("bench: pair {} of {}, {name}, closed loop, window {window}", index + 1, size.pairs);
            let options = journey_options(servers, window, size.messages_per_room * 2);
            let run = measured_run("closed", db, servers, rooms, &options).await?;
            db.wait_until_everyone_left().await?;
            db.settle().await?;
            runs.push((servers.len(), window, run));
        }
        let mut take = |instances: usize, window: usize| {
            let at = runs.iter().position(|(n, w, _)| (*n, *w) == (instances, window))?;
            Some(runs.swap_remove(at).2)
        };
        let (one, two, two_at_one_window) = (take(1, windows.0), take(2, windows.1), take(2, windows.0));
        if let (Some(one), Some(two)) = (one, two) {
            pairs.push(Pair { two_first, one, two, two_at_one_window });
        }
    }
    drop((one, two, nats));
    one_db.drop_database().await?;
    two_db.drop_database().await?;
    Ok(pairs)
}

/// PostgreSQL's own insert+delete pairs at `rate`, from as many connections as the server's
/// pool; with `notify`, a NOTIFY in each commit.
async fn database_alone(options: &BenchOptions, rate: f64, notify: bool) -> Result<PacedReport, BenchError> {
    let with = if notify { " with NOTIFY" } else { "" };
    eprintln!("bench: PostgreSQL insert+delete pairs alone at {rate:.0}/s{with}");
    let db = Database::new(Backend::Postgres, &options.postgres_url)?;
    let seconds = Duration::from_secs_f64(options.size.half_peak_seconds);
    let measured = ceiling::paced_postgres(&db, SERVER_POOL, rate, seconds, STORED_BODY, notify).await;
    db.drop_database().await?;
    Ok(measured?)
}

/// One journey run from a database at rest, with the processor time of `servers`, PostgreSQL,
/// NATS and this process over it, the bus events each server received, and the rows it left.
async fn measured_run(
    mode: &str,
    db: &Database,
    servers: &[Server],
    rooms: &[RoomKeys],
    options: &JourneyOptions,
) -> Result<JourneyRun, BenchError> {
    db.settle().await?;
    let pids: Vec<u32> = servers.iter().map(Server::pid).collect();
    let (received_before, carried_before) = (counts(servers, RECEIVED).await, counts(servers, CARRIED).await);
    let before = CpuTime::now(&pids);
    let report = journey::run(rooms, options).await?;
    let cpu = CpuTime::now(&pids).since(&before);
    let bus_received = since(counts(servers, RECEIVED).await, received_before);
    let carried_held =
        if options.urls.len() > 1 { since(counts(servers, CARRIED).await, carried_before) } else { vec![] };
    let rows_left = db.message_rows().await?;
    Ok(JourneyRun { mode: mode.into(), report, rows_left, cpu, bus_received, carried_held })
}

/// The counters [`measured_run`] reads from each server's metrics.
const RECEIVED: &str = "ephemeral_chat_bus_received_total";
const CARRIED: &str = "ephemeral_chat_bus_carried_held_total";

/// Each server's count of `metric` (`None` for a server without metrics).
async fn counts(servers: &[Server], metric: &str) -> Vec<Option<f64>> {
    let mut counts = Vec::with_capacity(servers.len());
    for server in servers {
        counts.push(server.metric(metric).await);
    }
    counts
}

/// What each server counted since `before`, for the servers that count.
fn since(after: Vec<Option<f64>>, before: Vec<Option<f64>>) -> Vec<f64> {
    after.iter().zip(&before).filter_map(|(after, before)| Some(after.as_ref()? - before.as_ref()?)).collect()
}

async fn run_files(options: &BenchOptions, backend: Backend, rooms: &[RoomKeys]) -> Result<FilesRun, BenchError> {
    let size = &options.size;
    let (file, pairs) = (size.file_size, size.file_pairs);
    let db = Database::new(backend, &options.postgres_url)?;
    let server = Server::start(&journey_spec(options), &db, &target::random_key(), 0).await?;
    let url = server.ws_url();
    let transfer_error = |err: anyhow::Error| BenchError::Transfer(format!("{err:#}"));
    let rss_before_kib = server.rss_kib()?;
    eprintln!("bench: {} one file of {file} bytes", backend.name());
    let alone = transfer::run(&url, file, 1).await.map_err(transfer_error)?;
    eprintln!("bench: {} {pairs} files of {file} bytes at once", backend.name());
    let at_once = transfer::run(&url, file, pairs).await.map_err(transfer_error)?;
    let peak_rss_kib = server.peak_rss_kib()?;
    // The chat load: an open loop at a person-like total rate over every room, alone and then
    // beside `pairs` transfers (which start with it and end before it does).
    let journeys = |messages: usize| JourneyOptions {
        urls: vec![url.clone()],
        clients_per_room: 2,
        messages,
        window: 64,
        payload: size.payload,
        rate: Some(size.beside_rate),
        drain_timeout: Duration::from_secs(30),
    };
    let messages = ((size.beside_rate * size.half_peak_seconds) / rooms.len() as f64).ceil().max(1.0) as usize;
    eprintln!("bench: {} journeys at {}/s alone", backend.name(), size.beside_rate);
    db.wait_until_everyone_left().await?;
    let journeys_alone = journey::run(rooms, &journeys(messages)).await?;
    db.wait_until_everyone_left().await?;
    eprintln!("bench: {} journeys at {}/s beside {pairs} transfers", backend.name(), size.beside_rate);
    let beside_options = journeys(messages);
    let (beside, transfers) = tokio::join!(journey::run(rooms, &beside_options), transfer::run(&url, file, pairs));
    let journeys_beside = beside?;
    transfers.map_err(transfer_error)?;
    db.wait_until_everyone_left().await?;
    let rows_left = u64::try_from(db.message_rows().await? + db.chunk_rows().await?).unwrap_or(u64::MAX);
    drop(server);
    db.drop_database().await?;
    Ok(FilesRun { backend, alone, at_once, rss_before_kib, peak_rss_kib, journeys_alone, journeys_beside, rows_left })
}

async fn run_idle(options: &BenchOptions) -> Result<Idle, BenchError> {
    let connections = options.size.idle_connections;
    eprintln!("bench: {connections} idle connections");
    let db = Database::new(Backend::Sqlite, &options.postgres_url)?;
    let server =
        Server::start(&ServerSpec::for_load(options.server_bin.clone()), &db, &target::random_key(), 0).await?;
    // Warm up what every server allocates once (pools, first connection), then weigh.
    drop(idle::open(&server.ws_url(), 2, 2).await?);
    settle().await;
    let rss_before_kib = server.rss_kib()?;
    let open = idle::open(&server.ws_url(), connections, 100).await?;
    settle().await;
    let rss_after_kib = server.rss_kib()?;
    drop(open);
    let bytes = (rss_after_kib.saturating_sub(rss_before_kib) * 1024) as f64 / connections as f64;
    Ok(Idle { connections, rss_before_kib, rss_after_kib, bytes_per_connection: bytes })
}

/// Lets the server finish what the last connections started (joins, presence, heartbeats).
async fn settle() {
    tokio::time::sleep(Duration::from_secs(2)).await;
}

async fn machine(postgres_url: &str) -> Result<Machine, TargetError> {
    use sqlx::{ConnectOptions as _, Connection as _};
    let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
    let cpu = read("/proc/cpuinfo")
        .lines()
        .find_map(|l| l.strip_prefix("model name").and_then(|r| r.split_once(':')).map(|(_, v)| v.trim().to_owned()))
        .unwrap_or_else(|| "unknown".into());
    let memory_kib: f64 = read("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0.0);
    let mut pg = postgres_url.parse::<sqlx::postgres::PgConnectOptions>()?.connect().await?;
    let version: String = sqlx::query_scalar("SHOW server_version").fetch_one(&mut pg).await?;
    // Whether the figures include TLS to the database: this connection follows PGSSLMODE (libpq's
    // `prefer` when unset), as do the servers' (`target.rs`).
    let tls: bool =
        sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetch_one(&mut pg).await?;
    let postgres = format!("{version}, reached {} TLS", if tls { "over" } else { "without" });
    pg.close().await?;
    let mut lite = sqlx::sqlite::SqliteConnectOptions::new().in_memory(true).connect().await?;
    let sqlite: String = sqlx::query_scalar("SELECT sqlite_version()").fetch_one(&mut lite).await?;
    let date = std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    Ok(Machine {
        cpu,
        cores: std::thread::available_parallelism().map_or(1, usize::from),
        memory_gib: memory_kib / 1024.0 / 1024.0,
        kernel: read("/proc/sys/kernel/osrelease").trim().to_owned(),
        postgres,
        sqlite,
        date,
    })
}

#[cfg(test)]
mod tests {
    use crate::render::fixture::{pairs, results};

    #[test]
    fn a_lost_journey_or_a_row_left_in_any_run_of_a_pair_is_a_problem() {
        let mut results = results();
        results.pairs = pairs();
        assert_eq!(results.problems(), Vec::<String>::new());
        let mut at_one_window = results.pairs[1].two.clone();
        at_one_window.rows_left = 2;
        results.pairs[1].two_at_one_window = Some(at_one_window);
        results.pairs[2].one.report.completed -= 1;
        let problems = results.problems();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].starts_with("pair 2, PostgreSQL ×2, NATS, at one instance's window: 2 message rows"));
        assert!(problems[1].starts_with("pair 3, PostgreSQL ×1: not every journey completed cleanly"));
    }
}
