//! The at-rest layer the relay seals stored messages in (`docs/CRYPTO.md`, "The server's at-rest
//! layer"), from [`app::crypto::at_rest`], which builds without Leptos so the fuzz targets reach
//! it without the server. Records are sealed to a room by its [`RoomHash`](crate::domain::RoomHash)'s bytes.

pub use app::crypto::at_rest::{AtRestError, KeyError, KeyRing, ServerKey};
