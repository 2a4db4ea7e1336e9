//! The test harness: a real server on port 0 over a fresh database, and real WebSocket clients.

use std::sync::Arc;
use std::time::Duration;

use app::crypto::message::{open, seal};
use app::crypto::{Body, MessageId, RoomCode, RoomKeys, SealedPayload, SenderId};
use app::protocol::{ClientFrame, ErrorCode, ServerFrame};
use clap::Parser as _;
use futures::{SinkExt as _, StreamExt as _};
use server::config::Config;
use server::relay::Relay;
use server::startup::Application;
use sqlx::ConnectOptions as _;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long a test waits for an expected frame before failing.
pub const FRAME_TIMEOUT: Duration = Duration::from_secs(10);
/// The at-rest key every test server uses.
pub const TEST_KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

/// Which store a test's server uses: the load generator's, so both speak of one thing.
pub use loadgen::target::Backend;

/// The maintenance URL of the test PostgreSQL server (`TEST_POSTGRES_URL`, else local trust).
fn postgres_admin_url() -> String {
    std::env::var("TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A fresh database only one test uses: a temp SQLite file, or a uniquely named PostgreSQL
/// database dropped when this is dropped.
pub struct TestDatabase {
    pub backend: Backend,
    pub url: String,
    pub dir: tempfile::TempDir,
    pg_name: Option<String>,
}

impl TestDatabase {
    pub fn new(backend: Backend) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        match backend {
            Backend::Sqlite => {
                let url = format!("sqlite:{}", dir.path().join("test.db").display());
                Self { backend, url, dir, pg_name: None }
            }
            Backend::Postgres => {
                let name = format!("ec_test_{}", hex::encode(app::crypto::random_bytes::<8>()));
                let admin = postgres_admin_url();
                let base = admin.rsplit_once('/').map(|(b, _)| b.to_owned()).unwrap_or(admin);
                Self { backend, url: format!("{base}/{name}"), dir, pg_name: Some(name) }
            }
        }
    }

    /// The same database reached by another URL (another host, or TLS parameters).
    pub fn with_url(mut self, url: String) -> Self {
        self.url = url;
        self
    }

    /// Every stored body, read with a separate connection straight from the database.
    pub async fn stored_bodies(&self) -> Vec<Vec<u8>> {
        self.bodies("messages").await
    }

    /// Rows of `table`, counted with a separate connection.
    pub async fn count(&self, table: &str) -> u64 {
        let sql = format!("SELECT COUNT(*) FROM {table}");
        let n: i64 = match self.backend {
            Backend::Sqlite => {
                let mut conn = self.url.parse::<sqlx::sqlite::SqliteConnectOptions>().unwrap().connect().await.unwrap();
                sqlx::query_scalar(&sql).fetch_one(&mut conn).await.unwrap()
            }
            Backend::Postgres => {
                let mut conn = self.url.parse::<sqlx::postgres::PgConnectOptions>().unwrap().connect().await.unwrap();
                sqlx::query_scalar(&sql).fetch_one(&mut conn).await.unwrap()
            }
        };
        u64::try_from(n).unwrap()
    }

    /// Every `body` of `table` (messages, or file chunks), read with a separate connection.
    pub async fn bodies(&self, table: &str) -> Vec<Vec<u8>> {
        let sql = &format!("SELECT body FROM {table}");
        match self.backend {
            Backend::Sqlite => {
                let mut conn = self.url.parse::<sqlx::sqlite::SqliteConnectOptions>().unwrap().connect().await.unwrap();
                sqlx::query_scalar(sql).fetch_all(&mut conn).await.unwrap()
            }
            Backend::Postgres => {
                let mut conn = self.url.parse::<sqlx::postgres::PgConnectOptions>().unwrap().connect().await.unwrap();
                sqlx::query_scalar(sql).fetch_all(&mut conn).await.unwrap()
            }
        }
    }

    /// Runs one statement with a separate connection, behind the server's back; rows affected.
    pub async fn execute(&self, sql: &str) -> u64 {
        match self.backend {
            Backend::Sqlite => {
                let mut conn = self.url.parse::<sqlx::sqlite::SqliteConnectOptions>().unwrap().connect().await.unwrap();
                sqlx::query(sql).execute(&mut conn).await.unwrap().rows_affected()
            }
            Backend::Postgres => {
                let mut conn = self.url.parse::<sqlx::postgres::PgConnectOptions>().unwrap().connect().await.unwrap();
                sqlx::query(sql).execute(&mut conn).await.unwrap().rows_affected()
            }
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Some(name) = self.pg_name.take() {
            // Drop the database from a fresh runtime: Drop cannot await.
            let admin = postgres_admin_url();
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
                rt.block_on(async move {
                    let mut conn = admin.parse::<sqlx::postgres::PgConnectOptions>().unwrap().connect().await.unwrap();
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                        .execute(&mut conn)
                        .await;
                });
            })
            .join();
        }
    }
}

