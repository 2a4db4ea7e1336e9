//! The "Database ceiling" section: the database's own insert+delete pairs, as fast as it takes
//! them and, on PostgreSQL, on the open-loop runs' schedules.

use std::fmt::Write as _;

use super::format::percentiles;
use crate::bench::Results;

/// Every ceiling run, then the paced pairs.
pub(super) fn section(out: &mut String, results: &Results) {
    let _ = writeln!(
        out,
        "## Database ceiling (insert+delete pairs)\n\n| Backend | Connections | NOTIFY in each commit | Pairs/s |\n|---|---|---|---|"
    );
    for c in &results.ceilings {
        let notify = if c.notify { "yes" } else { "no" };
        let _ = writeln!(out, "| {} | {} | {notify} | {:.0} |", c.backend.name(), c.connections, c.pairs_per_s);
    }
    database_alone(out, results);
}

/// PostgreSQL's own pairs at each setup's open-loop rate: the latency its commits alone allow.
fn database_alone(out: &mut String, results: &Results) {
    let alone: Vec<_> = results
        .setups
        .iter()
        .flat_map(|s| [&s.database_alone, &s.database_alone_notify].into_iter().flatten().map(|a| (s.instances, a)))
        .collect();
    if alone.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "\nThe same pairs on a schedule, at each PostgreSQL setup's open-loop rate, with no server and no clients \
         (latency in ms from each pair's scheduled start, p50 / p90 / p99 / max): what the database's commits alone \
         take at that rate on this machine.\n\n\
         | Rate of | NOTIFY in each commit | Pairs/s | Connections | Pairs | INSERT committed | DELETE committed |\n\
         |---|---|---|---|---|---|---|"
    );
    for (instances, a) in alone {
        let _ = writeln!(
            out,
            "| PostgreSQL ×{instances} | {} | {:.0} | {} | {} | {} | {} |",
            if a.notify { "yes" } else { "no" },
            a.rate,
            a.connections,
            a.pairs,
            percentiles(a.insert.as_ref()),
            percentiles(a.pair.as_ref())
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::fixture::{results, table};

    fn render(results: &Results) -> String {
        let mut out = String::new();
        section(&mut out, results);
        out
    }

    const PACED: &str =
        "| Rate of | NOTIFY in each commit | Pairs/s | Connections | Pairs | INSERT committed | DELETE committed |";

    #[test]
    fn every_ceiling_run_is_a_row() {
        assert_eq!(
            table(&render(&results()), "| Backend | Connections | NOTIFY in each commit | Pairs/s |")[1..],
            [
                "|---|---|---|---|",
                "| SQLite | 4 | no | 2000 |",
                "| PostgreSQL | 4 | no | 1000 |",
                "| PostgreSQL | 4 | yes | 800 |"
            ]
        );
    }

    #[test]
    fn every_paced_run_is_a_row_with_its_latencies() {
        assert_eq!(
            table(&render(&results()), PACED)[1..],
            [
                "|---|---|---|---|---|---|---|",
                "| PostgreSQL ×1 | no | 200 | 10 | 200 | 1.00 / 1.50 / 2.00 / 3.00 | 1.50 / 2.00 / 3.00 / 4.00 |",
                "| PostgreSQL ×2 | no | 300 | 10 | 300 | 1.00 / 1.50 / 2.00 / 3.00 | 1.50 / 2.00 / 3.00 / 4.00 |",
                "| PostgreSQL ×2 | yes | 300 | 10 | 300 | 1.00 / 1.50 / 3.00 / 4.00 | 1.50 / 2.00 / 4.00 / 5.00 |",
            ]
        );
    }

    #[test]
    fn without_paced_runs_there_is_no_second_table_and_a_missing_latency_is_a_dash() {
        let mut results = results();
        results.setups.truncate(2);
        results.setups[1].database_alone.as_mut().unwrap().insert = None;
        assert_eq!(
            table(&render(&results), PACED)[2],
            "| PostgreSQL ×1 | no | 200 | 10 | 200 | – | 1.50 / 2.00 / 3.00 / 4.00 |"
        );
        results.setups[1].database_alone = None;
        let out = render(&results);
        assert!(!out.contains("The same pairs on a schedule") && !out.contains(PACED), "{out}");
    }
}
