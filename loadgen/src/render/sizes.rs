//! The "Bundle sizes" section: each file the server serves, raw and precompressed, and how the
//! WASM reached Chromium.

use std::fmt::Write as _;

use super::format::kib;
use super::Browser;

/// The size table, then the WASM's encoding on the wire.
pub(super) fn section(out: &mut String, browser: &Browser) {
    let _ = writeln!(out, "## Bundle sizes\n\n| Build | File | Raw | gzip -9 | brotli -q 11 |\n|---|---|---|---|---|");
    for f in &browser.sizes {
        let _ = writeln!(out, "| {} | {} | {} | {} | {} |", f.build, f.file, kib(f.raw), kib(f.gzip), kib(f.brotli));
    }
    let _ = writeln!(
        out,
        "\nThe server sends the precompressed files: Chromium got the WASM with `Content-Encoding: {}`, {} on the wire.\n",
        browser.served_wasm_encoding,
        kib(browser.served_wasm_bytes)
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::fixture::{browser, lines};

    #[test]
    fn each_file_is_a_row_in_kib_and_the_wasm_on_the_wire_follows() {
        let mut out = String::new();
        section(&mut out, &browser());
        assert_eq!(
            lines(&out),
            [
                "## Bundle sizes",
                "",
                "| Build | File | Raw | gzip -9 | brotli -q 11 |",
                "|---|---|---|---|---|",
                "| ssr | pkg/app.js | 40.0 KiB | 12.0 KiB | 10.0 KiB |",
                "| ssr | pkg/app.wasm | 400.0 KiB | 180.0 KiB | 150.0 KiB |",
                "| static | app.wasm | 410.0 KiB | 185.0 KiB | 155.0 KiB |",
                "",
                "The server sends the precompressed files: Chromium got the WASM with `Content-Encoding: br`, 150.0 KiB \
                 on the wire.",
                "",
            ]
        );
    }
}
