//! One WebSocket connection's socket: reads frames, applies the limits a socket has (size,
//! rate, idleness), hands each frame to the relay's [`Connection`] and writes back what it
//! answers, with the room's events. One task owns the socket; nothing here outlives it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use app::crypto::file::SEALED_CHUNK_LEN;
use app::protocol::{binary, ClientFrame, ErrorCode, ServerFrame};
use axum::extract::ws::{CloseFrame, Message, WebSocket};
use tokio::sync::watch;

use super::limits::{ByteBudget, TokenBucket};
use crate::domain::bounds::{CLOSE_GRACE, PING_INTERVAL};
use crate::domain::ClientBlock;
use crate::relay::connection::{Connection, Ending, Outgoing};
use crate::relay::Relay;
use crate::telemetry::metrics;

/// WebSocket close code 1009: message too big (RFC 6455 §7.4.1).
const CLOSE_TOO_BIG: u16 = 1009;
/// WebSocket close code 1001: going away (idle timeout, or the server stopping).
const CLOSE_GOING_AWAY: u16 = 1001;
/// WebSocket close code 1008: policy violation (a flood past the rate limit).
const CLOSE_POLICY: u16 = 1008;

/// Serves one socket until it closes. `client` is the block of addresses it came from, whose
/// share of the stored bytes its messages count against.
///
/// `stopping` turns true when the server stops: the socket is closed with 1001 "going away" and
/// the participant kept as after a network loss, so the page's reconnect to the next process is
/// the same participant.
pub async fn run(mut socket: WebSocket, relay: Arc<Relay>, client: ClientBlock, stopping: watch::Receiver<bool>) {
    let limits = relay.limits;
    // One waiter for the whole connection, not one registered anew on every pass of the loop.
    let stopping = server_stopping(stopping);
    tokio::pin!(stopping);
    let mut connection = Connection::new(relay, client);
    metrics::gauge!(metrics::WEBSOCKETS_OPEN).increment(1.0);
    let mut ping = tokio::time::interval(PING_INTERVAL.min(limits.idle_timeout / 2));
    let mut last_heard = Instant::now();
    let mut rate = FrameRate {
        bucket: TokenBucket::new(limits.rate_limit_per_second, limits.rate_limit_burst),
        refused_in_a_row: 0,
        burst: limits.rate_limit_burst,
    };
    // File transfers' binary frames spend bytes of their own budget instead of frames.
    let files = relay_takes_files(&connection);
    let mut transfer_budget = ByteBudget::new(limits.transfer_bytes_per_second);
    // A broken or idle socket is a network loss, unless the page or the server closed it.
    let mut ending = Ending::Lost;
    loop {
        tokio::select! {
            incoming = socket.recv() => {
                // A read error: a broken socket, or a frame past the hard limit.
                let Some(Ok(message)) = incoming else { break };
                last_heard = Instant::now();
                if let Some(frame) = transfer_frame(files, &message) {
                    metrics::counter!(metrics::FRAMES, "direction" => "in").increment(1);
                    let bytes = match frame {
                        binary::Frame::Chunk { sealed, .. } => sealed.len(),
                        binary::Frame::Request { .. } => SEALED_CHUNK_LEN,
                    };
                    // Past the budget, this connection's next frame is read only once it allows:
                    // TCP's flow control slows the sender, and nothing is refused.
                    tokio::time::sleep(transfer_budget.take(bytes)).await;
                    let replies = Box::pin(connection.transfer(frame)).await;
                    // A refused file frame spends the frame rate as any frame does: a flood of
                    // them (requests for files never fetched, chunks of no upload) is answered
                    // `rate_limited` and cut off as a flood of bad text frames is.
                    let refused = replies.iter().any(|reply| matches!(reply, Outgoing::Frame(ServerFrame::Error { .. })));
                    match if refused { rate.admit() } else { Admit::Pass } {
                        Admit::Pass => {}
                        Admit::Limited => {
                            if send(&mut socket, &ServerFrame::error(ErrorCode::RateLimited), limits.write_timeout).await.is_err() {
                                break;
                            }
                            continue;
                        }
                        Admit::Flood => {
                            close_gracefully(&mut socket, CLOSE_POLICY, "rate limit", limits.write_timeout).await;
                            break;
                        }
                    }
                    if send_outgoing(&mut socket, replies, limits.write_timeout).await.is_err() {
                        break;
                    }
                    continue;
                }
                if matches!(message, Message::Text(_) | Message::Binary(_)) {
                    metrics::counter!(metrics::FRAMES, "direction" => "in").increment(1);
                    match rate.admit() {
                        Admit::Pass => {}
                        Admit::Limited => {
                            if send(&mut socket, &ServerFrame::error(ErrorCode::RateLimited), limits.write_timeout).await.is_err() {
                                break;
                            }
                            continue;
                        }
                        Admit::Flood => {
                            close_gracefully(&mut socket, CLOSE_POLICY, "rate limit", limits.write_timeout).await;
                            break;
                        }
                    }
                }
                if let Message::Text(text) = &message {
                    if text.len() > limits.max_frame_size as usize {
                        let _ = send(&mut socket, &ServerFrame::error(ErrorCode::FrameTooLarge), limits.write_timeout).await;
                        close_gracefully(&mut socket, CLOSE_TOO_BIG, "frame too large", limits.write_timeout).await;
                        break;
                    }
                }
                let replies = match message {
                    Message::Text(text) => match serde_json::from_str::<ClientFrame>(text.as_str()) {
                        Ok(frame) => Box::pin(connection.handle(frame)).await,
                        Err(_) => vec![ServerFrame::error(ErrorCode::BadFrame)],
                    },
                    Message::Binary(_) => vec![ServerFrame::error(ErrorCode::BinaryFrame)],
                    Message::Close(_) => {
                        ending = Ending::PageClosed;
                        break;
                    }
                    Message::Ping(_) | Message::Pong(_) => Vec::new(),
                };
                if send_all(&mut socket, &replies, limits.write_timeout).await.is_err() {
                    break;
                }
            }
            event = connection.next_event() => {
                let Some(frames) = Box::pin(connection.on_event(event)).await else { break };
                if send_all(&mut socket, &frames, limits.write_timeout).await.is_err() {
                    break;
                }
            }
            () = &mut stopping => {
                close_gracefully(&mut socket, CLOSE_GOING_AWAY, "server restarting", limits.write_timeout).await;
                ending = Ending::ServerStopping;
                break;
            }
            _ = ping.tick() => {
                if last_heard.elapsed() > limits.idle_timeout {
                    close_gracefully(&mut socket, CLOSE_GOING_AWAY, "idle", limits.write_timeout).await;
                    break;
                }
                if write(&mut socket, Message::Ping(Default::default()), limits.write_timeout).await.is_err() {
                    break;
                }
            }
        }
    }
    Box::pin(connection.end(ending)).await;
    metrics::gauge!(metrics::WEBSOCKETS_OPEN).decrement(1.0);
}

