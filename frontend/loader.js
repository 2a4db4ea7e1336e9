// The static bundle's loader. scripts/static_bundle.py puts it inline in index.html, naming the
// app's JS and WASM and their SHA-384 digests below, and the page's Content-Security-Policy
// allows it by its own hash: so index.html's published hash covers everything the page runs.
//
// Browsers enforce `integrity` on fetch() (Chromium ignores it on a WASM <link rel=preload>),
// so the loader fetches both files with it and runs only the bytes that were checked: the JS
// imported from a blob: URL of them (the policy's one other script source), the WASM
// instantiated from them. A file that differs stops the page, and says so. So does a frame: a
// <meta> policy cannot forbid framing (frame-ancestors), and a page in another page's frame
// could be overlaid to trick a person into clicking.
const BUNDLE = __EC_BUNDLE__;

/** Why the app was not started, meant for the person in front of the page. */
class Refused extends Error {}

/** Shows `message` in place of "Loading…", announced to screen readers. */
function stop(message) {
  let boot = document.querySelector('.boot');
  if (!boot) boot = document.body.appendChild(document.createElement('p'));
  boot.className = 'boot';
  boot.setAttribute('role', 'alert');
  boot.textContent = message;
}

/** The bytes of `file`, only when they match the digest index.html names. */
async function verified(file) {
  try {
    const response = await fetch(file.url, { integrity: file.integrity });
    if (response.ok) return await response.arrayBuffer();
  } catch {
    // Refused by the browser: the bytes differ from the digest, or the download failed.
  }
  const name = file.url.split('/').pop();
  // Fetched again without the digest only to tell the two apart; these bytes are never run.
  const plain = await fetch(file.url, { cache: 'no-store' }).catch(() => null);
  if (plain?.ok) {
    throw new Refused(
      `Stopped: this copy of Ephemeral Chat has been altered. ${name} is not the file its page ` +
        'was published with, so the app was not started. Do not use this copy.',
    );
  }
  throw new Refused(
    `Ephemeral Chat could not download ${name} (${plain ? `HTTP ${plain.status}` : 'network error'}). ` +
      'Reload the page to try again.',
  );
}

async function start() {
  if (window.top !== window.self) {
    throw new Refused(
      'Stopped: Ephemeral Chat does not run inside another page. Open it directly, in its own tab.',
    );
  }
  const [js, wasm] = await Promise.all([verified(BUNDLE.js), verified(BUNDLE.wasm)]);
  const url = URL.createObjectURL(new Blob([js], { type: 'text/javascript' }));
  let bindings;
  try {
    bindings = await import(url);
  } finally {
    URL.revokeObjectURL(url);
  }
  // wasm-bindgen's init; the app mounts itself from its #[wasm_bindgen(start)] function.
  await bindings.default({ module_or_path: wasm });
}

start().catch((error) => {
  if (error instanceof Refused) {
    stop(error.message);
  } else {
    stop(`Ephemeral Chat could not start: ${error}`);
    throw error;
  }
});
