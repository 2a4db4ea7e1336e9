//! How the report writes its figures: a target met or not, sizes in KiB, latency percentiles.

use crate::stats::Percentiles;

/// "met", or "**not met**" in bold so that a missed target stands out in the table.
pub(super) fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "**not met**"
    }
}

/// Bytes as KiB with one decimal.
pub(super) fn kib(bytes: u64) -> String {
    format!("{:.1} KiB", bytes as f64 / 1024.0)
}

/// `p50 / p90 / p99 / max` in ms with two decimals; "–" for a run with no samples.
pub(super) fn percentiles(p: Option<&Percentiles>) -> String {
    p.map_or_else(|| "–".into(), |p| format!("{:.2} / {:.2} / {:.2} / {:.2}", p.p50_ms, p.p90_ms, p.p99_ms, p.max_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_met_target_says_so_and_a_missed_one_is_bold() {
        assert_eq!(verdict(true), "met");
        assert_eq!(verdict(false), "**not met**");
    }

    #[test]
    fn sizes_are_kib_with_one_decimal() {
        assert_eq!(kib(0), "0.0 KiB");
        assert_eq!(kib(1536), "1.5 KiB");
        assert_eq!(kib(200 * 1024), "200.0 KiB");
        assert_eq!(kib(1000), "1.0 KiB");
    }

    #[test]
    fn percentiles_are_four_figures_to_two_decimals_and_none_is_a_dash() {
        let p = Percentiles { samples: 3, p50_ms: 0.5, p90_ms: 1.234, p99_ms: 9.8765, max_ms: 120.0 };
        assert_eq!(percentiles(Some(&p)), "0.50 / 1.23 / 9.88 / 120.00");
        assert_eq!(percentiles(None), "–");
    }
}
