//! Where messages are stored: SQLite by default, PostgreSQL from `DATABASE_URL` or the `PG*`
//! settings, with libpq's `sslmode` and `sslrootcert` (in the URL, or PGSSLMODE and
//! PGSSLROOTCERT).

use std::path::PathBuf;
use std::str::FromStr;

use secrecy::ExposeSecret;
use sqlx::postgres::{PgConnectOptions, PgSslMode};

use super::{Config, ConfigError};
use crate::domain::bounds::POSTGRES_POOL_CONNECTIONS;

/// Default database name when PostgreSQL is chosen through the `PG*` variables.
pub const DEFAULT_PG_DATABASE: &str = "ephemeral_chat";

/// Where messages are stored, once every setting is resolved.
#[derive(Debug, Clone)]
pub enum Database {
    Sqlite {
        path: PathBuf,
    },
    /// `pool`: connections this instance holds at most (`POSTGRES_POOL_SIZE`).
    Postgres {
        options: Box<PgConnectOptions>,
        pool: u32,
    },
}

impl Database {
    /// PostgreSQL at `options`, with the default pool.
    pub fn postgres(options: PgConnectOptions) -> Self {
        Self::Postgres { options: Box::new(options), pool: POSTGRES_POOL_CONNECTIONS }
    }
}

impl Config {
    /// The store this configuration selects.
    pub fn database(&self) -> Result<Database, ConfigError> {
        let postgres = |options| Database::Postgres { options: Box::new(options), pool: self.postgres_pool_size };
        let database = match &self.database_url {
            Some(url) => {
                let url = url.expose_secret();
                let database = parse_database_url(url)
                    .map_err(|reason| ConfigError::new("database-url", "DATABASE_URL", reason))?;
                match database {
                    Database::Postgres { options, .. } => postgres(self.with_tls_settings(*options, Some(url))),
                    sqlite => sqlite,
                }
            }
            None if self.any_pg_setting() => postgres(self.pg_options()),
            None => Database::Sqlite { path: self.data_dir.join("ephemeral-chat.db") },
        };
        if let Database::Postgres { .. } = &database {
            self.check_root_cert()?;
        }
        Ok(database)
    }

    /// A root certificate file that cannot be read stops start-up here, naming the setting,
    /// rather than at the first connection.
    fn check_root_cert(&self) -> Result<(), ConfigError> {
        let url = self.database_url.as_ref().map(|url| url.expose_secret());
        let (path, flag, env) = match url.and_then(|url| url_param(url, "sslrootcert")) {
            // A percent-encoded path is left to the driver to decode and report.
            Some(path) if !path.contains('%') => (PathBuf::from(path), "database-url", "DATABASE_URL"),
            Some(_) => return Ok(()),
            None => match &self.pgsslrootcert {
                Some(path) => (path.clone(), "pgsslrootcert", "PGSSLROOTCERT"),
                None => return Ok(()),
            },
        };
        std::fs::metadata(&path).map(|_| ()).map_err(|err| {
            ConfigError::new(flag, env, format!("cannot read the root certificate file {}: {err}", path.display()))
        })
    }

    /// PGSSLMODE and PGSSLROOTCERT (flags or environment) where the URL names none: a URL's own
    /// `sslmode` and `sslrootcert` take precedence, as with libpq.
    fn with_tls_settings(&self, mut options: PgConnectOptions, url: Option<&str>) -> PgConnectOptions {
        let in_url = |name: &str| url.is_some_and(|url| url_param(url, name).is_some());
        if let Some(mode) = self.pgsslmode {
            if !in_url("sslmode") {
                options = options.ssl_mode(mode);
            }
        }
        if let Some(root) = &self.pgsslrootcert {
            if !in_url("sslrootcert") {
                options = options.ssl_root_cert(root);
            }
        }
        options
    }

    fn any_pg_setting(&self) -> bool {
        self.pghost.is_some()
            || self.pgport.is_some()
            || self.pgdatabase.is_some()
            || self.pguser.is_some()
            || self.pgpassword.is_some()
    }

    /// libpq-style settings; flags override what sqlx reads from the `PG*` environment.
    fn pg_options(&self) -> PgConnectOptions {
        let mut options = self.with_tls_settings(PgConnectOptions::new(), None);
        if let Some(host) = &self.pghost {
            options = options.host(host);
        }
        if let Some(port) = self.pgport {
            options = options.port(port);
        }
        options = options.database(self.pgdatabase.as_deref().unwrap_or(DEFAULT_PG_DATABASE));
        if let Some(user) = &self.pguser {
            options = options.username(user);
        }
        if let Some(password) = &self.pgpassword {
            options = options.password(password.expose_secret());
        }
        options
    }
}

/// libpq's names for `sslmode`, with sqlx's equivalents.
const SSL_MODES: [(&str, PgSslMode); 6] = [
    ("disable", PgSslMode::Disable),
    ("allow", PgSslMode::Allow),
    ("prefer", PgSslMode::Prefer),
    ("require", PgSslMode::Require),
    ("verify-ca", PgSslMode::VerifyCa),
    ("verify-full", PgSslMode::VerifyFull),
];

