//! Filter chain selection for a new server connection (A36, following
//! Envoy's `FilterChainMatch` order).
//!
//! Criteria are applied one after another; at each step only the chains with
//! the most specific match survive, and a chain that does not match at all
//! drops out. Steps: destination prefix (longest containing prefix; a chain
//! without prefixes is the least specific), direct source prefix, source type
//! (an exact type beats `Any`), source prefix, source port (a listed port
//! beats none). Chains that A36 says never match are skipped. The survivor is
//! unique, since overlapping matches are NACKed; without one, the default
//! chain applies. Selection walks the chains once per step and never
//! allocates.

use std::net::{IpAddr, SocketAddr};

use super::{CidrRange, FilterChain, FilterChainMatch, ServerListener, SourceType};

/// How well a prefix list matches `ip`: `None` when it excludes it, -1 for
/// an empty list (matches anything, least specific), else the longest
/// containing prefix.
fn prefix_score(ranges: &[CidrRange], ip: IpAddr) -> Option<i16> {
    if ranges.is_empty() {
        return Some(-1);
    }
    ranges
        .iter()
        .filter(|r| r.contains(ip))
        .map(|r| i16::from(r.prefix_len))
        .max()
}

/// The steps, in order; each scores a match for the connection.
const STEPS: usize = 5;

fn score(m: &FilterChainMatch, step: usize, dest: SocketAddr, src: SocketAddr) -> Option<i16> {
    match step {
        0 => prefix_score(&m.prefix_ranges, dest.ip()),
        1 => prefix_score(&m.direct_source_prefix_ranges, src.ip()),
        2 => match m.source_type {
            SourceType::Any => Some(0),
            t if t == SourceType::of(dest.ip().to_canonical(), src.ip().to_canonical()) => Some(1),
            _ => None,
        },
        3 => prefix_score(&m.source_prefix_ranges, src.ip()),
        _ => {
            if m.source_ports.is_empty() {
                Some(0)
            } else if m.source_ports.contains(&src.port()) {
                Some(1)
            } else {
                None
            }
        }
    }
}

impl ServerListener {
    /// The chain for a connection from `src` to local address `dest`: the
    /// most specific matching chain, else the default chain, else `None`
    /// (close the connection without sending anything).
    pub fn select_chain(&self, dest: SocketAddr, src: SocketAddr) -> Option<&FilterChain> {
        self.select_from_chains(dest, src)
            .or(self.default_filter_chain.as_ref())
    }

    fn select_from_chains(&self, dest: SocketAddr, src: SocketAddr) -> Option<&FilterChain> {
        let mut best = [0i16; STEPS];
        // A chain survives step `n` if it scored the best at every step
        // before `n`.
        let survives = |c: &FilterChain, best: &[i16; STEPS], upto: usize| {
            (0..upto).all(|s| score(&c.filter_chain_match, s, dest, src) == Some(best[s]))
        };
        for step in 0..STEPS {
            best[step] = self
                .filter_chains
                .iter()
                .filter(|c| c.filter_chain_match.can_match() && survives(c, &best, step))
                .filter_map(|c| score(&c.filter_chain_match, step, dest, src))
                .max()?;
        }
        self.filter_chains
            .iter()
            .find(|c| c.filter_chain_match.can_match() && survives(c, &best, STEPS))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::listener::{HttpConnectionManager, RouteSource};

    fn chain(name: &str, m: FilterChainMatch) -> FilterChain {
        FilterChain {
            name: name.into(),
            filter_chain_match: m,
            tls: None,
            hcm: HttpConnectionManager {
                route: RouteSource::Rds(name.into()),
                http_filters: vec![],
                max_stream_duration: None,
            },
        }
    }

    fn cidr(s: &str) -> CidrRange {
        let (a, l) = s.split_once('/').unwrap();
        CidrRange::new(a.parse().unwrap(), l.parse().unwrap())
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn pick<'a>(l: &'a ServerListener, dest: &str, src: &str) -> Option<&'a str> {
        l.select_chain(addr(dest), addr(src))
            .map(|c| c.name.as_str())
    }

