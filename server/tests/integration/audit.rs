//! The at-rest audit: what a curious operator finds in a dump of the database, in the data
//! directory and in the server's output after real use. Secrets are searched in every form they
//! could take there: as text, as raw bytes, as hex (how `pg_dump` writes `bytea`) and as base64.

use std::path::Path;

use app::crypto::SealedPayload;
use app::protocol::ServerFrame;
use base64::Engine as _;
use sqlx::{ConnectOptions as _, Connection as _};

use super::helpers::{contains, Backend, Client, TestDatabase, TestRoom, TEST_KEY};
use super::process::ServerProcess;
use super::restarts::read_and_burn;

/// One secret and the byte strings it could appear as.
struct Needle {
    what: String,
    forms: Vec<Vec<u8>>,
}

impl Needle {
    fn text(what: &str, text: &str) -> Self {
        Self { what: what.into(), forms: vec![text.as_bytes().to_vec()] }
    }

    /// Raw bytes, lower- and upper-case hex, base64 and base64url.
    fn bytes(what: &str, bytes: &[u8]) -> Self {
        let forms = vec![
            bytes.to_vec(),
            hex::encode(bytes).into_bytes(),
            hex::encode_upper(bytes).into_bytes(),
            base64::engine::general_purpose::STANDARD_NO_PAD.encode(bytes).into_bytes(),
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes).into_bytes(),
        ];
        Self { what: what.into(), forms }
    }

    /// A client payload: any 24-byte stretch of it (a dump could split it, never shorten it).
    fn payload(what: &str, sealed: &SealedPayload) -> Vec<Self> {
        sealed.as_bytes().chunks_exact(24).step_by(4).map(|chunk| Self::bytes(what, chunk)).collect()
    }
}

/// Every file under `dir`, with its path.
fn files_under(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(files_under(&path));
        } else {
            match std::fs::read(&path) {
                Ok(bytes) => found.push((path.display().to_string(), bytes)),
                // A SQLite -wal or -shm file removed as its last connection closed.
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                Err(err) => panic!("cannot read {}: {err}", path.display()),
            }
        }
    }
    found
}

/// `pg_dump` of the whole database: schema and data, as an operator would take it.
fn pg_dump(url: &str) -> Vec<u8> {
    let out = std::process::Command::new("pg_dump")
        .args(["--no-owner", "--dbname", url])
        .output()
        .expect("pg_dump runs (PostgreSQL's client tools are installed with the server)");
    assert!(out.status.success(), "pg_dump failed: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

pub async fn a_dump_of_the_store_the_data_directory_and_the_output_holds_no_secret(backend: Backend) {
    let db = TestDatabase::new(backend);
    let data_dir = db.dir.path().join("data");
    let data_dir_str = data_dir.display().to_string();
    let mut env = vec![("DATA_DIR", data_dir_str.as_str()), ("RUST_LOG", "trace")];
    if backend == Backend::Postgres {
        // SQLite keeps its file and its generated key in DATA_DIR; PostgreSQL gets them set.
        env.extend([("DATABASE_URL", db.url.as_str()), ("ENCRYPTION_KEY", TEST_KEY)]);
    }
    let output = db.dir.path().join("server.log");
    let mut server = ServerProcess::start(&env, output).await;
    let address = [127, 0, 0, 3];

    // A room of two: one message read and burned, one left waiting. A room of one: a message
    // open to whoever joins next.
    let (room, alone) = (TestRoom::new(), TestRoom::new());
    let mut alice = server.client_from(address).await;
    let mut bob = server.client_from(address).await;
    let mut carol = server.client_from(address).await;
    alice.join(&room).await;
    bob.join(&room).await;
    carol.join(&alone).await;
    let _ = alice.recv().await; // presence
    let burned_text = "audit: read and burned";
    let waiting_text = "audit: still waiting";
    let open_text = "audit: open to the next reader";
    let (burned, burned_sealed) = alice.send_message(&room, burned_text).await;
    let _ = bob.recv().await; // its notice
    assert_eq!(read_and_burn(&mut bob, &room, &burned).await, burned_text);
    assert_eq!(alice.recv().await, ServerFrame::Deleted { message_id: burned.to_hex() });
    let (_, waiting_sealed) = alice.send_message(&room, waiting_text).await;
    let (_, open_sealed) = carol.send_message(&alone, open_text).await;
    let sessions: Vec<String> = [&alice, &bob, &carol].iter().map(|c: &&Client| c.session.clone()).collect();
    drop((alice, bob, carol));
    server.terminate();

    let stored = match backend {
        // The server made its database in DATA_DIR, where a server with no DATABASE_URL does.
        Backend::Sqlite => {
            let url = format!("sqlite:{}", data_dir.join("ephemeral-chat.db").display());
            let mut conn = url.parse::<sqlx::sqlite::SqliteConnectOptions>().unwrap().connect().await.unwrap();
            let bodies = sqlx::query_scalar("SELECT body FROM messages").fetch_all(&mut conn).await.unwrap();
            conn.close().await.unwrap();
            bodies
        }
        Backend::Postgres => db.stored_bodies().await,
    };
    assert_eq!(stored.len(), 2, "the waiting and the open message are stored");
    // PostgreSQL's server makes no data directory of its own.
    let mut artifacts = if data_dir.exists() { files_under(&data_dir) } else { Vec::new() };
    if backend == Backend::Postgres {
        artifacts.push(("pg_dump".into(), pg_dump(&db.url)));
    }
    // The audit sees what is there: each stored record is in the dump.
    for body in &stored {
        let record = Needle::bytes("stored record", &body[13..45]);
        assert!(
            artifacts.iter().any(|(_, bytes)| record.forms.iter().any(|form| contains(bytes, form))),
            "the dump does not show the stored records: the audit would be blind"
        );
    }
    artifacts.push(("server output".into(), server.output_text().into_bytes()));

    let mut needles = vec![
        Needle::text("plaintext", burned_text),
        Needle::text("plaintext", waiting_text),
        Needle::text("plaintext", open_text),
        Needle::text("client address", "127.0.0.3"),
        Needle::text("room code", room.code.canonical()),
        Needle::text("room code", &room.code.grouped()),
        Needle::text("room code", alone.code.canonical()),
        Needle::text("room code", &alone.code.grouped()),
        Needle::bytes("room id", &room.keys.room_id.0),
        Needle::bytes("room id", &alone.keys.room_id.0),
    ];
    for session in &sessions {
        needles.push(Needle::bytes("page session token", &hex::decode(session).unwrap()));
    }
    for sealed in [&burned_sealed, &waiting_sealed, &open_sealed] {
        needles.extend(Needle::payload("client sealed payload", sealed));
    }
    for (name, bytes) in &artifacts {
        for needle in &needles {
            assert!(!needle.forms.iter().any(|form| contains(bytes, form)), "{name} holds a {}", needle.what);
        }
    }
    // The server's key is in the data directory by design (generated there for SQLite), and
    // must appear nowhere else.
    let output = server.output_text();
    assert!(!output.contains(TEST_KEY), "the server output holds the at-rest key");
    if backend == Backend::Postgres {
        let dump = pg_dump(&db.url);
        assert!(!contains(&dump, TEST_KEY.as_bytes()), "the database holds the at-rest key");
    }
}

on_both_backends!(a_dump_of_the_store_the_data_directory_and_the_output_holds_no_secret,);
