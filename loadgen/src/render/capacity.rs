//! The "Instances that add capacity" section: one, two and three instances over one PostgreSQL
//! with each bus, the bus events each instance receives, and a capacity model built from the
//! measured per-journey costs.

use std::fmt::Write as _;

use crate::bench::{JourneyRun, Results, Setup};
use crate::stats::Spread;
use crate::target::Backend;

/// Relay machines the model is worked out for.
const MODEL_RELAYS: [usize; 6] = [1, 2, 4, 8, 16, 32];
/// NATS nodes in the model's cluster.
const NATS_NODES: f64 = 3.0;
/// Nodes of that cluster each event passes through at most: the publisher's, and the one a
/// subscriber of its room is connected to.
const NATS_HOPS: f64 = 2.0;

/// Per-journey processor time of one run, in ms: (relay, PostgreSQL, NATS).
fn costs(run: &JourneyRun) -> Option<(f64, f64, f64)> {
    let (server, postgres, _, _) = run.cpu.per(run.report.completed)?;
    Some((server, postgres, run.cpu.nats_per(run.report.completed)?))
}

pub(super) fn section(out: &mut String, results: &Results) {
    let Some(one) = results.setup(Backend::Postgres, 1) else { return };
    let several: Vec<&Setup> =
        results.setups.iter().filter(|s| s.backend == Backend::Postgres && s.instances > 1).collect();
    if several.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "## Instances that add capacity\n\n\
         Instances over one PostgreSQL on this one machine, each room's sender and receiver on different instances \
         (with three, each instance holds the senders of a third of the rooms and the receivers of another third), \
         with each bus. *PostgreSQL per journey*: its processor time at the setup's peak, against one instance's. \
         *Bus events received*: per instance and journey at the peak, from each instance's \
         `ephemeral_chat_bus_received_total` (over LISTEN/NOTIFY every instance hears every notice, its own \
         included; over NATS only its rooms' events, and never its own). *Fetched from a carried copy*: the \
         share of the peak run's journeys whose message the receiving instance held as its NATS notice carried it \
         (`ephemeral_chat_bus_carried_held_total`), so that the fetch read no row; the rest read PostgreSQL \
         (README, \"Which bus\").\n\n\
         | Setup | Peak journeys/s | × one instance | p99 send → plaintext at half peak | PostgreSQL per journey | × one instance's | Bus events received per instance per journey | Fetched from a carried copy |\n\
         |---|---|---|---|---|---|---|---|"
    );
    let postgres_ms = |s: &Setup| s.peak_run().and_then(costs).map(|(_, postgres, _)| postgres);
    let one_postgres = postgres_ms(one);
    for setup in std::iter::once(one).chain(several.iter().copied()) {
        let p99 = setup
            .half_peak()
            .and_then(|r| r.report.delivery.as_ref())
            .map_or("–".to_owned(), |p| format!("{:.2} ms", p.p99_ms));
        let postgres = postgres_ms(setup);
        let received = setup
            .peak_run()
            .map(JourneyRun::received_per_journey)
            .filter(|r| !r.is_empty())
            .map_or("–".to_owned(), |r| r.iter().map(|n| format!("{n:.2}")).collect::<Vec<_>>().join(", "));
        let carried = setup
            .peak_run()
            .filter(|_| setup.nats)
            .and_then(JourneyRun::carried_share)
            .map_or("–".to_owned(), |share| format!("{:.0} %", share * 100.0));
        let _ = writeln!(
            out,
            "| {} | {:.0} | {:.2} | {p99} | {} | {} | {received} | {carried} |",
            setup.name(),
            setup.peak_journeys_per_s,
            setup.peak_journeys_per_s / one.peak_journeys_per_s,
            postgres.map_or("–".to_owned(), |ms| format!("{ms:.3} ms")),
            match (postgres, one_postgres) {
                (Some(ms), Some(base)) if base > 0.0 => format!("{:.2}", ms / base),
                _ => "–".to_owned(),
            },
        );
    }
    pairs(out, results);
    model(out, results);
    out.push('\n');
}

