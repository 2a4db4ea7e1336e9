//! Ephemeral Chat's shared crate: the pages and components (rendered on the server, hydrated in
//! the browser), the wire protocol and the client cryptography.
//!
//! - [`crypto`]: spec v1 in pure Rust (no browser APIs), tested natively.
//! - [`protocol`]: the WebSocket frames.
//! - [`pages`]: the landing page and the room page.
//! - [`components`]: the pieces those pages are made of.
//! - [`room`]: the browser side of a room: keys, socket, message cards.
#![forbid(unsafe_code)]

pub mod components;
pub mod crypto;
pub mod pages;
pub mod protocol;
pub mod room;

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, MetaTags, Stylesheet, Title};
use leptos_router::components::{Route, Router, Routes};
use leptos_router::StaticSegment;

use pages::{landing::LandingPage, room::RoomPage};

/// The HTML document around the app, rendered on the server.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <meta name="referrer" content="no-referrer"/>
                <meta name="color-scheme" content="light dark"/>
                <HydrationScripts options/>
                <MetaTags/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

/// The application: routes and the document's title and stylesheet.
#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    // Effects run only in the browser: this marks the page as hydrated, for people's tools
    // (and the end-to-end tests) to wait on.
    Effect::new(move |_| {
        if let Some(body) = document().body() {
            let _ = body.set_attribute("data-hydrated", "true");
        }
    });
    view! {
        <Stylesheet id="leptos" href="/pkg/ephemeral-chat.css"/>
        <Title text="Ephemeral Chat"/>
        <Router>
            <main>
                <Routes fallback=|| view! { <p>"Page not found." <a href="/">"Start over"</a></p> }>
                    <Route path=StaticSegment("") view=LandingPage/>
                    <Route path=StaticSegment("room") view=RoomPage/>
                </Routes>
            </main>
        </Router>
    }
}
