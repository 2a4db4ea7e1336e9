//! The HTTP surface: the Leptos pages, the `/ws` endpoint and a health check. No access log.

mod assets;
pub mod connections;
pub mod metrics;
pub mod tls;

use std::sync::Arc;

use app::pages::landing::ROOM_PATH;
use app::protocol::{binary, WS_PATH};
use app::shell;
use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, State, WebSocketUpgrade};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tower_http::set_header::SetResponseHeaderLayer;

use axum::extract::FromRef;
use leptos::config::LeptosOptions;
use tokio::sync::{mpsc, watch};

use crate::config::IpNet;
use crate::domain::ClientBlock;
use crate::relay::Relay;
use crate::ws::limits::{AddressCounter, AddressRefusal};
use crate::ws::session;

/// axum state: the Leptos options for page rendering, the relay for `/ws`, and what the
/// transport itself decides (origins, proxies, per-address limits, stopping).
#[derive(Clone)]
pub struct AppState {
    pub leptos_options: LeptosOptions,
    pub relay: Arc<Relay>,
    /// Send Strict-Transport-Security (the relay serves TLS itself, or PUBLIC_URL is https).
    pub hsts: bool,
    /// Origins allowed to open WebSockets besides the server's own.
    pub allowed_origins: Arc<[String]>,
    /// Peers whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Arc<[IpNet]>,
    /// Open connections per client address; never logged or stored.
    pub addresses: AddressCounter,
    /// Leading bits of an IPv6 address that name one client for the per-address limits.
    pub ipv6_prefix: u8,
    /// The scheme pages reach this relay by, when it is known: `https` when it serves TLS
    /// itself, else `PUBLIC_URL`'s when that is set.
    pub public_scheme: Option<&'static str>,
    /// Turns true when the server stops: every socket is closed with "going away".
    pub stopping: watch::Receiver<bool>,
    /// A clone is held by every open socket: when stopping, the server waits until none is left
    /// (the receiver then hears the channel close).
    pub open_sockets: mpsc::Sender<()>,
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos_options.clone()
    }
}

/// Headers on every response. Pages add their Content-Security-Policy (with the render's nonce)
/// and `Cache-Control: no-store` in `app::shell`.
const SECURITY_HEADERS: [(HeaderName, &str); 6] = [
    (header::REFERRER_POLICY, "no-referrer"),
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (header::X_FRAME_OPTIONS, "DENY"),
    (HeaderName::from_static("cross-origin-opener-policy"), "same-origin"),
    (HeaderName::from_static("cross-origin-resource-policy"), "same-origin"),
    (
        HeaderName::from_static("permissions-policy"),
        "camera=(), microphone=(), geolocation=(), payment=(), usb=(), interest-cohort=()",
    ),
];

/// Every route of the application.
pub fn router(state: AppState) -> Router {
    let hsts = state.hsts;
    let options = &state.leptos_options;
    let pkg_dir = std::path::Path::new(&*options.site_root).join(&*options.site_pkg_dir);
    // Rendering spawns its tasks on the Tokio runtime (an error only if already set up).
    let _ = any_spawner::Executor::init_tokio();
    // The app picks the page by the request's path (`app::App`); other paths get the shell
    // with "Page not found" and a 404 from the fallback.
    let page = leptos_axum::render_app_to_stream({
        let options = options.clone();
        move || shell(options.clone())
    });
    let mut router = Router::new()
        .nest_service(&format!("/{}", options.site_pkg_dir), assets::pkg(pkg_dir))
        .route(WS_PATH, get(ws_upgrade))
        .route("/healthz", get(|| async { "ok" }))
        .route("/", get(page.clone()))
        .route(ROOM_PATH, get(page.clone()))
        // Static hosts serve the client-only build's `room/index.html` here: the same page.
        .route(&format!("{ROOM_PATH}/"), get(page))
        .fallback(leptos_axum::file_and_error_handler::<AppState, _>(shell))
        .with_state(state);
    for (name, value) in SECURITY_HEADERS {
        router = router.layer(SetResponseHeaderLayer::overriding(name, HeaderValue::from_static(value)));
    }
    if hsts {
        router = router.layer(SetResponseHeaderLayer::overriding(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=63072000; includeSubDomains"),
        ));
    }
    router
}

