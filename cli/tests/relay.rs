//! The terminal client against the real relay on a real port (in this process, over SQLite and
//! PostgreSQL), run as its users run it: the built binary, its arguments, its standard streams
//! and its exit code. A page (the room model, as the browser runs it) is the other person.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use app::crypto::{RoomCode, RoomKeys};
use app::room::{CardState, RoomEvent};
use clap::Parser as _;
use loadgen::page::Page;
use server::config::Config;
use server::startup::Application;
use sqlx::ConnectOptions as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const BIN: &str = env!("CARGO_BIN_EXE_ephemeral-chat");
const KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
/// Longest any one step may take before the test fails.
const STEP: Duration = Duration::from_secs(20);

/// A relay in this process on a fresh store.
struct Relay {
    port: u16,
    database: String,
    _dir: tempfile::TempDir,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
        // A PostgreSQL test database goes with its test (from a runtime of its own: Drop cannot
        // await).
        let Some((_, name)) = self.database.strip_prefix("postgres://").and_then(|rest| rest.rsplit_once('/')) else {
            return;
        };
        let (name, admin) = (name.to_owned(), admin_url());
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async move {
                let mut conn = admin.parse::<sqlx::postgres::PgConnectOptions>().unwrap().connect().await.unwrap();
                let _ =
                    sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")).execute(&mut conn).await;
            });
        })
        .join();
    }
}

fn admin_url() -> String {
    std::env::var("TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

#[derive(Clone, Copy)]
enum Store {
    Sqlite,
    Postgres,
}

async fn relay(store: Store, extra: &[&str]) -> Relay {
    let dir = tempfile::tempdir().unwrap();
    let database = match store {
        Store::Sqlite => format!("sqlite:{}", dir.path().join("relay.db").display()),
        Store::Postgres => postgres_database().await,
    };
    let mut args = vec!["server", "--port", "0", "--database-url", &database, "--encryption-key", KEY];
    args.extend_from_slice(extra);
    server::telemetry::init(Default::default());
    let app = Application::build(Config::try_parse_from(args).unwrap()).await.expect("the relay starts");
    let port = app.port();
    let task = tokio::spawn(async move {
        let _ = app.run_until_stopped().await;
    });
    Relay { port, database, _dir: dir, task }
}

/// A fresh database on the local PostgreSQL (TEST_POSTGRES_URL).
async fn postgres_database() -> String {
    let admin = admin_url();
    let name = format!("cli_{}", hex::encode(app::crypto::random_bytes::<8>()));
    let mut conn = admin.parse::<sqlx::postgres::PgConnectOptions>().unwrap().connect().await.unwrap();
    sqlx::query(&format!("CREATE DATABASE \"{name}\"")).execute(&mut conn).await.unwrap();
    let (base, _) = admin.rsplit_once('/').unwrap();
    format!("{base}/{name}")
}

impl Relay {
    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn ws(&self) -> String {
        format!("ws://127.0.0.1:{}/ws", self.port)
    }

    /// Rows left in the store's messages and file chunks.
    async fn rows(&self) -> i64 {
        self.count("SELECT (SELECT COUNT(*) FROM messages) + (SELECT COUNT(*) FROM chunks)").await
    }

    /// Waits until no participant is left in any room: every client that ran has left, and the
    /// relay has written it down (a close frame's departure is written after the socket ends).
    async fn emptied(&self) {
        let empty = async {
            while self.count("SELECT COUNT(*) FROM participants").await > 0 {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        };
        tokio::time::timeout(STEP, empty).await.expect("every client left");
    }

    async fn count(&self, query: &str) -> i64 {
        if self.database.starts_with("sqlite:") {
            let mut conn =
                self.database.parse::<sqlx::sqlite::SqliteConnectOptions>().unwrap().connect().await.unwrap();
            sqlx::query_scalar(query).fetch_one(&mut conn).await.unwrap()
        } else {
            let mut conn = self.database.parse::<sqlx::postgres::PgConnectOptions>().unwrap().connect().await.unwrap();
            sqlx::query_scalar(query).fetch_one(&mut conn).await.unwrap()
        }
    }
}

/// What a run of the client left: its exit code and its two streams.
struct Ran {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs the client with `args`, `stdin` on its standard input, and `env` set.
async fn run(args: &[&str], stdin: &[u8], env: &[(&str, &str)]) -> Ran {
    let mut command = tokio::process::Command::new(BIN);
    command.args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
    command.env_remove("EPHEMERAL_CHAT_CODE").env_remove("EPHEMERAL_CHAT_RELAY");
    for (name, value) in env {
        command.env(name, value);
    }
    let mut child = command.spawn().unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin).await.unwrap();
    drop(input);
    let (mut stdout, mut stderr) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let out = tokio::spawn(async move {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text).await;
        text
    });
    let err = tokio::spawn(async move {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text).await;
        text
    });
    let status = tokio::time::timeout(STEP, child.wait()).await;
    if status.is_err() {
        let _ = child.kill().await;
    }
    let (stdout, stderr) = (out.await.unwrap(), err.await.unwrap());
    let Ok(status) = status else { panic!("{args:?} did not finish within {STEP:?}; it said: {stdout}{stderr}") };
    Ran { code: status.unwrap().code().unwrap_or(-1), stdout, stderr }
}

/// A fresh room: its code (grouped) and keys.
fn room() -> (String, RoomKeys) {
    let code = RoomCode::generate();
    (code.grouped(), RoomKeys::derive(&code))
}

/// A page in the room, joined.
async fn page(relay: &Relay, keys: &RoomKeys) -> Page {
    let mut page = Page::open(keys.clone(), &relay.ws());
    until(&mut page, |event| *event == RoomEvent::Joined).await;
    page
}

async fn until(page: &mut Page, wanted: impl Fn(&RoomEvent) -> bool) -> RoomEvent {
    tokio::time::timeout(STEP, async {
        loop {
            match page.next_event().await {
                Some(event) if wanted(&event) => return event,
                Some(_) => {}
                None => panic!("the page stopped"),
            }
        }
    })
    .await
    .expect("the event came")
}

macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(super::Store::Sqlite).await })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(super::Store::Postgres).await })*
        }
    };
}

