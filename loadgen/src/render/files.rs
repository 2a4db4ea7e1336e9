//! The "Files" section: a file's trip up and down alone, many at once with the server's memory,
//! and what transfers cost the chat beside them.

use std::fmt::Write as _;

use super::Browser;
use crate::bench::Results;
use crate::journey::JourneyReport;

/// One row per backend for the transfers, one per backend for the journeys beside them; nothing
/// for results from before files.
pub(super) fn section(out: &mut String, results: &Results, browser: &Browser) {
    let Some(first) = results.files.first() else { return };
    let size = &results.size;
    let _ = writeln!(
        out,
        "\n## Files\n\n{} files of {:.1} MiB, sealed and opened by native clients (the room model, Rust AES-GCM) on the \
         same cores as the server, which runs with the default transfer budget (8 MiB/s per connection, after a one-second \
         burst). MB/s counts the file's bytes up and down: 2 × size × files / wall time.\n",
        first.at_once.pairs,
        first.alone.size as f64 / f64::from(1 << 20),
    );
    let _ = writeln!(
        out,
        "| Backend | One file: upload | download | MB/s | {n} at once: wall | MB/s | Server RSS before → peak |\n\
         |---|---|---|---|---|---|---|",
        n = first.at_once.pairs
    );
    for files in &results.files {
        let (one, many) = (&files.alone, &files.at_once);
        let _ = writeln!(
            out,
            "| {} | {:.2} s | {:.2} s | {:.1} | {:.1} s | {:.1} | {:.1} → {:.1} MiB |",
            files.backend.name(),
            one.upload_s,
            one.download_s,
            one.throughput_mb_s,
            many.wall_s,
            many.throughput_mb_s,
            files.rss_before_kib as f64 / 1024.0,
            files.peak_rss_kib as f64 / 1024.0,
        );
    }
    if let Some(page) = &browser.file_transfer {
        let _ = writeln!(
            out,
            "\nThrough the real page in Chromium (WebCrypto seals and opens; SQLite relay, default settings), one file \
             of {:.1} MiB: upload {:.2} s, download and decrypt {:.2} s: {:.1} MB/s.",
            page.bytes as f64 / f64::from(1 << 20),
            page.upload_ms / 1000.0,
            page.download_ms / 1000.0,
            page.mb_s(),
        );
    }
    let _ = writeln!(
        out,
        "\nMessage journeys at {:.0}/s (open loop over {} rooms), alone and beside {} transfers at once:\n\n\
         | Backend | Alone: p50 | p99 | Beside transfers: p50 | p99 |\n|---|---|---|---|---|",
        size.beside_rate, first.journeys_alone.rooms, first.at_once.pairs,
    );
    for files in &results.files {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} |",
            files.backend.name(),
            percentile(&files.journeys_alone, false),
            percentile(&files.journeys_alone, true),
            percentile(&files.journeys_beside, false),
            percentile(&files.journeys_beside, true),
        );
    }
}

fn percentile(report: &JourneyReport, p99: bool) -> String {
    match &report.journey {
        Some(p) => format!("{:.1} ms", if p99 { p.p99_ms } else { p.p50_ms }),
        None => "n/a".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::fixture::{browser, lines, results};
    use crate::render::FileTransfer;

    #[test]
    fn each_backend_has_its_transfers_memory_and_journeys_beside() {
        let mut out = String::new();
        let page = FileTransfer { bytes: 10 << 20, upload_ms: 1500.0, download_ms: 1121.0 };
        section(&mut out, &results(), &Browser { file_transfer: Some(page), ..browser() });
        assert_eq!(
            lines(&out),
            [
                "",
                "## Files",
                "",
                "2 files of 10.0 MiB, sealed and opened by native clients (the room model, Rust AES-GCM) on the same \
                 cores as the server, which runs with the default transfer budget (8 MiB/s per connection, after a \
                 one-second burst). MB/s counts the file's bytes up and down: 2 × size × files / wall time.",
                "",
                "| Backend | One file: upload | download | MB/s | 2 at once: wall | MB/s | Server RSS before → peak |",
                "|---|---|---|---|---|---|---|",
                "| SQLite | 1.30 s | 1.25 s | 8.2 | 3.0 s | 14.0 | 12.0 → 25.5 MiB |",
                "",
                "Through the real page in Chromium (WebCrypto seals and opens; SQLite relay, default settings), one \
                 file of 10.0 MiB: upload 1.50 s, download and decrypt 1.12 s: 8.0 MB/s.",
                "",
                "Message journeys at 20/s (open loop over 2 rooms), alone and beside 2 transfers at once:",
                "",
                "| Backend | Alone: p50 | p99 | Beside transfers: p50 | p99 |",
                "|---|---|---|---|---|",
                "| SQLite | 2.0 ms | 5.0 ms | 2.0 ms | 40.0 ms |",
            ]
        );
    }

    #[test]
    fn results_from_before_files_have_no_section() {
        let mut out = String::new();
        section(&mut out, &Results { files: Vec::new(), ..results() }, &browser());
        assert_eq!(out, "");
    }
}
