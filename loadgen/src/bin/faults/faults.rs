//! `faults run` (`make test-faults`): message journeys under load while the system is hurt,
//! then an account of every message.
//!
//! Each room has a sender and a receiver that behave as pages do: each keeps its session token
//! across reconnects, the sender resends what the server has not acknowledged (`sent`), the
//! receiver fetches what its `joined` lists and what it is told of, opens it, and confirms it
//! viewed. Meanwhile the faults come, one after another, each followed by a spell of load:
//! - `kill -9` of a server instance, restarted at once;
//! - a restart of PostgreSQL (a cluster of this run's own: initdb into a temp dir, its own port,
//!   so that restarting it disturbs nothing else on the machine);
//! - the LISTEN connection of every instance cut (`pg_terminate_backend`);
//! - with the NATS bus (`BUS_URL`): a restart of a nats-server of this run's own, and the relays'
//!   NATS connections cut through a TCP proxy of this run's own.
//!
//! SQLite gets the `kill -9`s; PostgreSQL, with two instances and each room's sender and
//! receiver on different ones, gets the first three over LISTEN/NOTIFY, and `kill -9`, the NATS
//! restart and the cuts over NATS. Then, on each bus, the receivers hop: each drops its
//! connection every 1 to 4 s and comes back on the other instance while messages keep coming,
//! and no connection may miss the notice of a message sent while it was there (the rejoin gap).
//! Afterwards every message must have been delivered to its receiver and burned, none opened
//! again after its burn was confirmed, none lost, and the store must be empty. The cluster's
//! data directory (WAL included) and every server's output are then searched for the
//! plaintexts' marker.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use app::crypto::RoomKeys;
use loadgen::target::{self, Backend, Database, NatsServer, Server, ServerSpec};

use crate::cluster::Cluster;
use crate::error::FaultError;
use crate::nats::Proxy;
use crate::report::FaultReport;
use crate::rooms::{set_url, Hops, Load, Urls, PLAINTEXT_MARKER};

#[derive(Debug, Clone)]
pub struct FaultOptions {
    pub server_bin: PathBuf,
    /// Where `initdb` and `pg_ctl` are; found under /usr/lib/postgresql if not given.
    pub postgres_bin: Option<PathBuf>,
    /// The nats-server to run (Debian's, from `make setup`).
    pub nats_server_bin: PathBuf,
    /// Only the NATS bus's runs (to look into them).
    pub nats_only: bool,
    pub rooms: usize,
    /// Each room's sender sends one message this often while the faults go on.
    pub interval: Duration,
    /// How many times each fault comes.
    pub cycles: usize,
    /// Load before, between and after the faults.
    pub settle: Duration,
    /// Time allowed, after the last send, for every message to be delivered and burned.
    pub drain: Duration,
}

/// Runs the faults on SQLite (`kill -9` only), on PostgreSQL over LISTEN/NOTIFY and over NATS,
/// and the hopping receivers on both buses.
pub async fn run(options: &FaultOptions) -> Result<Vec<FaultReport>, FaultError> {
    let rooms = loadgen::journey::derive_rooms(options.rooms).await;
    let only_nats = options.nats_only;
    let mut reports = if only_nats { Vec::new() } else { vec![run_sqlite(options, &rooms).await?] };
    let cluster = Cluster::start(options.postgres_bin.as_deref())?;
    if !only_nats {
        reports.extend(run_postgres(options, &rooms, &cluster).await?);
    }
    reports.extend(run_nats(options, &rooms, &cluster).await?);
    let found = search_for_plaintext(cluster.data_dir(), "the PostgreSQL data directory");
    if let Some(last) = reports.last_mut() {
        last.plaintext_found_in.extend(found);
    }
    drop(cluster);
    Ok(reports)
}

/// How the receivers hop, and for how long.
fn hops(options: &FaultOptions) -> (Hops, Duration) {
    (Hops { every: (Duration::from_secs(1), Duration::from_secs(4)) }, options.settle * 4)
}