/// One instance against two over NATS, each pair's runs one right after the other.
fn pairs(out: &mut String, results: &Results) {
    let (Some(first), Some(share)) = (results.pairs.first(), Spread::of(results.paired_shares())) else { return };
    let _ = writeln!(
        out,
        "\n### One instance against two over NATS, in turns\n\n\
         The sweeps above run minutes apart, and this machine's speed drifts over minutes, so issue 24's two figures \
         come from {} pairs of closed-loop runs, each side at the window where its sweep peaked (one instance {}, \
         two {}): one instance, then two over NATS right after it, or the other way round in every other pair, each \
         side on servers of its own kept for the whole series. *PostgreSQL per journey* is the processor time of \
         every PostgreSQL process over the run, the idle side's included (its database vacuumed after its run), \
         compared at one instance's window: it grows with the messages in flight whatever the instances, so when \
         the windows differ two instances also run at one's, between the other two runs.\n\n\
         | Pair | Ran first | ×1 journeys/s | ×2, NATS journeys/s | × one instance | PostgreSQL per journey, ×1 | ×2, NATS, window {} | × one instance's |\n\
         |---|---|---|---|---|---|---|---|",
        results.pairs.len(),
        first.one.report.window,
        first.two.report.window,
        first.one.report.window,
    );
    for (index, pair) in results.pairs.iter().enumerate() {
        let (one_ms, two_ms, ratio) =
            pair.postgres_ms().map_or(("–".to_owned(), "–".to_owned(), "–".to_owned()), |(one, two)| {
                (format!("{one:.3} ms"), format!("{two:.3} ms"), format!("{:.2}", two / one))
            });
        let _ = writeln!(
            out,
            "| {} | {} | {:.0} | {:.0} | {:.2} | {one_ms} | {two_ms} | {ratio} |",
            index + 1,
            if pair.two_first { "×2, NATS" } else { "×1" },
            pair.one.report.journeys_per_s,
            pair.two.report.journeys_per_s,
            pair.share(),
        );
    }
    let postgres = Spread::of(results.paired_postgres_growths()).map_or(String::new(), |growth| {
        format!(
            "; PostgreSQL's processor time per journey {:+.0} % (from {:+.0} to {:+.0} %)",
            growth.median * 100.0,
            growth.min * 100.0,
            growth.max * 100.0
        )
    });
    let _ = writeln!(
        out,
        "\nMedians: two instances made {:.2} × one instance's journeys/s (from {:.2} to {:.2} ×){postgres}.",
        share.median, share.min, share.max
    );
}

/// PostgreSQL primaries the model is worked out for, by their cores: this machine's, and two
/// larger ones.
const PRIMARY_CORES: [usize; 2] = [8, 32];

