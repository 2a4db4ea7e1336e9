//! The "Message journey" section: every journey run, where the delivery time went, the servers'
//! peak memory, and what the NOTIFY between two instances costs.

use std::fmt::Write as _;

use super::format::percentiles;
use crate::bench::{Results, Setup};
use crate::stages::Stages;
use crate::target::Backend;

/// Every journey run's counts, throughput and latencies; where the open-loop runs' time went;
/// the servers' peak memory; and what a second instance costs.
pub(super) fn section(out: &mut String, results: &Results) {
    let _ = writeln!(out, "## Message journey\n");
    let _ = writeln!(
        out,
        "{} rooms of a sender and a receiver, {}-byte texts. Latencies in ms as p50 / p90 / p99 / max. \
         *I/O stalled*: the share of the run (connecting and leaving included) during which some task on the machine waited for storage \
         (`/proc/pressure/io`); commits wait on it, so a run that stalls on the disk shows it here. \
         *CPU waited*: the share during which some runnable task waited for a processor \
         (`/proc/pressure/cpu`); a message is late by whatever wait its server, database or client had.\n",
        results.size.rooms, results.size.payload
    );
    let _ = writeln!(
        out,
        "| Backend | Instances | Run | Messages | Journeys/s | Send → plaintext | Send → deleted | Errors | Rows left | I/O stalled | CPU waited |\n|---|---|---|---|---|---|---|---|---|---|---|"
    );
    for setup in &results.setups {
        for run in &setup.runs {
            let r = &run.report;
            let mode = match r.target_rate {
                Some(rate) => format!("open loop, {rate:.0}/s"),
                None => format!("closed, window {}", r.window),
            };
            let errors = if r.is_clean() { "0".to_owned() } else { format!("{:?}", r.errors) };
            let waits = run
                .cpu
                .waits()
                .map_or("– | –".into(), |(io, cpu)| format!("{:.0} % | {:.0} %", io * 100.0, cpu * 100.0));
            let _ = writeln!(
                out,
                "| {} | {} | {mode} | {} | {:.0} | {} | {} | {errors} | {} | {waits} |",
                setup.backend.name(),
                instances(setup),
                r.sent,
                r.journeys_per_s,
                percentiles(r.delivery.as_ref()),
                percentiles(r.journey.as_ref()),
                run.rows_left,
            );
        }
    }
    stages(out, results);
    let _ = writeln!(out, "\nServer peak RSS per setup (VmHWM):\n");
    for setup in &results.setups {
        let rss: Vec<String> = setup.peak_rss_kib.iter().map(|k| format!("{:.1} MiB", *k as f64 / 1024.0)).collect();
        let _ = writeln!(out, "- {}: {}", setup.name(), rss.join(", "));
    }
    if let (Some(one), Some(two)) = (results.setup(Backend::Postgres, 1), results.setup(Backend::Postgres, 2)) {
        notify_cost(out, one, two);
    }
    out.push('\n');
}

/// The instances cell: their number, and the bus when it is NATS.
fn instances(setup: &Setup) -> String {
    if setup.nats {
        format!("{}, NATS", setup.instances)
    } else {
        setup.instances.to_string()
    }
}

/// Where the open-loop runs' delivery time went, for every message and for the slowest percent.
fn stages(out: &mut String, results: &Results) {
    let staged: Vec<(&Setup, &Stages)> = results
        .setups
        .iter()
        .filter_map(|setup| setup.half_peak().and_then(|run| run.report.stages.as_ref()).map(|s| (setup, s)))
        .collect();
    if staged.is_empty() {
        return; // results from before stages were recorded
    }
    let _ = writeln!(
        out,
        "\nWhere the time went in the open-loop runs: each stage's mean in ms, over every message and over the \
         slowest percent of deliveries (those at or past the p99). *Queued*: due → its `send` handed to the \
         sender's socket; *to notice*: handed → the receiver hears of it; *to payload*: the notice → the \
         plaintext (the fetch). Queued + to notice + to payload = send → plaintext. *To `sent`* runs beside \
         *to notice*: handed → the sender hears `sent`, which the server sends just after storing the message \
         and telling the room, so a notice much later than its `sent` waited in the receiver's connection.\n\n\
         | Backend | Instances | Messages | Queued | To `sent` | To notice | To payload | Send → plaintext |\n\
         |---|---|---|---|---|---|---|---|"
    );
    for (setup, stages) in staged {
        for (which, m) in [("all", &stages.all), ("slowest 1 %", &stages.slowest_percent)] {
            let _ = writeln!(
                out,
                "| {} | {} | {which}: {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} |",
                setup.backend.name(),
                instances(setup),
                m.samples,
                m.queued_ms,
                m.to_ack_ms,
                m.to_notice_ms,
                m.to_payload_ms,
                m.delivery_ms
            );
        }
    }
}

