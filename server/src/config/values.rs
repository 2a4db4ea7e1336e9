//! The parsers of settings' values: sizes, durations, address blocks, origins. Each error says
//! what was expected, never what was given (a value may be a secret).

use std::net::IpAddr;
use std::time::Duration;

/// Longest `MESSAGE_TTL` allowed: unread secrets should not linger for weeks.
pub const MAX_MESSAGE_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// Parses a size: a number of bytes, optionally followed by `KiB`, `MiB` or `GiB` (powers of
/// 1024); at least 1 KiB.
pub fn parse_size(value: &str) -> Result<u64, String> {
    let value = value.trim();
    let bad = || "expected a size such as 1048576, 512KiB, 32MiB or 1GiB".to_owned();
    let at = value.find(|c: char| !c.is_ascii_digit()).unwrap_or(value.len());
    let (digits, unit) = value.split_at(at);
    let n: u64 = digits.parse().map_err(|_| bad())?;
    let scale: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        _ => return Err(bad()),
    };
    let bytes = n.checked_mul(scale).ok_or_else(bad)?;
    if bytes < 1024 {
        return Err("must be at least 1KiB".into());
    }
    Ok(bytes)
}

pub(super) fn parse_short_timeout(value: &str) -> Result<Duration, String> {
    let timeout = parse_ttl(value)?;
    if timeout > Duration::from_secs(600) {
        return Err("must be between 1s and 10m".into());
    }
    Ok(timeout)
}

/// `MAX_FILE_SIZE`: 0 (no files), or a size from 64 KiB (one chunk) to 1 GiB, which a page
/// holds in memory whole while it opens it.
pub(super) fn parse_file_size(value: &str) -> Result<u64, String> {
    if value.trim() == "0" {
        return Ok(0);
    }
    let bytes = parse_size(value)?;
    if !(64 << 10..=1 << 30).contains(&bytes) {
        return Err("must be 0 (no files) or from 64KiB to 1GiB".into());
    }
    Ok(bytes)
}

/// `TRANSFER_BYTES_PER_SECOND`: at least one chunk a second.
pub(super) fn parse_transfer_rate(value: &str) -> Result<u64, String> {
    let bytes = parse_size(value)?;
    if bytes < 64 << 10 {
        return Err("must be at least 64KiB (a chunk a second)".into());
    }
    Ok(bytes)
}

pub(super) fn parse_padded_limit(value: &str) -> Result<usize, String> {
    let bytes: usize = value.trim().parse().map_err(|_| "expected a number of bytes".to_owned())?;
    if !(256..=16_384).contains(&bytes) || !bytes.is_multiple_of(256) {
        return Err("must be a multiple of 256 from 256 to 16384".into());
    }
    Ok(bytes)
}

pub(super) fn parse_grace(value: &str) -> Result<Duration, String> {
    let grace = parse_ttl(value)?;
    if grace > Duration::from_secs(3600) {
        return Err("must be between 1s and 1h".into());
    }
    Ok(grace)
}

pub(super) fn parse_idle_timeout(value: &str) -> Result<Duration, String> {
    let timeout = parse_ttl(value)?;
    if timeout < Duration::from_secs(2) || timeout > Duration::from_secs(3600) {
        return Err("must be between 2s and 1h".into());
    }
    Ok(timeout)
}

/// An address block: an IP address and a prefix length (a bare address is a /32 or /128).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    /// Whether `ip` lies in this block (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => prefix_eq(&net.octets(), &ip.octets(), self.prefix),
            (IpAddr::V6(net), IpAddr::V6(ip)) => prefix_eq(&net.octets(), &ip.octets(), self.prefix),
            _ => false,
        }
    }
}

fn prefix_eq(a: &[u8], b: &[u8], prefix: u8) -> bool {
    let (bytes, bits) = (usize::from(prefix / 8), prefix % 8);
    a[..bytes] == b[..bytes] && (bits == 0 || (a[bytes] ^ b[bytes]) >> (8 - bits) == 0)
}

impl IpNet {
    /// Parses `ADDR` or `ADDR/PREFIX`, panicking on bad input: for tests.
    #[cfg(test)]
    pub(crate) fn parse(value: &str) -> Self {
        parse_ip_net(value).expect("a valid address block")
    }
}

