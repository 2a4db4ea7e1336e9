//! The servers under test: real `server` processes on real ports, over a fresh database each,
//! with their memory read from `/proc`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sqlx::{ConnectOptions as _, Connection as _};

/// How long a starting server may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("cannot start {bin}: {source}")]
    Spawn { bin: PathBuf, source: std::io::Error },
    #[error("the server did not start within {START_TIMEOUT:?}; its output:\n{output}")]
    NotServing { output: String },
    #[error("nats-server did not listen on port {0} within {START_TIMEOUT:?}")]
    NatsNotServing(u16),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Which store the servers use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Self::Sqlite => "SQLite",
            Self::Postgres => "PostgreSQL",
        }
    }
}

/// A fresh database for one benchmark: a SQLite file in a temp dir, or a uniquely named
/// PostgreSQL database, dropped by [`Database::drop_database`].
pub struct Database {
    pub backend: Backend,
    pub url: String,
    pub dir: tempfile::TempDir,
    admin_url: Option<String>,
}

impl Database {
    pub fn new(backend: Backend, postgres_admin_url: &str) -> Result<Self, TargetError> {
        let dir = tempfile::Builder::new().prefix("ec-bench-").tempdir()?;
        Ok(match backend {
            Backend::Sqlite => {
                let url = format!("sqlite:{}", dir.path().join("bench.db").display());
                Self { backend, url, dir, admin_url: None }
            }
            Backend::Postgres => {
                let name = format!("ec_bench_{}", hex::encode(app::crypto::random_bytes::<6>()));
                let base = postgres_admin_url.rsplit_once('/').map_or(postgres_admin_url, |(base, _)| base);
                Self { backend, url: format!("{base}/{name}"), dir, admin_url: Some(postgres_admin_url.to_owned()) }
            }
        })
    }

    /// Rows in `messages`: zero once every message sent was viewed by everyone.
    pub async fn message_rows(&self) -> Result<i64, TargetError> {
        self.count("SELECT COUNT(*) FROM messages").await
    }

    /// Files' chunks still stored: zero once every file card is gone.
    pub async fn chunk_rows(&self) -> Result<i64, TargetError> {
        self.count("SELECT COUNT(*) FROM chunks").await
    }

    /// Recipients still recorded: zero once every message is gone. SQLite keeps them as rows of
    /// their own; PostgreSQL in their message's row.
    pub async fn recipient_rows(&self) -> Result<i64, TargetError> {
        self.count(match self.backend {
            Backend::Sqlite => "SELECT COUNT(*) FROM recipients",
            Backend::Postgres => "SELECT COALESCE(SUM(cardinality(recipients)), 0)::BIGINT FROM messages",
        })
        .await
    }

    /// Rows in `participants`: zero once every client has left and the servers have noted it.
    pub async fn participant_rows(&self) -> Result<i64, TargetError> {
        self.count("SELECT COUNT(*) FROM participants").await
    }

