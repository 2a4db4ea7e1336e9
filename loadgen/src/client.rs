//! The socket to the relay: connecting, and frames as text messages. What goes over it is a
//! page's business ([`crate::page`]).

use app::protocol::{ClientFrame, ServerFrame};
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