/// The frame rate limit of one connection: a token bucket, and the frames refused in a row for
/// it (a burst's worth more means a flood).
struct FrameRate {
    bucket: TokenBucket,
    refused_in_a_row: u32,
    burst: u32,
}

/// What the frame rate says of one more frame.
enum Admit {
    Pass,
    /// Over the limit: refuse it (`rate_limited`).
    Limited,
    /// Over the limit for a burst's worth in a row: close the connection.
    Flood,
}

impl FrameRate {
    fn admit(&mut self) -> Admit {
        if self.bucket.try_take() {
            self.refused_in_a_row = 0;
            return Admit::Pass;
        }
        self.refused_in_a_row += 1;
        if self.refused_in_a_row > self.burst {
            Admit::Flood
        } else {
            Admit::Limited
        }
    }
}

/// Whether this relay takes files (`MAX_FILE_SIZE` above zero).
fn relay_takes_files(connection: &Connection) -> bool {
    connection.relay().max_file_chunks() > 0
}

/// A binary frame that is a well-formed file transfer frame, on a relay that takes files. Any
/// other binary frame counts against the frame rate and is refused as `binary_frame`.
fn transfer_frame(files: bool, message: &Message) -> Option<binary::Frame<'_>> {
    match message {
        Message::Binary(bytes) if files => binary::decode(bytes),
        _ => None,
    }
}

/// Writes what a transfer answered: frames as text, a chunk as one binary frame.
async fn send_outgoing(socket: &mut WebSocket, replies: Vec<Outgoing>, timeout: Duration) -> Result<(), WriteFailed> {
    for reply in replies {
        match reply {
            Outgoing::Frame(frame) => send(socket, &frame, timeout).await?,
            Outgoing::Chunk(bytes) => {
                metrics::counter!(metrics::FRAMES, "direction" => "out").increment(1);
                write(socket, Message::Binary(bytes.into()), timeout).await?;
            }
        }
    }
    Ok(())
}

/// Resolves once the server is stopping; never if it runs on, or if nobody can tell any more
/// (the server was dropped in-process, as tests do to kill one).
async fn server_stopping(mut stopping: watch::Receiver<bool>) {
    if stopping.wait_for(|stopping| *stopping).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// The socket cannot be written to: it broke, or its peer stopped reading for `WRITE_TIMEOUT`.
/// Either way the session ends as after a network loss.
#[derive(Debug)]
struct WriteFailed;

/// Writes one message, giving up after `timeout`: a client that stops reading (its TCP window
/// closed) must not pin its session, its address's place or its seat in the room.
async fn write(socket: &mut WebSocket, message: Message, timeout: Duration) -> Result<(), WriteFailed> {
    match tokio::time::timeout(timeout, socket.send(message)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) | Err(_) => Err(WriteFailed),
    }
}

async fn send(socket: &mut WebSocket, frame: &ServerFrame, timeout: Duration) -> Result<(), WriteFailed> {
    metrics::counter!(metrics::FRAMES, "direction" => "out").increment(1);
    if let ServerFrame::Error { code, .. } = frame {
        metrics::counter!(metrics::REFUSALS, "code" => code_name(*code)).increment(1);
    }
    write(socket, Message::Text(frame.to_json().into()), timeout).await
}

/// An error code's wire name (`rate_limited`), the one label of the refusals counter.
fn code_name(code: ErrorCode) -> String {
    match serde_json::to_value(code) {
        Ok(serde_json::Value::String(name)) => name,
        _ => "unknown".to_owned(),
    }
}

async fn send_all(socket: &mut WebSocket, frames: &[ServerFrame], timeout: Duration) -> Result<(), WriteFailed> {
    for frame in frames {
        send(socket, frame, timeout).await?;
    }
    Ok(())
}

/// Sends a close frame and waits (briefly) for the client's reply, so the close code arrives
/// instead of a reset from unread data.
async fn close_gracefully(socket: &mut WebSocket, code: u16, reason: &'static str, timeout: Duration) {
    let close = Message::Close(Some(CloseFrame { code, reason: reason.into() }));
    if write(socket, close, timeout.min(CLOSE_GRACE)).await.is_err() {
        return;
    }
    let _ = tokio::time::timeout(CLOSE_GRACE, async {
        while let Some(Ok(message)) = socket.recv().await {
            if matches!(message, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
}
