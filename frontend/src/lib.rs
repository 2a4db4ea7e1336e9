//! The browser entry point: installs the panic hook and hydrates the server-rendered page.
#![forbid(unsafe_code)]

/// Called by the loader script cargo-leptos generates, once the WASM module is instantiated.
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(app::App);
}