/// A running server (in this process) and its database.
pub struct TestApp {
    pub port: u16,
    pub relay: Arc<Relay>,
    pub db: Arc<TestDatabase>,
    server: tokio::task::JoinHandle<()>,
}

/// Starts the real application on port 0 over a fresh database.
pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, &[]).await
}

/// As [`spawn_app`], with extra command-line settings.
pub async fn spawn_app_with(backend: Backend, extra: &[&str]) -> TestApp {
    spawn_app_on(Arc::new(TestDatabase::new(backend)), extra).await
}

/// Starts the application over an existing test database (a restart). Uses [`TEST_KEY`] unless
/// `extra` names `--encryption-key`.
pub async fn spawn_app_on(db: Arc<TestDatabase>, extra: &[&str]) -> TestApp {
    let mut args = vec!["server", "--port", "0", "--database-url", &db.url, "--site-root", "target/site"];
    if !extra.contains(&"--encryption-key") {
        args.extend(["--encryption-key", TEST_KEY]);
    }
    args.extend_from_slice(extra);
    let config = Config::try_parse_from(args).expect("valid test config");
    server::telemetry::init(Default::default());
    let app = Application::build(config).await.expect("application starts");
    let port = app.port();
    let relay = app.relay();
    let server = tokio::spawn(async move {
        let _ = app.run_until_stopped().await;
    });
    TestApp { port, relay, db, server }
}

impl TestApp {
    pub fn ws_url(&self) -> String {
        format!("ws://127.0.0.1:{}/ws", self.port)
    }

    /// A client connected to `/ws` (not yet joined).
    pub async fn client(&self) -> Client {
        let (ws, _) = tokio_tungstenite::connect_async(self.ws_url()).await.expect("websocket connects");
        Client::from_stream(ws)
    }

    /// A client joined to the room of `code`, after its `joined` frame.
    pub async fn joined(&self, room: &TestRoom) -> (Client, u32, Vec<String>) {
        let mut client = self.client().await;
        let (participants, pending) = client.join(room).await;
        (client, participants, pending)
    }

    pub async fn stored_bodies(&self) -> Vec<Vec<u8>> {
        self.db.stored_bodies().await
    }

    pub async fn row_count(&self) -> usize {
        self.stored_bodies().await.len()
    }

