//! Ephemeral Chat's load generator: real protocol clients with the real client crypto, against
//! real server processes, and the benchmark run that writes BENCHMARKS.md.
//!
//! - [`journey`]: rooms of a sender and receivers through send → fetch → viewed → deleted.
//! - [`idle`]: many joined, silent connections, to weigh one.
//! - [`ceiling`]: the database's insert+delete commit rate on the real schema.
//! - [`faults`]: journeys while servers are killed, PostgreSQL restarts and LISTEN is cut.
//! - [`soak`]: steady load for a long while; memory and open files must stay flat.
//! - [`stages`]: where each message's delivery time went, stage by stage.
//! - [`cpu`]: the processor time a run costs the servers, PostgreSQL and the load generator.
//! - [`target`]: server processes over fresh databases, and their memory.
//! - [`bench`] and [`render`]: the whole `make bench` run and its report.

pub mod bench;
pub mod ceiling;
pub mod client;
pub mod cpu;
pub mod faults;
pub mod idle;
pub mod journey;
pub mod render;
pub mod soak;
pub mod stages;
pub mod stats;
pub mod target;
