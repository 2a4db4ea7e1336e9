//! Why a fault or soak run could not be carried out.

use loadgen::target::TargetError;

#[derive(Debug, thiserror::Error)]
pub enum FaultError {
    #[error(transparent)]
    Target(#[from] TargetError),
    #[error("PostgreSQL tools: {0}")]
    Postgres(String),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}
