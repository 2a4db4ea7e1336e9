//! The WebSocket transport: one [`session`] per socket, and the limits a socket or a client
//! address is held to ([`limits`]). Frames in, relay calls, frames out.

pub mod limits;
pub mod session;

use std::time::Duration;

/// How long a closing connection waits for the client's close reply.
pub const CLOSE_GRACE: Duration = Duration::from_secs(2);
/// How often the server pings (at most; more often under a short `IDLE_TIMEOUT`), keeping
/// proxies from cutting quiet connections.
pub const PING_INTERVAL: Duration = Duration::from_secs(30);
