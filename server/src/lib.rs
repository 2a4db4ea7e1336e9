//! Ephemeral Chat's relay server, as a library so tests can start it on port 0.
//!
//! Layers, whose imports run one way (each imports only those below it, and the store and the
//! bus only the domain):
//!
//! ```text
//! startup (wiring; imported by nothing but main.rs)
//!   routes/, ws/   transport: HTTP and sockets; frames in, relay calls, frames out
//!   relay/         operations and this instance's room state (hub, held messages, presence,
//!                  background tasks)
//!   store/, bus    beside the relay: the database, and room events between instances
//!   at_rest, config, telemetry
//!   domain/        ids, events and notices, the message lifecycle: imports nothing of the crate
//! ```
#![forbid(unsafe_code)]

pub mod at_rest;
pub mod bus;
pub mod config;
pub mod domain;
pub mod relay;
pub mod routes;
pub mod startup;
pub mod store;
pub mod telemetry;
pub mod ws;