async fn ws_upgrade(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let scheme = request_scheme(peer.ip(), &headers, &state.trusted_proxies, state.public_scheme);
    if !origin_allowed(&headers, &state.allowed_origins, scheme) {
        return (StatusCode::FORBIDDEN, "origin not allowed").into_response();
    }
    let relay: Arc<Relay> = state.relay.clone();
    let client = ClientBlock::of(client_address(peer.ip(), &headers, &state.trusted_proxies), state.ipv6_prefix);
    let slot = match state.addresses.try_acquire(client) {
        Ok(slot) => slot,
        Err(AddressRefusal::TooMany) => {
            return (StatusCode::TOO_MANY_REQUESTS, "too many connections from this address").into_response()
        }
        Err(AddressRefusal::TooFast) => {
            return (StatusCode::TOO_MANY_REQUESTS, "too many new connections from this address: slow down")
                .into_response()
        }
    };
    let limits = relay.limits;
    // Where the library stops reading: past it the socket is dropped at once, unanswered, so a
    // flood of huge frames costs nothing to answer. Up to it, the session answers oversized
    // text with `frame_too_large` and a clean close. A relay that takes files reads a chunk frame
    // whole (`ws/session.rs` checks its length).
    let chunk_frames = if relay.max_file_chunks() > 0 { binary::CHUNK_FRAME_LEN } else { 0 };
    let hard_limit = (2 * limits.max_frame_size as usize).max(chunk_frames);
    let buffer = limits.socket_buffer_size as usize;
    let stopping = state.stopping.clone();
    let open = state.open_sockets.clone();
    ws.max_message_size(hard_limit)
        .max_frame_size(hard_limit)
        .read_buffer_size(buffer)
        .write_buffer_size(buffer)
        .on_upgrade(move |socket| async move {
            session::run(socket, relay, client, stopping).await;
            drop((slot, open));
        })
}

/// The client's address: the peer's, unless the peer is a trusted proxy, in which case the
/// right-most `X-Forwarded-For` entry that is not itself a trusted proxy (entries further left
/// are whatever the client chose to send). Used for limits only; never logged or stored.
fn client_address(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(peer) {
        return peer;
    }
    let forwarded = headers
        .get_all(HeaderName::from_static("x-forwarded-for"))
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect::<Vec<_>>();
    let mut client = peer;
    for entry in forwarded.iter().rev() {
        match entry.parse::<IpAddr>() {
            Ok(ip) if is_trusted(ip) => client = ip,
            Ok(ip) => return ip,
            Err(_) => break,
        }
    }
    client
}

/// The scheme the page reached this relay by: `https` when the relay serves TLS itself, else
/// `PUBLIC_URL`'s when it is set, else what a trusted proxy says in `X-Forwarded-Proto` (`http`
/// or `https`), else `http`.
fn request_scheme(
    peer: IpAddr,
    headers: &HeaderMap,
    trusted: &[IpNet],
    public_scheme: Option<&'static str>,
) -> &'static str {
    if let Some(scheme) = public_scheme {
        return scheme;
    }
    if !trusted.iter().any(|net| net.contains(peer)) {
        return "http";
    }
    let forwarded = headers.get(HeaderName::from_static("x-forwarded-proto")).and_then(|v| v.to_str().ok());
    // A chain of proxies lists one scheme each; the first is the one the page used.
    match forwarded.and_then(|v| v.split(',').next()).map(str::trim) {
        Some(scheme) if scheme.eq_ignore_ascii_case("https") => "https",
        _ => "http",
    }
}

