//! Configuration: every setting is a flag and an environment variable, so `--help` documents
//! them all. Values are validated here; a bad one stops start-up with one line naming it.

mod database;
mod values;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use secrecy::{ExposeSecret, SecretString};
use sqlx::postgres::PgSslMode;

use crate::at_rest::{KeyRing, ServerKey};
use crate::bus::nats::NatsSettings;
use crate::domain::bounds::POSTGRES_POOL_CONNECTIONS;
use crate::telemetry::LogFormat;
use database::parse_ssl_mode;
pub use database::{ssl_mode_name, Database, DEFAULT_PG_DATABASE};
use values::{
    parse_file_size, parse_grace, parse_idle_timeout, parse_ip_net, parse_padded_limit, parse_public_url,
    parse_short_timeout, parse_transfer_rate,
};
pub use values::{parse_size, parse_ttl, IpNet, MAX_MESSAGE_TTL};

/// Ephemeral Chat relay: end-to-end encrypted, burn-after-viewing room chat.
#[derive(Debug, Clone, Parser)]
#[command(name = "server", version, about)]
pub struct Config {
    /// TCP port to listen on (0 picks a free one).
    #[arg(long, env = "PORT", default_value_t = 3000)]
    pub port: u16,

    /// Address to listen on. Put a TLS-terminating proxy in front for anything but localhost.
    #[arg(long, env = "BIND_ADDR", default_value = "127.0.0.1")]
    pub bind_addr: IpAddr,

    /// Store: `sqlite:PATH` or `postgres://USER@HOST/DB`. Unset: PostgreSQL if any of PGHOST,
    /// PGPORT, PGDATABASE, PGUSER, PGPASSWORD is set, otherwise SQLite at
    /// DATA_DIR/ephemeral-chat.db.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<SecretString>,

    /// PostgreSQL host (selects PostgreSQL when DATABASE_URL is unset).
    #[arg(long, env = "PGHOST")]
    pub pghost: Option<String>,
    /// PostgreSQL port.
    #[arg(long, env = "PGPORT")]
    pub pgport: Option<u16>,
    /// PostgreSQL database (default `ephemeral_chat`).
    #[arg(long, env = "PGDATABASE")]
    pub pgdatabase: Option<String>,
    /// PostgreSQL user.
    #[arg(long, env = "PGUSER")]
    pub pguser: Option<String>,
    /// PostgreSQL password.
    #[arg(long, env = "PGPASSWORD", hide_env_values = true)]
    pub pgpassword: Option<SecretString>,
    /// TLS to PostgreSQL, as libpq's `sslmode`: `disable`, `prefer` (the default: TLS where the
    /// server offers it, unverified), `require` (TLS, unverified), `verify-ca` (TLS, the
    /// certificate must chain to PGSSLROOTCERT or to a public root: Mozilla's list, built in),
    /// `verify-full` (as verify-ca, and it must name the host connected to). An `sslmode` in
    /// DATABASE_URL takes precedence.
    #[arg(long, env = "PGSSLMODE", value_parser = parse_ssl_mode)]
    pub pgsslmode: Option<PgSslMode>,
    /// PEM file of the certificate authorities PostgreSQL's certificate must chain to
    /// (verify-ca, verify-full). An `sslrootcert` in DATABASE_URL takes precedence.
    #[arg(long, env = "PGSSLROOTCERT")]
    pub pgsslrootcert: Option<PathBuf>,

    /// Connections this instance holds to PostgreSQL at most (1 to 1000). Every instance over
    /// one database holds its own, so their sum (plus one each for LISTEN without BUS_URL) must
    /// stay within the database's `max_connections`. With many instances, lower each one's pool
    /// rather than raise `max_connections` far past what the database's cores can run.
    #[arg(long, env = "POSTGRES_POOL_SIZE", default_value_t = POSTGRES_POOL_CONNECTIONS, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub postgres_pool_size: u32,

    /// Directory of the SQLite database and its generated key.
    #[arg(long, env = "DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,

    /// The server's at-rest key: 64 hex characters (32 bytes). Required with PostgreSQL (all
    /// instances share it); with SQLite, generated into DATA_DIR on first start if unset.
    #[arg(long, env = "ENCRYPTION_KEY", hide_env_values = true)]
    pub encryption_key: Option<SecretString>,

