//! Logging: lifecycle and errors only. Never a client address, room id, message id, code, key
//! or payload: no access log, and no value of those types is ever formatted into an event.
//!
//! `RUST_LOG` sets the level of this crate's own events only (`error` … `trace`). Every other
//! crate is held at `warn` whatever `RUST_LOG` says: libraries log peer addresses and
//! statements at debug and trace (axum logs each accepted connection's address), and an
//! operator turning up verbosity must not turn on an access log by accident.

use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::EnvFilter;

/// Installs the process-wide subscriber.
pub fn init() {
    let level = std::env::var("RUST_LOG")
        .ok()
        .and_then(|value| value.trim().parse::<LevelFilter>().ok())
        .unwrap_or(LevelFilter::INFO);
    let filter = EnvFilter::new(format!("warn,server={level}"));
    // try_init: tests start several applications in one process.
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_target(false).try_init();
}
