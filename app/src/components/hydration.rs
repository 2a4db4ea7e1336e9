//! Whether the page works yet. The server's HTML arrives before the WASM that makes its controls
//! work; until the app runs in the browser each control is disabled, marked busy and says
//! "Loading…", so a person on a slow connection never presses a control that ignores them.

use leptos::prelude::*;

/// What an inert control says in place of its label.
pub const LOADING: &str = "Loading…";

#[derive(Clone, Copy)]
struct Hydrated(ReadSignal<bool>);

/// Makes [`use_hydrated`] available below, and sets it once the app runs in the browser, also
/// marking `<body data-hydrated="true">` for people's tools (and the end-to-end tests) to wait on.
pub fn provide_hydrated() {
    provide_context(Hydrated(hydrated_signal()));
}

/// Whether the controls work: false while rendering on the server and during the first client
/// render (so hydration finds the markup the server sent), true from the first effect on.
pub fn use_hydrated() -> Signal<bool> {
    use_context::<Hydrated>().map_or_else(hydrated_signal, |Hydrated(hydrated)| hydrated).into()
}

/// `label` once the control works, [`LOADING`] until then.
pub fn label_once_hydrated(hydrated: Signal<bool>, label: &'static str) -> impl Fn() -> &'static str + Copy {
    move || if hydrated.get() { label } else { LOADING }
}

/// `aria-busy="true"` while the control does not work yet, no attribute afterwards.
pub fn busy_until_hydrated(hydrated: Signal<bool>) -> impl Fn() -> Option<&'static str> + Copy {
    move || (!hydrated.get()).then_some("true")
}

fn hydrated_signal() -> ReadSignal<bool> {
    let (hydrated, set_hydrated) = signal(false);
    // Effects run only in the browser, once the page is hydrated (or mounted, in the static
    // build): never on the server.
    Effect::new(move |_| {
        set_hydrated.set(true);
        if let Some(body) = document().body() {
            let _ = body.set_attribute("data-hydrated", "true");
        }
    });
    hydrated
}
