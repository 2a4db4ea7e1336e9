//! The "Idle connections" section: what one joined, silent WebSocket costs the server.

use std::fmt::Write as _;

use crate::bench::Results;

/// The server's memory before and after the idle connections joined, and the cost of each.
pub(super) fn section(out: &mut String, results: &Results) {
    let idle = &results.idle;
    let _ = writeln!(
        out,
        "\n## Idle connections\n\n{} joined WebSockets: server RSS {:.1} MiB before, {:.1} MiB after: {:.0} bytes each.\n",
        idle.connections,
        idle.rss_before_kib as f64 / 1024.0,
        idle.rss_after_kib as f64 / 1024.0,
        idle.bytes_per_connection
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::fixture::{lines, results};

    #[test]
    fn the_memory_before_and_after_is_in_mib_and_each_connection_in_bytes() {
        let mut out = String::new();
        section(&mut out, &results());
        assert_eq!(
            lines(&out),
            [
                "",
                "## Idle connections",
                "",
                "100 joined WebSockets: server RSS 10.0 MiB before, 10.4 MiB after: 4096 bytes each.",
                "",
            ]
        );
    }
}
