//! Ephemeral Chat's load generator: real protocol clients with the real client crypto, against
//! real server processes, and the benchmark run that writes BENCHMARKS.md.
//!
//! Two binaries use this library: `loadgen` measures, and `faults` (`src/bin/faults/`) hurts the
//! servers under load (kill -9, PostgreSQL restarts, cut LISTEN connections), attacks them as
//! hostile clients would (slow headers, sockets that stop reading, filling the storage), or holds
//! them under steady load for a long while, then accounts for every message.
//!
//! - [`journey`]: rooms of a sender and receivers through send → fetch → viewed → deleted.
//! - [`idle`]: many joined, silent connections, to weigh one.
//! - [`ceiling`]: the database's insert+delete commit rate on the real schema.
//! - [`stages`]: where each message's delivery time went, stage by stage.
//! - [`cpu`]: the processor time a run costs the servers, PostgreSQL and the load generator.
//! - [`client`]: the socket to the relay.
//! - [`page`]: a page without a browser: the room model the browser runs, driven by Tokio
//!   ([`page::Page`]), or with a clock that jumps for the measured journeys ([`page::at_once`]).
//! - [`target`]: server processes over fresh databases, and their memory.
//! - [`args`]: the command-line pieces both binaries share.
//! - [`bench`] and [`render`]: the whole `make bench` run and its report.

pub mod args;
pub mod bench;
pub mod ceiling;
pub mod client;
pub mod cpu;
pub mod framing;
pub mod idle;
pub mod journey;
pub mod page;
pub mod render;
pub mod stages;
pub mod stats;
pub mod target;
pub mod transfer;
