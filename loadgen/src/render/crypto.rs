//! The "Client crypto in Chromium" section: the app's WASM against WebCrypto, the native key
//! derivation, and the time to join a room.

use std::fmt::Write as _;

use super::Browser;
use crate::bench::Results;

/// The crypto table, then the key derivation and join times.
pub(super) fn section(out: &mut String, results: &Results, browser: &Browser) {
    let (p, a) = (&browser.pbkdf2, &browser.aes_gcm);
    let _ = writeln!(
        out,
        "## Client crypto in Chromium\n\n| Operation | App WASM | WebCrypto | Ratio |\n|---|---|---|---|\n\
         | PBKDF2-HMAC-SHA256, {} iterations | {:.0} ms | {:.0} ms | {:.2} |\n\
         | AES-256-GCM seal, {} bytes | {:.1} µs | {:.1} µs | {:.2} |\n\
         | AES-256-GCM open, {} bytes | {:.1} µs | {:.1} µs | {:.2} |\n",
        p.iterations,
        p.wasm_ms,
        p.webcrypto_ms,
        p.wasm_ms / p.webcrypto_ms,
        a.bytes,
        a.wasm_seal_us,
        a.webcrypto_seal_us,
        a.wasm_seal_us / a.webcrypto_seal_us,
        a.bytes,
        a.wasm_open_us,
        a.webcrypto_open_us,
        a.wasm_open_us / a.webcrypto_open_us
    );
    if let Some(c) = &browser.file_chunk {
        let _ = writeln!(
            out,
            "A file's {} KiB chunk sealed as the page seals it (WebCrypto importing the file's key each time): \
             {:.0} µs ({:.0} MB/s) in WASM, {:.0} µs ({:.0} MB/s) by WebCrypto, which the page uses where it has it.\n",
            c.bytes / 1024,
            c.wasm_seal_us,
            c.mb_s(c.wasm_seal_us),
            c.webcrypto_seal_us,
            c.mb_s(c.webcrypto_seal_us)
        );
    }
    let _ = writeln!(
        out,
        "Native PBKDF2 and key schedule on this machine (the load generator): {:.0} ms per room. \
         Joining a room in the app, from opening the invite link to connected: {:.0} ms.\n",
        results.native_key_derivation_ms, browser.join_ms
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::fixture::{browser, lines, results};

    #[test]
    fn each_operation_is_timed_in_wasm_and_webcrypto_with_their_ratio() {
        let mut out = String::new();
        section(&mut out, &results(), &browser());
        assert_eq!(
            lines(&out),
            [
                "## Client crypto in Chromium",
                "",
                "| Operation | App WASM | WebCrypto | Ratio |",
                "|---|---|---|---|",
                "| PBKDF2-HMAC-SHA256, 600000 iterations | 300 ms | 200 ms | 1.50 |",
                "| AES-256-GCM seal, 200 bytes | 4.0 µs | 8.0 µs | 0.50 |",
                "| AES-256-GCM open, 200 bytes | 3.0 µs | 6.0 µs | 0.50 |",
                "",
                "Native PBKDF2 and key schedule on this machine (the load generator): 251 ms per room. Joining a room \
                 in the app, from opening the invite link to connected: 450 ms.",
                "",
            ]
        );
    }
}
