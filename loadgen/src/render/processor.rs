//! The "Processor time" section: what a journey and a ceiling pair cost the servers, PostgreSQL
//! and the load generator, and the rate the machine's cores allow at that cost.

use std::fmt::Write as _;

use crate::bench::Results;
use crate::cpu::CpuTime;
use crate::target::Backend;

/// What a journey and a ceiling pair cost in processor time, and what rate the machine's cores
/// allow at that cost.
pub(super) fn section(out: &mut String, results: &Results) {
    let cores = results.machine.cores.max(1) as f64;
    let _ = writeln!(
        out,
        "## Processor time\n\nPer journey at each setup's peak and per ceiling pair at the best ceiling, in ms of \
         processor time (user + system, from `/proc`). *Busy* is the share of the machine's {cores:.0} cores the run \
         used; *allows* is the rate the cores allow at that cost, and without the load generator's share (as if \
         the clients ran elsewhere).\n\n\
         | Run | Server | PostgreSQL | NATS | Load generator | Total | Busy | Allows | Without the load generator |\n\
         |---|---|---|---|---|---|---|---|---|"
    );
    let row = |out: &mut String, name: String, cpu: &CpuTime, units: u64, seconds: f64, unit: &str| {
        if let (Some((server, postgres, loadgen, total)), Some(nats)) = (cpu.per(units), cpu.nats_per(units)) {
            let busy = cpu.total_s() / (seconds * cores);
            let _ = writeln!(
                out,
                "| {name} | {server:.3} | {postgres:.3} | {nats:.3} | {loadgen:.3} | {total:.3} | {:.0} % | {:.0} {unit}/s | {} |",
                busy * 100.0,
                cores * 1000.0 / total,
                // Nothing but NATS's idle ticks left: the run was all load generator.
                if server + postgres > 0.0 {
                    format!("{:.0} {unit}/s", cores * 1000.0 / (server + postgres + nats))
                } else {
                    "–".into()
                },
            );
        }
    };
    for setup in &results.setups {
        let peak = setup
            .runs
            .iter()
            .filter(|r| r.mode == "closed")
            .max_by(|a, b| a.report.journeys_per_s.total_cmp(&b.report.journeys_per_s));
        if let Some(run) = peak {
            let name = format!("{}, window {}", setup.name(), run.report.window);
            let seconds = run.report.completed as f64 / run.report.journeys_per_s.max(f64::MIN_POSITIVE);
            row(out, name, &run.cpu, run.report.completed, seconds, "journeys");
        }
    }
    for backend in [Backend::Sqlite, Backend::Postgres] {
        if let Some(c) = results.best_ceiling(backend) {
            let name = format!("{} ceiling, {} connections", backend.name(), c.connections);
            row(out, name, &c.cpu, c.pairs, c.seconds, "pairs");
        }
    }
    let _ = writeln!(
        out,
        "\nWith SQLite the database runs inside its user: the server's column holds it for journeys, the load \
         generator's for the ceiling. Journey figures include connecting and leaving ({} sockets per run).\n",
        results.size.rooms * 2
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::fixture::{results, table};

    #[test]
    fn each_setups_peak_and_each_best_ceiling_costs_a_row() {
        let mut out = String::new();
        section(&mut out, &results());
        assert!(out.contains("the share of the machine's 2 cores the run used"), "{out}");
        assert!(out.contains("Journey figures include connecting and leaving (4 sockets per run)."), "{out}");
        assert_eq!(
            table(
                &out,
                "| Run | Server | PostgreSQL | NATS | Load generator | Total | Busy | Allows | Without the load generator |"
            )[1..],
            [
                "|---|---|---|---|---|---|---|---|---|",
                "| SQLite ×1, window 4 | 0.500 | 0.000 | 0.000 | 0.500 | 1.000 | 50 % | 2000 journeys/s | 4000 journeys/s |",
                "| PostgreSQL ×1, window 4 | 1.000 | 1.000 | 0.000 | 0.500 | 2.500 | 50 % | 800 journeys/s | 1000 journeys/s |",
                "| PostgreSQL ×2, window 4 | 1.000 | 1.000 | 0.000 | 0.500 | 2.500 | 75 % | 800 journeys/s | 1000 journeys/s |",
                // SQLite's ceiling runs inside the load generator: nothing is left without it.
                "| SQLite ceiling, 4 connections | 0.000 | 0.000 | 0.000 | 0.500 | 0.500 | 50 % | 4000 pairs/s | – |",
                "| PostgreSQL ceiling, 4 connections | 0.000 | 0.500 | 0.000 | 0.300 | 0.800 | 40 % | 2500 pairs/s | 4000 pairs/s |",
            ]
        );
        // NATS's time counts in the total and in what is left without the load generator.
        let mut with_nats = results();
        with_nats.setups.push(crate::render::fixture::nats_two());
        let mut out = String::new();
        section(&mut out, &with_nats);
        assert!(
            out.contains(
                "| PostgreSQL ×2, NATS, window 4 | 1.200 | 1.050 | 0.100 | 0.500 | 2.850 | 54 % | 702 journeys/s | 851 journeys/s |"
            ),
            "{out}"
        );
    }
}
