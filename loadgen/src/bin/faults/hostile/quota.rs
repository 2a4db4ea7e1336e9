//! Per-address quota (`MAX_STORED_BYTES_PER_ADDRESS`): rooms with nobody to read filled from one
//! plain address (127.0.0.2: not the proxy, so its own), then from fifty addresses of one IPv6
//! /64, each on its own connection through the trusted proxy (127.0.0.1 sending
//! `X-Forwarded-For`). Each must stop at `quota_exceeded` having stored no more than the quota
//! (the /64 together: the quota and one message), and every connection must be refused in the
//! end. The honest pages (127.0.0.1 without a forwarded address) are another client.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::time::Duration;

use app::crypto::RoomKeys;
use app::protocol::ErrorCode;
use serde::Serialize;

use super::attacker::{Via, BIG_SEALED_BYTES};
use super::flood::{flood, stored, FloodPlan, PER_CONNECTION};
use super::honest::{Honest, HonestReport};
use super::{HostileError, Sizes, Target};

/// The plain attacker's address: on loopback, and not the trusted proxy.
const PLAIN_ADDRESS: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

/// One client's fill, as the database shows it.
#[derive(Debug, Clone, Serialize)]
pub struct QuotaPhase {
    pub client: String,
    pub connections: usize,
    pub stored_messages: u64,
    /// What the relay stored for it (the stored records' lengths) when it was refused.
    pub stored_bytes: u64,
    pub rows_in_database: u64,
    /// One 16 KiB message as stored.
    pub message_bytes: u64,
    /// It may store no more than this.
    pub bound_bytes: u64,
    pub refused_connections: usize,
    pub refused_after_s: Option<f64>,
    /// Messages stored after quota_exceeded, on a connection already refused: must be 0.
    pub stored_after_refusal: u64,
    /// Whether it stored so far past the bound that the attack was stopped.
    pub hit_ceiling: bool,
    pub unexpected: std::collections::BTreeMap<String, usize>,
    pub honest: HonestReport,
}

#[derive(Debug, Clone, Serialize)]
pub struct QuotaReport {
    pub per_address_quota: u64,
    pub single_address: QuotaPhase,
    pub one_ipv6_64: QuotaPhase,
}

impl QuotaReport {
    pub fn problems(&self) -> Vec<String> {
        let mut problems = self.single_address.problems("quota (one address)", self.per_address_quota);
        problems.extend(self.one_ipv6_64.problems("quota (one /64)", self.per_address_quota));
        problems
    }
}

impl QuotaPhase {
    fn problems(&self, attack: &str, quota: u64) -> Vec<String> {
        let mut problems = Vec::new();
        if self.stored_bytes > self.bound_bytes {
            problems.push(format!(
                "{attack}: {} stored {} bytes, past its bound of {} bytes",
                self.client, self.stored_bytes, self.bound_bytes
            ));
        }
        if self.stored_bytes + self.message_bytes <= quota {
            problems.push(format!(
                "{attack}: refused after {} bytes, before the quota of {quota} bytes was reached",
                self.stored_bytes
            ));
        }
        if self.stored_after_refusal > 0 {
            problems.push(format!("{attack}: {} messages were stored after quota_exceeded", self.stored_after_refusal));
        }
        if self.refused_connections != self.connections && !self.hit_ceiling {
            problems.push(format!(
                "{attack}: {} of its {} connections were refused with quota_exceeded",
                self.refused_connections, self.connections
            ));
        }
        if self.rows_in_database != self.stored_messages {
            problems.push(format!(
                "{attack}: {} messages acknowledged, {} in the database",
                self.stored_messages, self.rows_in_database
            ));
        }
        if !self.unexpected.is_empty() {
            problems.push(format!("{attack}: unexpected refusals or failures: {:?}", self.unexpected));
        }
        problems.extend(self.honest.problems(attack, None));
        problems
    }
}

