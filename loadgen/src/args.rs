//! Command-line pieces both binaries share (`loadgen` measures, `faults` hurts and soaks): which
//! servers to start, and the parsers of their numbers and settings.

use std::path::PathBuf;

use crate::target::Backend;

// The servers to start, over a fresh database. (Not a doc comment: clap would make one the
// `about` of every command that flattens this.)
#[derive(clap::Args, Clone)]
pub struct Target {
    /// The server binary to start (over a fresh database).
    #[arg(long, env = "SERVER_BIN", default_value = "target/release/server")]
    pub server_bin: PathBuf,
    #[arg(long, value_enum, default_value = "sqlite")]
    pub backend: Backend,
    /// Instances to start over one database (PostgreSQL only for more than one).
    #[arg(long, default_value_t = 1)]
    pub instances: usize,
    /// PostgreSQL maintenance URL; benchmark databases are created beside it and dropped.
    #[arg(long, env = "TEST_POSTGRES_URL", default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    pub postgres_url: String,
    /// Further server settings, `NAME=value` (repeatable), e.g. `SOCKET_BUFFER_SIZE=1024`.
    #[arg(long = "server-env", value_parser = parse_setting)]
    pub server_env: Vec<(String, String)>,
}

/// A rate or a duration: a finite number above zero (a schedule or timer cannot use another).
pub fn positive(value: &str) -> Result<f64, String> {
    match value.parse::<f64>() {
        Ok(number) if number.is_finite() && number > 0.0 => Ok(number),
        _ => Err(format!("expected a number above zero, got {value:?}")),
    }
}

/// A server setting, `NAME=value`.
pub fn parse_setting(value: &str) -> Result<(String, String), String> {
    value.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())).ok_or_else(|| "expected NAME=value".into())
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

    #[test]
    fn a_setting_is_split_at_its_first_equals_sign() {
        assert_eq!(parse_setting("A=b=c"), Ok(("A".to_owned(), "b=c".to_owned())));
        assert!(parse_setting("NO_VALUE").is_err());
    }
}