    /// The key being rotated away (64 hex characters): records sealed under it still open;
    /// new ones are sealed under ENCRYPTION_KEY. Drop it once MESSAGE_TTL has passed.
    #[arg(long, env = "ENCRYPTION_KEY_PREVIOUS", hide_env_values = true, requires = "encryption_key")]
    pub encryption_key_previous: Option<SecretString>,

    /// How long an unread message waits before it is deleted, e.g. `90s`, `30m`, `24h`, `7d`
    /// (at most 7 days).
    #[arg(long, env = "MESSAGE_TTL", default_value = "24h", value_parser = parse_ttl)]
    pub message_ttl: Duration,

    /// How long a participant whose connection dropped stays one (`30s`, `2m`; 1s to 1h). A
    /// page that reconnects within it is the same participant; after it, it has left, and is
    /// dropped from the recipients of what it had not viewed.
    #[arg(long, env = "SESSION_GRACE", default_value = "60s", value_parser = parse_grace)]
    pub session_grace: Duration,

    /// Directory of the built site (pages' JS, WASM and CSS), as cargo-leptos writes it.
    #[arg(long, env = "LEPTOS_SITE_ROOT", default_value = "target/site")]
    pub site_root: String,

    #[command(flatten)]
    pub limits: Limits,

    /// Proxies whose `X-Forwarded-For` is believed for the per-address limits (comma-separated
    /// addresses or CIDR blocks, e.g. `127.0.0.1,10.0.0.0/8`). Others' headers are ignored.
    #[arg(long, env = "TRUSTED_PROXIES", value_delimiter = ',', value_parser = parse_ip_net)]
    pub trusted_proxies: Vec<IpNet>,

    /// The public URL people use (e.g. `https://chat.example`). Its origin may open WebSockets,
    /// and when it is https every response carries Strict-Transport-Security.
    #[arg(long, env = "PUBLIC_URL", value_parser = parse_public_url)]
    pub public_url: Option<String>,

    /// Further origins allowed to open WebSockets (comma-separated, e.g. a static client's
    /// `https://chat.example`). The server's own origin is always allowed.
    #[arg(long, env = "ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Vec<String>,

    /// Serve HTTPS with this PEM certificate chain (with TLS_KEY), for a relay with no proxy in
    /// front. Both files are read again on SIGHUP. Every response then carries
    /// Strict-Transport-Security.
    #[arg(long, env = "TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of TLS_CERT.
    #[arg(long, env = "TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Serve Prometheus metrics at `http://METRICS_ADDR/metrics` (e.g. `127.0.0.1:9100`), on a
    /// listener of their own, never the public port. No metric names a room, message or
    /// address. Unset: off.
    #[arg(long, env = "METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,

    /// Room events between instances over NATS instead of PostgreSQL's LISTEN/NOTIFY (PostgreSQL
    /// only): `nats://HOST:4222`, several comma-separated for a cluster, `tls://HOST:4222` for
    /// TLS, credentials as `nats://USER:PASSWORD@HOST:4222`. Each instance then hears only the
    /// rooms it serves. Every instance over one database must use the same bus. Unset:
    /// LISTEN/NOTIFY, which needs nothing more.
    #[arg(long, env = "BUS_URL", hide_env_values = true)]
    pub bus_url: Option<SecretString>,

    /// PEM file of the authorities that sign the NATS servers' certificates (with `tls://`),
    /// trusted beside the system's.
    #[arg(long, env = "BUS_TLS_CA", requires = "bus_url")]
    pub bus_tls_ca: Option<PathBuf>,

    /// NATS credentials file (user JWT and NKey seed, as `nsc` writes it).
    #[arg(long, env = "BUS_CREDS", requires = "bus_url")]
    pub bus_creds: Option<PathBuf>,