pub async fn run(server_bin: &Path, sizes: &Sizes, rooms: &[RoomKeys]) -> Result<QuotaReport, HostileError> {
    let quota = sizes.per_address_quota;
    let target = Target::start(
        server_bin,
        &[("MAX_STORED_BYTES_PER_ADDRESS", quota.to_string()), ("TRUSTED_PROXIES", "127.0.0.1".into())],
    )
    .await?;
    // Enough connections to try twice the quota, each within its room's backlog.
    let connections = (2 * quota).div_ceil(PER_CONNECTION * BIG_SEALED_BYTES).max(4) as usize;
    let plain = Via { bind: Some(PLAIN_ADDRESS.into()), ..Via::default() };
    let single =
        fill(&target, sizes, rooms, format!("{PLAIN_ADDRESS}, no proxy"), vec![plain; connections], false).await?;

    let block: Vec<Via> =
        (1..=sizes.block_addresses).map(|n| Via { forwarded_for: Some(block_address(n)), ..Via::default() }).collect();
    let client = format!("2001:db8:1:2::1 to ::{:x} via the trusted proxy", sizes.block_addresses);
    let block = fill(&target, sizes, rooms, client, block, true).await?;
    drop(target);
    Ok(QuotaReport { per_address_quota: quota, single_address: single, one_ipv6_64: block })
}

/// Address `n` of the documentation /64 `2001:db8:1:2::/64`.
fn block_address(n: usize) -> IpAddr {
    Ipv6Addr::new(0x2001, 0xdb8, 1, 2, 0, 0, 0, n as u16).into()
}

/// Fills from `vias` until each connection gets `quota_exceeded`, with honest journeys alongside;
/// the bound is the quota, and one message more if `one_more` (connections racing for the last
/// bytes of a block).
async fn fill(
    target: &Target,
    sizes: &Sizes,
    rooms: &[RoomKeys],
    client: String,
    vias: Vec<Via>,
    one_more: bool,
) -> Result<QuotaPhase, HostileError> {
    let quota = sizes.per_address_quota;
    let honest = Honest::start(rooms, &target.server.ws_url(), sizes.honest_interval).await;
    let connections = vias.len();
    let plan = FloodPlan {
        port: target.port(),
        vias,
        until: ErrorCode::QuotaExceeded,
        // Past this the bound is broken however the bytes are counted: no need to go on.
        ceiling: quota + 3 * BIG_SEALED_BYTES,
        hold: sizes.attack_hold,
    };
    let mut flood = flood(&plan).await?;
    let counted = stored(&target.db, Some(&flood.rooms)).await?;
    flood.close().await;
    let honest = honest.finish().await;
    Ok(QuotaPhase {
        client,
        connections,
        stored_messages: flood.stored_messages,
        stored_bytes: counted.bytes,
        rows_in_database: counted.rows,
        message_bytes: counted.largest,
        bound_bytes: quota + if one_more { counted.largest } else { 0 },
        refused_connections: flood.refused_connections,
        refused_after_s: flood.refused_after.as_ref().map(Duration::as_secs_f64),
        stored_after_refusal: flood.stored_after_refusal,
        hit_ceiling: flood.hit_ceiling,
        unexpected: flood.unexpected,
        honest,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn phase(stored_messages: u64, bound_bytes: u64) -> QuotaPhase {
        let honest = HonestReport::one_clean_journey();
        QuotaPhase {
            client: "x".into(),
            connections: 2,
            stored_messages,
            stored_bytes: stored_messages * 1000,
            rows_in_database: stored_messages,
            message_bytes: 1000,
            bound_bytes,
            refused_connections: 2,
            refused_after_s: Some(0.1),
            stored_after_refusal: 0,
            hit_ceiling: false,
            unexpected: Default::default(),
            honest,
        }
    }

    #[test]
    fn a_client_past_its_bound_or_refused_short_of_its_quota_is_a_problem() {
        assert!(phase(10, 10_000).problems("q", 10_000).is_empty());
        assert!(phase(10, 10_500).problems("q", 10_500).is_empty(), "within a message of the quota");
        assert_eq!(phase(11, 10_000).problems("q", 10_000).len(), 1, "past the bound");
        assert_eq!(phase(5, 10_000).problems("q", 10_000).len(), 1, "refused at half the quota");
        let unrefused = QuotaPhase { refused_connections: 1, ..phase(10, 10_000) };
        assert_eq!(unrefused.problems("q", 10_000).len(), 1);
        let gone = QuotaPhase { rows_in_database: 9, ..phase(10, 10_000) };
        assert_eq!(gone.problems("q", 10_000).len(), 1);
    }
}
