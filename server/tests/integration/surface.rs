//! The HTTP surface and start-up: origins, pages and their headers, the at-rest key at first
//! start, and settings the binary refuses.

use super::helpers::{http_get, spawn_app, Backend};

#[tokio::test]
async fn a_hostile_origin_is_refused_before_the_upgrade() {
    let app = spawn_app(Backend::Sqlite).await;
    let mut request =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(app.ws_url()).unwrap();
    request.headers_mut().insert("Origin", "http://evil.example".parse().unwrap());
    let err = tokio_tungstenite::connect_async(request).await.unwrap_err();
    match err {
        tokio_tungstenite::tungstenite::Error::Http(response) => assert_eq!(response.status(), 403),
        other => panic!("expected HTTP 403, got {other}"),
    }
    let mut request =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(app.ws_url()).unwrap();
    let own = format!("http://127.0.0.1:{}", app.port);
    request.headers_mut().insert("Origin", own.parse().unwrap());
    assert!(tokio_tungstenite::connect_async(request).await.is_ok());
}

#[tokio::test]
async fn each_path_gets_its_page_with_a_nonce_csp_and_hardening_headers() {
    let app = spawn_app(Backend::Sqlite).await;
    let pages = [
        ("/", "200", "Start a room"),
        ("/room", "200", "<h1>Room"),
        ("/room/", "200", "<h1>Room"),
        ("/rooms", "404", "Page not found."),
        ("/room/x", "404", "Page not found."),
    ];
    for (path, status, content) in pages {
        let response = http_get(app.port, path).await;
        let (head, html) = response.split_once("\r\n\r\n").unwrap();
        let head = head.to_ascii_lowercase();
        assert!(head.starts_with(&format!("http/1.1 {status}")), "{path}: {head}");
        assert!(html.contains(content), "{path}: no {content:?} in {html}");
        let header = |name: &str| {
            head.lines()
                .find_map(|l| l.strip_prefix(&format!("{name}: ")).map(str::to_owned))
                .unwrap_or_else(|| panic!("{path}: no {name} header in {head}"))
        };
        // The one inline script carries the nonce the policy names; it differs per response.
        let nonce = nonce_of(html);
        let csp = header("content-security-policy");
        assert!(
            csp.contains(&format!("script-src 'self' 'nonce-{}' 'wasm-unsafe-eval'", nonce.to_ascii_lowercase())),
            "{csp}"
        );
        for directive in ["connect-src 'self'", "frame-ancestors 'none'", "base-uri 'none'", "form-action 'self'"] {
            assert!(csp.contains(directive), "{csp} lacks {directive}");
        }
        assert_eq!(header("referrer-policy"), "no-referrer");
        assert_eq!(header("x-content-type-options"), "nosniff");
        assert_eq!(header("cross-origin-opener-policy"), "same-origin");
        assert_eq!(header("cache-control"), "no-store");
        assert!(header("permissions-policy").contains("camera=()"));
    }
    let first = http_get(app.port, "/").await;
    assert!(first.contains("Start a room") && first.contains("/pkg/ephemeral-chat.js"));
    assert_ne!(nonce_of(&first), nonce_of(&http_get(app.port, "/").await), "a fresh nonce per response");
}

/// Until the WASM has hydrated a page, its buttons, inputs and choices do nothing: the server
/// sends them disabled, busy and saying so, never looking live. (The composer's text box and the
/// name box take typing from the start; the page keeps it.)
#[tokio::test]
async fn the_server_renders_every_control_inert_until_the_page_is_hydrated() {
    let app = spawn_app(Backend::Sqlite).await;
    for (path, controls) in [("/", 3), ("/room", 4)] {
        let html = http_get(app.port, path).await;
        let tags: Vec<&str> = ["<button", "<input", "<select"]
            .iter()
            .flat_map(|open| html.split(open).skip(1))
            .map(|rest| rest.split('>').next().unwrap())
            .filter(|tag| !tag.contains(r#"id="display-name""#))
            .collect();
        assert_eq!(tags.len(), controls, "{path}: {tags:?}");
        for tag in tags {
            assert!(tag.contains(" disabled") && tag.contains(r#"aria-busy="true""#), "{path}: live control {tag:?}");
        }
        assert!(html.contains("Loading…"), "{path}: no Loading… in {html}");
    }
    let room = http_get(app.port, "/room").await;
    let textarea = room.split("<textarea").nth(1).and_then(|rest| rest.split('>').next()).expect("the composer");
    assert!(!textarea.contains("disabled"), "{textarea}");
    let name = room.split(r#"id="display-name""#).nth(1).and_then(|rest| rest.split('>').next()).expect("the name box");
    assert!(!name.contains("disabled"), "{name}");
}

fn nonce_of(response: &str) -> String {
    response.split(r#"<script type="module" nonce=""#).nth(1).and_then(|r| r.split('"').next()).unwrap().to_owned()
}

#[tokio::test]
async fn sqlite_without_a_key_generates_one_privately_and_reuses_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_arg = data.to_str().unwrap();
    let build = || async {
        let config = <server::config::Config as clap::Parser>::try_parse_from([
            "server",
            "--port",
            "0",
            "--data-dir",
            data_arg,
            "--site-root",
            "target/site",
        ])
        .unwrap();
        server::startup::Application::build(config).await.unwrap()
    };
    let first = build().await;
    let key_path = data.join(server::startup::KEY_FILE_NAME);
    let key = std::fs::read_to_string(&key_path).unwrap();
    assert_eq!(key.trim().len(), 64);
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(std::fs::metadata(&key_path).unwrap().permissions().mode() & 0o777, 0o600);
    let first_id = first.relay().keys.current().id();
    drop(first);
    let second = build().await;
    assert_eq!(second.relay().keys.current().id(), first_id);
    assert_eq!(std::fs::read_to_string(&key_path).unwrap(), key);
}

#[tokio::test]
async fn postgres_without_a_key_refuses_to_start_and_says_why() {
    let config = <server::config::Config as clap::Parser>::try_parse_from([
        "server",
        "--port",
        "0",
        "--database-url",
        "postgres://postgres@127.0.0.1:5432/unused",
    ])
    .unwrap();
    let err = server::startup::Application::build(config).await.err().expect("refuses to start");
    assert!(err.to_string().contains("ENCRYPTION_KEY is required"), "{err}");
}

#[test]
fn bad_settings_stop_the_binary_with_one_line_naming_them() {
    for (var, value, named) in [
        ("PORT", "http", "--port"),
        ("ENCRYPTION_KEY", "abc", "--encryption-key"),
        ("DATABASE_URL", "mysql://x", "--database-url"),
        ("MESSAGE_TTL", "9d", "--message-ttl"),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_server")).env(var, value).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{var}");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
        assert!(stderr.contains(named) && stderr.contains(var), "{stderr}");
        if var == "ENCRYPTION_KEY" {
            assert!(!stderr.contains("abc"), "the key's value must not be echoed: {stderr}");
        }
    }
}
