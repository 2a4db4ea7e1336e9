//! One protocol client: a WebSocket that joins a room as a page does.

use app::crypto::RoomId;
use app::protocol::{ClientFrame, ServerFrame};
use futures::{SinkExt as _, StreamExt as _};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Per-socket buffers on the load generator's side: small, so ten thousand sockets fit.
const CLIENT_BUFFER: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect to {url}: {source}")]
    Connect { url: String, source: Box<tokio_tungstenite::tungstenite::Error> },
    #[error("the server refused the join: {0}")]
    Refused(String),
    #[error("the server closed the connection before answering the join")]
    Closed,
    #[error("websocket: {0}")]
    Socket(#[from] Box<tokio_tungstenite::tungstenite::Error>),
}

/// Opens a WebSocket to `url` (`ws://host:port/ws`).
pub async fn connect(url: &str) -> Result<Ws, ClientError> {
    let config = WebSocketConfig::default().read_buffer_size(CLIENT_BUFFER).write_buffer_size(0);
    let (ws, _) = tokio_tungstenite::connect_async_with_config(url, Some(config), true)
        .await
        .map_err(|source| ClientError::Connect { url: url.to_owned(), source: Box::new(source) })?;
    Ok(ws)
}

/// Sends `join` with a fresh session and waits for `joined`; returns the participant count.
pub async fn join(ws: &mut Ws, room: &RoomId) -> Result<u32, ClientError> {
    let session = hex::encode(app::crypto::random_bytes::<16>());
    ws.send(text(&ClientFrame::Join { room_id: room.to_hex(), session })).await.map_err(Box::new)?;
    while let Some(message) = ws.next().await {
        match parse(&message.map_err(Box::new)?) {
            Some(ServerFrame::Joined { participants, .. }) => return Ok(participants),
            Some(ServerFrame::Error { code, .. }) => return Err(ClientError::Refused(format!("{code:?}"))),
            _ => {}
        }
    }
    Err(ClientError::Closed)
}

/// A client frame as a WebSocket text message.
pub fn text(frame: &ClientFrame) -> Message {
    Message::text(serde_json::to_string(frame).expect("invariant: client frames are plain data"))
}

/// The server frame in a text message; `None` for control frames and anything unparseable.
pub fn parse(message: &Message) -> Option<ServerFrame> {
    match message {
        Message::Text(text) => serde_json::from_str(text.as_str()).ok(),
        _ => None,
    }
}
