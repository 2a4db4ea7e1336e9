//! BENCHMARKS.md from one run's results: the server side ([`Results`]) and the browser side
//! ([`Browser`], written by `end2end/bench/browser.mjs`), plus the hand-kept history.
//!
//! One module per section of the file, called in the file's order by [`markdown`]; `format`
//! says how figures are written. The method is the same for every run: `method.md`, beside this
//! file, is copied in as it is.

use std::fmt::Write as _;

use crate::bench::Results;

mod browser;
mod capacity;
mod ceiling;
mod crypto;
mod files;
#[cfg(test)]
pub(crate) mod fixture;
mod format;
mod idle;
mod journeys;
mod processor;
mod sizes;
mod targets;

pub use browser::{AesGcm, Browser, FileSize, FileTransfer, Pbkdf2};
pub use targets::{MAX_IDLE_BYTES, MAX_JOIN_MS, MAX_P99_MS, MAX_PBKDF2_RATIO, MAX_WASM_BROTLI};

/// How each figure is measured, in Markdown.
const METHOD: &str = include_str!("method.md");

/// The whole file.
pub fn markdown(results: &Results, browser: &Browser, history: &str) -> String {
    let mut out = String::new();
    let m = &results.machine;
    let _ = writeln!(out, "# Benchmarks\n");
    let _ = writeln!(
        out,
        "Written by `make bench` on {} ({:.0} s for the server part). Every figure below comes from that one run; \
         rerun with `make bench` (10 to 25 minutes on two cores once the tools are installed). \
         How each figure is measured is under [Method](#method); what changed between runs is under [History](#history).\n",
        m.date, results.elapsed_s
    );
    let _ = writeln!(
        out,
        "Machine: {} ({} cores), {:.0} GiB RAM, Linux {}; PostgreSQL {}, SQLite {}, {}.\n",
        m.cpu, m.cores, m.memory_gib, m.kernel, m.postgres, m.sqlite, browser.chromium
    );
    targets::section(&mut out, results, browser);
    journeys::section(&mut out, results);
    processor::section(&mut out, results);
    capacity::section(&mut out, results);
    ceiling::section(&mut out, results);
    idle::section(&mut out, results);
    files::section(&mut out, results, browser);
    crypto::section(&mut out, results, browser);
    sizes::section(&mut out, browser);
    out.push_str(METHOD);
    let _ = writeln!(out, "\n## History\n\n{}", history.trim());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::fixture::{browser, lines, results};

    #[test]
    fn the_file_is_the_header_the_sections_in_order_the_method_and_the_history() {
        let out = markdown(&results(), &browser(), "\n\n- 2024: the first run\n\n");
        let lines = lines(&out);
        assert_eq!(
            lines[..5],
            [
                "# Benchmarks",
                "",
                "Written by `make bench` on 2025-01-02 03:04 UTC (123 s for the server part). Every figure below comes \
                 from that one run; rerun with `make bench` (10 to 25 minutes on two cores once the tools are \
                 installed). How each figure is measured is under [Method](#method); what changed between runs is \
                 under [History](#history).",
                "",
                "Machine: Test CPU (2 cores), 8 GiB RAM, Linux 6.1.0-test; PostgreSQL 16.4, SQLite 3.46.1, Chromium 120.0.",
            ]
        );
        let headings: Vec<&str> = lines.iter().copied().filter(|line| line.starts_with("## ")).collect();
        assert_eq!(
            headings,
            [
                "## Targets",
                "## Message journey",
                "## Processor time",
                "## Instances that add capacity",
                "## Database ceiling (insert+delete pairs)",
                "## Idle connections",
                "## Files",
                "## Client crypto in Chromium",
                "## Bundle sizes",
                "## Method",
                "## History",
            ]
        );
        assert!(out.contains(&format!("on the wire.\n\n{METHOD}\n## History\n\n- 2024: the first run\n")), "{out}");
        assert!(out
            .ends_with("(Node's zlib), as `make build` precompresses them.\n\n## History\n\n- 2024: the first run\n"));
    }
}
