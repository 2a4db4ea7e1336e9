//! Logging: lifecycle and errors only. Never a client address, room id, message id, code, key
//! or payload: no access log, and no value of those types is ever formatted into an event.
//!
//! `RUST_LOG` sets the level of this crate's own events only (`error` … `trace`). Every other
//! crate is held at `warn` whatever `RUST_LOG` says: libraries log peer addresses and
//! statements at debug and trace (axum logs each accepted connection's address), and an
//! operator turning up verbosity must not turn on an access log by accident.
//!
//! The lines go to standard error: plain text, coloured only when standard error is a terminal
//! (a file or journald gets no escape codes), or one JSON object per line with `LOG_FORMAT=json`.

pub mod metrics;

use std::io::IsTerminal as _;

use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::EnvFilter;

/// How log lines are written (`LOG_FORMAT`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines; colour only on a terminal.
    #[default]
    Text,
    /// One JSON object per line (`timestamp`, `level`, `fields`), for log collectors.
    Json,
}

/// Installs the process-wide subscriber.
pub fn init(format: LogFormat) {
    let level = std::env::var("RUST_LOG")
        .ok()
        .and_then(|value| value.trim().parse::<LevelFilter>().ok())
        .unwrap_or(LevelFilter::INFO);
    let filter = EnvFilter::new(format!("warn,server={level}"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_target(false).with_writer(std::io::stderr);
    // try_init: tests start several applications in one process.
    let _ = match format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).try_init(),
        LogFormat::Json => builder.json().with_ansi(false).try_init(),
    };
}
