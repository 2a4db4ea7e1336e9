//! The browser entry point. Two builds of the same app:
//!
//! - `hydrate` (cargo-leptos): the server renders each page and this hydrates it.
//! - `csr` (Trunk): a static bundle that renders in the browser and talks to a relay named at
//!   build time, for hosting the UI apart from the relay.
#![forbid(unsafe_code)]

#[cfg(feature = "bench")]
mod bench;

/// Called by the loader script cargo-leptos generates, once the WASM module is instantiated.
#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(app::App);
}

/// Runs when Trunk's loader instantiates the module.
#[cfg(feature = "csr")]
#[wasm_bindgen::prelude::wasm_bindgen(start)]
pub fn start() {
    console_error_panic_hook::set_once();
    leptos::mount::mount_to_body(app::App);
}
