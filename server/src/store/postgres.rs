//! The PostgreSQL store: for production and for several instances over one database.

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgPool};

use super::StoreError;

/// Enough for two cores' worth of concurrent requests without crowding the database.
const MAX_CONNECTIONS: u32 = 10;
/// SQLSTATE of "database does not exist".
const INVALID_CATALOG_NAME: &str = "3D000";

pub(super) async fn connect(options: &PgConnectOptions) -> Result<PgPool, StoreError> {
    let pool = match PgPoolOptions::new().max_connections(MAX_CONNECTIONS).connect_with(options.clone()).await {
        Err(sqlx::Error::Database(err)) if err.code().as_deref() == Some(INVALID_CATALOG_NAME) => {
            create_database(options).await?;
            PgPoolOptions::new().max_connections(MAX_CONNECTIONS).connect_with(options.clone()).await?
        }
        other => other?,
    };
    sqlx::migrate!("../migrations/postgres").run(&pool).await?;
    Ok(pool)
}

/// Creates the configured database through the server's maintenance database.
async fn create_database(options: &PgConnectOptions) -> Result<(), StoreError> {
    let name =
        options.get_database().ok_or_else(|| StoreError::Setup("PostgreSQL: no database name configured".into()))?;
    let mut conn = options.clone().database("postgres").connect().await?;
    let quoted = format!("\"{}\"", name.replace('"', "\"\""));
    let created = sqlx::query(&format!("CREATE DATABASE {quoted}")).execute(&mut conn).await;
    conn.close().await?;
    match created {
        // Another instance created it first.
        Err(sqlx::Error::Database(err)) if err.code().as_deref() == Some("42P04") => Ok(()),
        other => other.map(drop).map_err(StoreError::from),
    }
}