    /// Waits until every participant has left, so that the next run's messages do not count the
    /// last run's clients, still leaving, as their recipients.
    pub async fn wait_until_everyone_left(&self) -> Result<(), TargetError> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.participant_rows().await? > 0 {
            if Instant::now() > deadline {
                return Err(TargetError::Io(std::io::Error::other(
                    "participants still in their rooms 10 s after a run",
                )));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }

    /// Brings the database to rest before a measured run, so that no run pays for the cleanup of
    /// the one before it (the dead rows of its deletes, its dirty pages): PostgreSQL vacuums the
    /// tables and checkpoints (pgbench likewise vacuums before it runs); SQLite checkpoints its
    /// write-ahead log into the database file.
    pub async fn settle(&self) -> Result<(), TargetError> {
        match self.backend {
            Backend::Sqlite => {
                let mut conn = self.url.parse::<sqlx::sqlite::SqliteConnectOptions>()?.connect().await?;
                sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").execute(&mut conn).await?;
            }
            Backend::Postgres => {
                let mut conn = self.url.parse::<sqlx::postgres::PgConnectOptions>()?.connect().await?;
                sqlx::query("VACUUM messages, participants").execute(&mut conn).await?;
                sqlx::query("CHECKPOINT").execute(&mut conn).await?;
            }
        }
        Ok(())
    }

    /// A `SELECT COUNT(*)` over a connection of its own.
    async fn count(&self, sql: &str) -> Result<i64, TargetError> {
        Ok(match self.backend {
            Backend::Sqlite => {
                let mut conn = self.url.parse::<sqlx::sqlite::SqliteConnectOptions>()?.connect().await?;
                sqlx::query_scalar(sql).fetch_one(&mut conn).await?
            }
            Backend::Postgres => {
                let mut conn = self.url.parse::<sqlx::postgres::PgConnectOptions>()?.connect().await?;
                sqlx::query_scalar(sql).fetch_one(&mut conn).await?
            }
        })
    }

    /// Creates the PostgreSQL database (a server creates its own; the ceiling runs without one).
    pub async fn create_postgres(&self) -> Result<(), TargetError> {
        self.on_admin(|name| format!("CREATE DATABASE \"{name}\"")).await
    }

    /// Drops the PostgreSQL database (the SQLite file goes with the temp dir).
    pub async fn drop_database(&self) -> Result<(), TargetError> {
        self.on_admin(|name| format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")).await
    }

    /// Runs a statement about this database on the maintenance connection (PostgreSQL only).
    async fn on_admin(&self, statement: impl Fn(&str) -> String) -> Result<(), TargetError> {
        let (Some(admin), Some((_, name))) = (&self.admin_url, self.url.rsplit_once('/')) else {
            return Ok(());
        };
        let mut conn = admin.parse::<sqlx::postgres::PgConnectOptions>()?.connect().await?;
        sqlx::query(&statement(name)).execute(&mut conn).await?;
        conn.close().await?;
        Ok(())
    }
}

/// How to start the servers.
#[derive(Debug, Clone)]
pub struct ServerSpec {
    pub bin: PathBuf,
    /// Settings beyond the database and port, e.g. raised rate limits.
    pub env: Vec<(String, String)>,
    /// Serve metrics (`METRICS_ADDR` on a free port), for [`Server::metric`].
    pub metrics: bool,
}

impl ServerSpec {
    /// The settings every benchmark uses: a client here is a load generator, not a person, so
    /// the per-connection and per-address abuse limits are lifted; everything else is default.
    pub fn for_load(bin: PathBuf) -> Self {
        let env = [
            ("RATE_LIMIT_PER_SECOND", "1000000"),
            ("RATE_LIMIT_BURST", "1000000"),
            ("MAX_CONNECTIONS_PER_ADDRESS", "1000000"),
            ("CONNECTS_PER_SECOND_PER_ADDRESS", "1000000"),
            ("CONNECT_BURST_PER_ADDRESS", "1000000"),
            ("MAX_STORED_BYTES_PER_ADDRESS", "1024GiB"),
            ("MAX_CONNECTIONS", "1000000"),
        ];
        Self { bin, env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(), metrics: false }
    }
}

/// One running `server` process.
pub struct Server {
    child: Child,
    pub port: u16,
    pub output: PathBuf,
    /// `METRICS_ADDR`'s port, if the spec asked for metrics.
    metrics_port: Option<u16>,
}

impl Server {
    /// Starts `spec.bin` on a free port over `db`, and waits until it accepts connections.
    pub async fn start(spec: &ServerSpec, db: &Database, key: &str, index: usize) -> Result<Self, TargetError> {
        let port = free_port()?;
        let metrics_port = if spec.metrics { Some(free_port()?) } else { None };
        let output = db.dir.path().join(format!("server-{index}.log"));
        let log = std::fs::File::create(&output)?;
        let child = Command::new(&spec.bin)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("PORT", port.to_string())
            .env("DATABASE_URL", &db.url)
            .env("DATA_DIR", db.dir.path())
            .env("ENCRYPTION_KEY", key)
            .env("LEPTOS_SITE_ROOT", db.dir.path())
            .envs(spec.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .envs(metrics_port.map(|port| ("METRICS_ADDR", format!("127.0.0.1:{port}"))))
            // TLS to PostgreSQL as this process has it (PGSSLMODE, which its own connections
            // follow too): `PGSSLMODE=disable` measures without it.
            .envs(std::env::var("PGSSLMODE").ok().map(|mode| ("PGSSLMODE", mode)))
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .spawn()
            .map_err(|source| TargetError::Spawn { bin: spec.bin.clone(), source })?;
        let server = Self { child, port, output, metrics_port };
        server.wait_until_serving().await?;
        Ok(server)
    }

    async fn wait_until_serving(&self) -> Result<(), TargetError> {
        let deadline = Instant::now() + START_TIMEOUT;
        while tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await.is_err() {
            if Instant::now() > deadline {
                return Err(TargetError::NotServing { output: std::fs::read_to_string(&self.output)? });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    }

    pub fn ws_url(&self) -> String {
        format!("ws://127.0.0.1:{}{}", self.port, app::protocol::WS_PATH)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident memory now, in KiB.
    pub fn rss_kib(&self) -> Result<u64, TargetError> {
        proc_status_kib(self.pid(), "VmRSS:")
    }

    /// The most resident memory the process has had, in KiB.
    pub fn peak_rss_kib(&self) -> Result<u64, TargetError> {
        proc_status_kib(self.pid(), "VmHWM:")
    }

    /// A counter or gauge from the server's `/metrics` (with [`ServerSpec::metrics`]); `None` if
    /// it serves none or does not list `name`.
    pub async fn metric(&self, name: &str) -> Option<f64> {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", self.metrics_port?)).await.ok()?;
        stream.write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").await.ok()?;
        let mut text = String::new();
        stream.read_to_string(&mut text).await.ok()?;
        text.lines().find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
    }

    /// Everything the server printed so far.
    pub fn output_text(&self) -> String {
        std::fs::read_to_string(&self.output).unwrap_or_default()
    }

    /// SIGKILL, as a crash.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A line such as `VmRSS:  12345 kB` of `/proc/<pid>/status`.
pub fn proc_status_kib(pid: u32, field: &str) -> Result<u64, TargetError> {
    let status = std::fs::read_to_string(Path::new("/proc").join(pid.to_string()).join("status"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| TargetError::Io(std::io::Error::other(format!("no {field} in /proc/{pid}/status"))))
}

/// A port nothing listens on right now.
pub fn free_port() -> Result<u16, TargetError> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A fresh random at-rest key, hex.
pub fn random_key() -> String {
    hex::encode(app::crypto::random_bytes::<32>())
}

/// A nats-server of the caller's own on 127.0.0.1 (the NATS bus's benchmarks and faults):
/// restarted at will without disturbing anything else on the machine.
pub struct NatsServer {
    bin: PathBuf,
    port: u16,
    child: Child,
}

impl NatsServer {
    /// Starts `bin` (Debian's `nats-server`, which `make setup` installs) on a free port, and
    /// waits until it listens.
    pub fn start(bin: &Path) -> Result<Self, TargetError> {
        let port = free_port()?;
        let child = Self::spawn(bin, port)?;
        Ok(Self { bin: bin.to_path_buf(), port, child })
    }

    fn spawn(bin: &Path, port: u16) -> Result<Child, TargetError> {
        let mut child = Command::new(bin)
            .args(["-a", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|source| TargetError::Spawn { bin: bin.to_path_buf(), source })?;
        let deadline = Instant::now() + START_TIMEOUT;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                let _ = child.kill();
                return Err(TargetError::NatsNotServing(port));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(child)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `BUS_URL` for a relay.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Kills it (every connection cut; core NATS keeps nothing) and starts it again on the
    /// same port.
    pub fn restart(&mut self) -> Result<(), TargetError> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.child = Self::spawn(&self.bin, self.port)?;
        Ok(())
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_reads_its_own_resident_memory() {
        let rss = proc_status_kib(std::process::id(), "VmRSS:").unwrap();
        let peak = proc_status_kib(std::process::id(), "VmHWM:").unwrap();
        assert!(rss > 0 && peak >= rss, "rss {rss} peak {peak}");
        assert!(proc_status_kib(std::process::id(), "NoSuchField:").is_err());
    }
}
