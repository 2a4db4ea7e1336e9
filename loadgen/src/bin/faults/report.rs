//! What became of a fault or soak run's messages, and what must hold of it for the run to be
//! clean.

use std::collections::BTreeMap;

use serde::Serialize;

/// What one backend's run went through and what became of its messages.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FaultReport {
    pub backend: String,
    pub instances: usize,
    pub rooms: usize,
    pub server_kills: usize,
    pub postgres_restarts: usize,
    pub listen_cuts: usize,
    /// Restarts of the run's own nats-server (the NATS bus).
    pub nats_restarts: usize,
    /// The relays' NATS connections cut through the run's proxy (counted per connection).
    pub bus_cuts: usize,
    /// Times a receiver dropped its connection and came back on the next instance.
    pub hops: usize,
    /// Messages a receiver's connection should have heard of (joined, and the message
    /// acknowledged, for 2 s before that connection was dropped) and did not: it learnt of them
    /// on a later one. Must be 0.
    pub missed_notices: usize,
    /// NATS: messages the relays held for their fetches as other instances' notices carried
    /// them (the counts of the instances alive at the end). A NATS run with none proved nothing
    /// of them, and says so in `not_happened`.
    pub carried_held: u64,
    /// Faults the run meant to cause and could not (each a problem: the run proved nothing of it).
    pub not_happened: Vec<String>,
    /// Distinct messages the senders sent.
    pub sent: usize,
    /// Of those, how many the server acknowledged (`sent`).
    pub acknowledged: usize,
    /// Distinct messages their receiver opened.
    pub delivered: usize,
    /// Delivered and burned (the receiver got `deleted`).
    pub burned: usize,
    /// Sent and never delivered.
    pub lost: usize,
    /// Opened again after its burn was confirmed, though acknowledged before that: a message
    /// that came back from the dead. Must be 0.
    pub duplicates: usize,
    /// Opened again after its burn because the sender never saw its acknowledgement (the
    /// server died between storing and answering) and so sent it again: the page's resend, as
    /// designed. The receiver's page shows it once (by id), and burns the copy.
    pub resent_after_burn: usize,
    /// Handed out again before its burn was confirmed (a crash between fetch and viewed).
    pub refetched: usize,
    pub open_failures: usize,
    pub reconnects: usize,
    pub errors: BTreeMap<String, usize>,
    /// Rows in `messages` and `recipients` once the run is over.
    pub rows_left: i64,
    pub recipient_rows_left: i64,
    /// Files and outputs in which a plaintext was found: must be empty.
    pub plaintext_found_in: Vec<String>,
}

impl FaultReport {
    /// Everything this run must show, as sentences; empty when the run is clean.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let name = &self.backend;
        if self.sent == 0 {
            problems.push(format!("{name}: no message was sent"));
        }
        if self.lost > 0 || self.delivered != self.sent || self.burned != self.sent {
            problems.push(format!(
                "{name}: {} sent, {} delivered, {} burned, {} lost",
                self.sent, self.delivered, self.burned, self.lost
            ));
        }
        if self.duplicates > 0 {
            problems.push(format!("{name}: {} messages were opened again after their burn", self.duplicates));
        }
        if self.open_failures > 0 {
            problems.push(format!("{name}: {} payloads did not open", self.open_failures));
        }
        if self.rows_left != 0 || self.recipient_rows_left != 0 {
            problems.push(format!(
                "{name}: {} message rows and {} recipient rows left behind",
                self.rows_left, self.recipient_rows_left
            ));
        }
        if self.instances > 1 && self.listen_cuts < self.postgres_restarts {
            problems.push(format!("{name}: no LISTEN connection was found to cut: that fault did not happen"));
        }
        for fault in &self.not_happened {
            problems.push(format!("{name}: {fault}: that fault did not happen"));
        }
        if self.missed_notices > 0 {
            problems.push(format!(
                "{name}: {} message notices were missed by receivers moving between instances",
                self.missed_notices
            ));
        }
        for place in &self.plaintext_found_in {
            problems.push(format!("{name}: a plaintext was found in {place}"));
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_that_lost_duplicated_or_left_rows_is_not_clean() {
        let clean = FaultReport {
            backend: "x".into(),
            sent: 3,
            acknowledged: 3,
            delivered: 3,
            burned: 3,
            ..Default::default()
        };
        assert!(clean.problems().is_empty());
        for broken in [
            FaultReport { lost: 1, delivered: 2, ..clean.clone() },
            FaultReport { duplicates: 1, ..clean.clone() },
            FaultReport { rows_left: 1, ..clean.clone() },
            FaultReport { recipient_rows_left: 1, ..clean.clone() },
            FaultReport { missed_notices: 1, ..clean.clone() },
            FaultReport { not_happened: vec!["no cut".into()], ..clean.clone() },
            FaultReport { plaintext_found_in: vec!["a file".into()], ..clean.clone() },
            FaultReport { sent: 0, acknowledged: 0, delivered: 0, burned: 0, ..clean.clone() },
        ] {
            assert!(!broken.problems().is_empty(), "{broken:?}");
        }
    }
}
