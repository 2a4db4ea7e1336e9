//! The site's static files under `/pkg` (WASM, JS, CSS), with the `.br` and `.gz` siblings that
//! `make build` writes sent to clients that accept them: the WASM is most of a first visit.
//!
//! A sibling older than its file is stale (a rebuild without precompressing, as in
//! `cargo leptos watch`) and is never sent: the file itself is, uncompressed.

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

/// Hides `Accept-Encoding` from the file server when a sibling of the requested file is stale,
/// and marks every answer as varying with it.
async fn fresh_siblings_only(State(dir): State<PathBuf>, mut request: Request, next: Next) -> Response {
    let relative = request.uri().path().trim_start_matches('/');
    // ServeDir refuses `..` and other escapes itself; this only reads modification times.
    if !relative.is_empty() && !relative.split('/').any(|part| part == "..") {
        let file = dir.join(relative);
        let stale = tokio::task::spawn_blocking(move || has_stale_sibling(&file)).await.unwrap_or(true);
        if stale {
            request.headers_mut().remove(header::ACCEPT_ENCODING);
        }
    }
    let mut response = next.run(request).await;
    // The body depends on Accept-Encoding: caches on the way must key on it.
    response.headers_mut().append(header::VARY, HeaderValue::from_static("accept-encoding"));
    response
}

fn has_stale_sibling(file: &Path) -> bool {
    let modified = |path: &Path| std::fs::metadata(path).and_then(|m| m.modified()).ok();
    let Some(original) = modified(file) else { return false };
    ["br", "gz"].iter().any(|ext| {
        let mut sibling = file.as_os_str().to_owned();
        sibling.push(".");
        sibling.push(ext);
        modified(Path::new(&sibling)).is_some_and(|compressed: SystemTime| compressed < original)
    })
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
        let br = dir.path().join("app.wasm.br");
        std::fs::write(&br, b"br").unwrap();
        let now = SystemTime::now();
        std::fs::File::options().write(true).open(&file).unwrap().set_modified(now).unwrap();
        std::fs::File::options().write(true).open(&br).unwrap().set_modified(now + Duration::from_secs(1)).unwrap();
        assert!(!has_stale_sibling(&file));
        std::fs::File::options().write(true).open(&br).unwrap().set_modified(now - Duration::from_secs(1)).unwrap();
        assert!(has_stale_sibling(&file));
        assert!(!has_stale_sibling(&dir.path().join("missing.wasm")));
    }
}