/// The hopping receivers on `urls`' instances: messages keep coming while each room's receiver
/// moves between them.
async fn hop_between(
    options: &FaultOptions,
    rooms: &[RoomKeys],
    urls: &Urls,
    backend: &str,
    db: &Database,
) -> Result<FaultReport, FaultError> {
    let (hops, spell) = hops(options);
    let mut report = FaultReport {
        backend: format!("{backend}, hopping receivers"),
        instances: 2,
        rooms: rooms.len(),
        ..Default::default()
    };
    let load = Load::start(rooms, urls, options.interval, options.drain, 2, Some(hops));
    tokio::time::sleep(spell).await;
    load.finish(&mut report).await;
    report.rows_left = db.message_rows().await?;
    report.recipient_rows_left = db.recipient_rows().await?;
    if report.hops == 0 {
        report.not_happened.push("no receiver hopped".into());
    }
    Ok(report)
}

async fn run_sqlite(options: &FaultOptions, rooms: &[RoomKeys]) -> Result<FaultReport, FaultError> {
    let db = Database::new(Backend::Sqlite, "")?;
    let spec = ServerSpec::for_load(options.server_bin.clone());
    let key = target::random_key();
    let mut generation = 0;
    let mut server = Server::start(&spec, &db, &key, generation).await?;
    let urls: Urls = Arc::new(RwLock::new(vec![server.ws_url()]));
    let mut report = FaultReport { backend: "sqlite".into(), instances: 1, rooms: rooms.len(), ..Default::default() };

    let load = Load::start(rooms, &urls, options.interval, options.drain, 1, None);
    tokio::time::sleep(options.settle).await;
    for _ in 0..options.cycles {
        server.kill();
        report.server_kills += 1;
        generation += 1;
        server = Server::start(&spec, &db, &key, generation).await?;
        set_url(&urls, 0, server.ws_url());
        tokio::time::sleep(options.settle).await;
    }
    load.finish(&mut report).await;
    report.rows_left = db.message_rows().await?;
    report.recipient_rows_left = db.recipient_rows().await?;
    drop(server);
    report.plaintext_found_in.extend(search_for_plaintext(db.dir.path(), "the SQLite data directory"));
    Ok(report)
}

/// Two instances over one PostgreSQL database under load, each restarted in place when killed;
/// then the hopping receivers, and an account of what was left.
struct Pair {
    spec: ServerSpec,
    db: Database,
    key: String,
    servers: Vec<Server>,
    urls: Urls,
    /// Servers started so far (each its own output file).
    started: usize,
}

impl Pair {
    async fn start(spec: ServerSpec, db: Database) -> Result<Self, FaultError> {
        let key = target::random_key();
        let servers = vec![Server::start(&spec, &db, &key, 0).await?, Server::start(&spec, &db, &key, 1).await?];
        let urls: Urls = Arc::new(RwLock::new(servers.iter().map(Server::ws_url).collect()));
        Ok(Self { spec, db, key, servers, urls, started: 2 })
    }

    /// `kill -9` of one instance, started again at once (its pages follow it to its new port).
    async fn kill_and_restart(&mut self, victim: usize, report: &mut FaultReport) -> Result<(), FaultError> {
        self.servers[victim].kill();
        report.server_kills += 1;
        self.servers[victim] = Server::start(&self.spec, &self.db, &self.key, self.started).await?;
        self.started += 1;
        set_url(&self.urls, victim, self.servers[victim].ws_url());
        Ok(())
    }

    /// With metrics (the NATS runs): the messages the live instances held so far as other
    /// instances' notices carried them.
    async fn carried_held(&self) -> Option<u64> {
        if !self.spec.metrics {
            return None;
        }
        let mut held = 0.0;
        for server in &self.servers {
            held += server.metric("ephemeral_chat_bus_carried_held_total").await.unwrap_or(0.0);
        }
        Some(held as u64)
    }

    /// Ends the faults' load, then runs the hopping receivers, and accounts for both: rows
    /// left, and the plaintext marker in any server's output.
    async fn finish(
        self,
        load: Load,
        mut report: FaultReport,
        options: &FaultOptions,
        rooms: &[RoomKeys],
    ) -> Result<Vec<FaultReport>, FaultError> {
        load.finish(&mut report).await;
        report.rows_left = self.db.message_rows().await?;
        report.recipient_rows_left = self.db.recipient_rows().await?;
        let carried = self.carried_held().await;
        let mut hopping = hop_between(options, rooms, &self.urls, &report.backend, &self.db).await?;
        if let (Some(before), Some(after)) = (carried, self.carried_held().await) {
            report.carried_held = before;
            hopping.carried_held = after.saturating_sub(before);
            for run in [&mut report, &mut hopping] {
                if run.carried_held == 0 {
                    run.not_happened.push(NOTHING_CARRIED.into());
                }
            }
        }
        for server in &self.servers {
            if server.output_text().contains(PLAINTEXT_MARKER) {
                report.plaintext_found_in.push(format!("{}", server.output.display()));
            }
        }
        drop(self.servers);
        self.db.drop_database().await?;
        Ok(vec![report, hopping])
    }
}