/// What N relay machines in front of one PostgreSQL primary and a 3-node NATS cluster would
/// carry, from the NATS setup's per-journey costs.
fn model(out: &mut String, results: &Results) {
    let Some(setup) = results.nats_setup(2).or_else(|| results.nats_setup(3)) else { return };
    let Some((relay, postgres, nats)) = setup.peak_run().and_then(costs) else { return };
    if relay <= 0.0 || postgres <= 0.0 {
        return;
    }
    let cores = results.machine.cores.max(1);
    let per_core = |ms: f64| if ms > 0.0 { 1000.0 / ms } else { f64::INFINITY };
    let relay_machine = cores as f64 * per_core(relay);
    let cluster = NATS_NODES * cores as f64 * per_core(nats * NATS_HOPS);
    let primaries: Vec<usize> =
        std::iter::once(cores).chain(PRIMARY_CORES.into_iter().filter(|&c| c > cores)).collect();
    let primary = |c: usize| c as f64 * per_core(postgres);
    let _ = writeln!(
        out,
        "\n### A capacity model\n\n\
         From the {} peak run's processor time per journey (the load generator apart: its clients are people's \
         browsers): the relay {relay:.3} ms, PostgreSQL {postgres:.3} ms, NATS {nats:.3} ms. A core therefore \
         carries {:.0} journeys/s of relay work, {:.0} of PostgreSQL's and {:.0} of NATS's.\n\n\
         Assumptions: each relay machine and each NATS node has this machine's {cores} cores; the PostgreSQL \
         primary has {}; each part's cost per journey stays what it was here, where all of them shared two cores \
         (no part had a core to itself); PostgreSQL's throughput grows with its cores (an upper bound: its \
         commits also wait on its disk, which this does not model); the primary takes every write, and the \
         reads of the bodies no notice carried; a NATS event passes through at most {NATS_HOPS:.0} of the cluster's {NATS_NODES:.0} nodes (its \
         publisher's and a subscriber's), spread over the three, so the cluster allows {cluster:.0} journeys/s; \
         the network is not the limit.\n",
        setup.name(),
        per_core(relay),
        per_core(postgres),
        per_core(nats),
        primaries.iter().map(|c| format!("{c} cores")).collect::<Vec<_>>().join(", or "),
    );
    let header: Vec<String> = primaries.iter().map(|c| format!("Carried, primary of {c} cores")).collect();
    let _ = writeln!(
        out,
        "| Relay machines | Relays allow | {} |\n|---|---|{}",
        header.join(" | "),
        "---|".repeat(primaries.len())
    );
    for n in MODEL_RELAYS {
        let relays = n as f64 * relay_machine;
        let carried: Vec<String> = primaries
            .iter()
            .map(|&c| {
                let carried = relays.min(primary(c)).min(cluster);
                let limit = if carried == relays {
                    "relays"
                } else if carried == primary(c) {
                    "PostgreSQL"
                } else {
                    "NATS"
                };
                format!("{carried:.0} ({limit})")
            })
            .collect();
        let _ = writeln!(out, "| {n} | {relays:.0} | {} |", carried.join(" | "));
    }
    let crossovers: Vec<String> = primaries
        .iter()
        .map(|&c| {
            let wall = primary(c).min(cluster);
            let machines = (wall / relay_machine).ceil().max(1.0);
            let limit = if primary(c) <= cluster { "PostgreSQL" } else { "NATS" };
            let plural = if machines > 1.0 { "s" } else { "" };
            format!("with a primary of {c} cores from {machines:.0} relay machine{plural} on ({limit})")
        })
        .collect();
    let _ = writeln!(
        out,
        "\nMore relays stop adding capacity {}: past that, more relays add nothing. The next step, written down \
         and not built: rooms sharded over several databases by room hash (each instance holds a pool per shard \
         and sends a room's writes to `hash mod shards`; a room never spans two databases, so the burn and the \
         recipients stay one transaction), each shard a primary of its own.",
        crossovers.join("; ")
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::fixture::{nats_two, pairs, results, table};

    fn render(results: &Results) -> String {
        let mut out = String::new();
        section(&mut out, results);
        out
    }

    #[test]
    fn each_setup_of_several_instances_is_set_against_one_with_its_bus_events() {
        let mut results = results();
        results.setups.push(nats_two());
        let out = render(&results);
        let rows = table(&out, "| Setup | Peak journeys/s | × one instance | p99 send → plaintext at half peak | PostgreSQL per journey | × one instance's | Bus events received per instance per journey | Fetched from a carried copy |");
        assert_eq!(
            rows[2..],
            [
                "| PostgreSQL ×1 | 400 | 1.00 | 4.00 ms | 1.000 ms | 1.00 | – | – |",
                "| PostgreSQL ×2 | 600 | 1.50 | 12.00 ms | 1.000 ms | 1.00 | – | – |",
                "| PostgreSQL ×2, NATS | 380 | 0.95 | 5.00 ms | 1.050 ms | 1.05 | 1.00, 1.00 | 90 % |",
            ]
        );
    }

    #[test]
    fn the_model_carries_the_least_of_the_relays_postgresql_and_nats() {
        let mut results = results();
        results.setups.push(nats_two());
        let out = render(&results);
        // Per core: relay 1000/1.2 = 833, PostgreSQL 1000/1.05 = 952, NATS 1000/0.1 = 10000.
        // A 2-core relay machine 1667; primaries of 2, 8, 32 cores 1905, 7619, 30476; the
        // cluster 3 × 2 × 1000/0.2 = 30000.
        let rows = table(
            &out,
            "| Relay machines | Relays allow | Carried, primary of 2 cores | Carried, primary of 8 cores | Carried, primary of 32 cores |",
        );
        assert_eq!(rows[2], "| 1 | 1667 | 1667 (relays) | 1667 (relays) | 1667 (relays) |");
        assert_eq!(rows[3], "| 2 | 3333 | 1905 (PostgreSQL) | 3333 (relays) | 3333 (relays) |");
        assert_eq!(rows[7], "| 32 | 53333 | 1905 (PostgreSQL) | 7619 (PostgreSQL) | 30000 (NATS) |");
        assert!(out.contains("the cluster allows 30000 journeys/s"), "{out}");
        assert!(
            out.contains(
                "More relays stop adding capacity with a primary of 2 cores from 2 relay machines on (PostgreSQL); \
                 with a primary of 8 cores from 5 relay machines on (PostgreSQL); with a primary of 32 cores from 18 \
                 relay machines on (NATS)"
            ),
            "{out}"
        );
        assert!(out.contains("the relay 1.200 ms, PostgreSQL 1.050 ms, NATS 0.100 ms"), "{out}");
    }

    #[test]
    fn the_pairs_run_in_turns_are_each_a_row_with_their_medians_after() {
        let mut results = results();
        results.setups.push(nats_two());
        results.pairs = pairs();
        let out = render(&results);
        let rows = table(&out, "| Pair | Ran first | ×1 journeys/s | ×2, NATS journeys/s | × one instance | PostgreSQL per journey, ×1 | ×2, NATS, window 4 | × one instance's |");
        assert_eq!(
            rows[2..],
            [
                "| 1 | ×1 | 400 | 380 | 0.95 | 1.000 ms | 1.050 ms | 1.05 |",
                "| 2 | ×2, NATS | 500 | 400 | 0.80 | 1.000 ms | 1.200 ms | 1.20 |",
                "| 3 | ×1 | 400 | 440 | 1.10 | 1.000 ms | 0.900 ms | 0.90 |",
            ]
        );
        assert!(out.contains("come from 3 pairs of closed-loop runs, each side at the window where its sweep peaked (one instance 4, two 4)"), "{out}");
        assert!(
            out.contains(
                "Medians: two instances made 0.95 × one instance's journeys/s (from 0.80 to 1.10 ×); PostgreSQL's \
                 processor time per journey +5 % (from -10 to +20 %)."
            ),
            "{out}"
        );
        results.pairs.clear();
        assert!(!render(&results).contains("in turns"));
    }

    #[test]
    fn postgresql_is_compared_at_one_instances_window_when_two_peaked_at_another() {
        let mut results = results();
        results.setups.push(nats_two());
        results.pairs = pairs();
        // Pair 2's two instances peaked at window 16, with PostgreSQL at 1.2 ms; at window 4,
        // next to one instance, 1.1 ms.
        let mut at_one_window = results.pairs[1].two.clone();
        at_one_window.cpu.postgres_s = 0.011;
        results.pairs[1].two.report.window = 16;
        results.pairs[1].two_at_one_window = Some(at_one_window);
        let out = render(&results);
        assert!(out.contains("| 2 | ×2, NATS | 500 | 400 | 0.80 | 1.000 ms | 1.100 ms | 1.10 |"), "{out}");
        assert!(out.contains("PostgreSQL's processor time per journey +5 % (from -10 to +10 %)"), "{out}");
    }

    #[test]
    fn without_several_instances_or_nats_there_is_no_section_or_no_model() {
        let mut one_only = results();
        one_only.setups.retain(|s| s.instances == 1);
        assert_eq!(render(&one_only), "");
        let out = render(&results());
        assert!(out.starts_with("## Instances that add capacity") && !out.contains("A capacity model"), "{out}");
    }
}
