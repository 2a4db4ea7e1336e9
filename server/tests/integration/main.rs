//! Integration tests: the real server on a real port, real WebSocket clients, a fresh SQLite
//! file or PostgreSQL database per test, assertions on frames and on the rows left behind.
//!
//! Each module registers its own tests: a test that runs on both backends is an
//! `async fn name(backend: Backend)` named in its module's `on_both_backends!` list.

/// Runs an async test body once per backend, as two separately named tests.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(crate::helpers::Backend::Sqlite).await })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(crate::helpers::Backend::Postgres).await })*
        }
    };
}

mod assets;
mod audit;
mod files;
mod flood;
mod held;
mod helpers;
mod instances;
mod journey;
mod limits;
mod nats;
mod open_internet;
mod operator;
mod pages;
mod process;
mod proxy;
mod recipients;
mod restarts;
mod scenarios;
mod schema;
mod surface;
