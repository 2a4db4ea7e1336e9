//! The relay's total (`MAX_STORED_BYTES`): many addresses (distinct IPv4 addresses through the
//! trusted proxy, each under its own quota) fill rooms with nobody to read until `storage_full`.
//! What the database holds then must be within the maximum and one instance's step (the most
//! an instance reserves between two counts), and nothing acknowledged may be gone. Honest sends
//! may be refused `storage_full` once the relay is full (the relay is full for everyone), but
//! every honest message stored must still be delivered and burned.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::time::Duration;

use app::crypto::RoomKeys;
use app::protocol::ErrorCode;
use serde::Serialize;

use super::attacker::{Via, BIG_SEALED_BYTES};
use super::flood::{flood, stored, FloodPlan, PER_CONNECTION};
use super::honest::{Honest, HonestReport};
use super::{HostileError, Sizes, Target};

/// The relay's step, as it documents it: a 64th of the maximum, within 64 KiB and 16 MiB.
fn step(max: u64) -> u64 {
    (max / 64).clamp(64 << 10, 16 << 20)
}

/// Server instances in this run: the overshoot the bound allows is one step each.
const INSTANCES: u64 = 1;

#[derive(Debug, Clone, Serialize)]
pub struct StorageReport {
    pub max_stored_bytes: u64,
    pub step_bytes: u64,
    pub instances: u64,
    /// What the database may hold at most: the maximum and a step per instance.
    pub bound_bytes: u64,
    pub addresses: usize,
    pub stored_messages: u64,
    /// What the database held (every stored record's length, honest messages included) once
    /// `storage_full` began.
    pub total_stored_bytes: u64,
    /// Of which the attack's.
    pub attack_bytes: u64,
    pub attack_rows_in_database: u64,
    pub refused_after_s: Option<f64>,
    /// Bytes a second the attack stored until then.
    pub fill_bytes_per_s: Option<f64>,
    pub refused_connections: usize,
    /// Messages stored by connections already refused (the relay counts again a second after it
    /// found itself full, and burned honest messages free a little).
    pub stored_after_refusal: u64,
    /// Whether it stored so far past the bound that the attack was stopped.
    pub hit_ceiling: bool,
    pub unexpected: std::collections::BTreeMap<String, usize>,
    pub honest: HonestReport,
}

impl StorageReport {
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.total_stored_bytes > self.bound_bytes {
            problems.push(format!(
                "storage: {} bytes stored when storage_full began, past MAX_STORED_BYTES {} + {} × step {}",
                self.total_stored_bytes, self.max_stored_bytes, self.instances, self.step_bytes
            ));
        }
        if self.total_stored_bytes + self.step_bytes < self.max_stored_bytes {
            problems.push(format!(
                "storage: storage_full began at {} bytes, more than a step short of MAX_STORED_BYTES {}",
                self.total_stored_bytes, self.max_stored_bytes
            ));
        }
        if self.refused_connections != self.addresses && !self.hit_ceiling {
            problems.push(format!(
                "storage: {} of {} connections were refused with storage_full",
                self.refused_connections, self.addresses
            ));
        }
        if self.attack_rows_in_database != self.stored_messages {
            problems.push(format!(
                "storage: {} messages acknowledged, {} in the database: something stored was touched",
                self.stored_messages, self.attack_rows_in_database
            ));
        }
        if !self.unexpected.is_empty() {
            problems.push(format!("storage: unexpected refusals or failures: {:?}", self.unexpected));
        }
        problems.extend(self.honest.problems("storage", Some(ErrorCode::StorageFull)));
        problems
    }
}

/// Address `n` of the documentation networks 203.0.113.0/24 and 198.51.100.0/24.
fn address(n: usize) -> IpAddr {
    let (net, host) = if n < 254 { ([203, 0, 113], n + 1) } else { ([198, 51, 100], n - 253) };
    Ipv4Addr::new(net[0], net[1], net[2], host as u8).into()
}

pub async fn run(server_bin: &Path, sizes: &Sizes, rooms: &[RoomKeys]) -> Result<StorageReport, HostileError> {
    let max = sizes.max_stored_bytes;
    // The per-address quota is the default, 32 MiB: each address stays well under it.
    let target = Target::start(
        server_bin,
        &[
            ("MAX_STORED_BYTES", max.to_string()),
            ("MAX_STORED_BYTES_PER_ADDRESS", "32MiB".into()),
            ("TRUSTED_PROXIES", "127.0.0.1".into()),
        ],
    )
    .await?;
    // Enough addresses to try twice the maximum, each within its room's backlog.
    let addresses = (2 * max).div_ceil(PER_CONNECTION * BIG_SEALED_BYTES).max(16) as usize;
    if addresses > 2 * 254 {
        return Err(HostileError::Setup(format!("{addresses} addresses needed; the documentation networks have 508")));
    }
    let vias = (0..addresses).map(|n| Via { forwarded_for: Some(address(n)), ..Via::default() }).collect();
    let honest = Honest::start(rooms, &target.server.ws_url(), sizes.honest_interval).await;
    let bound = max + INSTANCES * step(max);
    let plan = FloodPlan {
        port: target.port(),
        vias,
        until: ErrorCode::StorageFull,
        // Well past what messages in flight could add: the bound is broken, whatever it was.
        ceiling: bound + 2 * addresses as u64 * BIG_SEALED_BYTES,
        hold: sizes.attack_hold,
    };
    let mut flood = flood(&plan).await?;
    let total = stored(&target.db, None).await?;
    let attack = stored(&target.db, Some(&flood.rooms)).await?;
    flood.close().await;
    let honest = honest.finish().await;
    drop(target);
    Ok(StorageReport {
        max_stored_bytes: max,
        step_bytes: step(max),
        instances: INSTANCES,
        bound_bytes: bound,
        addresses,
        stored_messages: flood.stored_messages,
        total_stored_bytes: total.bytes,
        attack_bytes: attack.bytes,
        attack_rows_in_database: attack.rows,
        refused_after_s: flood.refused_after.as_ref().map(Duration::as_secs_f64),
        fill_bytes_per_s: flood.refused_after.map(|after| attack.bytes as f64 / after.as_secs_f64()),
        refused_connections: flood.refused_connections,
        stored_after_refusal: flood.stored_after_refusal,
        hit_ceiling: flood.hit_ceiling,
        unexpected: flood.unexpected,
        honest,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_step_is_a_64th_within_its_clamps() {
        assert_eq!(step(4 << 20), 64 << 10);
        assert_eq!(step(64 << 20), 1 << 20);
        assert_eq!(step(1 << 30), 16 << 20);
        assert_eq!(step(1 << 40), 16 << 20);
    }

    #[test]
    fn attack_addresses_are_distinct_documentation_addresses() {
        let all: std::collections::HashSet<IpAddr> = (0..508).map(address).collect();
        assert_eq!(all.len(), 508);
        assert_eq!(address(0), IpAddr::from([203, 0, 113, 1]));
        assert_eq!(address(254), IpAddr::from([198, 51, 100, 1]));
    }
}
