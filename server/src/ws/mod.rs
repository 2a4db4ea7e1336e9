//! The WebSocket transport: one [`session`] per socket, and the limits a socket or a client
//! address is held to ([`limits`]). Frames in, relay calls, frames out.

pub mod limits;
pub mod session;
