//! Ephemeral Chat's relay server, as a library so tests can start it on port 0.
//!
//! - [`config`]: settings from flags and environment, validated before anything starts.
//! - [`startup`]: wires store, hub and routes into an [`startup::Application`].
//! - [`at_rest`]: the server's own AES-256-GCM layer over stored payloads.
//! - [`store`]: the message store, SQLite or PostgreSQL behind one type.
//! - [`ws`]: the WebSocket protocol: per-room hub and per-connection sessions.
//! - [`bus`]: room events between instances over PostgreSQL LISTEN/NOTIFY.
//! - [`routes`]: the HTTP surface: pages, `/ws`, `/healthz`.
#![forbid(unsafe_code)]

pub mod at_rest;
pub mod bus;
pub mod config;
pub mod presence;
pub mod routes;
pub mod startup;
pub mod store;
pub mod telemetry;
pub mod ws;