on_both_stores!(
    a_text_goes_from_send_to_receive_with_its_name_and_burns,
    a_page_and_the_client_talk_both_ways_with_names_and_lifetimes,
    a_file_is_written_only_where_output_says,
    wait_read_returns_once_the_message_is_read,
    every_failure_has_its_exit_code_and_one_clear_line,
);

async fn a_text_goes_from_send_to_receive_with_its_name_and_burns(store: Store) {
    let relay = relay(store, &[]).await;
    let (code, _) = room();
    let link = format!("{}/room#{code}", relay.url());
    let url = relay.url();
    // The receiver waits first; the sender's text comes on standard input.
    let receiver = tokio::spawn({
        let code = code.clone();
        async move { run(&["receive", &code, "--relay", &url], b"", &[]).await }
    });
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let sent = run(&["send", &link, "--name", "Ana", "--expires", "1h"], b"the vault password\n", &[]).await;
    assert_eq!(sent.code, 0, "{}", sent.stderr);
    assert!(sent.stderr.contains("Stored"), "{}", sent.stderr);
    assert!(sent.stdout.is_empty(), "nothing on standard output: {}", sent.stdout);
    let received = receiver.await.unwrap();
    assert_eq!(received.code, 0, "{}", received.stderr);
    assert_eq!(received.stdout, "the vault password\n", "the text alone, on standard output");
    assert!(received.stderr.contains("From Ana"), "{}", received.stderr);
    assert_eq!(relay.rows().await, 0, "read: nothing left");
    // The code from the environment, the text as the only argument; then from a file.
    let sent =
        run(&["send", "from the environment", "--relay", &relay.url(), "-q"], b"", &[("EPHEMERAL_CHAT_CODE", &code)])
            .await;
    assert_eq!((sent.code, sent.stderr.as_str()), (0, ""), "quiet");
    let dir = tempfile::tempdir().unwrap();
    let code_file = dir.path().join("code");
    std::fs::write(&code_file, format!("{code}\n")).unwrap();
    let code_file = code_file.to_str().unwrap();
    let received = run(&["receive", "--code-file", code_file], b"", &[("EPHEMERAL_CHAT_RELAY", &relay.url())]).await;
    assert_eq!((received.code, received.stdout.as_str()), (0, "from the environment\n"), "{}", received.stderr);
    assert!(received.stderr.contains("From Someone"), "no name: Someone");
    assert_eq!(relay.rows().await, 0);
    // --all: every message waiting, in the order sent, each burned.
    for text in ["first", "second"] {
        assert_eq!(run(&["send", &code, text, "--relay", &relay.url(), "-q"], b"", &[]).await.code, 0);
    }
    let received = run(&["receive", &code, "--relay", &relay.url(), "--all"], b"", &[]).await;
    assert_eq!((received.code, received.stdout.as_str()), (0, "first\nsecond\n"), "{}", received.stderr);
    assert_eq!(relay.rows().await, 0);
}