    /// Log lines on standard error: `text` (colour only on a terminal) or `json` (one object
    /// per line). Either way only lifecycle events and errors; RUST_LOG sets the level.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// Bounds on what one client can make the server do. Every one is a named setting with a
/// default; `server --help` lists them.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct Limits {
    /// Frames a connection may send per second on average (token bucket refill rate).
    #[arg(long, env = "RATE_LIMIT_PER_SECOND", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    pub rate_limit_per_second: u32,
    /// Frames a connection may send in a burst (token bucket size). Past it, frames get
    /// `rate_limited`; a connection that keeps sending as many again while limited is closed.
    #[arg(long, env = "RATE_LIMIT_BURST", default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
    pub rate_limit_burst: u32,
    /// WebSocket connections one client address may hold open (counted in memory only).
    #[arg(long, env = "MAX_CONNECTIONS_PER_ADDRESS", default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections_per_address: u32,
    /// New WebSocket connections one client address may open per second on average; past it
    /// (and its burst) the upgrade is refused with 429 before any handshake work.
    #[arg(long, env = "CONNECTS_PER_SECOND_PER_ADDRESS", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    pub connects_per_second_per_address: u32,
    /// New connections one client address may open in a burst.
    #[arg(long, env = "CONNECT_BURST_PER_ADDRESS", default_value_t = 40, value_parser = clap::value_parser!(u32).range(1..))]
    pub connect_burst_per_address: u32,
    /// Messages that may wait unread in one room; the next `send` gets `too_many_pending`.
    #[arg(long, env = "MAX_PENDING_PER_ROOM", default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_pending_per_room: u32,
    /// Connections one room may hold; the next `join` gets `room_full`.
    #[arg(long, env = "MAX_ROOM_PARTICIPANTS", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_room_participants: u32,
    /// Largest message, in bytes of padded plaintext: 256 to 16384 in steps of 256. Sealed
    /// payloads past it get `bad_size`. Spec v1's ceiling, 16 KiB, is the default.
    #[arg(long, env = "MAX_PADDED_MESSAGE", default_value_t = 16_384, value_parser = parse_padded_limit)]
    pub max_padded_message: usize,
    /// Largest WebSocket text frame in bytes (at least 24576, which a 16 KiB message needs); past
    /// it: `frame_too_large` and a close. Past twice this the socket is dropped without an answer.
    #[arg(long, env = "MAX_FRAME_SIZE", default_value_t = 32_768, value_parser = clap::value_parser!(u32).range(24_576..=1_048_576))]
    pub max_frame_size: u32,
    /// Read and write buffer per socket, in bytes. The read buffer is zero-filled up front, so
    /// it is resident for every idle connection; a larger frame gets room of its own size anyway.
    /// (tungstenite's default, 128 KiB per connection, is far too much for thousands of sockets.)
    #[arg(long, env = "SOCKET_BUFFER_SIZE", default_value_t = 1_024, value_parser = clap::value_parser!(u32).range(1_024..=131_072))]
    pub socket_buffer_size: u32,
    /// A connection that sends nothing (not even a pong) for this long is closed (`30s`, `2m`).
    #[arg(long, env = "IDLE_TIMEOUT", default_value = "120s", value_parser = parse_idle_timeout)]
    pub idle_timeout: Duration,
    /// A write to a WebSocket that takes longer than this (a client that stopped reading) drops
    /// the socket, as a network loss: the participant's grace period applies (`10s`; 1s to 10m).
    #[arg(long, env = "WRITE_TIMEOUT", default_value = "10s", value_parser = parse_short_timeout)]
    pub write_timeout: Duration,
    /// How long a request's head may take to arrive, from the connection's start or from the
    /// first byte of a request on a kept-alive connection; past it the connection is closed
    /// (`10s`; 1s to 10m).
    #[arg(long, env = "HEADER_TIMEOUT", default_value = "10s", value_parser = parse_short_timeout)]
    pub header_timeout: Duration,
    /// How long a kept-alive HTTP connection may wait, silent, for its next request (`60s`; 1s
    /// to 10m).
    #[arg(long, env = "KEEPALIVE_TIMEOUT", default_value = "60s", value_parser = parse_short_timeout)]
    pub keepalive_timeout: Duration,
    /// Open TCP connections at most, HTTP and WebSocket together; past it a new connection is
    /// closed at once. Keep it below the process's open-file limit (`ulimit -n`).
    #[arg(long, env = "MAX_CONNECTIONS", default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,
    /// Bytes of stored messages that may wait on this relay in all, over every instance sharing
    /// its database (plain bytes or with a `KiB`, `MiB` or `GiB` suffix). Past it a `send` gets
    /// `storage_full`; nothing stored is touched.
    #[arg(long, env = "MAX_STORED_BYTES", default_value = "1GiB", value_parser = parse_size)]
    pub max_stored_bytes: u64,
    /// Bytes of stored messages sent from one client address that may wait unread (counted in
    /// memory, per instance, never stored or logged). Past it a `send` gets `quota_exceeded`.
    #[arg(long, env = "MAX_STORED_BYTES_PER_ADDRESS", default_value = "32MiB", value_parser = parse_size)]
    pub max_stored_bytes_per_address: u64,
    /// Largest file, in bytes (with a `KiB`, `MiB` or `GiB` suffix; 0: no files). Files are sealed
    /// in 64 KiB chunks padded to a size class, and a file whose padded size is past this is
    /// refused with `file_too_large` before any upload. Counted against the storage quotas.
    #[arg(long, env = "MAX_FILE_SIZE", default_value = "10MiB", value_parser = parse_file_size)]
    pub max_file_size: u64,
    /// Bytes of file chunks a connection may move per second, up and down together (a budget of
    /// its own, apart from `RATE_LIMIT_PER_SECOND`'s frames): past it, the relay reads the
    /// connection's next chunk frame only once the budget allows, so transfers slow down and
    /// nothing is refused. A burst of one second's worth.
    #[arg(long, env = "TRANSFER_BYTES_PER_SECOND", default_value = "8MiB", value_parser = parse_transfer_rate)]
    pub transfer_bytes_per_second: u64,
    /// IPv6 clients are counted, for every per-address limit, by this many leading bits of
    /// their address (64: one home line's block); IPv4 clients by their whole address.
    #[arg(long, env = "IPV6_PREFIX", default_value_t = 64, value_parser = clap::value_parser!(u8).range(16..=128))]
    pub ipv6_prefix: u8,
}