/// One PostgreSQL instance against two: peak throughput and p99 at half peak.
fn notify_cost(out: &mut String, one: &Setup, two: &Setup) {
    let p99 = |s: &Setup| s.half_peak().and_then(|r| r.report.delivery.as_ref()).map_or(f64::NAN, |p| p.p99_ms);
    let _ = writeln!(
        out,
        "\nCross-instance NOTIFY: with two instances every receiver is on the other instance from its sender. \
         Peak {:.0} journeys/s with two instances against {:.0} with one ({:.2} ×); p99 send → plaintext at half \
         peak {:.2} ms against {:.2} ms.",
        two.peak_journeys_per_s,
        one.peak_journeys_per_s,
        two.peak_journeys_per_s / one.peak_journeys_per_s,
        p99(two),
        p99(one)
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::fixture::{lines, results, table};

    fn render(results: &Results) -> String {
        let mut out = String::new();
        section(&mut out, results);
        out
    }

    const JOURNEYS: &str =
        "| Backend | Instances | Run | Messages | Journeys/s | Send → plaintext | Send → deleted | Errors \
                            | Rows left | I/O stalled | CPU waited |";
    const STAGES: &str =
        "| Backend | Instances | Messages | Queued | To `sent` | To notice | To payload | Send → plaintext |";

    #[test]
    fn every_journey_run_is_a_row() {
        assert_eq!(
            table(&render(&results()), JOURNEYS)[1..],
            [
                "|---|---|---|---|---|---|---|---|---|---|---|",
                "| SQLite | 1 | closed, window 1 | 10 | 500 | 1.00 / 2.00 / 3.00 / 4.00 | 2.00 / 3.00 / 4.00 / 5.00 | 0 | 0 \
                 | 10 % | 5 % |",
                "| SQLite | 1 | closed, window 4 | 10 | 1000 | 1.00 / 2.00 / 3.50 / 4.50 | 2.00 / 3.00 / 4.50 / 5.50 | 0 | 0 \
                 | 10 % | 5 % |",
                "| SQLite | 1 | open loop, 500/s | 10 | 500 | 1.00 / 2.00 / 2.50 / 3.50 | 2.00 / 3.00 / 3.50 / 4.50 | 0 | 0 \
                 | 10 % | 5 % |",
                "| PostgreSQL | 1 | closed, window 4 | 10 | 400 | 1.00 / 2.00 / 5.00 / 6.00 | 2.00 / 3.00 / 6.00 / 7.00 | 0 \
                 | 0 | 10 % | 5 % |",
                "| PostgreSQL | 1 | open loop, 200/s | 10 | 200 | 1.00 / 2.00 / 4.00 / 5.00 | 2.00 / 3.00 / 5.00 / 6.00 | 0 \
                 | 0 | 10 % | 5 % |",
                "| PostgreSQL | 2 | closed, window 4 | 10 | 600 | 1.00 / 2.00 / 13.00 / 14.00 | 2.00 / 3.00 / 14.00 / 15.00 \
                 | 0 | 0 | 10 % | 5 % |",
                "| PostgreSQL | 2 | open loop, 300/s | 10 | 300 | 1.00 / 2.00 / 12.00 / 13.00 | 2.00 / 3.00 / 13.00 / 14.00 \
                 | 0 | 0 | 10 % | 5 % |",
            ]
        );
    }

    #[test]
    fn a_run_with_errors_shows_them_and_a_figure_not_recorded_is_a_dash() {
        let mut results = results();
        let run = &mut results.setups[0].runs[0];
        run.report.errors.insert("Internal".into(), 2);
        run.report.delivery = None;
        run.cpu.wall_s = 0.0; // a reading from before the waits were recorded
        run.rows_left = 3;
        assert_eq!(
            table(&render(&results), JOURNEYS)[2],
            "| SQLite | 1 | closed, window 1 | 10 | 500 | – | 2.00 / 3.00 / 4.00 / 5.00 | {\"Internal\": 2} | 3 | – | – |"
        );
    }

    #[test]
    fn each_open_loop_run_shows_its_stages_over_every_message_and_the_slowest_percent() {
        assert_eq!(
            table(&render(&results()), STAGES)[1..],
            [
                "|---|---|---|---|---|---|---|---|",
                "| SQLite | 1 | all: 10 | 0.10 | 0.50 | 0.60 | 0.40 | 1.10 |",
                "| SQLite | 1 | slowest 1 %: 1 | 0.20 | 1.00 | 2.00 | 0.30 | 2.50 |",
                "| PostgreSQL | 1 | all: 10 | 0.10 | 0.50 | 0.60 | 0.40 | 1.10 |",
                "| PostgreSQL | 1 | slowest 1 %: 1 | 0.20 | 1.00 | 2.00 | 0.30 | 2.50 |",
                "| PostgreSQL | 2 | all: 10 | 0.10 | 0.50 | 0.60 | 0.40 | 1.10 |",
                "| PostgreSQL | 2 | slowest 1 %: 1 | 0.20 | 1.00 | 2.00 | 0.30 | 2.50 |",
            ]
        );
    }

    #[test]
    fn results_from_before_stages_were_recorded_have_no_stages_table() {
        let mut results = results();
        for run in results.setups.iter_mut().flat_map(|setup| &mut setup.runs) {
            run.report.stages = None;
        }
        let out = render(&results);
        assert!(!out.contains("Where the time went") && !out.contains(STAGES), "{out}");
    }

    #[test]
    fn peak_memory_is_listed_per_instance_and_two_instances_are_set_against_one() {
        let out = render(&results());
        let lines = lines(&out);
        let rss = lines.iter().position(|line| *line == "Server peak RSS per setup (VmHWM):").unwrap();
        assert_eq!(
            lines[rss..rss + 7],
            [
                "Server peak RSS per setup (VmHWM):",
                "",
                "- SQLite ×1: 20.0 MiB",
                "- PostgreSQL ×1: 30.0 MiB",
                "- PostgreSQL ×2: 30.0 MiB, 31.0 MiB",
                "",
                "Cross-instance NOTIFY: with two instances every receiver is on the other instance from its sender. \
                 Peak 600 journeys/s with two instances against 400 with one (1.50 ×); p99 send → plaintext at half \
                 peak 12.00 ms against 4.00 ms.",
            ]
        );
        assert_eq!(lines.last(), Some(&""));
    }

    #[test]
    fn without_two_postgresql_setups_there_is_no_comparison() {
        let mut results = results();
        results.setups.truncate(2);
        assert!(!render(&results).contains("Cross-instance NOTIFY"));
    }
}