async fn a_page_and_the_client_talk_both_ways_with_names_and_lifetimes(store: Store) {
    let relay = relay(store, &[]).await;
    let (code, keys) = room();
    let mut bob = page(&relay, &keys).await;
    // The client to the page: a name, a lifetime and a view time, all inside the seal.
    let sent = run(
        &[
            "send",
            &code,
            "hello Bob",
            "--relay",
            &relay.url(),
            "--name",
            "Ana",
            "--view-time",
            "30s",
            "--expires",
            "5m",
        ],
        b"",
        &[],
    )
    .await;
    assert_eq!(sent.code, 0, "{}", sent.stderr);
    let RoomEvent::Arrived(id) = until(&mut bob, |e| matches!(e, RoomEvent::Arrived(_))).await else { unreachable!() };
    bob.open_card(id);
    until(&mut bob, |e| *e == RoomEvent::Opened(id)).await;
    let card = bob.inspect(move |model| model.card(id).cloned()).await.flatten().unwrap();
    assert_eq!(card.state, CardState::Open("hello Bob".into()));
    assert_eq!((card.from_label(), card.view), ("Ana", Some(30)));
    until(&mut bob, |e| *e == RoomEvent::Burned(id)).await;
    // The page to the client.
    bob.inspect(|_| ()).await;
    let url = relay.url();
    let receiver = tokio::spawn({
        let code = code.clone();
        async move { run(&["receive", &code, "--relay", &url], b"", &[]).await }
    });
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    bob.send("hello Ana").await.unwrap();
    let received = receiver.await.unwrap();
    assert_eq!((received.code, received.stdout.as_str()), (0, "hello Ana\n"), "{}", received.stderr);
    bob.leave().await;
    assert_eq!(relay.rows().await, 0);
}

async fn a_file_is_written_only_where_output_says(store: Store) {
    let relay = relay(store, &[]).await;
    let (code, _) = room();
    let dir = tempfile::tempdir().unwrap();
    let original = dir.path().join("key.bin");
    let bytes: Vec<u8> = (0..150_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&original, &bytes).unwrap();
    let url = relay.url();
    // A receiver without --output leaves the file sealed, and gives up at its timeout.
    let waiting_args = ["receive", &code, "--relay", &url, "--timeout", "3s"];
    let waiting = run(&waiting_args, b"", &[]);
    let sending = async {
        tokio::time::sleep(Duration::from_millis(1_000)).await;
        run(&["send", &code, "--relay", &url, "--file", original.to_str().unwrap()], b"", &[]).await
    };
    let (waited, sent) = tokio::join!(waiting, sending);
    assert_eq!(sent.code, 0, "{}", sent.stderr);
    assert_eq!(waited.code, 5, "{}", waited.stderr);
    assert!(waited.stderr.contains("pass --output"), "{}", waited.stderr);
    assert!(relay.rows().await > 0, "the file still waits");
    // An output that exists is never overwritten, and nothing is opened for it.
    let taken = dir.path().join("taken");
    std::fs::write(&taken, b"mine").unwrap();
    let refused = run(&["receive", &code, "--relay", &url, "--output", taken.to_str().unwrap()], b"", &[]).await;
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert_eq!(std::fs::read(&taken).unwrap(), b"mine");
    // With --output: written there, whole, and burned.
    let saved = dir.path().join("received.bin");
    let received = run(&["receive", &code, "--relay", &url, "--output", saved.to_str().unwrap()], b"", &[]).await;
    assert_eq!(received.code, 0, "{}", received.stderr);
    assert_eq!(std::fs::read(&saved).unwrap(), bytes);
    assert!(received.stderr.contains("\"key.bin\""), "{}", received.stderr);
    assert_eq!(files_in(dir.path()), ["key.bin", "received.bin", "taken"], "nothing written elsewhere");
    assert_eq!(relay.rows().await, 0, "file and chunks burned");
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

async fn wait_read_returns_once_the_message_is_read(store: Store) {
    let relay = relay(store, &[]).await;
    let (code, keys) = room();
    let mut bob = page(&relay, &keys).await;
    let url = relay.url();
    let sender = tokio::spawn({
        let code = code.clone();
        async move { run(&["send", &code, "read me", "--relay", &url, "--wait-read"], b"", &[]).await }
    });
    let RoomEvent::Arrived(id) = until(&mut bob, |e| matches!(e, RoomEvent::Arrived(_))).await else { unreachable!() };
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!sender.is_finished(), "it waits while the message is unread");
    bob.open_card(id);
    let sent = sender.await.unwrap();
    assert_eq!(sent.code, 0, "{}", sent.stderr);
    assert!(sent.stderr.contains("Read, and burned"), "{}", sent.stderr);
    bob.leave().await;
}