/// What a NATS run says when no relay held a message a notice carried.
const NOTHING_CARRIED: &str = "no relay held a message another one's notice carried";

/// Two instances over LISTEN/NOTIFY: `kill -9`, a PostgreSQL restart, every LISTEN cut.
async fn run_postgres(
    options: &FaultOptions,
    rooms: &[RoomKeys],
    cluster: &Cluster,
) -> Result<Vec<FaultReport>, FaultError> {
    let db = Database::new(Backend::Postgres, &cluster.admin_url())?;
    let mut pair = Pair::start(ServerSpec::for_load(options.server_bin.clone()), db).await?;
    let mut report = FaultReport { backend: "postgres".into(), instances: 2, rooms: rooms.len(), ..Default::default() };
    let load = Load::start(rooms, &pair.urls, options.interval, options.drain, 2, None);
    tokio::time::sleep(options.settle).await;
    for cycle in 0..options.cycles {
        pair.kill_and_restart(cycle % 2, &mut report).await?;
        tokio::time::sleep(options.settle).await;

        cluster.restart()?;
        report.postgres_restarts += 1;
        tokio::time::sleep(options.settle).await;

        report.listen_cuts += cluster.cut_listeners(&pair.db.url).await?;
        tokio::time::sleep(options.settle).await;
    }
    pair.finish(load, report, options, rooms).await
}

/// Two instances over PostgreSQL with their events on NATS, through a proxy of this run's own
/// to a nats-server of its own: `kill -9` of an instance, a restart of the nats-server, and the
/// relays' NATS connections cut, each under load; then the hopping receivers.
async fn run_nats(
    options: &FaultOptions,
    rooms: &[RoomKeys],
    cluster: &Cluster,
) -> Result<Vec<FaultReport>, FaultError> {
    let db = Database::new(Backend::Postgres, &cluster.admin_url())?;
    let mut nats = NatsServer::start(&options.nats_server_bin)?;
    let proxy = Proxy::start(nats.port()).await?;
    let mut spec = ServerSpec::for_load(options.server_bin.clone());
    spec.env.push(("BUS_URL".into(), format!("nats://127.0.0.1:{}", proxy.port)));
    spec.metrics = true;
    let mut pair = Pair::start(spec, db).await?;
    let mut report =
        FaultReport { backend: "postgres + nats".into(), instances: 2, rooms: rooms.len(), ..Default::default() };
    let load = Load::start(rooms, &pair.urls, options.interval, options.drain, 2, None);
    tokio::time::sleep(options.settle).await;
    for cycle in 0..options.cycles {
        pair.kill_and_restart(cycle % 2, &mut report).await?;
        tokio::time::sleep(options.settle).await;

        nats.restart()?;
        report.nats_restarts += 1;
        tokio::time::sleep(options.settle).await;

        report.bus_cuts += proxy.cut();
        tokio::time::sleep(options.settle).await;
    }
    if report.bus_cuts == 0 {
        report.not_happened.push("no NATS connection was found to cut".into());
    }
    pair.finish(load, report, options, rooms).await
}

/// Every file under `dir` (recursively) that holds the plaintext marker, named for `what`.
fn search_for_plaintext(dir: &Path, what: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        if let Ok(entries) = std::fs::read_dir(&path) {
            stack.extend(entries.filter_map(|e| e.ok().map(|e| e.path())));
        } else if let Ok(bytes) = std::fs::read(&path) {
            if bytes.windows(PLAINTEXT_MARKER.len()).any(|w| w == PLAINTEXT_MARKER.as_bytes()) {
                found.push(format!("{what}: {}", path.display()));
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plaintext_search_finds_the_marker_in_any_file_below() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("clean"), b"nothing here").unwrap();
        assert!(search_for_plaintext(dir.path(), "test").is_empty());
        std::fs::write(dir.path().join("sub/wal"), format!("\0\0{PLAINTEXT_MARKER} room 1\0")).unwrap();
        assert_eq!(search_for_plaintext(dir.path(), "test").len(), 1);
    }
}
