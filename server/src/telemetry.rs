//! Logging: lifecycle and errors only. Never a client address, room id, message id, code, key
//! or payload: no access log, and no value of those types is ever formatted into an event.

use tracing_subscriber::EnvFilter;

/// Installs the process-wide subscriber; `RUST_LOG` overrides the default `info` level.
pub fn init() {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info"))
        // Libraries whose debug output can carry addresses or statements stay quiet.
        .add_directive("sqlx=warn".parse().expect("invariant: a valid directive"))
        .add_directive("hyper=warn".parse().expect("invariant: a valid directive"))
        .add_directive("tungstenite=warn".parse().expect("invariant: a valid directive"));
    // try_init: tests start several applications in one process.
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_target(false).try_init();
}