async fn every_failure_has_its_exit_code_and_one_clear_line(store: Store) {
    let relay = relay(
        store,
        &[
            "--max-room-participants",
            "1",
            "--max-padded-message",
            "512",
            "--max-stored-bytes-per-address",
            "1024",
            "--message-ttl",
            "2h",
        ],
    )
    .await;
    let url = relay.url();
    let (code, keys) = room();
    let last_line = |ran: &Ran| ran.stderr.lines().last().unwrap_or_default().to_owned();
    // Usage: a bare code without a relay, a wrong code, a bad name, nothing to send.
    for (args, why) in [
        (vec!["send", code.as_str(), "hi"], "--relay"),
        (vec!["send", "ABCDE-FGHJK", "hi", "--relay", url.as_str()], "invalid room code"),
        (vec!["send", code.as_str(), "hi", "--relay", url.as_str(), "--name", "a\tb"], "--name"),
        (vec!["send", code.as_str(), " ", "--relay", url.as_str()], "nothing to send"),
        (vec!["send", code.as_str(), "hi", "--relay", url.as_str(), "--expires", "2h"], "possible values"),
    ] {
        let ran = run(&args, b"", &[]).await;
        assert_eq!(ran.code, 2, "{why}: {}", ran.stderr);
        assert!(ran.stderr.contains(why), "{why}: {}", ran.stderr);
    }
    // Unreachable: nothing listens there.
    let ran = run(&["send", &code, "hi", "--relay", "http://127.0.0.1:9"], b"", &[]).await;
    assert_eq!(ran.code, 3, "{}", ran.stderr);
    assert!(last_line(&ran).contains("cannot reach the relay"), "{}", ran.stderr);
    // Refused: too large for this relay, a lifetime past its TTL, the quota, a full room.
    let long = "x".repeat(600);
    for (args, refusal) in [
        (vec!["send", code.as_str(), long.as_str(), "--relay", url.as_str()], "(bad_size)"),
        (vec!["send", code.as_str(), "hi", "--relay", url.as_str(), "--expires", "1d"], "(bad_ttl)"),
    ] {
        let ran = run(&args, b"", &[]).await;
        assert_eq!(ran.code, 4, "{refusal}: {}", ran.stderr);
        assert!(last_line(&ran).contains(refusal), "{refusal}: {}", ran.stderr);
    }
    let mut quota = None;
    for n in 0..10 {
        let ran = run(&["send", &code, &format!("message {n}"), "--relay", &url], b"", &[]).await;
        if ran.code != 0 {
            quota = Some(ran);
            break;
        }
    }
    let quota = quota.expect("the quota runs out");
    assert_eq!(quota.code, 4, "{}", quota.stderr);
    assert!(last_line(&quota).contains("(quota_exceeded)"), "{}", quota.stderr);
    relay.emptied().await;
    let _alice = page(&relay, &keys).await;
    let ran = run(&["send", &code, "hi", "--relay", &url], b"", &[]).await;
    assert_eq!(ran.code, 4, "{}", ran.stderr);
    assert!(last_line(&ran).contains("(room_full)"), "{}", ran.stderr);
    // Timed out: nothing comes (the room of another code).
    let (other, _) = room();
    let ran = run(&["receive", &other, "--relay", &url, "--timeout", "1s"], b"", &[]).await;
    assert_eq!(ran.code, 5, "{}", ran.stderr);
    assert!(last_line(&ran).contains("gave up"), "{}", ran.stderr);
}
