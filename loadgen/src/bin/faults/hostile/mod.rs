//! `faults hostile` (`make hostile-smoke`, `make test-hostile`): hostile clients against the real
//! release server, one fresh server (SQLite) per attack, while honest pages make message
//! journeys in rooms of their own:
//! - [`slowloris`]: connections dribbling a request head, each closed by `HEADER_TIMEOUT`;
//! - [`non_reading`]: WebSockets that ask for big payloads and never read, each dropped by
//!   `WRITE_TIMEOUT` once its writes stall;
//! - [`quota`]: what one address, and one IPv6 /64 behind a trusted proxy, can store before
//!   `quota_exceeded`;
//! - [`storage`]: what many addresses together store before `storage_full`.
//!
//! Each attack's figures, the honest journeys' latency during it and the account of every honest
//! message go into one report ([`report`]); any bound broken is a problem, and the command fails.

use std::path::{Path, PathBuf};
use std::time::Duration;

use loadgen::target::{self, Backend, Database, Server, ServerSpec, TargetError};

pub use self::report::HostileReport;

mod attacker;
mod flood;
mod honest;
mod non_reading;
mod quota;
mod report;
mod slowloris;
mod sockets;
mod storage;

/// Why an attack could not be carried out (as opposed to a bound it broke, which is a problem
/// in its report).
#[derive(Debug, thiserror::Error)]
pub enum HostileError {
    #[error(transparent)]
    Target(#[from] TargetError),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("websocket: {0}")]
    Socket(#[from] Box<tokio_tungstenite::tungstenite::Error>),
    #[error("{0}")]
    Setup(String),
}

/// How big each attack is: `--smoke` fits in `make test`; the full size uses the relay's
/// defaults where they can be waited for.
#[derive(Debug, Clone)]
pub struct Sizes {
    pub smoke: bool,
    /// Honest rooms (a sender page and a receiver page each) during every attack.
    pub honest_rooms: usize,
    /// Each honest room's sender sends at most one message this often (the next once the last
    /// is burned).
    pub honest_interval: Duration,
    /// Honest journeys and page loads with no attack, for comparison.
    pub baseline: Duration,
    pub slowloris_connections: usize,
    pub header_timeout: Duration,
    pub non_readers: usize,
    pub write_timeout: Duration,
    pub per_address_quota: u64,
    /// Addresses of the one /64 that store through the trusted proxy.
    pub block_addresses: usize,
    pub max_stored_bytes: u64,
    /// How long the quota and storage attacks go on, refused, from their start.
    pub attack_hold: Duration,
}

impl Sizes {
    pub fn new(smoke: bool) -> Self {
        if smoke {
            Self {
                smoke,
                honest_rooms: 3,
                honest_interval: Duration::from_millis(100),
                baseline: Duration::from_secs(3),
                slowloris_connections: 200,
                header_timeout: Duration::from_secs(3),
                non_readers: 5,
                write_timeout: Duration::from_secs(3),
                per_address_quota: 1 << 20,
                block_addresses: 50,
                max_stored_bytes: 4 << 20,
                attack_hold: Duration::from_secs(3),
            }
        } else {
            // The relay's defaults: HEADER_TIMEOUT 10s, WRITE_TIMEOUT 10s, 32 MiB per address, 1 GiB
            // in all (a fill of a minute or two), MAX_CONNECTIONS 10,000.
            Self {
                smoke,
                honest_rooms: 3,
                honest_interval: Duration::from_millis(100),
                baseline: Duration::from_secs(5),
                slowloris_connections: 1000,
                header_timeout: Duration::from_secs(10),
                non_readers: 25,
                write_timeout: Duration::from_secs(10),
                per_address_quota: 32 << 20,
                block_addresses: 50,
                max_stored_bytes: 1 << 30,
                attack_hold: Duration::from_secs(8),
            }
        }
    }
}

/// Runs every attack, each against a fresh server.
pub async fn run(server_bin: &Path, sizes: &Sizes) -> Result<HostileReport, HostileError> {
    check_open_files(sizes.slowloris_connections)?;
    let rooms = loadgen::journey::derive_rooms(sizes.honest_rooms).await;
    let (baseline, slowloris) = slowloris::run(server_bin, sizes, &rooms).await?;
    let non_reading = non_reading::run(server_bin, sizes, &rooms).await?;
    let quota = quota::run(server_bin, sizes, &rooms).await?;
    let storage = storage::run(server_bin, sizes, &rooms).await?;
    Ok(HostileReport {
        size: if sizes.smoke { "smoke" } else { "full" }.into(),
        baseline,
        slowloris,
        non_reading,
        quota,
        storage,
    })
}

/// A server over a fresh SQLite database; both go when it is dropped.
pub(crate) struct Target {
    // Field order is drop order: the server stops before its directory is removed.
    pub server: Server,
    pub db: Database,
}

impl Target {
    /// Starts the release server with the load generator's raised limits (a client here is a
    /// harness, not a person), then `settings` on top: the bounds under attack.
    pub async fn start(server_bin: &Path, settings: &[(&str, String)]) -> Result<Self, HostileError> {
        let mut spec = ServerSpec::for_load(PathBuf::from(server_bin));
        for (name, value) in settings {
            spec.env.retain(|(key, _)| key != name);
            spec.env.push(((*name).to_owned(), value.clone()));
        }
        let db = Database::new(Backend::Sqlite, "")?;
        let server = Server::start(&spec, &db, &target::random_key(), 0).await?;
        Ok(Self { server, db })
    }

    pub fn port(&self) -> u16 {
        self.server.port
    }
}

/// A duration as a server setting (whole seconds).
pub(crate) fn seconds(d: Duration) -> String {
    format!("{}s", d.as_secs().max(1))
}

/// The slowloris needs one descriptor per connection, and the server the same again: refuse
/// to start (rather than measure a harness out of files) when the limit is too low.
fn check_open_files(connections: usize) -> Result<(), HostileError> {
    let limits = std::fs::read_to_string("/proc/self/limits")?;
    let soft = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))
        .and_then(|line| line.split_whitespace().nth(3))
        .and_then(|soft| soft.parse::<usize>().ok());
    let needed = connections + 512;
    match soft {
        Some(soft) if soft < needed => Err(HostileError::Setup(format!(
            "open-file limit {soft} is below the {needed} this run needs: raise it (`ulimit -n {needed}`)"
        ))),
        _ => Ok(()),
    }
}