/// A setting with a bad value. Its message names the setting and never repeats the value,
/// which may be a secret.
#[derive(Debug, thiserror::Error)]
#[error("invalid value for '--{flag} <{env}>': {reason}")]
pub struct ConfigError {
    flag: &'static str,
    env: &'static str,
    reason: String,
}

impl ConfigError {
    fn new(flag: &'static str, env: &'static str, reason: impl Into<String>) -> Self {
        Self { flag, env, reason: reason.into() }
    }
}

impl Config {
    /// Parses flags and environment and validates every value. On a bad value prints one line
    /// naming the setting and returns the exit code; `--help` and `--version` print and succeed.
    pub fn from_env_and_args() -> Result<Self, ExitCode> {
        let config = Self::try_parse().map_err(|err| {
            use clap::error::ErrorKind;
            if matches!(err.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                let _ = err.print();
                return ExitCode::SUCCESS;
            }
            let rendered = err.render().to_string();
            eprintln!("{}", rendered.lines().next().unwrap_or("error: invalid configuration"));
            ExitCode::from(2)
        })?;
        if let Err(err) = config.validate() {
            eprintln!("error: {err}");
            return Err(ExitCode::from(2));
        }
        Ok(config)
    }

    /// Checks the values clap takes as plain strings (secrets, whose values must not be echoed).
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.key_ring()?;
        self.database()?;
        self.bus()?;
        Ok(())
    }

    /// The NATS bus (`BUS_URL`), if set. Refused with SQLite: one instance per database file
    /// has no other instance to tell.
    pub fn bus(&self) -> Result<Option<NatsSettings>, ConfigError> {
        let Some(url) = &self.bus_url else { return Ok(None) };
        if let Database::Sqlite { .. } = self.database()? {
            return Err(ConfigError::new(
                "bus-url",
                "BUS_URL",
                "needs PostgreSQL: with SQLite one instance serves the database file alone, and has no other \
                 instance to tell",
            ));
        }
        NatsSettings::parse(url.expose_secret(), self.bus_tls_ca.clone(), self.bus_creds.clone())
            .map(Some)
            .map_err(|reason| ConfigError::new("bus-url", "BUS_URL", reason))
    }

    /// The at-rest keys, if configured: ENCRYPTION_KEY and, during a rotation, the previous one.
    pub fn key_ring(&self) -> Result<Option<KeyRing>, ConfigError> {
        let parse = |value: &SecretString, flag, env| {
            ServerKey::from_hex(value.expose_secret().trim())
                .map_err(|err| ConfigError::new(flag, env, err.to_string()))
        };
        let Some(current) = &self.encryption_key else { return Ok(None) };
        let current = parse(current, "encryption-key", "ENCRYPTION_KEY")?;
        let previous = self
            .encryption_key_previous
            .as_ref()
            .map(|p| parse(p, "encryption-key-previous", "ENCRYPTION_KEY_PREVIOUS"))
            .transpose()?;
        KeyRing::new(current, previous)
            .map(Some)
            .map_err(|err| ConfigError::new("encryption-key-previous", "ENCRYPTION_KEY_PREVIOUS", err.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Config, clap::Error> {
        Config::try_parse_from(std::iter::once("server").chain(args.iter().copied()))
    }

    #[test]
    fn a_nats_bus_needs_postgres_and_a_nats_url() {
        let err = parse(&["--bus-url", "nats://127.0.0.1:4222"]).unwrap().validate().unwrap_err().to_string();
        assert!(err.contains("BUS_URL") && err.contains("PostgreSQL"), "{err}");
        let pg = ["--database-url", "postgres://u@h/db", "--bus-url"];
        let ok = parse(&[&pg[..], &["nats://a:4222,nats://b:4222"]].concat()).unwrap();
        assert_eq!(ok.bus().unwrap().unwrap().servers.len(), 2);
        let err = parse(&[&pg[..], &["http://a:4222"]].concat()).unwrap().validate().unwrap_err().to_string();
        assert!(err.contains("BUS_URL") && err.contains("nats://"), "{err}");
        let secret = parse(&[&pg[..], &["nats://u:hunter2@[::1"]].concat()).unwrap().validate().unwrap_err();
        assert!(!secret.to_string().contains("hunter2"), "{secret}");
        assert!(parse(&["--bus-tls-ca", "ca.pem"]).is_err(), "BUS_TLS_CA without BUS_URL");
    }

    #[test]
    fn every_setting_is_in_the_readme_table_and_env_sample() {
        use clap::CommandFactory as _;
        let readme = include_str!("../../../README.md");
        let sample = include_str!("../../../.env.sample");
        let command = Config::command();
        let names: Vec<String> = command
            .get_arguments()
            .filter_map(|arg| arg.get_env())
            .map(|env| env.to_string_lossy().into_owned())
            .collect();
        assert!(names.len() > 30, "{names:?}");
        for name in names {
            let in_table = readme.lines().any(|line| line.starts_with("| `") && line.contains(&format!("`{name}`")));
            assert!(in_table, "{name} is not in README.md's settings table");
            // The PostgreSQL connection pieces are libpq's own, documented as one row.
            let libpq = ["PGHOST", "PGPORT", "PGDATABASE", "PGUSER", "PGPASSWORD", "LEPTOS_SITE_ROOT"];
            if !libpq.contains(&name.as_str()) {
                assert!(sample.contains(&format!("{name}=")), "{name} is not in .env.sample");
            }
        }
    }

    #[test]
    fn a_malformed_port_names_the_setting() {
        let err = parse(&["--port", "http"]).unwrap_err().render().to_string();
        assert!(err.lines().next().unwrap().contains("--port"), "{err}");
    }

    #[test]
    fn a_malformed_key_names_the_setting_and_hides_the_value() {
        let err = parse(&["--encryption-key", "abcd"]).unwrap().validate().unwrap_err().to_string();
        assert!(err.contains("--encryption-key") && err.contains("ENCRYPTION_KEY") && err.contains("64 hex"), "{err}");
        assert!(!err.contains("abcd"), "{err}");
    }

    #[test]
    fn limits_refuse_values_out_of_their_range() {
        assert!(parse(&["--max-stored-bytes", "10 apples"]).is_err());
        assert!(parse(&["--max-frame-size", "1000"]).is_err(), "too small for a 16 KiB message");
    }
}