    #[test]
    fn most_specific_destination_prefix_wins() {
        let l = ServerListener {
            address: None,
            filter_chains: vec![
                chain("none", FilterChainMatch::default()),
                chain(
                    "wide",
                    FilterChainMatch {
                        prefix_ranges: vec![cidr("10.0.0.0/8")],
                        ..Default::default()
                    },
                ),
                chain(
                    "narrow",
                    FilterChainMatch {
                        prefix_ranges: vec![cidr("10.1.0.0/16"), cidr("192.168.0.0/16")],
                        ..Default::default()
                    },
                ),
                chain(
                    "zero",
                    FilterChainMatch {
                        prefix_ranges: vec![cidr("0.0.0.0/0")],
                        ..Default::default()
                    },
                ),
            ],
            default_filter_chain: None,
        };
        assert_eq!(pick(&l, "10.1.2.3:80", "1.2.3.4:5"), Some("narrow"));
        assert_eq!(pick(&l, "10.2.2.3:80", "1.2.3.4:5"), Some("wide"));
        assert_eq!(
            pick(&l, "8.8.8.8:80", "1.2.3.4:5"),
            Some("zero"),
            "/0 beats no prefix"
        );
        assert_eq!(
            pick(&l, "[fd00::1]:80", "[fd00::2]:5"),
            Some("none"),
            "/0 is IPv4 only"
        );
    }

    #[test]
    fn source_type_then_source_prefix_then_port() {
        let l = ServerListener {
            address: None,
            filter_chains: vec![
                chain("any", FilterChainMatch::default()),
                chain(
                    "local",
                    FilterChainMatch {
                        source_type: SourceType::SameIpOrLoopback,
                        ..Default::default()
                    },
                ),
                chain(
                    "external-10",
                    FilterChainMatch {
                        source_type: SourceType::External,
                        source_prefix_ranges: vec![cidr("10.0.0.0/8")],
                        ..Default::default()
                    },
                ),
                chain(
                    "external-10-port",
                    FilterChainMatch {
                        source_type: SourceType::External,
                        source_prefix_ranges: vec![cidr("10.0.0.0/8")],
                        source_ports: vec![4000],
                        ..Default::default()
                    },
                ),
            ],
            default_filter_chain: None,
        };
        assert_eq!(pick(&l, "10.0.0.1:80", "127.0.0.1:9"), Some("local"));
        assert_eq!(
            pick(&l, "10.0.0.1:80", "10.0.0.1:9"),
            Some("local"),
            "same IP"
        );
        assert_eq!(pick(&l, "10.0.0.1:80", "10.9.9.9:9"), Some("external-10"));
        assert_eq!(
            pick(&l, "10.0.0.1:80", "10.9.9.9:4000"),
            Some("external-10-port")
        );
        // External but outside 10/8: the External chains win the source-type
        // step, then both drop out at the source-prefix step; no fallback to
        // "any" (Envoy and gRPC behave the same), so no chain.
        assert_eq!(pick(&l, "10.0.0.1:80", "192.168.1.1:9"), None);
    }

    #[test]
    fn never_matching_chains_are_skipped_and_default_applies() {
        let mut l = ServerListener {
            address: None,
            filter_chains: vec![
                chain(
                    "port",
                    FilterChainMatch {
                        destination_port: Some(80),
                        ..Default::default()
                    },
                ),
                chain(
                    "sni",
                    FilterChainMatch {
                        server_names: vec!["a.example".into()],
                        ..Default::default()
                    },
                ),
                chain(
                    "tls",
                    FilterChainMatch {
                        transport_protocol: "tls".into(),
                        ..Default::default()
                    },
                ),
                chain(
                    "alpn",
                    FilterChainMatch {
                        application_protocols: vec!["h2".into()],
                        ..Default::default()
                    },
                ),
            ],
            default_filter_chain: None,
        };
        assert_eq!(pick(&l, "10.0.0.1:80", "10.0.0.2:9"), None);
        l.default_filter_chain = Some(chain("default", FilterChainMatch::default()));
        assert_eq!(pick(&l, "10.0.0.1:80", "10.0.0.2:9"), Some("default"));
        l.filter_chains.push(chain(
            "raw",
            FilterChainMatch {
                transport_protocol: "raw_buffer".into(),
                ..Default::default()
            },
        ));
        assert_eq!(pick(&l, "10.0.0.1:80", "10.0.0.2:9"), Some("raw"));
    }

    #[test]
    fn prefix_miss_falls_to_default() {
        let l = ServerListener {
            address: None,
            filter_chains: vec![chain(
                "ten",
                FilterChainMatch {
                    prefix_ranges: vec![cidr("10.0.0.0/8")],
                    ..Default::default()
                },
            )],
            default_filter_chain: Some(chain("default", FilterChainMatch::default())),
        };
        assert_eq!(pick(&l, "10.0.0.1:80", "1.1.1.1:9"), Some("ten"));
        assert_eq!(pick(&l, "11.0.0.1:80", "1.1.1.1:9"), Some("default"));
        assert_eq!(
            pick(&l, "[::ffff:10.0.0.1]:80", "1.1.1.1:9"),
            Some("ten"),
            "IPv4-mapped local addresses match IPv4 prefixes"
        );
    }
}
