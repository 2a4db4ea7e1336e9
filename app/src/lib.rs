//! Ephemeral Chat's shared crate: the wire protocol and the client cryptography, and with the
//! `ui` feature the pages and components (rendered on the server, hydrated in the browser).
//!
//! With no features the crate is [`crypto`], [`protocol`] and the room model ([`room`]) only, and
//! builds without Leptos or the browser APIs: the load generator and the fuzz targets use it so.
//! `ui` adds the rest, and each build that renders pages turns it on: `ssr` (the server),
//! `hydrate` and `csr` (the browser).
//!
//! - [`crypto`]: spec v1 in pure Rust (no browser APIs), tested natively.
//! - [`protocol`]: the WebSocket frames.
//! - `pages` (`ui`): the landing page and the room page.
//! - `components` (`ui`): the pieces those pages are made of.
//! - [`room`]: the room as a page lives it, as a model with no I/O; with `ui`, the browser's
//!   driver of it (socket, timers, signals).
//! - `webcrypto` (`ui`): the key schedule's PBKDF2 by the browser's WebCrypto, where it has one.
#![forbid(unsafe_code)]

#[cfg(feature = "ui")]
pub mod components;
pub mod crypto;
#[cfg(feature = "ui")]
pub mod pages;
pub mod protocol;
pub mod room;
#[cfg(feature = "ui")]
pub mod webcrypto;

#[cfg(feature = "ui")]
use leptos::either::EitherOf3;
#[cfg(feature = "ui")]
use leptos::prelude::*;
#[cfg(feature = "ui")]
use leptos_meta::{provide_meta_context, MetaTags, Stylesheet, Title};

#[cfg(feature = "ui")]
use pages::landing::{LandingPage, ROOM_PATH};
#[cfg(feature = "ui")]
use pages::room::RoomPage;

/// The Content-Security-Policy of every page: scripts only from this origin plus the one inline
/// hydration script carrying this response's nonce; WASM may compile; connections (the
/// WebSocket, the WASM fetch) only to this origin; images from this origin and from `blob:`
/// URLs (a decrypted picture, shown from memory: nothing else); no framing, no `<base>`, no
/// plugins.
pub fn content_security_policy(nonce: &str) -> String {
    format!(
        "default-src 'none'; script-src 'self' 'nonce-{nonce}' 'wasm-unsafe-eval'; style-src 'self'; \
         connect-src 'self'; img-src 'self' blob:; manifest-src 'self'; base-uri 'none'; form-action 'self'; \
         frame-ancestors 'none'"
    )
}

/// Sets the page-only response headers (the CSP needs the nonce Leptos made for this render).
#[cfg(feature = "ssr")]
fn set_page_headers() {
    use leptos_axum::ResponseOptions;
    let (Some(nonce), Some(response)) = (leptos::nonce::use_nonce(), use_context::<ResponseOptions>()) else {
        return;
    };
    let policy = content_security_policy(&nonce.to_string());
    if let Ok(value) = http::HeaderValue::from_str(&policy) {
        response.insert_header(http::header::CONTENT_SECURITY_POLICY, value);
    }
    // Pages are never cached: nothing about a room should linger in a cache.
    response.insert_header(http::header::CACHE_CONTROL, http::HeaderValue::from_static("no-store"));
}

/// The HTML document around the app, rendered on the server.
#[cfg(feature = "ui")]
pub fn shell(options: LeptosOptions) -> impl IntoView {
    #[cfg(feature = "ssr")]
    set_page_headers();
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <meta name="referrer" content="no-referrer"/>
                <meta name="color-scheme" content="light dark"/>
                <link rel="icon" href="/favicon.svg" type="image/svg+xml"/>
                <HydrationScripts options/>
                <MetaTags/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

/// The application: the page for the path, and the document's title and stylesheet.
///
/// Two pages and no links between them that a full page load would not serve as well (the
/// landing page opens a room with one, so the code's page starts with fresh memory), so the
/// path picks the page here instead of a client-side router: the router, and the asynchronous
/// hydration its type-erased routes compile in for every page, were 28 % of the WASM
/// (docs/benchmark-history.md).
#[cfg(feature = "ui")]
#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    // Controls stay inert ("Loading…") until this says the app runs; it also marks <body>.
    components::hydration::provide_hydrated();
    let page = match Route::of(&current_path()) {
        Route::Landing => EitherOf3::A(view! { <LandingPage/> }),
        Route::Room => EitherOf3::B(view! { <RoomPage/> }),
        Route::NotFound => EitherOf3::C(view! { <p>"Page not found." <a href="/">"Start over"</a></p> }),
    };
    view! {
        // The client-only build links its stylesheet from index.html (Trunk hashes the name).
        {cfg!(not(feature = "csr")).then(|| view! { <Stylesheet id="leptos" href="/pkg/ephemeral-chat.css"/> })}
        <Title text="Ephemeral Chat"/>
        <main>{page}</main>
    }
}

/// The pages, by path.
#[cfg(feature = "ui")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Landing,
    Room,
    NotFound,
}

#[cfg(feature = "ui")]
impl Route {
    /// A trailing slash is the same page: static hosts serve `room/index.html` at `/room/`.
    fn of(path: &str) -> Self {
        match path.trim_end_matches('/') {
            "" => Self::Landing,
            p if p == ROOM_PATH || p == "/room/index.html" => Self::Room,
            _ => Self::NotFound,
        }
    }
}

/// The path of the page being rendered: the request's on the server, the address bar's in the
/// browser (the same one, so hydration finds what the server rendered).
#[cfg(feature = "ui")]
fn current_path() -> String {
    #[cfg(feature = "ssr")]
    {
        use_context::<http::request::Parts>().map(|parts| parts.uri.path().to_owned()).unwrap_or_default()
    }
    #[cfg(not(feature = "ssr"))]
    {
        window().location().pathname().unwrap_or_default()
    }
}

#[cfg(all(test, feature = "ui"))]
mod tests {
    use super::*;

    #[test]
    fn each_path_has_its_page() {
        assert_eq!(Route::of("/"), Route::Landing);
        assert_eq!(Route::of(""), Route::Landing);
        assert_eq!(Route::of("/room"), Route::Room);
        assert_eq!(Route::of("/room/"), Route::Room);
        assert_eq!(Route::of("/room/index.html"), Route::Room);
        for other in ["/rooms", "/room/x", "/index.html", "/ROOM", "//room"] {
            assert_eq!(Route::of(other), Route::NotFound, "{other}");
        }
    }
}
