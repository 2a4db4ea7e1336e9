//! The site's `/pkg` files: precompressed siblings sent to clients that accept them, and never
//! when stale.

use std::path::Path;
use std::time::{Duration, SystemTime};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::helpers::{Backend, TestDatabase, TEST_KEY};
use super::process::ServerProcess;

/// A raw HTTP/1.1 GET: status line and headers (lower-cased names), and the body.
async fn get(port: u16, path: &str, accept_encoding: Option<&str>) -> (String, Vec<u8>) {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let encoding = accept_encoding.map(|e| format!("Accept-Encoding: {e}\r\n")).unwrap_or_default();
    let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{encoding}Connection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let split = response.windows(4).position(|w| w == b"\r\n\r\n").expect("a complete response");
    let head = String::from_utf8_lossy(&response[..split]).to_lowercase();
    (head, response[split + 4..].to_vec())
}

fn touch(path: &Path, contents: &[u8], modified: SystemTime) {
    std::fs::write(path, contents).unwrap();
    std::fs::File::options().write(true).open(path).unwrap().set_modified(modified).unwrap();
}

#[tokio::test]
async fn precompressed_assets_go_to_clients_that_accept_them_and_stale_ones_never() {
    let db = TestDatabase::new(Backend::Sqlite);
    let site = tempfile::tempdir().unwrap();
    let pkg = site.path().join("pkg");
    std::fs::create_dir(&pkg).unwrap();
    let built = SystemTime::now() - Duration::from_secs(60);
    touch(&pkg.join("app.wasm"), b"the wasm itself", built);
    touch(&pkg.join("app.wasm.br"), b"brotli bytes", built + Duration::from_secs(1));
    touch(&pkg.join("app.wasm.gz"), b"gzip bytes", built + Duration::from_secs(1));
    let site_root = site.path().to_str().unwrap();
    let env = [("DATABASE_URL", db.url.as_str()), ("ENCRYPTION_KEY", TEST_KEY), ("LEPTOS_SITE_ROOT", site_root)];
    let server = ServerProcess::start(&env, db.dir.path().join("server.log")).await;

    let (head, body) = get(server.port, "/pkg/app.wasm", Some("gzip, deflate, br")).await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains("content-encoding: br"), "{head}");
    assert!(head.contains("content-type: application/wasm"), "{head}");
    assert!(head.contains("vary: accept-encoding"), "{head}");
    assert_eq!(body, b"brotli bytes");

    let (head, body) = get(server.port, "/pkg/app.wasm", Some("gzip")).await;
    assert!(head.contains("content-encoding: gzip"), "{head}");
    assert_eq!(body, b"gzip bytes");

    let (head, body) = get(server.port, "/pkg/app.wasm", None).await;
    assert!(!head.contains("content-encoding"), "{head}");
    assert_eq!(body, b"the wasm itself");

    // brotli keeps its input's time to the second only: a .br older than the file is not sent,
    // a fresh .gz still is.
    touch(&pkg.join("app.wasm.br"), b"brotli bytes", built - Duration::from_millis(500));
    let (head, body) = get(server.port, "/pkg/app.wasm", Some("gzip, deflate, br")).await;
    assert!(head.contains("content-encoding: gzip"), "{head}");
    assert_eq!(body, b"gzip bytes");

    // A rebuild that did not precompress: the siblings are older than the file now.
    touch(&pkg.join("app.wasm"), b"the rebuilt wasm", built + Duration::from_secs(2));
    let (head, body) = get(server.port, "/pkg/app.wasm", Some("gzip, deflate, br")).await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(!head.contains("content-encoding"), "a stale sibling was sent: {head}");
    assert_eq!(body, b"the rebuilt wasm");

    // The security headers apply here too, and nothing outside pkg/ is reachable.
    assert!(head.contains("x-content-type-options: nosniff"), "{head}");
    std::fs::write(site.path().join("secret.txt"), b"outside pkg").unwrap();
    let (head, body) = get(server.port, "/pkg/../secret.txt", Some("br")).await;
    assert!(!head.starts_with("http/1.1 200") || body != b"outside pkg", "{head}");
    let (head, _) = get(server.port, "/pkg/missing.wasm", Some("br")).await;
    assert!(head.starts_with("http/1.1 404"), "{head}");
}
