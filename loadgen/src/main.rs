//! `loadgen`: drive real servers with real clients. `loadgen --help` lists the commands.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use loadgen::bench::{self, BenchOptions, Size};
use loadgen::faults::{self, FaultOptions, FaultReport};
use loadgen::journey::{self, JourneyOptions};
use loadgen::soak::{self, SoakOptions};
use loadgen::target::{self, Backend, Database, Server, ServerSpec};
use loadgen::{ceiling, idle, render};

#[derive(Parser)]
#[command(about = "Ephemeral Chat's load generator: the real protocol and client crypto against real servers")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Clone)]
struct Target {
    /// The server binary to start (over a fresh database).
    #[arg(long, env = "SERVER_BIN", default_value = "target/release/server")]
    server_bin: PathBuf,
    #[arg(long, value_enum, default_value = "sqlite")]
    backend: Backend,
    /// Instances to start over one database (PostgreSQL only for more than one).
    #[arg(long, default_value_t = 1)]
    instances: usize,
    /// PostgreSQL maintenance URL; benchmark databases are created beside it and dropped.
    #[arg(long, env = "TEST_POSTGRES_URL", default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    postgres_url: String,
    /// Further server settings, `NAME=value` (repeatable), e.g. `SOCKET_BUFFER_SIZE=1024`.
    #[arg(long = "server-env", value_parser = parse_setting)]
    server_env: Vec<(String, String)>,
}

/// A rate or a duration: a finite number above zero (a schedule or timer cannot use another).
fn positive(value: &str) -> Result<f64, String> {
    match value.parse::<f64>() {
        Ok(number) if number.is_finite() && number > 0.0 => Ok(number),
        _ => Err(format!("expected a number above zero, got {value:?}")),
    }
}

fn parse_setting(value: &str) -> Result<(String, String), String> {
    value.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())).ok_or_else(|| "expected NAME=value".into())
}

