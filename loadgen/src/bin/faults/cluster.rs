//! A PostgreSQL cluster of the fault run's own, so that restarting it disturbs nothing else.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use loadgen::target;
use sqlx::{ConnectOptions as _, Connection as _};

use crate::error::FaultError;

/// A PostgreSQL cluster of this run's own, in a temp dir, on its own port and socket directory.
pub struct Cluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    /// Run the tools as `postgres` (PostgreSQL refuses to run as root).
    as_postgres: bool,
}

impl Cluster {
    /// initdb and start.
    pub fn start(bin: Option<&Path>) -> Result<Self, FaultError> {
        let bin = match bin {
            Some(bin) => bin.to_path_buf(),
            None => find_postgres_bin()?,
        };
        let dir = tempfile::Builder::new().prefix("ec-faults-pg-").tempdir()?;
        let as_postgres = is_root();
        if as_postgres {
            let status = Command::new("chown").arg("-R").arg("postgres:postgres").arg(dir.path()).status()?;
            if !status.success() {
                return Err(FaultError::Postgres("cannot give the cluster's temp dir to the postgres user".into()));
            }
        }
        let port = target::free_port()?;
        let cluster = Self { dir, bin, port, as_postgres };
        cluster
            .tool("initdb", &["-D", &cluster.data(), "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8"])?;
        cluster.pg_ctl("start")?;
        Ok(cluster)
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn admin_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Restarts the cluster (a fast shutdown: sessions are cut, as in a failover or upgrade).
    pub fn restart(&self) -> Result<(), FaultError> {
        self.pg_ctl("restart")
    }

    /// Terminates every LISTEN connection to `url`'s database; returns how many.
    pub async fn cut_listeners(&self, url: &str) -> Result<usize, FaultError> {
        let name = url.rsplit_once('/').map_or("", |(_, name)| name).to_owned();
        let mut conn = self.admin_url().parse::<sqlx::postgres::PgConnectOptions>()?.connect().await?;
        let cut: Vec<bool> = sqlx::query_scalar(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND query ILIKE 'LISTEN%'",
        )
        .bind(&name)
        .fetch_all(&mut conn)
        .await?;
        conn.close().await?;
        Ok(cut.into_iter().filter(|&cut| cut).count())
    }

    fn pg_ctl(&self, action: &str) -> Result<(), FaultError> {
        let options = format!("-p {} -k {} -c listen_addresses=127.0.0.1", self.port, self.dir.path().display());
        let log = self.dir.path().join("postgres.log").display().to_string();
        self.tool("pg_ctl", &["-D", &self.data(), "-l", &log, "-w", "-m", "fast", "-o", &options, action])
    }

    fn tool(&self, name: &str, args: &[&str]) -> Result<(), FaultError> {
        let program = self.bin.join(name);
        let mut command = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&program);
            c
        } else {
            Command::new(&program)
        };
        let out = command.args(args).current_dir(self.dir.path()).stdin(Stdio::null()).output()?;
        if out.status.success() {
            Ok(())
        } else {
            Err(FaultError::Postgres(format!(
                "{name} {}: {}{}",
                args.join(" "),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )))
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.tool("pg_ctl", &["-D", &self.data(), "-m", "immediate", "-w", "stop"]);
    }
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|out| out.stdout.trim_ascii() == b"0")
}

/// The newest `/usr/lib/postgresql/<version>/bin` with `initdb` in it.
fn find_postgres_bin() -> Result<PathBuf, FaultError> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .map_err(|_| FaultError::Postgres("no /usr/lib/postgresql: install PostgreSQL or pass --postgres-bin".into()))?
        .filter_map(|e| e.ok())
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .filter(|(_, bin): &(u32, PathBuf)| bin.join("initdb").exists())
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin).ok_or_else(|| FaultError::Postgres("no initdb under /usr/lib/postgresql".into()))
}