pub(super) fn parse_ip_net(value: &str) -> Result<IpNet, String> {
    let bad = || format!("expected an IP address or CIDR block, got {value:?}");
    let (addr, prefix) = match value.trim().split_once('/') {
        Some((addr, prefix)) => (addr, Some(prefix)),
        None => (value.trim(), None),
    };
    let addr: IpAddr = addr.parse().map_err(|_| bad())?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let prefix = match prefix {
        Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(bad)?,
        None => max,
    };
    Ok(IpNet { addr, prefix })
}

pub(super) fn parse_public_url(value: &str) -> Result<String, String> {
    let value = value.trim().trim_end_matches('/');
    let rest = value.strip_prefix("https://").or_else(|| value.strip_prefix("http://"));
    match rest {
        Some(host) if !host.is_empty() && !host.contains('/') => Ok(value.to_owned()),
        _ => Err("expected an origin such as https://chat.example (no path)".into()),
    }
}

/// Parses `N` followed by `s`, `m`, `h` or `d`; a bare number is seconds.
pub fn parse_ttl(value: &str) -> Result<Duration, String> {
    let value = value.trim();
    let (digits, unit) = match value.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => value.split_at(at),
        None => (value, "s"),
    };
    let n: u64 = digits.parse().map_err(|_| "expected a duration such as 90s, 30m, 24h or 7d".to_owned())?;
    let secs = match unit {
        "s" => Some(n),
        "m" => n.checked_mul(60),
        "h" => n.checked_mul(3600),
        "d" => n.checked_mul(86_400),
        _ => None,
    }
    .ok_or_else(|| "expected a duration such as 90s, 30m, 24h or 7d".to_owned())?;
    let ttl = Duration::from_secs(secs);
    if ttl.is_zero() || ttl > MAX_MESSAGE_TTL {
        return Err("must be between 1s and 7d".into());
    }
    Ok(ttl)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_blocks_match_their_prefix() {
        let net = parse_ip_net("10.1.0.0/16").unwrap();
        assert!(net.contains("10.1.200.3".parse().unwrap()));
        assert!(!net.contains("10.2.0.1".parse().unwrap()));
        assert!(net.contains("::ffff:10.1.0.9".parse().unwrap()));
        let one = parse_ip_net("127.0.0.1").unwrap();
        assert!(one.contains("127.0.0.1".parse().unwrap()) && !one.contains("127.0.0.2".parse().unwrap()));
        assert!(parse_ip_net("fd00::/8").unwrap().contains("fd12::1".parse().unwrap()));
        assert!(parse_ip_net("10.0.0.0/33").is_err());
        assert!(parse_ip_net("proxy.internal").is_err());
    }

    #[test]
    fn message_size_limits_are_whole_padding_blocks_within_the_spec() {
        assert_eq!(parse_padded_limit("512"), Ok(512));
        assert!(parse_padded_limit("300").is_err());
        assert!(parse_padded_limit("0").is_err());
        assert!(parse_padded_limit("16640").is_err());
    }

    #[test]
    fn sizes_take_binary_suffixes() {
        assert_eq!(parse_size("1048576"), Ok(1 << 20));
        assert_eq!(parse_size("512KiB"), Ok(512 << 10));
        assert_eq!(parse_size("32MiB"), Ok(32 << 20));
        assert_eq!(parse_size(" 1GiB "), Ok(1 << 30));
        assert!(parse_size("1GB").is_err(), "decimal units are not guessed at");
        assert!(parse_size("12").is_err(), "below 1 KiB");
        assert!(parse_size("MiB").is_err());
        assert!(parse_size("99999999999GiB").is_err(), "overflow");
    }

    #[test]
    fn public_urls_are_origins() {
        assert_eq!(parse_public_url("https://chat.example/").unwrap(), "https://chat.example");
        assert!(parse_public_url("chat.example").is_err());
        assert!(parse_public_url("https://chat.example/app").is_err());
    }

    #[test]
    fn ttls_parse_with_units_and_are_bounded() {
        assert_eq!(parse_ttl("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_ttl("24h"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_ttl("7d"), Ok(MAX_MESSAGE_TTL));
        assert!(parse_ttl("8d").is_err());
        assert!(parse_ttl("0").is_err());
        assert!(parse_ttl("1w").is_err());
        assert!(parse_ttl("").is_err());
    }
}