/// Browsers always send `Origin` on WebSocket upgrades: it must be this server's own origin
/// (the scheme it was reached by, and the host and port of `Host`) or one configured in
/// `ALLOWED_ORIGINS`. Clients that are not browsers send none and carry no ambient credentials,
/// so they are let through.
fn origin_allowed(headers: &HeaderMap, allowed: &[String], scheme: &str) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else { return true };
    let Ok(origin) = origin.to_str() else { return false };
    if allowed.iter().any(|a| a.trim_end_matches('/') == origin) {
        return true;
    }
    let authority = origin
        .split_once("://")
        .filter(|(origin_scheme, _)| origin_scheme.eq_ignore_ascii_case(scheme))
        .map(|(_, authority)| authority);
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    matches!((authority, host), (Some(a), Some(h)) if a.eq_ignore_ascii_case(h))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(origin: Option<&str>, host: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_str(host).unwrap());
        if let Some(o) = origin {
            h.insert(header::ORIGIN, HeaderValue::from_str(o).unwrap());
        }
        h
    }

    #[test]
    fn the_servers_own_origin_is_allowed_and_others_are_not() {
        assert!(origin_allowed(&headers(Some("http://127.0.0.1:3000"), "127.0.0.1:3000"), &[], "http"));
        assert!(!origin_allowed(&headers(Some("http://evil.example"), "127.0.0.1:3000"), &[], "http"));
        assert!(!origin_allowed(&headers(Some("http://127.0.0.1:3001"), "127.0.0.1:3000"), &[], "http"));
        assert!(!origin_allowed(&headers(Some("null"), "127.0.0.1:3000"), &[], "http"));
        assert!(origin_allowed(&headers(None, "127.0.0.1:3000"), &[], "http"));
    }

    #[test]
    fn the_origins_scheme_must_be_the_one_the_relay_was_reached_by() {
        let https_origin = headers(Some("https://127.0.0.1:3000"), "127.0.0.1:3000");
        assert!(!origin_allowed(&https_origin, &[], "http"), "a plain-http relay refuses an https origin");
        assert!(origin_allowed(&https_origin, &[], "https"));
        assert!(!origin_allowed(&headers(Some("http://chat.example"), "chat.example"), &[], "https"));
    }

    #[test]
    fn the_scheme_comes_from_public_url_or_a_trusted_proxy() {
        let trusted = vec![IpNet::parse("10.0.0.0/8")];
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        let (proxy, stranger): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "198.51.100.1".parse().unwrap());
        assert_eq!(request_scheme(proxy, &h, &trusted, None), "https");
        assert_eq!(request_scheme(stranger, &h, &trusted, None), "http", "only a trusted proxy is believed");
        assert_eq!(request_scheme(proxy, &HeaderMap::new(), &trusted, None), "http");
        assert_eq!(request_scheme(stranger, &HeaderMap::new(), &[], Some("https")), "https");
    }

    #[test]
    fn forwarded_addresses_are_believed_only_from_trusted_proxies() {
        let trusted = vec![IpNet::parse("10.0.0.0/8")];
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_static("6.6.6.6, 203.0.113.7, 10.0.0.2"));
        let proxy: IpAddr = "10.0.0.1".parse().unwrap();
        assert_eq!(client_address(proxy, &h, &trusted), "203.0.113.7".parse::<IpAddr>().unwrap());
        let stranger: IpAddr = "198.51.100.1".parse().unwrap();
        assert_eq!(client_address(stranger, &h, &trusted), stranger, "an untrusted peer's header is ignored");
        assert_eq!(client_address(proxy, &HeaderMap::new(), &trusted), proxy);
        assert_eq!(client_address(proxy, &h, &[]), proxy);
    }

    #[test]
    fn configured_origins_are_allowed() {
        let allowed = vec!["https://chat.example".to_owned()];
        assert!(origin_allowed(&headers(Some("https://chat.example"), "relay.example"), &allowed, "http"));
        assert!(!origin_allowed(&headers(Some("https://other.example"), "relay.example"), &allowed, "http"));
    }
}
