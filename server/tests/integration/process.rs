//! The server as a separate process (the real binary), for what only a process shows: kill -9
//! and restart, and everything it prints.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::net::{TcpSocket, TcpStream};

use super::helpers::{Client, FRAME_TIMEOUT};

/// How long a starting server may take to answer `/healthz`.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A running `server` binary whose stdout and stderr go to one file.
pub struct ServerProcess {
    child: Child,
    pub port: u16,
    pub output: PathBuf,
}

impl ServerProcess {
    /// Starts the binary on a free port with `env`, and waits until it serves.
    pub async fn start(env: &[(&str, &str)], output: PathBuf) -> Self {
        let port = free_port();
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&output).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_server"))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("PORT", port.to_string())
            .env("LEPTOS_SITE_ROOT", "target/site")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("server binary starts");
        let process = Self { child, port, output };
        process.wait_until_serving().await;
        process
    }

    async fn wait_until_serving(&self) {
        let deadline = Instant::now() + START_TIMEOUT;
        // Poll the port: the process gives no other sign that it is ready.
        while TcpStream::connect(("127.0.0.1", self.port)).await.is_err() {
            assert!(Instant::now() < deadline, "server did not start: {}", self.output_text());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The process id, to read its memory from /proc.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL: no shutdown code runs.
    pub fn kill9(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM, then waits for the process to exit; returns how it exited.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let deadline = Instant::now() + FRAME_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "server ignored SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn output_text(&self) -> String {
        std::fs::read_to_string(&self.output).unwrap_or_default()
    }

    /// A client connected from the given local address (e.g. 127.0.0.2).
    pub async fn client_from(&self, local: [u8; 4]) -> Client {
        let socket = TcpSocket::new_v4().unwrap();
        socket.bind((std::net::Ipv4Addr::from(local), 0).into()).unwrap();
        let stream = socket.connect(([127, 0, 0, 1], self.port).into()).await.unwrap();
        let url = format!("ws://127.0.0.1:{}/ws", self.port);
        let (ws, _) = tokio_tungstenite::client_async(url, tokio_tungstenite::MaybeTlsStream::Plain(stream))
            .await
            .expect("websocket connects");
        Client::from_stream(ws)
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}