#[derive(Subcommand)]
enum Command {
    /// Rooms of a sender and receivers through the whole journey; prints a JSON report.
    Journey {
        #[command(flatten)]
        target: Target,
        #[arg(long, default_value_t = 8)]
        rooms: usize,
        #[arg(long, default_value_t = 2)]
        clients_per_room: usize,
        /// Messages each room's sender sends.
        #[arg(long, default_value_t = 50)]
        messages: usize,
        /// Messages in flight per room (closed loop).
        #[arg(long, default_value_t = 4)]
        concurrency: usize,
        /// Bytes of message text.
        #[arg(long, default_value_t = 200)]
        payload: usize,
        /// Open loop: messages per second over all rooms.
        #[arg(long, value_parser = positive)]
        rate: Option<f64>,
    },
    /// Joined, silent connections: server memory per connection.
    Idle {
        #[command(flatten)]
        target: Target,
        #[arg(long, default_value_t = 10_000)]
        connections: usize,
    },
    /// The database's insert+delete commit rate on the real schema.
    Ceiling {
        #[command(flatten)]
        target: Target,
        #[arg(long, default_value_t = 10)]
        connections: usize,
        #[arg(long, default_value_t = 5.0, value_parser = positive)]
        seconds: f64,
        /// A NOTIFY in each commit, as the server's writes do on PostgreSQL.
        #[arg(long)]
        notify: bool,
        /// Open loop (PostgreSQL): start this many pairs per second for `seconds`, each timed
        /// from its scheduled start, instead of as many as the connections allow.
        #[arg(long, value_parser = positive)]
        rate: Option<f64>,
    },
    /// The whole server-side benchmark; writes its results as JSON.
    Bench {
        #[command(flatten)]
        target: Target,
        /// Tiny sizes, for the smoke run in `make test`.
        #[arg(long)]
        smoke: bool,
        #[arg(long)]
        out: PathBuf,
    },
    /// Journeys while the system is hurt: kill -9 of servers, PostgreSQL restarts (a cluster of
    /// its own) and cut LISTEN connections; then an account of every message.
    Faults {
        #[arg(long, env = "SERVER_BIN", default_value = "target/release/server")]
        server_bin: PathBuf,
        /// Where PostgreSQL's initdb and pg_ctl are (default: the newest /usr/lib/postgresql/*/bin).
        #[arg(long)]
        postgres_bin: Option<PathBuf>,
        /// The size that fits in `make test`: fewer rooms, each fault once.
        #[arg(long)]
        smoke: bool,
        /// Writes the reports as JSON here too.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Steady load for a long while (`make soak`): server memory and open files must stay flat,
    /// every message burned, no row left.
    Soak {
        #[command(flatten)]
        target: Target,
        #[arg(long, default_value_t = 16)]
        rooms: usize,
        /// Each room's sender sends one message this often, in milliseconds.
        #[arg(long, default_value_t = 100)]
        interval_ms: u64,
        #[arg(long, default_value_t = 600.0, value_parser = positive)]
        seconds: f64,
    },
    /// BENCHMARKS.md from a bench run's results, the browser's, and the hand-kept history.
    Render {
        #[arg(long)]
        results: PathBuf,
        #[arg(long)]
        browser: PathBuf,
        #[arg(long)]
        history: PathBuf,
        #[arg(long)]
        out: PathBuf,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Cli::parse().command).await {
        Ok(code) => code,
        Err(err) => {
            eprintln!("loadgen: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Journey { target, rooms, clients_per_room, messages, concurrency, payload, rate } => {
            let (servers, db) = start(&target).await?;
            let keys = journey::derive_rooms(rooms).await;
            let options = JourneyOptions {
                urls: servers.iter().map(Server::ws_url).collect(),
                clients_per_room,
                messages,
                window: concurrency,
                payload,
                rate,
                drain_timeout: Duration::from_secs(30),
            };
            let report = journey::run(&keys, &options).await?;
            let rows_left = db.message_rows().await?;
            let peak_rss_kib: Vec<u64> = servers.iter().map(Server::peak_rss_kib).collect::<Result<_, _>>()?;
            println!(
                "{}",
                serde_json::json!({ "report": report, "rows_left": rows_left, "server_peak_rss_kib": peak_rss_kib })
            );
            drop(servers);
            db.drop_database().await?;
            Ok(if report.is_clean() && rows_left == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        Command::Idle { target, connections } => {
            let (servers, db) = start(&target).await?;
            let before = servers[0].rss_kib()?;
            let open = idle::open(&servers[0].ws_url(), connections, 100).await?;
            tokio::time::sleep(Duration::from_secs(2)).await;
            let after = servers[0].rss_kib()?;
            let bytes = (after.saturating_sub(before) * 1024) as f64 / connections as f64;
            println!(
                "{}",
                serde_json::json!({ "connections": open.len(), "rss_before_kib": before, "rss_after_kib": after, "bytes_per_connection": bytes })
            );
            drop((open, servers));
            db.drop_database().await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Ceiling { target, connections, seconds, notify, rate } => {
            anyhow::ensure!(rate.is_none() || target.backend == Backend::Postgres, "--rate needs --backend postgres");
            let db = Database::new(target.backend, &target.postgres_url)?;
            let duration = Duration::from_secs_f64(seconds);
            let report = async {
                anyhow::Ok(match rate {
                    Some(rate) => serde_json::to_string(
                        &ceiling::paced_postgres(&db, connections, rate, duration, 314, notify).await?,
                    )?,
                    None => serde_json::to_string(&ceiling::measure(&db, connections, duration, 314, notify).await?)?,
                })
            }
            .await;
            db.drop_database().await?;
            println!("{}", report?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench { target, smoke, out } => {
            let size = if smoke { Size::smoke() } else { Size::full() };
            let options = BenchOptions { server_bin: target.server_bin, postgres_url: target.postgres_url, size };
            let results = bench::run(&options).await?;
            std::fs::write(&out, serde_json::to_string_pretty(&results)?)
                .with_context(|| format!("writing {}", out.display()))?;
            let problems = results.problems();
            for problem in &problems {
                eprintln!("loadgen: {problem}");
            }
            Ok(if problems.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        Command::Faults { server_bin, postgres_bin, smoke, out } => {
            let (rooms, cycles, settle) = if smoke { (6, 1, 1.5) } else { (24, 4, 3.0) };
            let options = FaultOptions {
                server_bin,
                postgres_bin,
                rooms,
                interval: Duration::from_millis(100),
                cycles,
                settle: Duration::from_secs_f64(settle),
                drain: Duration::from_secs(45),
            };
            let reports = faults::run(&options).await?;
            let json = serde_json::to_string_pretty(&reports)?;
            println!("{json}");
            if let Some(out) = out {
                std::fs::write(&out, &json).with_context(|| format!("writing {}", out.display()))?;
            }
            let problems: Vec<String> = reports.iter().flat_map(FaultReport::problems).collect();
            for problem in &problems {
                eprintln!("loadgen faults: {problem}");
            }
            Ok(if problems.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        Command::Soak { target, rooms, interval_ms, seconds } => {
            let options = SoakOptions {
                server_bin: target.server_bin,
                backend: target.backend,
                postgres_url: target.postgres_url,
                rooms,
                interval: Duration::from_millis(interval_ms),
                duration: Duration::from_secs_f64(seconds),
                sample_every: Duration::from_secs(5),
            };
            let report = soak::soak(&options).await?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            let problems = report.problems();
            for problem in &problems {
                eprintln!("loadgen soak: {problem}");
            }
            Ok(if problems.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        Command::Render { results, browser, history, out } => {
            let read =
                |path: &PathBuf| std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()));
            let results: bench::Results = serde_json::from_str(&read(&results)?).context("bench results")?;
            let browser: render::Browser = serde_json::from_str(&read(&browser)?).context("browser results")?;
            std::fs::write(&out, render::markdown(&results, &browser, &read(&history)?))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Starts the target's servers over a fresh database.
async fn start(target: &Target) -> anyhow::Result<(Vec<Server>, Database)> {
    anyhow::ensure!(
        target.instances == 1 || target.backend == Backend::Postgres,
        "several instances need PostgreSQL: SQLite serves one server process"
    );
    let db = Database::new(target.backend, &target.postgres_url)?;
    let mut spec = ServerSpec::for_load(target.server_bin.clone());
    spec.env.extend(target.server_env.iter().cloned());
    let key = target::random_key();
    let mut servers = Vec::new();
    for index in 0..target.instances {
        servers.push(Server::start(&spec, &db, &key, index).await?);
    }
    Ok((servers, db))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_and_durations_must_be_finite_and_above_zero() {
        assert_eq!(positive("2.5"), Ok(2.5));
        for bad in ["0", "-1", "inf", "NaN", "fast"] {
            assert!(positive(bad).is_err(), "{bad} was taken");
        }
    }
}
