//! `faults`: real servers hurt under load (`faults run`: `make test-faults`, `make faults-smoke`),
//! held under steady load for a long while (`faults soak`: `make soak`), or attacked by hostile
//! clients (`faults hostile`: `make test-hostile`, `make hostile-smoke`), then an account of
//! every message. The measurements are the `loadgen` binary's; this one only checks that nothing
//! is lost, duplicated, left behind or leaked. `faults --help` lists the commands.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use loadgen::args::{positive, Target};

use crate::faults::FaultOptions;
use crate::report::FaultReport;
use crate::soak::SoakOptions;

mod cluster;
mod error;
mod faults;
mod hostile;
mod nats;
mod report;
mod rooms;
mod soak;

#[derive(Parser)]
#[command(
    about = "Ephemeral Chat's faults and soak harness: real servers hurt or held under load, every message counted"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Journeys while the system is hurt: kill -9 of servers, PostgreSQL restarts (a cluster of
    /// its own), cut LISTEN connections, NATS restarts and cut NATS connections (a nats-server
    /// and a proxy of its own), and receivers hopping between instances on both buses; then an
    /// account of every message.
    Run {
        #[arg(long, env = "SERVER_BIN", default_value = "target/release/server")]
        server_bin: PathBuf,
        /// Where PostgreSQL's initdb and pg_ctl are (default: the newest /usr/lib/postgresql/*/bin).
        #[arg(long)]
        postgres_bin: Option<PathBuf>,
        /// The nats-server the NATS bus's faults run (Debian's, which `make setup` installs).
        #[arg(long, env = "NATS_SERVER_BIN", default_value = "nats-server")]
        nats_server_bin: PathBuf,
        /// Only the NATS bus's runs (faults, then hopping receivers), to look into them.
        #[arg(long)]
        nats_only: bool,
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
    /// Hostile clients against the real server, one fresh server each, while honest pages make
    /// journeys: slowloris, non-reading sockets, the per-address quota (one address, one IPv6
    /// /64 behind a trusted proxy) and the storage total. Fails if any bound is broken.
    Hostile {
        #[arg(long, env = "SERVER_BIN", default_value = "target/release/server")]
        server_bin: PathBuf,
        /// The size that fits in `make test`: short timeouts, small quotas.
        #[arg(long)]
        smoke: bool,
        /// Writes the report as JSON here too.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Cli::parse().command).await {
        Ok(code) => code,
        Err(err) => {
            eprintln!("faults: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Run { server_bin, postgres_bin, nats_server_bin, nats_only, smoke, out } => {
            let (rooms, cycles, settle) = if smoke { (6, 1, 1.5) } else { (24, 4, 3.0) };
            let options = FaultOptions {
                server_bin,
                postgres_bin,
                nats_server_bin,
                nats_only,
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
                eprintln!("faults run: {problem}");
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
                eprintln!("faults soak: {problem}");
            }
            Ok(if problems.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        Command::Hostile { server_bin, smoke, out } => {
            let report = hostile::run(&server_bin, &hostile::Sizes::new(smoke)).await?;
            println!("{}", report.render());
            if let Some(out) = out {
                let json = serde_json::to_string_pretty(&report)?;
                std::fs::write(&out, json).with_context(|| format!("writing {}", out.display()))?;
            }
            let problems = report.problems();
            for problem in &problems {
                eprintln!("faults hostile: {problem}");
            }
            Ok(if problems.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
    }
}
