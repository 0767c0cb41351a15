//! CIDR ranges (`envoy.config.core.v3.CidrRange`), normalized as A36 asks so
//! equal ranges compare equal.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use envoy_types::pb::envoy::config::core::v3 as core;

use crate::resource::FieldError;

/// An IP prefix: the address with its host bits cleared, and the prefix
/// length (at most 32 for IPv4, 128 for IPv6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CidrRange {
    /// The network address (host bits zero).
    pub addr: IpAddr,
    /// The prefix length.
    pub prefix_len: u8,
}

impl CidrRange {
    /// A range, normalized: `prefix_len` clamped to the family's width, host
    /// bits cleared, IPv4-mapped IPv6 addresses turned into IPv4.
    pub fn new(addr: IpAddr, prefix_len: u32) -> Self {
        let addr = addr.to_canonical();
        let (addr, prefix_len) = match addr {
            IpAddr::V4(a) => {
                let len = prefix_len.min(32);
                let mask = u32::MAX.checked_shl(32 - len).unwrap_or(0);
                (IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask)), len)
            }
            IpAddr::V6(a) => {
                let len = prefix_len.min(128);
                let mask = u128::MAX.checked_shl(128 - len).unwrap_or(0);
                (IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask)), len)
            }
        };
        CidrRange {
            addr,
            prefix_len: prefix_len as u8,
        }
    }

    /// Validates a wire range found at `field`: the address must be an IP
    /// literal; an absent `prefix_len` means 0, and a too-long one is clamped
    /// (A36's normalization).
    pub fn from_wire(c: &core::CidrRange, field: &str) -> Result<Self, FieldError> {
        let addr: IpAddr = c.address_prefix.parse().map_err(|_| {
            FieldError::new(
                format!("{field}.address_prefix"),
                format!("\"{}\" is not an IP address", c.address_prefix),
            )
        })?;
        Ok(Self::new(addr, c.prefix_len.map_or(0, |v| v.value)))
    }

    /// Whether `ip` lies in the range (same family only; IPv4-mapped IPv6
    /// addresses count as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix_len))
                    .unwrap_or(0);
                u32::from(ip) & mask == u32::from(net)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix_len))
                    .unwrap_or(0);
                u128::from(ip) & mask == u128::from(net)
            }
            _ => false,
        }
    }
}

impl fmt::Display for CidrRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix_len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::google::protobuf::UInt32Value;

    fn wire(a: &str, len: Option<u32>) -> core::CidrRange {
        core::CidrRange {
            address_prefix: a.into(),
            prefix_len: len.map(|value| UInt32Value { value }),
        }
    }

    #[test]
    fn normalizes_host_bits_and_lengths() {
        let c = CidrRange::from_wire(&wire("10.1.2.3", Some(16)), "c").unwrap();
        assert_eq!(c.to_string(), "10.1.0.0/16");
        assert_eq!(
            c,
            CidrRange::from_wire(&wire("10.1.0.0", Some(16)), "c").unwrap()
        );
        let c = CidrRange::from_wire(&wire("10.1.2.3", Some(40)), "c").unwrap();
        assert_eq!(c.to_string(), "10.1.2.3/32");
        let c = CidrRange::from_wire(&wire("10.1.2.3", None), "c").unwrap();
        assert_eq!(c.to_string(), "0.0.0.0/0");
        let c = CidrRange::from_wire(&wire("fd00::1", Some(200)), "c").unwrap();
        assert_eq!(c.prefix_len, 128);
    }

    #[test]
    fn contains_by_family() {
        let c = CidrRange::from_wire(&wire("192.168.0.0", Some(24)), "c").unwrap();
        assert!(c.contains("192.168.0.77".parse().unwrap()));
        assert!(c.contains("::ffff:192.168.0.77".parse().unwrap()));
        assert!(!c.contains("192.168.1.1".parse().unwrap()));
        let any4 = CidrRange::from_wire(&wire("0.0.0.0", Some(0)), "c").unwrap();
        assert!(any4.contains("8.8.8.8".parse().unwrap()));
        assert!(
            !any4.contains("::1".parse().unwrap()),
            "/0 still matches a family"
        );
    }

    #[test]
    fn bad_address_rejected() {
        let e =
            CidrRange::from_wire(&wire("example.com", Some(8)), "prefix_ranges[0]").unwrap_err();
        assert_eq!(e.field, "prefix_ranges[0].address_prefix");
    }
}
