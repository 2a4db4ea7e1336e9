//! The site's static files under `/pkg` (WASM, JS, CSS), with the `.br` and `.gz` siblings that
//! `make build` writes sent to clients that accept them: the WASM is most of a first visit.
//!
//! A sibling older than its file is stale (a rebuild without precompressing, as in
//! `cargo leptos watch`) and is never sent: a fresh one of another encoding is, or the file
//! itself, uncompressed.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::Router;
use tower_http::services::ServeDir;

/// The router serving `dir` (the site's pkg directory) with precompressed siblings.
pub fn pkg(dir: PathBuf) -> Router {
    let files = ServeDir::new(&dir).precompressed_br().precompressed_gzip();
    Router::new().fallback_service(files).layer(middleware::from_fn_with_state(dir, fresh_siblings_only))
}

/// Offers the file server only the encodings whose sibling of the requested file is fresh, and
/// marks every answer as varying with `Accept-Encoding`.
async fn fresh_siblings_only(State(dir): State<PathBuf>, mut request: Request, next: Next) -> Response {
    let relative = request.uri().path().trim_start_matches('/');
    // ServeDir refuses `..` and other escapes itself; this only reads modification times.
    if !relative.is_empty() && !relative.split('/').any(|part| part == "..") {
        let file = dir.join(relative);
        let stale = tokio::task::spawn_blocking(move || stale_encodings(&file)).await.unwrap_or(STALE_ALL);
        if stale != [false, false] {
            restrict_accept_encoding(&mut request, stale);
        }
    }
    let mut response = next.run(request).await;
    // The body depends on Accept-Encoding: caches on the way must key on it.
    response.headers_mut().append(header::VARY, HeaderValue::from_static("accept-encoding"));
    response
}

/// The precompressed siblings, by file extension and `Accept-Encoding` name.
const SIBLINGS: [(&str, &str); 2] = [("br", "br"), ("gz", "gzip")];
const STALE_ALL: [bool; 2] = [true, true];

/// Which of [`SIBLINGS`] exist but are older than `file` (a rebuild that did not precompress).
fn stale_encodings(file: &Path) -> [bool; 2] {
    let modified = |path: &Path| std::fs::metadata(path).and_then(|m| m.modified()).ok();
    let Some(original) = modified(file) else { return [false, false] };
    SIBLINGS.map(|(ext, _)| {
        let mut sibling = file.as_os_str().to_owned();
        sibling.push(".");
        sibling.push(ext);
        modified(Path::new(&sibling)).is_some_and(|compressed: SystemTime| compressed < original)
    })
}

/// Rewrites `Accept-Encoding` to the accepted encodings whose sibling is not stale.
fn restrict_accept_encoding(request: &mut Request, stale: [bool; 2]) {
    let accepted: Vec<String> = request
        .headers()
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|coding| coding.trim().to_owned())
        .filter(|coding| {
            let name = coding.split(';').next().unwrap_or_default().trim();
            !SIBLINGS.iter().zip(stale).any(|((_, encoding), stale)| stale && name.eq_ignore_ascii_case(encoding))
        })
        .collect();
    let headers = request.headers_mut();
    headers.remove(header::ACCEPT_ENCODING);
    if let Ok(value) = HeaderValue::from_str(&accepted.join(", ")) {
        if !accepted.is_empty() {
            headers.insert(header::ACCEPT_ENCODING, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_sibling_older_than_its_file_is_stale_and_a_newer_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("app.wasm");
        std::fs::write(&file, b"wasm").unwrap();
        let (br, gz) = (dir.path().join("app.wasm.br"), dir.path().join("app.wasm.gz"));
        std::fs::write(&br, b"br").unwrap();
        std::fs::write(&gz, b"gz").unwrap();
        let now = SystemTime::now();
        let set = |path: &Path, at: SystemTime| {
            std::fs::File::options().write(true).open(path).unwrap().set_modified(at).unwrap();
        };
        set(&file, now);
        set(&br, now);
        set(&gz, now + Duration::from_secs(1));
        assert_eq!(stale_encodings(&file), [false, false]);
        // brotli keeps the file's time to the second only: older than the file.
        set(&br, now - Duration::from_millis(500));
        assert_eq!(stale_encodings(&file), [true, false]);
        assert_eq!(stale_encodings(&dir.path().join("missing.wasm")), [false, false]);
    }

    #[test]
    fn only_the_stale_encodings_are_taken_out_of_accept_encoding() {
        let mut request = Request::builder()
            .header(header::ACCEPT_ENCODING, "gzip, deflate, br;q=1, zstd")
            .body(axum::body::Body::empty())
            .unwrap();
        restrict_accept_encoding(&mut request, [true, false]);
        assert_eq!(request.headers()[header::ACCEPT_ENCODING], "gzip, deflate, zstd");
        restrict_accept_encoding(&mut request, [true, true]);
        assert_eq!(request.headers()[header::ACCEPT_ENCODING], "deflate, zstd");
        let mut only_br =
            Request::builder().header(header::ACCEPT_ENCODING, "br").body(axum::body::Body::empty()).unwrap();
        restrict_accept_encoding(&mut only_br, [true, false]);
        assert!(only_br.headers().get(header::ACCEPT_ENCODING).is_none());
    }
}
