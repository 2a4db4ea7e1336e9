//! What an operator relies on: TLS to PostgreSQL (each `sslmode`, passing and failing), TLS
//! served by the relay itself (HSTS, wss://, a reload on SIGHUP), metrics that name no one, and
//! log lines fit for a file or a collector.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use app::crypto::SenderId;
use app::protocol::{ClientFrame, ErrorCode, ServerFrame};
use clap::Parser as _;
use rustls::pki_types::{CertificateDer, ServerName};
use server::config::Config;
use server::startup::Application;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use super::helpers::{spawn_app_on, spawn_app_with, Backend, Client, TestDatabase, TestRoom, TEST_KEY};
use super::process::{free_port, ServerProcess};

// ---- TLS to PostgreSQL ----------------------------------------------------------------------

/// The local cluster's certificate (`ssl_cert_file`, which names `localhost`), after checking
/// that the cluster serves TLS at all: these tests need it to, and say so rather than pass.
async fn local_cluster_certificate() -> PathBuf {
    let admin =
        std::env::var("TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let pool = sqlx::PgPool::connect(&format!("{admin}?sslmode=disable")).await.expect("the test PostgreSQL answers");
    let (ssl,): (String,) = sqlx::query_as("SHOW ssl").fetch_one(&pool).await.unwrap();
    assert_eq!(ssl, "on", "the test PostgreSQL must serve TLS (ssl = on) for the sslmode tests");
    let (cert,): (String,) = sqlx::query_as("SHOW ssl_cert_file").fetch_one(&pool).await.unwrap();
    let cert = PathBuf::from(cert);
    assert!(cert.is_absolute() && cert.exists(), "the cluster's certificate {cert:?} must be readable");
    cert
}

/// `db`'s URL with another host and these query parameters.
fn url_with(db: &TestDatabase, host: &str, params: &str) -> String {
    let url = db.url.replacen("127.0.0.1", host, 1);
    if params.is_empty() {
        url
    } else {
        format!("{url}?{params}")
    }
}

async fn build(database_url: &str, extra: &[&str]) -> anyhow::Result<Application> {
    let mut args = vec!["server", "--port", "0", "--database-url", database_url, "--encryption-key", TEST_KEY];
    args.extend_from_slice(extra);
    let config = Config::try_parse_from(args).expect("valid test config");
    Application::build(config).await
}

/// Whether the relay's connections to its database (named by `application_name`) are
/// encrypted, as the server itself reports them in `pg_stat_ssl`.
async fn connections_use_tls(name: &str) -> bool {
    let admin =
        std::env::var("TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let pool = sqlx::PgPool::connect(&admin).await.unwrap();
    let rows: Vec<(bool,)> = sqlx::query_as(
        "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.application_name = $1",
    )
    .bind(name)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(!rows.is_empty(), "no connection of {name} found");
    rows.iter().all(|(ssl,)| *ssl)
}

fn app_name() -> String {
    format!("ec_tls_{}", hex::encode(app::crypto::random_bytes::<6>()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_full_connects_to_the_host_the_certificate_names_and_messages_travel() {
    let cert = local_cluster_certificate().await;
    let db = TestDatabase::new(Backend::Postgres);
    let name = app_name();
    let url = url_with(
        &db,
        "localhost",
        &format!("sslmode=verify-full&sslrootcert={}&application_name={name}", cert.display()),
    );
    let app = spawn_app_on(Arc::new(db.with_url(url)), &[]).await;
    assert!(connections_use_tls(&name).await);
    journey(app.client().await, app.client().await).await;
    assert_eq!(app.row_count().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_full_refuses_a_host_the_certificate_does_not_name_in_one_line() {
    let cert = local_cluster_certificate().await;
    let db = TestDatabase::new(Backend::Postgres);
    let url = url_with(&db, "127.0.0.1", &format!("sslmode=verify-full&sslrootcert={}", cert.display()));
    let err = build(&url, &[]).await.err().expect("verify-full must refuse 127.0.0.1 for a localhost certificate");
    let line = format!("{err:#}");
    assert!(!line.contains('\n'), "one line: {line}");
    assert!(line.contains("sslmode=verify-full") && line.contains("name"), "{line}");
    assert!(line.contains("127.0.0.1"), "it names the host that did not match: {line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_full_and_verify_ca_refuse_an_untrusted_certificate() {
    local_cluster_certificate().await;
    let dir = tempfile::tempdir().unwrap();
    let stranger = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let root = dir.path().join("other-ca.pem");
    std::fs::write(&root, stranger.cert.pem()).unwrap();
    let db = TestDatabase::new(Backend::Postgres);
    for mode in ["verify-full", "verify-ca"] {
        let url = url_with(&db, "localhost", &format!("sslmode={mode}&sslrootcert={}", root.display()));
        let err = build(&url, &[]).await.err().expect("an untrusted certificate must be refused");
        let line = format!("{err:#}");
        assert!(!line.contains('\n') && line.contains(&format!("sslmode={mode}")), "{line}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn require_and_the_default_encrypt_without_verifying_and_disable_does_not() {
    local_cluster_certificate().await;
    // The default is libpq's `prefer`: TLS, since the server offers it.
    for (params, encrypted) in [("sslmode=require", true), ("", true), ("sslmode=disable", false)] {
        let db = TestDatabase::new(Backend::Postgres);
        let name = app_name();
        let params = if params.is_empty() {
            format!("application_name={name}")
        } else {
            format!("{params}&application_name={name}")
        };
        let url = url_with(&db, "127.0.0.1", &params);
        let app = spawn_app_on(Arc::new(db.with_url(url)), &[]).await;
        assert_eq!(connections_use_tls(&name).await, encrypted, "{params}");
        app.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pgsslmode_applies_unless_the_url_names_a_mode() {
    let cert = local_cluster_certificate().await;
    let db = TestDatabase::new(Backend::Postgres);
    let cert = cert.display().to_string();
    let strict = ["--pgsslmode", "verify-full", "--pgsslrootcert", cert.as_str()];
    let err = build(&url_with(&db, "127.0.0.1", ""), &strict).await.err().expect("PGSSLMODE=verify-full applies");
    assert!(format!("{err:#}").contains("sslmode=verify-full"), "{err:#}");
    // The URL's own mode wins, as with libpq.
    let app = build(&url_with(&db, "127.0.0.1", "sslmode=require"), &strict).await.expect("the URL's sslmode wins");
    drop(app);
    let app = build(&url_with(&db, "localhost", ""), &strict).await.expect("verify-full passes for localhost");
    drop(app);
}

#[tokio::test]
async fn bad_tls_settings_stop_start_up_naming_the_setting() {
    let missing = "/nonexistent/root.pem";
    for args in [
        vec!["--pgsslmode", "sometimes", "--pghost", "localhost"],
        vec!["--database-url", "postgres://u@localhost/db?sslmode=sometimes"],
        vec!["--pgsslrootcert", missing, "--pghost", "localhost"],
    ] {
        let outcome = Config::try_parse_from(std::iter::once("server").chain(args.iter().copied()));
        let named = match outcome {
            Err(err) => err.render().to_string(),
            Ok(config) => config.validate().expect_err("refused").to_string(),
        };
        assert!(
            named.contains("PGSSLMODE") || named.contains("DATABASE_URL") || named.contains("PGSSLROOTCERT"),
            "{named}"
        );
        assert!(!named.contains("u@localhost"), "the URL is not echoed: {named}");
    }
}

// ---- TLS served by the relay ----------------------------------------------------------------

/// A certificate for `localhost` and 127.0.0.1 and its key, written as PEM files in `dir`.
fn certificate(dir: &Path, stem: &str) -> (PathBuf, PathBuf, CertificateDer<'static>) {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
    let (cert, key) = (dir.join(format!("{stem}.crt")), dir.join(format!("{stem}.key")));
    std::fs::write(&cert, made.cert.pem()).unwrap();
    std::fs::write(&key, made.key_pair.serialize_pem()).unwrap();
    (cert, key, made.cert.der().clone())
}

fn client_config(trusted: &CertificateDer<'static>) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(trusted.clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

/// A TLS handshake with the relay, trusting `trusted` only; the certificate it presented.
async fn handshake(
    port: u16,
    trusted: &CertificateDer<'static>,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(("127.0.0.1", port)).await?;
    let connector = tokio_rustls::TlsConnector::from(client_config(trusted));
    connector.connect(ServerName::try_from("localhost").unwrap(), tcp).await
}

/// GET over TLS; the response's head and body.
async fn https_get(port: u16, trusted: &CertificateDer<'static>, path: &str) -> String {
    let mut tls = handshake(port, trusted).await.expect("TLS handshake");
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost:{port}\r\nConnection: close\r\n\r\n");
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    let _ = tls.read_to_end(&mut response).await;
    String::from_utf8_lossy(&response).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_serves_https_and_wss_with_hsts_and_refuses_plain_http() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, der) = certificate(dir.path(), "relay");
    let (cert, key) = (cert.display().to_string(), key.display().to_string());
    let app = spawn_app_with(Backend::Sqlite, &["--tls-cert", &cert, "--tls-key", &key]).await;

    let response = https_get(app.port, &der, "/healthz").await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.to_ascii_lowercase().contains("strict-transport-security: max-age="), "{response}");

    // A page over wss://, with the Origin a page served by this relay sends.
    let connect = |origin: &'static str| {
        let der = der.clone();
        let port = app.port;
        async move {
            let mut request = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(format!(
                "wss://localhost:{port}/ws"
            ))
            .unwrap();
            request.headers_mut().insert("origin", origin.replace("PORT", &port.to_string()).parse().unwrap());
            tokio_tungstenite::connect_async_tls_with_config(
                request,
                None,
                false,
                Some(tokio_tungstenite::Connector::Rustls(client_config(&der))),
            )
            .await
        }
    };
    let (alice, _) = connect("https://localhost:PORT").await.expect("wss from the relay's https origin");
    let (bob, _) = connect("https://localhost:PORT").await.expect("wss from the relay's https origin");
    journey(Client::from_stream(alice), Client::from_stream(bob)).await;
    assert!(connect("http://localhost:PORT").await.is_err(), "an http:// origin is not this https relay's");

    // Plain HTTP on the TLS port gets no page: the handshake fails and the connection closes.
    let mut plain = TcpStream::connect(("127.0.0.1", app.port)).await.unwrap();
    plain.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), plain.read_to_end(&mut answer)).await.expect("closed");
    assert!(!String::from_utf8_lossy(&answer).contains("200 OK"));
    assert_eq!(app.row_count().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_certificate_and_a_bad_one_is_not_taken() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, first) = certificate(dir.path(), "live");
    let (cert_s, key_s) = (cert.display().to_string(), key.display().to_string());
    let data = dir.path().join("data");
    let mut server = ServerProcess::start(
        &[("TLS_CERT", &cert_s), ("TLS_KEY", &key_s), ("DATA_DIR", data.to_str().unwrap())],
        dir.path().join("server.log"),
    )
    .await;
    assert!(https_get(server.port, &first, "/healthz").await.starts_with("HTTP/1.1 200"));

    // Renewed: new files in place, then SIGHUP; new connections get the new certificate.
    let renewed_dir = dir.path().join("renewed");
    std::fs::create_dir(&renewed_dir).unwrap();
    let (new_cert, new_key, second) = certificate(&renewed_dir, "live");
    std::fs::copy(&new_cert, &cert).unwrap();
    std::fs::copy(&new_key, &key).unwrap();
    hangup(&server);
    wait_for_output(&server, "reloaded the TLS certificate", 1).await;
    assert!(https_get(server.port, &second, "/healthz").await.starts_with("HTTP/1.1 200"));
    assert!(handshake(server.port, &first).await.is_err(), "the old certificate is no longer presented");

    // A broken renewal is refused and the certificate in use stays.
    std::fs::write(&cert, "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n").unwrap();
    hangup(&server);
    wait_for_output(&server, "kept the TLS certificate in use", 1).await;
    assert!(https_get(server.port, &second, "/healthz").await.starts_with("HTTP/1.1 200"));
    assert!(server.terminate().success());
}

fn hangup(server: &ServerProcess) {
    let status = std::process::Command::new("kill").arg("-HUP").arg(server.pid().to_string()).status().unwrap();
    assert!(status.success());
}

/// Waits until the server's output holds `needle` at least `times` times.
async fn wait_for_output(server: &ServerProcess, needle: &str, times: usize) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let output = server.output_text();
        if output.matches(needle).count() >= times {
            return output;
        }
        assert!(Instant::now() < deadline, "no {needle:?} in: {output}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---- Metrics ---------------------------------------------------------------------------------

/// One plain GET; the body of a 200, or a panic.
async fn scrape(port: u16) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.expect("the metrics listener answers");
    let request = format!("GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    response.split_once("\r\n\r\n").map(|(_, body)| body.to_owned()).unwrap_or_default()
}

/// The value of the sample `series` (name and labels exactly as rendered), or 0 if absent.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
        .map_or(0.0, |value| value.trim().parse().expect("a number"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_follow_a_journey_and_name_no_one() {
    let dir = tempfile::tempdir().unwrap();
    let metrics_port = free_port();
    let metrics_addr = format!("127.0.0.1:{metrics_port}");
    let data = dir.path().join("data");
    let server = ServerProcess::start(
        &[("METRICS_ADDR", &metrics_addr), ("DATA_DIR", data.to_str().unwrap())],
        dir.path().join("server.log"),
    )
    .await;
    let before = scrape(metrics_port).await;
    for name in [
        "ephemeral_chat_messages_stored_total",
        "ephemeral_chat_messages_burned_total",
        "ephemeral_chat_messages_expired_total",
        "ephemeral_chat_bus_reconnects_total",
        "process_resident_memory_bytes",
    ] {
        assert!(before.lines().any(|line| line.starts_with(name)), "{name} missing from: {before}");
    }

    let room = TestRoom::new();
    let mut alice = server.client_from([127, 0, 0, 1]).await;
    let mut bob = server.client_from([127, 0, 0, 1]).await;
    alice.join(&room).await;
    bob.join(&room).await;
    let _ = alice.recv().await; // presence
    let sessions = [alice.session.clone(), bob.session.clone()];
    let during = scrape(metrics_port).await;
    assert_eq!(sample(&during, "ephemeral_chat_websockets_open"), 2.0, "{during}");
    assert_eq!(sample(&during, "ephemeral_chat_rooms_with_local_participants"), 1.0, "{during}");
    let id = journey_between(&room, &mut alice, &mut bob).await;
    alice.send_text("not json").await;
    alice.expect_error(ErrorCode::BadFrame).await;

    let after = scrape(metrics_port).await;
    let moved = |series: &str| sample(&after, series) - sample(&before, series);
    assert_eq!(moved("ephemeral_chat_messages_stored_total"), 1.0, "{after}");
    assert_eq!(moved("ephemeral_chat_messages_burned_total"), 1.0, "{after}");
    assert_eq!(moved("ephemeral_chat_messages_expired_total"), 0.0, "{after}");
    assert_eq!(moved("ephemeral_chat_refusals_total{code=\"bad_frame\"}"), 1.0, "{after}");
    // join ×2, send, fetch, viewed, the bad frame: six in; joined ×2, sent, message, payload,
    // presence, deleted ×2, the error: at least nine out.
    assert_eq!(moved("ephemeral_chat_frames_total{direction=\"in\"}"), 6.0, "{after}");
    assert!(moved("ephemeral_chat_frames_total{direction=\"out\"}") >= 9.0, "{after}");
    assert!(moved("ephemeral_chat_store_seconds_count{op=\"insert\"}") >= 1.0, "{after}");
    assert!(moved("ephemeral_chat_store_seconds_count{op=\"viewed\"}") >= 1.0, "{after}");
    assert!(sample(&after, "ephemeral_chat_connections_open") >= 2.0, "{after}");
    assert!(sample(&after, "process_resident_memory_bytes") > 1e6, "{after}");

    // No room, message, session or address anywhere in what a scrape shows.
    let everything = format!("{before}{during}{after}");
    let secrets = [room.keys.room_id.to_hex(), id, sessions[0].clone(), sessions[1].clone(), "127.0.0.1".to_owned()];
    for secret in &secrets {
        assert!(!everything.contains(secret.as_str()), "a scrape shows {secret}");
    }
    // Every label is one of the closed sets the relay names.
    for line in everything.lines().filter(|line| !line.starts_with('#') && line.contains('{')) {
        let labels = &line[line.find('{').unwrap() + 1..line.rfind('}').unwrap()];
        for label in labels.split(',') {
            let key = label.split('=').next().unwrap();
            assert!(["code", "direction", "op", "le", "quantile"].contains(&key), "unexpected label in {line}");
        }
    }
    // Not on the public port.
    let public = super::helpers::http_get(server.port, "/metrics").await;
    assert!(!public.contains("ephemeral_chat_"), "metrics must not be served on the public port");
}

// ---- Logs ------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_carry_no_colour_off_a_terminal_and_json_on_request() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("text");
    let mut text = ServerProcess::start(&[("DATA_DIR", data.to_str().unwrap())], dir.path().join("text.log")).await;
    assert!(text.terminate().success());
    let output = text.output_text();
    assert!(output.contains("listening") && !output.contains('\u{1b}'), "no escape codes in a file: {output:?}");

    let data = dir.path().join("json");
    let mut json = ServerProcess::start(
        &[("DATA_DIR", data.to_str().unwrap()), ("LOG_FORMAT", "json")],
        dir.path().join("json.log"),
    )
    .await;
    assert!(json.terminate().success());
    let output = json.output_text();
    let lines: Vec<serde_json::Value> =
        output.lines().map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}"))).collect();
    assert!(lines.iter().any(|line| line["fields"]["message"] == "listening"), "{output}");
    assert!(lines.iter().all(|line| line["level"].is_string() && line["timestamp"].is_string()), "{output}");
    assert!(!output.contains('\u{1b}'));
}

// ---- The journey these tests share -------------------------------------------------------------

/// Two fresh clients join one room; a message is sent, fetched, opened, viewed and burned.
async fn journey(mut alice: Client, mut bob: Client) {
    let room = TestRoom::new();
    alice.join(&room).await;
    bob.join(&room).await;
    journey_between(&room, &mut alice, &mut bob).await;
}

/// `alice` sends one message to `bob`, who fetches, opens and views it; both hear it burned.
/// Returns the message's id.
async fn journey_between(room: &TestRoom, alice: &mut Client, bob: &mut Client) -> String {
    let (id, sealed) = room.seal("for the operator's eyes only", SenderId([3; 8]));
    alice.send(&ClientFrame::Send { message_id: id.to_hex(), sealed: sealed.to_base64(), ttl: None }).await;
    assert_eq!(alice.recv_skipping_presence().await, ServerFrame::Sent { message_id: id.to_hex() });
    assert_eq!(bob.recv_skipping_presence().await, ServerFrame::Message { message_id: id.to_hex(), chunks: 0 });
    bob.send(&ClientFrame::Fetch { message_id: id.to_hex() }).await;
    let ServerFrame::Payload { message_id, sealed } = bob.recv().await else { panic!("expected payload") };
    assert_eq!(room.open(&message_id, &sealed).text, "for the operator's eyes only");
    bob.send(&ClientFrame::Viewed { message_id: id.to_hex() }).await;
    assert_eq!(bob.recv().await, ServerFrame::Deleted { message_id: id.to_hex() });
    assert_eq!(alice.recv_skipping_presence().await, ServerFrame::Deleted { message_id: id.to_hex() });
    id.to_hex()
}
