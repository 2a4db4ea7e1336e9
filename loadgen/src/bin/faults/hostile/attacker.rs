//! A hostile WebSocket client: the protocol's frames written by hand, from a chosen source
//! address, claiming a chosen `X-Forwarded-For`, with a chosen receive buffer. It joins rooms of
//! random ids and sends sealed payloads of the largest size with random bytes in them: the
//! relay cannot tell them from real ones, and no key is derived for them.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::OnceLock;
use std::time::Duration;

use app::crypto::message::{MAX_SEALED_LEN, VERSION};
use app::crypto::{MessageId, RoomId, SealedPayload};
use app::protocol::{ClientFrame, ErrorCode, ServerFrame, WS_PATH};
use futures::{SinkExt as _, StreamExt as _};
use loadgen::client;
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::HostileError;

/// How long the relay may take to answer a join or a send before the attack gives up on it.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(15);

/// Where a hostile connection comes from.
#[derive(Debug, Clone, Default)]
pub struct Via {
    /// The source address to bind (any of 127.0.0.0/8 reaches the server on loopback).
    pub bind: Option<IpAddr>,
    /// Sent as `X-Forwarded-For`: believed only when the source is a trusted proxy.
    pub forwarded_for: Option<IpAddr>,
    /// `SO_RCVBUF`, set before connecting so the window it advertises stays that small.
    pub recv_buffer: Option<u32>,
}

/// What became of one `send`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    Stored,
    Refused(ErrorCode),
}

/// One hostile socket.
pub struct Attacker {
    ws: WebSocketStream<TcpStream>,
    /// This side's address (the slowloris and non-reader watches find the socket by its port).
    pub local: SocketAddr,
}

impl Attacker {
    /// Opens a WebSocket to the server on 127.0.0.1:`port` as `via` says.
    pub async fn connect(port: u16, via: &Via) -> Result<Self, HostileError> {
        let socket = TcpSocket::new_v4()?;
        if let Some(ip) = via.bind {
            socket.bind(SocketAddr::new(ip, 0))?;
        }
        if let Some(size) = via.recv_buffer {
            socket.set_recv_buffer_size(size)?;
        }
        let stream = socket.connect(SocketAddr::new(Ipv4Addr::LOCALHOST.into(), port)).await?;
        let local = stream.local_addr()?;
        let mut request = format!("ws://127.0.0.1:{port}{WS_PATH}").into_client_request().map_err(Box::new)?;
        if let Some(ip) = via.forwarded_for {
            let value = HeaderValue::from_str(&ip.to_string()).expect("invariant: an IP address is a header value");
            request.headers_mut().insert("x-forwarded-for", value);
        }
        let config = WebSocketConfig::default().read_buffer_size(4096).write_buffer_size(0);
        let (ws, _) =
            tokio_tungstenite::client_async_with_config(request, stream, Some(config)).await.map_err(Box::new)?;
        Ok(Self { ws, local })
    }

    /// Joins `room` as a fresh participant and waits for `joined`.
    pub async fn join(&mut self, room: RoomId) -> Result<(), HostileError> {
        let session = hex::encode(app::crypto::random_bytes::<16>());
        self.write(&ClientFrame::Join { room_id: room.to_hex(), session }).await?;
        loop {
            match self.answer().await? {
                ServerFrame::Joined { .. } => return Ok(()),
                ServerFrame::Error { code, .. } => return Err(HostileError::Setup(format!("join refused: {code:?}"))),
                _ => {}
            }
        }
    }

    /// Sends the largest sealed payload under a fresh id and waits for the relay's answer.
    pub async fn send_big(&mut self) -> Result<(MessageId, Sent), HostileError> {
        let id = self.send_big_unanswered().await?;
        let hex = id.to_hex();
        loop {
            match self.answer().await? {
                ServerFrame::Sent { message_id } if message_id == hex => return Ok((id, Sent::Stored)),
                ServerFrame::Error { code, message_id, .. } if message_id.as_deref().is_none_or(|m| m == hex) => {
                    return Ok((id, Sent::Refused(code)))
                }
                _ => {}
            }
        }
    }

    /// Sends the largest sealed payload under a fresh id without waiting for the answer.
    pub async fn send_big_unanswered(&mut self) -> Result<MessageId, HostileError> {
        let id = MessageId::generate();
        self.write(&ClientFrame::Send { message_id: id.to_hex(), sealed: big_payload().to_owned(), ttl: None }).await?;
        Ok(id)
    }

    /// Writes one frame.
    pub async fn write(&mut self, frame: &ClientFrame) -> Result<(), HostileError> {
        self.ws.send(client::text(frame)).await.map_err(|err| HostileError::Socket(Box::new(err)))
    }

    /// The next frame from the server; `None` once the socket is closed.
    pub async fn next_frame(&mut self) -> Option<ServerFrame> {
        while let Some(message) = self.ws.next().await {
            match message {
                Ok(Message::Text(text)) => {
                    if let Ok(frame) = serde_json::from_str(text.as_str()) {
                        return Some(frame);
                    }
                }
                Ok(_) => {}
                Err(_) => return None,
            }
        }
        None
    }

    /// The next frame, within [`ANSWER_TIMEOUT`].
    async fn answer(&mut self) -> Result<ServerFrame, HostileError> {
        match tokio::time::timeout(ANSWER_TIMEOUT, self.next_frame()).await {
            Ok(Some(frame)) => Ok(frame),
            Ok(None) => Err(HostileError::Setup("the server closed a hostile socket".into())),
            Err(_) => Err(HostileError::Setup(format!("no answer from the server within {ANSWER_TIMEOUT:?}"))),
        }
    }

    /// Closes the socket with a close frame, as a page that leaves.
    pub async fn close(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(2), self.ws.close(None)).await;
    }
}

/// A fresh random room id: any 64 hex characters make a room.
pub fn random_room() -> RoomId {
    RoomId(app::crypto::random_bytes())
}

/// The largest sealed payload spec v1 allows (16 KiB of padded plaintext), base64url: made once.
pub fn big_payload() -> &'static str {
    static PAYLOAD: OnceLock<String> = OnceLock::new();
    PAYLOAD.get_or_init(|| {
        let mut bytes = vec![VERSION];
        while bytes.len() < MAX_SEALED_LEN {
            bytes.extend_from_slice(&app::crypto::random_bytes::<64>());
        }
        bytes.truncate(MAX_SEALED_LEN);
        SealedPayload::from_bytes(bytes).expect("invariant: the largest length spec v1 allows").to_base64()
    })
}

/// The sealed bytes of [`big_payload`], before the relay's at-rest layer.
pub const BIG_SEALED_BYTES: u64 = MAX_SEALED_LEN as u64;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_big_payload_is_the_largest_the_relay_accepts() {
        let payload = SealedPayload::from_base64(big_payload()).unwrap();
        assert_eq!(payload.as_bytes().len() as u64, BIG_SEALED_BYTES);
        assert_eq!(payload.padded_len(), 16_384);
    }
}
