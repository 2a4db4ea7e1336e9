//! A client as the per-address limits count it. Addresses live only in memory, in the limits'
//! maps, and are never logged or stored.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};

/// The block of addresses one client is taken to hold: an IPv4 address (an IPv4-mapped IPv6
/// address counts as the IPv4 address it carries), or an IPv6 address cut to its first
/// `IPV6_PREFIX` bits, since one home line is given a whole /64 and could otherwise take a new
/// address for every connection.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientBlock(IpAddr);

impl ClientBlock {
    /// The block `ip` belongs to, with IPv6 addresses cut to `ipv6_prefix` bits (at most 128).
    pub fn of(ip: IpAddr, ipv6_prefix: u8) -> Self {
        match ip {
            IpAddr::V4(v4) => Self(IpAddr::V4(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Self(IpAddr::V4(v4)),
                None => {
                    let bits = u32::from(ipv6_prefix.min(128));
                    let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
                    Self(IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask)))
                }
            },
        }
    }
}

impl fmt::Debug for ClientBlock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClientBlock(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(ip: &str, prefix: u8) -> ClientBlock {
        ClientBlock::of(ip.parse().unwrap(), prefix)
    }

    #[test]
    fn addresses_of_one_ipv6_block_are_one_client() {
        assert_eq!(block("2001:db8:1:2::1", 64), block("2001:db8:1:2:ffff:1:2:3", 64));
        assert_ne!(block("2001:db8:1:2::1", 64), block("2001:db8:1:3::1", 64));
        assert_eq!(block("2001:db8:1:2::1", 48), block("2001:db8:1:ff::1", 48));
        assert_ne!(block("2001:db8::1", 128), block("2001:db8::2", 128));
        assert_eq!(block("2001:db8::1", 0), block("fe80::1", 0), "a zero prefix is one block");
    }

    #[test]
    fn ipv4_addresses_count_whole_and_mapped_ones_as_ipv4() {
        assert_eq!(block("::ffff:203.0.113.7", 64), block("203.0.113.7", 64));
        assert_ne!(block("203.0.113.7", 64), block("203.0.113.8", 64));
    }

    #[test]
    fn a_block_never_shows_its_address() {
        assert_eq!(format!("{:?}", block("203.0.113.7", 64)), "ClientBlock(<redacted>)");
    }
}
