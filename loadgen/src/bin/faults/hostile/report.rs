//! The hostile suite's report: every attack's figures, the honest side's during it, the
//! problems (bounds broken), and the report as people read it.

use std::fmt::Write as _;

use loadgen::stats::Percentiles;
use serde::Serialize;

use super::honest::{HonestReport, PageLoadReport};
use super::non_reading::NonReadingReport;
use super::quota::{QuotaPhase, QuotaReport};
use super::slowloris::{Baseline, SlowlorisReport};
use super::storage::StorageReport;
use loadgen::stats::Spread;

#[derive(Debug, Clone, Serialize)]
pub struct HostileReport {
    pub size: String,
    pub baseline: Baseline,
    pub slowloris: SlowlorisReport,
    pub non_reading: NonReadingReport,
    pub quota: QuotaReport,
    pub storage: StorageReport,
}

impl HostileReport {
    /// Every bound broken, as sentences; empty when the relay held.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = self.baseline.honest.problems("baseline", None);
        problems.extend(self.slowloris.problems());
        problems.extend(self.non_reading.problems());
        problems.extend(self.quota.problems());
        problems.extend(self.storage.problems());
        problems
    }

    /// The report as people read it: one section per attack.
    pub fn render(&self) -> String {
        let mut out = format!("Hostile clients ({} size), one fresh server each, SQLite\n", self.size);
        let b = &self.baseline;
        let _ = writeln!(out, "\nBaseline, no attack ({:.0} s)", b.seconds);
        out += &page_loads(&b.page_loads);
        out += &honest(&b.honest);

        let s = &self.slowloris;
        let _ = writeln!(
            out,
            "\n1. Slowloris: {} connections dribbling a request head, a header line a second",
            s.connections
        );
        let _ = writeln!(
            out,
            "   HEADER_TIMEOUT {:.0} s; each must be closed within {:.0} s",
            s.header_timeout_s, s.bound_s
        );
        let _ = writeln!(
            out,
            "   closed {} of {}, {} still open, {} could not connect; closed after {}",
            s.closed,
            s.connections,
            s.not_closed,
            s.connect_failures,
            spread(s.closed_after.as_ref())
        );
        let _ = writeln!(out, "   (opening took {})", spread(s.connect.as_ref()));
        out += &page_loads(&s.page_loads);
        out += &honest(&s.honest);

        let n = &self.non_reading;
        let _ = writeln!(
            out,
            "\n2. Non-reading sockets: {} WebSockets (SO_RCVBUF {} B) fetching a 16 KiB payload over and over in {} busy room(s), never reading",
            n.clients, n.recv_buffer_bytes, n.busy_rooms
        );
        let _ = writeln!(
            out,
            "   WRITE_TIMEOUT {:.0} s; each must be dropped within {:.0} s of its writes stalling",
            n.write_timeout_s, n.bound_s
        );
        let _ = writeln!(
            out,
            "   writes stalled after {} (at most {} B queued); {} never stalled",
            spread(n.stalled_after.as_ref()),
            n.most_queued_bytes,
            n.never_stalled
        );
        let _ = writeln!(
            out,
            "   dropped {} of {}, {} still open; dropped after the stall: {}",
            n.dropped,
            n.clients,
            n.not_dropped,
            spread(n.dropped_after_stall.as_ref())
        );
        let _ = writeln!(
            out,
            "   left the rooms' presence count after the stall: {}; rooms still counting one: {}",
            spread(n.presence_left_after_stall.as_ref()),
            n.rooms_still_counting
        );
        out += &honest(&n.honest);

        let q = &self.quota;
        let _ = writeln!(out, "\n3. Per-address quota: MAX_STORED_BYTES_PER_ADDRESS {}", bytes(q.per_address_quota));
        out += &quota_phase("one address", &q.single_address);
        out += &quota_phase("one /64", &q.one_ipv6_64);

        let t = &self.storage;
        let _ = writeln!(
            out,
            "\n4. Storage total: MAX_STORED_BYTES {}, step {}, {} instance: at most {}",
            bytes(t.max_stored_bytes),
            bytes(t.step_bytes),
            t.instances,
            bytes(t.bound_bytes)
        );
        let _ = writeln!(
            out,
            "   {} addresses stored {} messages ({}) in {}; storage_full began at {} in all",
            t.addresses,
            t.stored_messages,
            bytes(t.attack_bytes),
            secs(t.refused_after_s),
            bytes(t.total_stored_bytes),
        );
        let _ = writeln!(
            out,
            "   {} of {} connections refused storage_full ({} stored after a refusal); {} acknowledged messages, {} rows; fill rate {}/s",
            t.refused_connections,
            t.addresses,
            t.stored_after_refusal,
            t.stored_messages,
            t.attack_rows_in_database,
            t.fill_bytes_per_s.map_or("-".into(), |r| bytes(r as u64)),
        );
        out += &honest(&t.honest);
        out
    }
}

fn quota_phase(name: &str, p: &QuotaPhase) -> String {
    let mut out = format!("   {name} ({}), {} connections:\n", p.client, p.connections);
    let _ = writeln!(
        out,
        "     stored {} messages, {} ({} B; bound {} B) before quota_exceeded, after {}; {} of {} connections refused, {} stored after; {} rows",
        p.stored_messages,
        bytes(p.stored_bytes),
        p.stored_bytes,
        p.bound_bytes,
        secs(p.refused_after_s),
        p.refused_connections,
        p.connections,
        p.stored_after_refusal,
        p.rows_in_database
    );
    out + "  " + &honest(&p.honest)
}

fn page_loads(p: &PageLoadReport) -> String {
    format!("   page loads (GET /): {} ({} failed){}\n", p.loads, p.failures, latency(p.latency.as_ref()))
}

fn honest(h: &HonestReport) -> String {
    format!(
        "   honest journeys: {} sent, {} delivered, {} burned, {} refused, {} lost{}\n",
        h.sent,
        h.delivered,
        h.burned,
        h.refused,
        h.lost,
        latency(h.journey.as_ref())
    )
}

fn latency(p: Option<&Percentiles>) -> String {
    p.map_or(String::new(), |p| format!("; p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms", p.p50_ms, p.p99_ms, p.max_ms))
}

fn spread(s: Option<&Spread>) -> String {
    s.map_or("-".into(), |s| format!("min {:.2} s, median {:.2} s, max {:.2} s", s.min, s.median, s.max))
}

fn secs(s: Option<f64>) -> String {
    s.map_or("-".into(), |s| format!("{s:.2} s"))
}

fn bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 20 => format!("{:.2} MiB", n as f64 / (1 << 20) as f64),
        n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_in_binary_units() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(32 << 20), "32.00 MiB");
    }
}