    /// Stops the server and waits until it has let go of its database (as a process that
    /// exits would), so another can start on it.
    pub async fn stop(mut self) {
        self.server.abort();
        let _ = (&mut self.server).await;
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// A room as a client sees it: its code and keys.
pub struct TestRoom {
    pub code: RoomCode,
    pub keys: RoomKeys,
}

impl TestRoom {
    pub fn new() -> Self {
        let code = RoomCode::generate();
        let keys = RoomKeys::derive(&code);
        Self { code, keys }
    }

    /// Seals `text` as a fresh message of a given sender.
    pub fn seal(&self, text: &str, sender: SenderId) -> (MessageId, SealedPayload) {
        let id = MessageId::generate();
        let body = Body { id, sender, text: text.into(), sent_at: 1, file: None, chosen: Default::default() };
        (id, seal(&self.keys, &body).unwrap())
    }

    pub fn open(&self, id: &str, sealed: &str) -> Body {
        let id = MessageId::parse(id).unwrap();
        open(&self.keys, &id, &SealedPayload::from_base64(sealed).unwrap()).expect("payload opens")
    }
}

/// A fresh page-session token, as a page makes one.
pub fn new_session() -> String {
    hex::encode(app::crypto::random_bytes::<16>())
}

/// A real WebSocket client, with the session token of the page it plays.
pub struct Client {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    pub session: String,
}

impl Client {
    pub fn from_stream(ws: WebSocketStream<MaybeTlsStream<TcpStream>>) -> Self {
        Self { ws, session: new_session() }
    }

    /// Joins `room` and returns the `joined` frame's participants and pending ids.
    pub async fn join(&mut self, room: &TestRoom) -> (u32, Vec<String>) {
        self.send(&ClientFrame::Join { room_id: room.keys.room_id.to_hex(), session: self.session.clone() }).await;
        match self.recv().await {
            ServerFrame::Joined { participants, pending, .. } => (participants, pending),
            other => panic!("expected joined, got {other:?}"),
        }
    }

    /// Seals and sends `text` in `room`, and waits for the server's `sent` (letting a presence
    /// count on its way pass).
    pub async fn send_message(&mut self, room: &TestRoom, text: &str) -> (MessageId, SealedPayload) {
        let (id, sealed) = room.seal(text, SenderId([7; 8]));
        self.send(&ClientFrame::Send { message_id: id.to_hex(), sealed: sealed.to_base64(), ttl: None }).await;
        assert_eq!(self.recv_skipping_presence().await, ServerFrame::Sent { message_id: id.to_hex() });
        (id, sealed)
    }

    /// The socket itself, for a test that reads binary frames.
    pub fn ws_mut(&mut self) -> &mut WebSocketStream<MaybeTlsStream<TcpStream>> {
        &mut self.ws
    }

    pub async fn send(&mut self, frame: &ClientFrame) {
        self.send_raw(Message::Text(serde_json::to_string(frame).unwrap().into())).await;
    }

    pub async fn send_text(&mut self, text: &str) {
        self.send_raw(Message::Text(text.to_owned().into())).await;
    }

    pub async fn send_raw(&mut self, message: Message) {
        self.ws.send(message).await.expect("send frame");
    }

    /// The next protocol frame (pings and pongs skipped), or a panic after [`FRAME_TIMEOUT`].
    pub async fn recv(&mut self) -> ServerFrame {
        loop {
            let message = tokio::time::timeout(FRAME_TIMEOUT, self.ws.next())
                .await
                .expect("a frame within the timeout")
                .expect("socket still open")
                .expect("frame reads");
            match message {
                Message::Text(text) => return serde_json::from_str(text.as_str()).expect("server frames parse"),
                Message::Ping(_) | Message::Pong(_) => continue,
                other => panic!("unexpected message {other:?}"),
            }
        }
    }

    /// The next frame that is not a presence count: counts come whenever the room's
    /// connections change (a recount after a join, a participant that stopped counting as
    /// connected), so a test that is not about presence lets them pass.
    pub async fn recv_skipping_presence(&mut self) -> ServerFrame {
        loop {
            match self.recv().await {
                ServerFrame::Presence { .. } => continue,
                frame => return frame,
            }
        }
    }

    /// The next frame, which must be an error with `code`.
    pub async fn expect_error(&mut self, code: ErrorCode) {
        match self.recv().await {
            ServerFrame::Error { code: got, .. } => assert_eq!(got, code),
            other => panic!("expected error {code:?}, got {other:?}"),
        }
    }

    /// Proves the connection is alive and nothing else is queued for it: a round trip whose
    /// answer must be the very next frame.
    pub async fn assert_quiet_and_alive(&mut self) {
        self.send_text("ping?").await;
        self.expect_error(ErrorCode::BadFrame).await;
    }

    /// The next protocol frame (`Err`), or the close (`Ok` with its code) if that comes first.
    pub async fn closed_or_frame(&mut self) -> Result<Option<u16>, ServerFrame> {
        loop {
            match tokio::time::timeout(FRAME_TIMEOUT, self.ws.next()).await.expect("a frame or close in time") {
                Some(Ok(Message::Close(frame))) => return Ok(frame.map(|f| f.code.into())),
                Some(Ok(Message::Text(text))) => return Err(serde_json::from_str(text.as_str()).unwrap()),
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return Ok(None),
            }
        }
    }

    /// Closes the socket as a page does when it leaves (a close frame, code 1000).
    pub async fn close(mut self) {
        self.ws.close(None).await.expect("close frame sent");
        while let Ok(Some(Ok(_))) = tokio::time::timeout(FRAME_TIMEOUT, self.ws.next()).await {}
    }

    /// Waits for the server to close the socket; returns the close code if one was sent.
    pub async fn closed(&mut self) -> Option<u16> {
        loop {
            match tokio::time::timeout(FRAME_TIMEOUT, self.ws.next()).await.expect("closes within the timeout") {
                Some(Ok(Message::Close(frame))) => return frame.map(|f| f.code.into()),
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return None,
            }
        }
    }
}

/// Whether `needle` occurs in `haystack`.
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Base64url without padding, as the protocol carries payloads.
pub fn base64_url(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// One plain HTTP/1.1 GET to the server on `port`; the whole response, head and body.
pub async fn http_get(port: u16, path: &str) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    response
}
