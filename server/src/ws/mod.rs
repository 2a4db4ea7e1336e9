//! The WebSocket side of the relay: the per-room [`hub::Hub`] and one [`session`] per socket.

pub mod hub;
pub mod limits;
pub mod session;

use std::time::Duration;

/// Largest inbound message: the largest sealed payload (16,413 bytes) in base64url is 21,884
/// characters; with its JSON envelope 32 KiB leaves room and nothing more. Larger text gets a
/// `frame_too_large` error and a clean close (code 1009).
pub const MAX_MESSAGE_SIZE: usize = 32 * 1024;
/// Where the WebSocket library itself stops reading: past this the socket is dropped at once,
/// with no error frame, so a flood of huge frames costs the server nothing to answer.
pub const HARD_MAX_MESSAGE_SIZE: usize = 2 * MAX_MESSAGE_SIZE;
/// How long a closing connection waits for the client's close reply.
pub const CLOSE_GRACE: Duration = Duration::from_secs(2);
/// Per-socket read buffer. tungstenite's default (128 KiB) per idle connection is far too much
/// for a relay meant to hold thousands of them.
pub const READ_BUFFER_SIZE: usize = 4 * 1024;
/// Per-socket write buffer before a flush.
pub const WRITE_BUFFER_SIZE: usize = 4 * 1024;
/// How often the server pings (at most; more often under a short `IDLE_TIMEOUT`), keeping
/// proxies from cutting quiet connections.
pub const PING_INTERVAL: Duration = Duration::from_secs(30);
/// Events a room's channel buffers for its slowest member before that member lags.
pub const ROOM_CHANNEL_CAPACITY: usize = 256;
