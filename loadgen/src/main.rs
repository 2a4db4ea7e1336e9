//! `loadgen`: drive real servers with real clients and measure them. `loadgen --help` lists the
//! commands; the faults and soak runs are the `faults` binary's.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use loadgen::args::{positive, Target};
use loadgen::bench::{self, BenchOptions, Size};
use loadgen::journey::{self, JourneyOptions};
use loadgen::target::{self, Backend, Database, Server, ServerSpec};
use loadgen::{ceiling, idle, render};

#[derive(Parser)]
#[command(about = "Ephemeral Chat's load generator: the real protocol and client crypto against real servers")]
struct Cli {
    #[command(subcommand)]
    command: Command,
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
        /// A relay already running (its WebSocket URL, e.g. `ws://127.0.0.1:3000/ws`) instead
        /// of servers started here: nothing is started, and the rows left are for the caller to
        /// count (`rows_left` is null). Repeat it for instances of one deployment: each room's
        /// clients are spread over them, as over instances started here.
        #[arg(long, conflicts_with_all = ["backend", "instances"])]
        url: Vec<String>,
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
    /// File transfers: `pairs` rooms at once, each a sender uploading a file of `size` bytes and
    /// a receiver downloading, opening and burning it; prints a JSON report with the server's
    /// peak memory. The transfer budget is lifted unless `--server-env` sets it.
    Transfer {
        #[command(flatten)]
        target: Target,
        /// Bytes of each file.
        #[arg(long, default_value_t = 10 << 20)]
        size: usize,
        #[arg(long, default_value_t = 1)]
        pairs: usize,
        /// Rounds, one after another (the report has each).
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        /// A relay already running (its WebSocket URL) instead of one started here: for
        /// transfers beside a `journey --url` run against the same relay.
        #[arg(long, conflicts_with_all = ["backend", "instances"])]
        url: Option<String>,
    },
    /// What the transfer framing costs per chunk: binary frames against base64 in JSON text.
    Framing {
        #[arg(long, default_value_t = 2_000)]
        chunks: usize,
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
        /// The nats-server the NATS setups run (Debian's, which `make setup` installs).
        #[arg(long, env = "NATS_SERVER_BIN", default_value = "nats-server")]
        nats_server_bin: PathBuf,
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
        Command::Journey { target, rooms, clients_per_room, messages, concurrency, payload, rate, url } => {
            let keys = journey::derive_rooms(rooms).await;
            // Servers of our own over a fresh database, unless a running relay was named.
            let started = if url.is_empty() { Some(start(&target).await?) } else { None };
            let urls = match &started {
                Some((servers, _)) => servers.iter().map(Server::ws_url).collect(),
                None => url,
            };
            let options = JourneyOptions {
                urls,
                clients_per_room,
                messages,
                window: concurrency,
                payload,
                rate,
                drain_timeout: Duration::from_secs(30),
            };
            let report = journey::run(&keys, &options).await?;
            let Some((servers, db)) = started else {
                println!("{}", serde_json::json!({ "report": report, "rows_left": null }));
                return Ok(if report.is_clean() { ExitCode::SUCCESS } else { ExitCode::FAILURE });
            };
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
        Command::Transfer { url: Some(url), size, pairs, rounds, .. } => {
            let mut reports = Vec::new();
            for _ in 0..rounds {
                reports.push(loadgen::transfer::run(&url, size, pairs).await?);
            }
            println!("{}", serde_json::json!({ "rounds": reports }));
            Ok(ExitCode::SUCCESS)
        }
        Command::Transfer { mut target, size, pairs, rounds, url: None } => {
            if !target.server_env.iter().any(|(name, _)| name == "TRANSFER_BYTES_PER_SECOND") {
                target.server_env.push(("TRANSFER_BYTES_PER_SECOND".into(), "1024GiB".into()));
            }
            let (servers, db) = start(&target).await?;
            let before_kib = servers[0].rss_kib()?;
            let mut reports = Vec::new();
            for _ in 0..rounds {
                reports.push(loadgen::transfer::run(&servers[0].ws_url(), size, pairs).await?);
            }
            let rows_left = db.message_rows().await?;
            let peak_rss_kib = servers[0].peak_rss_kib()?;
            println!(
                "{}",
                serde_json::json!({
                    "rounds": reports,
                    "rows_left": rows_left,
                    "server_rss_before_kib": before_kib,
                    "server_peak_rss_kib": peak_rss_kib,
                })
            );
            drop(servers);
            db.drop_database().await?;
            Ok(if rows_left == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        Command::Framing { chunks } => {
            println!("{}", serde_json::to_string(&loadgen::framing::measure(chunks))?);
            Ok(ExitCode::SUCCESS)
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
        Command::Bench { target, smoke, out, nats_server_bin } => {
            let size = if smoke { Size::smoke() } else { Size::full() };
            let options = BenchOptions {
                server_bin: target.server_bin,
                postgres_url: target.postgres_url,
                size,
                nats_server_bin,
            };
            let results = bench::run(&options).await?;
            std::fs::write(&out, serde_json::to_string_pretty(&results)?)
                .with_context(|| format!("writing {}", out.display()))?;
            let problems = results.problems();
            for problem in &problems {
                eprintln!("loadgen: {problem}");
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
    use clap::Parser as _;

    use super::{Cli, Command};

    #[test]
    fn journey_takes_each_running_relay_named_and_no_backend_beside_them() {
        let cli = Cli::try_parse_from(["loadgen", "journey", "--url", "ws://a/ws", "--url", "ws://b/ws"]).unwrap();
        let Command::Journey { url, .. } = cli.command else { panic!("a journey") };
        assert_eq!(url, ["ws://a/ws", "ws://b/ws"]);
        let cli = Cli::try_parse_from(["loadgen", "journey"]).unwrap();
        let Command::Journey { url, .. } = cli.command else { panic!("a journey") };
        assert!(url.is_empty(), "no relay named: servers are started");
        assert!(Cli::try_parse_from(["loadgen", "journey", "--url", "ws://a/ws", "--instances", "2"]).is_err());
    }
}
