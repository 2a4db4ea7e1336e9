//! The WebSocket side of the relay: the per-room [`hub::Hub`] and one [`session`] per socket.

pub mod held;
pub mod hub;
pub mod limits;
pub mod session;

use std::time::Duration;

/// How long a closing connection waits for the client's close reply.
pub const CLOSE_GRACE: Duration = Duration::from_secs(2);
/// How often the server pings (at most; more often under a short `IDLE_TIMEOUT`), keeping
/// proxies from cutting quiet connections.
pub const PING_INTERVAL: Duration = Duration::from_secs(30);
/// Events a room's channel buffers for its slowest member before that member lags (and then
/// re-reads from the store what waits for it, who is here and which of its own messages are
/// gone; only a receipt's intermediate "n of m" can be skipped). The channel allocates every slot
/// up front, about 80 bytes each: at 256 that was 20 KiB per room, most of an idle connection's
/// cost. A room's traffic is a few events per message among at most a few people.
pub const ROOM_CHANNEL_CAPACITY: usize = 32;
