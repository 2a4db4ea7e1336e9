//! The example nginx configuration (docs/nginx.conf), run as written in front of two
//! instances over one PostgreSQL database: one room spread over both, no sticky sessions.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sqlx::ConnectOptions as _;
use tokio::net::TcpStream;

use super::helpers::{Backend, Client, TestDatabase, TestRoom, TEST_KEY};
use super::process::{free_port, ServerProcess};
use super::recipients::{fetch_and_view, until};
use app::protocol::ServerFrame;

/// nginx running a configuration, stopped when dropped.
struct Nginx(Child);

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM, not SIGKILL: the master stops its workers on the way out.
        let _ = Command::new("kill").arg("-TERM").arg(self.0.id().to_string()).status();
        let _ = self.0.wait();
    }
}

/// docs/nginx.conf with the instances' and the proxy's ports put in.
fn example_config(instances: [u16; 2], listen: u16) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/nginx.conf");
    let config = std::fs::read_to_string(path).expect("docs/nginx.conf");
    let mut replaced = config.clone();
    for (from, to) in [
        ("server 127.0.0.1:3001 ".to_owned(), format!("server 127.0.0.1:{} ", instances[0])),
        ("server 127.0.0.1:3002 ".to_owned(), format!("server 127.0.0.1:{} ", instances[1])),
        ("listen 127.0.0.1:8080;".to_owned(), format!("listen 127.0.0.1:{listen};")),
    ] {
        assert_eq!(replaced.matches(&from).count(), 1, "docs/nginx.conf has `{from}` once");
        replaced = replaced.replace(&from, &to);
    }
    replaced
}

async fn start_nginx(dir: &Path, config: &str, port: u16) -> Nginx {
    let conf = dir.join("nginx.conf");
    std::fs::write(&conf, config).unwrap();
    let pid = format!("daemon off; pid {};", dir.join("nginx.pid").display());
    // Debian puts it in /usr/sbin, which not every PATH has.
    let program = if Path::new("/usr/sbin/nginx").exists() { "/usr/sbin/nginx" } else { "nginx" };
    let child = Command::new(program)
        .arg("-p")
        .arg(dir)
        .arg("-e")
        .arg(dir.join("error.log"))
        .arg("-c")
        .arg(&conf)
        .args(["-g", &pid])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nginx runs (scripts/setup.sh installs it)");
    let nginx = Nginx(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        let log = std::fs::read_to_string(dir.join("error.log")).unwrap_or_default();
        assert!(Instant::now() < deadline, "nginx did not start: {log}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    nginx
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_nginx_config_spreads_one_room_over_two_instances() {
    let db = TestDatabase::new(Backend::Postgres);
    let env = [("DATABASE_URL", db.url.as_str()), ("ENCRYPTION_KEY", TEST_KEY), ("TRUSTED_PROXIES", "127.0.0.1")];
    let a = ServerProcess::start(&env, db.dir.path().join("a.log")).await;
    let b = ServerProcess::start(&env, db.dir.path().join("b.log")).await;
    let port = free_port();
    let _nginx = start_nginx(db.dir.path(), &example_config([a.port, b.port], port), port).await;

    let room = TestRoom::new();
    let mut people = Vec::new();
    for _ in 0..4 {
        let (ws, _) =
            tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{port}/ws")).await.expect("through nginx");
        let mut client = Client::from_stream(ws);
        client.join(&room).await;
        people.push(client);
    }
    for person in &mut people[..3] {
        until(person, |f| *f == ServerFrame::Presence { participants: 4 }).await;
    }
    let mut conn = db.url.parse::<sqlx::postgres::PgConnectOptions>().unwrap().connect().await.unwrap();
    let instances: i64 =
        sqlx::query_scalar("SELECT COUNT(DISTINCT instance) FROM participants").fetch_one(&mut conn).await.unwrap();
    assert_eq!(instances, 2, "round-robin put the room on both instances");

    let (sender, readers) = people.split_first_mut().unwrap();
    let (id, _) = sender.send_message(&room, "through the proxy").await;
    for reader in readers.iter_mut() {
        until(reader, |f| *f == ServerFrame::Message { message_id: id.to_hex(), chunks: 0 }).await;
        fetch_and_view(reader, &room, &id).await;
    }
    let deleted = ServerFrame::Deleted { message_id: id.to_hex() };
    assert_eq!(until(sender, |f| matches!(f, ServerFrame::Deleted { .. })).await, deleted);
    assert!(db.stored_bodies().await.is_empty());
    // The pages come through too.
    let page = http_get(port, "/healthz").await;
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
}

/// A bare HTTP/1.1 GET (no client library needed for one request).
async fn http_get(port: u16, path: &str) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    response
}
