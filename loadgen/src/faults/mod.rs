//! `loadgen faults` (`make test-faults`): message journeys under load while the system is hurt,
//! then an account of every message.
//!
//! Each room has a sender and a receiver that behave as pages do: each keeps its session token
//! across reconnects, the sender resends what the server has not acknowledged (`sent`), the
//! receiver fetches what its `joined` lists and what it is told of, opens it, and confirms it
//! viewed. Meanwhile the faults come, one after another, each followed by a spell of load:
//! - `kill -9` of a server instance, restarted at once;
//! - a restart of PostgreSQL (a cluster of this run's own: initdb into a temp dir, its own port,
//!   so that restarting it disturbs nothing else on the machine);
//! - the LISTEN connection of every instance cut (`pg_terminate_backend`).
//!
//! SQLite gets the `kill -9`s; PostgreSQL, with two instances and each room's sender and
//! receiver on different ones, gets all three. Afterwards every message must have been delivered
//! to its receiver and burned, none opened again after its burn was confirmed, none lost, and
//! the store must be empty. The cluster's data directory (WAL included) and every server's output
//! are then searched for the plaintexts' marker.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use app::crypto::RoomKeys;
use serde::Serialize;

use crate::target::{self, Backend, Database, Server, ServerSpec, TargetError};

mod cluster;
mod rooms;

pub use cluster::Cluster;
pub(crate) use rooms::Load;