pub(super) fn parse_ssl_mode(value: &str) -> Result<PgSslMode, String> {
    SSL_MODES
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(value.trim()))
        .map(|(_, mode)| *mode)
        .ok_or_else(|| "expected disable, allow, prefer, require, verify-ca or verify-full".to_owned())
}

/// The libpq name of a mode, for messages.
pub fn ssl_mode_name(mode: PgSslMode) -> &'static str {
    match mode {
        PgSslMode::Disable => "disable",
        PgSslMode::Allow => "allow",
        PgSslMode::Prefer => "prefer",
        PgSslMode::Require => "require",
        PgSslMode::VerifyCa => "verify-ca",
        PgSslMode::VerifyFull => "verify-full",
    }
}

/// The value of `param` in a `postgres://` URL's query, undecoded.
fn url_param<'a>(url: &'a str, param: &str) -> Option<&'a str> {
    let (_, query) = url.split_once('?')?;
    query.split('&').find_map(|pair| {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        name.eq_ignore_ascii_case(param).then_some(value)
    })
}

fn parse_database_url(value: &str) -> Result<Database, String> {
    if let Some(rest) = value.strip_prefix("sqlite:") {
        let path = rest.strip_prefix("//").unwrap_or(rest);
        let path = path.split('?').next().unwrap_or_default();
        if path.is_empty() || path == ":memory:" {
            return Err("a sqlite: URL needs a file path, e.g. sqlite:data/ephemeral-chat.db".into());
        }
        return Ok(Database::Sqlite { path: PathBuf::from(path) });
    }
    if value.starts_with("postgres://") || value.starts_with("postgresql://") {
        if let Some(mode) = url_param(value, "sslmode") {
            parse_ssl_mode(mode).map_err(|reason| format!("sslmode: {reason}"))?;
        }
        return PgConnectOptions::from_str(value)
            .map(Database::postgres)
            .map_err(|_| "not a valid postgres:// URL".to_owned());
    }
    Err("must start with sqlite: or postgres://".into())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use clap::Parser as _;

    use super::*;

    fn parse(args: &[&str]) -> Result<Config, clap::Error> {
        Config::try_parse_from(std::iter::once("server").chain(args.iter().copied()))
    }

    #[test]
    fn ssl_modes_are_libpqs() {
        for (name, _) in SSL_MODES {
            assert_eq!(ssl_mode_name(parse_ssl_mode(name).unwrap()), name);
        }
        assert!(parse_ssl_mode("VERIFY-FULL").is_ok());
        assert!(parse_ssl_mode("sometimes").is_err());
        assert!(url_param("postgres://h/db?a=1&sslmode=require", "sslmode").is_some());
        assert!(url_param("postgres://h/db?a=1", "sslmode").is_none());
        assert_eq!(url_param("postgres://h/db?sslrootcert=/x.pem&b", "sslrootcert"), Some("/x.pem"));
    }

    #[test]
    fn database_urls_must_name_a_known_backend() {
        let err = parse(&["--database-url", "mysql://u:hunter2@x"]).unwrap().validate().unwrap_err().to_string();
        assert!(err.contains("DATABASE_URL") && !err.contains("hunter2"), "{err}");
        assert!(parse(&["--database-url", "sqlite:"]).unwrap().validate().is_err());
        let config = parse(&["--database-url", "sqlite://tmp/x.db"]).unwrap();
        assert!(matches!(config.database().unwrap(), Database::Sqlite { path } if path == Path::new("tmp/x.db")));
        let config = parse(&["--database-url", "postgres://u@h/db"]).unwrap();
        assert!(matches!(config.database().unwrap(), Database::Postgres { pool: 10, .. }));
    }

    #[test]
    fn the_pool_is_postgres_pool_size_from_1_to_1000() {
        let config = parse(&["--database-url", "postgres://u@h/db", "--postgres-pool-size", "3"]).unwrap();
        assert!(matches!(config.database().unwrap(), Database::Postgres { pool: 3, .. }));
        let config = parse(&["--pghost", "db.internal", "--postgres-pool-size", "1000"]).unwrap();
        assert!(matches!(config.database().unwrap(), Database::Postgres { pool: 1000, .. }));
        for bad in ["0", "1001", "-1", "ten"] {
            let err = parse(&[&format!("--postgres-pool-size={bad}")]).unwrap_err().to_string();
            assert!(err.contains("--postgres-pool-size"), "{bad}: {err}");
        }
    }

    #[test]
    fn pg_settings_select_postgres_with_the_default_database() {
        let config = parse(&["--pghost", "db.internal"]).unwrap();
        match config.database().unwrap() {
            Database::Postgres { options, .. } => {
                assert_eq!(options.get_host(), "db.internal");
                assert_eq!(options.get_database(), Some(DEFAULT_PG_DATABASE));
            }
            other => panic!("expected postgres, got {other:?}"),
        }
    }
}
