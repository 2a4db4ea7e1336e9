//! A button that copies a text to the clipboard and says so.

use leptos::prelude::*;
use leptos::task::spawn_local;

/// Copies `text`; the label turns to "Copied" once the clipboard accepted it.
#[component]
pub fn CopyButton(text: String, label: &'static str) -> impl IntoView {
    let copied = RwSignal::new(false);
    let copy = move |_| {
        let promise = window().navigator().clipboard().write_text(&text);
        spawn_local(async move {
            if wasm_bindgen_futures::JsFuture::from(promise).await.is_ok() {
                copied.set(true);
                set_timeout(move || copied.set(false), std::time::Duration::from_secs(2));
            }
        });
    };
    view! {
        <button type="button" class="secondary" aria-label=label on:click=copy>
            {move || if copied.get() { "Copied" } else { label }}
        </button>
    }
}