/// In every plaintext, so that a search of the data can find any of them.
pub const PLAINTEXT_MARKER: &str = "ec-faults-plaintext";
#[derive(Debug, thiserror::Error)]
pub enum FaultError {
    #[error(transparent)]
    Target(#[from] TargetError),
    #[error("PostgreSQL tools: {0}")]
    Postgres(String),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

#[derive(Debug, Clone)]
pub struct FaultOptions {
    pub server_bin: PathBuf,
    /// Where `initdb` and `pg_ctl` are; found under /usr/lib/postgresql if not given.
    pub postgres_bin: Option<PathBuf>,
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

/// What one backend's run went through and what became of its messages.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FaultReport {
    pub backend: String,
    pub instances: usize,
    pub rooms: usize,
    pub server_kills: usize,
    pub postgres_restarts: usize,
    pub listen_cuts: usize,
    /// Distinct messages the senders sent.
    pub sent: usize,
    /// Of those, how many the server acknowledged (`sent`).
    pub acknowledged: usize,
    /// Distinct messages their receiver opened.
    pub delivered: usize,
    /// Delivered and burned (the receiver got `deleted`).
    pub burned: usize,
    /// Sent and never delivered.
    pub lost: usize,
    /// Opened again after its burn was confirmed, though acknowledged before that: a message
    /// that came back from the dead. Must be 0.
    pub duplicates: usize,
    /// Opened again after its burn because the sender never saw its acknowledgement (the
    /// server died between storing and answering) and so sent it again: the page's resend, as
    /// designed. The receiver's page shows it once (by id), and burns the copy.
    pub resent_after_burn: usize,
    /// Handed out again before its burn was confirmed (a crash between fetch and viewed).
    pub refetched: usize,
    pub open_failures: usize,
    pub reconnects: usize,
    pub errors: BTreeMap<String, usize>,
    /// Rows in `messages` and `recipients` once the run is over.
    pub rows_left: i64,
    pub recipient_rows_left: i64,
    /// Files and outputs in which a plaintext was found: must be empty.
    pub plaintext_found_in: Vec<String>,
}

impl FaultReport {
    /// Everything this run must show, as sentences; empty when the run is clean.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let name = &self.backend;
        if self.sent == 0 {
            problems.push(format!("{name}: no message was sent"));
        }
        if self.lost > 0 || self.delivered != self.sent || self.burned != self.sent {
            problems.push(format!(
                "{name}: {} sent, {} delivered, {} burned, {} lost",
                self.sent, self.delivered, self.burned, self.lost
            ));
        }
        if self.duplicates > 0 {
            problems.push(format!("{name}: {} messages were opened again after their burn", self.duplicates));
        }
        if self.open_failures > 0 {
            problems.push(format!("{name}: {} payloads did not open", self.open_failures));
        }
        if self.rows_left != 0 || self.recipient_rows_left != 0 {
            problems.push(format!(
                "{name}: {} message rows and {} recipient rows left behind",
                self.rows_left, self.recipient_rows_left
            ));
        }
        if self.instances > 1 && self.listen_cuts < self.postgres_restarts {
            problems.push(format!("{name}: no LISTEN connection was found to cut: that fault did not happen"));
        }
        for place in &self.plaintext_found_in {
            problems.push(format!("{name}: a plaintext was found in {place}"));
        }
        problems
    }
}

/// The WebSocket URL of each instance, updated as instances are restarted.
pub(crate) type Urls = Arc<RwLock<Vec<String>>>;

pub(crate) fn url_of(urls: &Urls, instance: usize) -> String {
    let urls = urls.read().unwrap_or_else(std::sync::PoisonError::into_inner);
    urls[instance % urls.len()].clone()
}

/// Runs the faults on SQLite (`kill -9` only) and on PostgreSQL (all three).
pub async fn run(options: &FaultOptions) -> Result<Vec<FaultReport>, FaultError> {
    let rooms = crate::journey::derive_rooms(options.rooms).await;
    let sqlite = run_sqlite(options, &rooms).await?;
    let cluster = Cluster::start(options.postgres_bin.as_deref())?;
    let postgres = run_postgres(options, &rooms, &cluster).await;
    let mut postgres = postgres?;
    postgres.plaintext_found_in.extend(search_for_plaintext(cluster.data_dir(), "the PostgreSQL data directory"));
    drop(cluster);
    Ok(vec![sqlite, postgres])
}

async fn run_sqlite(options: &FaultOptions, rooms: &[RoomKeys]) -> Result<FaultReport, FaultError> {
    let db = Database::new(Backend::Sqlite, "")?;
    let spec = ServerSpec::for_load(options.server_bin.clone());
    let key = target::random_key();
    let mut generation = 0;
    let mut server = Server::start(&spec, &db, &key, generation).await?;
    let urls: Urls = Arc::new(RwLock::new(vec![server.ws_url()]));
    let mut report = FaultReport { backend: "sqlite".into(), instances: 1, rooms: rooms.len(), ..Default::default() };

    let load = Load::start(rooms, &urls, options.interval, options.drain, 1);
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

async fn run_postgres(
    options: &FaultOptions,
    rooms: &[RoomKeys],
    cluster: &Cluster,
) -> Result<FaultReport, FaultError> {
    let db = Database::new(Backend::Postgres, &cluster.admin_url())?;
    let spec = ServerSpec::for_load(options.server_bin.clone());
    let key = target::random_key();
    let mut servers = vec![Server::start(&spec, &db, &key, 0).await?, Server::start(&spec, &db, &key, 1).await?];
    let urls: Urls = Arc::new(RwLock::new(servers.iter().map(Server::ws_url).collect()));
    let mut report = FaultReport { backend: "postgres".into(), instances: 2, rooms: rooms.len(), ..Default::default() };
    let mut generation = servers.len();

    let load = Load::start(rooms, &urls, options.interval, options.drain, 2);
    tokio::time::sleep(options.settle).await;
    for cycle in 0..options.cycles {
        let victim = cycle % servers.len();
        servers[victim].kill();
        report.server_kills += 1;
        servers[victim] = Server::start(&spec, &db, &key, generation).await?;
        generation += 1;
        set_url(&urls, victim, servers[victim].ws_url());
        tokio::time::sleep(options.settle).await;

        cluster.restart()?;
        report.postgres_restarts += 1;
        tokio::time::sleep(options.settle).await;

        report.listen_cuts += cluster.cut_listeners(&db.url).await?;
        tokio::time::sleep(options.settle).await;
    }
    load.finish(&mut report).await;
    report.rows_left = db.message_rows().await?;
    report.recipient_rows_left = db.recipient_rows().await?;
    for server in &servers {
        if server.output_text().contains(PLAINTEXT_MARKER) {
            report.plaintext_found_in.push(format!("{}", server.output.display()));
        }
    }
    drop(servers);
    db.drop_database().await?;
    Ok(report)
}

fn set_url(urls: &Urls, instance: usize, url: String) {
    urls.write().unwrap_or_else(std::sync::PoisonError::into_inner)[instance] = url;
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
    fn a_run_that_lost_duplicated_or_left_rows_is_not_clean() {
        let clean = FaultReport {
            backend: "x".into(),
            sent: 3,
            acknowledged: 3,
            delivered: 3,
            burned: 3,
            ..Default::default()
        };
        assert!(clean.problems().is_empty());
        for broken in [
            FaultReport { lost: 1, delivered: 2, ..clean.clone() },
            FaultReport { duplicates: 1, ..clean.clone() },
            FaultReport { rows_left: 1, ..clean.clone() },
            FaultReport { recipient_rows_left: 1, ..clean.clone() },
            FaultReport { plaintext_found_in: vec!["a file".into()], ..clean.clone() },
            FaultReport { sent: 0, acknowledged: 0, delivered: 0, burned: 0, ..clean.clone() },
        ] {
            assert!(!broken.problems().is_empty(), "{broken:?}");
        }
    }

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
