//! Server listeners (A36): the listening address and the filter chains, each
//! with its match, optional TLS and HCM.
//!
//! NACKed, as A36 says: `listener_filters`, `use_original_dst`, chains whose
//! normalized matches overlap (which would make selection ambiguous), chains
//! without exactly one HttpConnectionManager as the last network filter, and
//! other network filters. Also NACKed: a `filter_chain_matcher` tree (it
//! would replace the matches we evaluate) and transport sockets other than
//! TLS (`DownstreamTlsContext`) and raw buffer. Chains that A36 says can
//! never match (a `destination_port`, `server_names`,
//! `application_protocols`, or a `transport_protocol` other than
//! `raw_buffer`) are kept, checked for overlaps, and skipped by
//! [`ServerListener::select_chain`]. A Listener address that differs from the
//! serving address means "not serving", which is for the server to decide.

use std::collections::HashMap;
use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};

use envoy_types::pb::envoy::config::core::v3 as core;
use envoy_types::pb::envoy::config::listener::v3 as wire;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3 as tls_wire;

use super::{CidrRange, HCM_TYPE, HttpConnectionManager};
use crate::resource::filter::{FilterSide, decode_any, type_name, typed_struct_inner};
use crate::resource::tls::DownstreamTlsContext;
use crate::resource::{AtField, FieldError};

const DOWNSTREAM_TLS: &str = "envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext";
const RAW_BUFFER: &str = "envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer";
const RAW_BUFFER_NAME: &str = "envoy.transport_sockets.raw_buffer";

/// The most match combinations a listener may expand to when checking for
/// overlaps (A36's normalization is a Cartesian product).
const MAX_MATCH_COMBINATIONS: usize = 100_000;

/// A validated server listener (A36).
#[derive(Debug, Clone, Default)]
pub struct ServerListener {
    /// `address.socket_address`, if set. The server serves only when this
    /// equals its listening address.
    pub address: Option<SocketAddr>,
    /// The filter chains in wire order.
    pub filter_chains: Vec<FilterChain>,
    /// The chain for connections no other chain matches.
    pub default_filter_chain: Option<FilterChain>,
}

/// One filter chain: which connections it takes, their TLS, and their HCM.
#[derive(Debug, Clone)]
pub struct FilterChain {
    /// The chain's name (`inbound-mtls` from istiod).
    pub name: String,
    /// Which connections it takes.
    pub filter_chain_match: FilterChainMatch,
    /// TLS settings, `None` for plaintext.
    pub tls: Option<DownstreamTlsContext>,
    /// The HTTP connection manager (the chain's only network filter).
    pub hcm: HttpConnectionManager,
}

/// A validated `FilterChainMatch`; empty lists match everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FilterChainMatch {
    /// `destination_port`: A36 never matches chains that set it.
    pub destination_port: Option<u16>,
    /// The local address lies in one of these.
    pub prefix_ranges: Vec<CidrRange>,
    /// The directly connected peer lies in one of these (the same as
    /// `source_prefix_ranges` without PROXY protocol).
    pub direct_source_prefix_ranges: Vec<CidrRange>,
    /// Local or remote peers.
    pub source_type: SourceType,
    /// The peer lies in one of these.
    pub source_prefix_ranges: Vec<CidrRange>,
    /// The peer's port is one of these.
    pub source_ports: Vec<u16>,
    /// SNI names: A36 never matches chains that set them.
    pub server_names: Vec<String>,
    /// Only `""` or `raw_buffer` can match (A36).
    pub transport_protocol: String,
    /// ALPN: A36 never matches chains that set them.
    pub application_protocols: Vec<String>,
}

/// `FilterChainMatch.source_type`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum SourceType {
    /// Any peer.
    #[default]
    Any,
    /// A peer on the same IP as the local address, or on loopback.
    SameIpOrLoopback,
    /// Any other peer.
    External,
}

impl SourceType {
    /// The type of a connection from `src` to `dest`.
    pub fn of(dest: IpAddr, src: IpAddr) -> Self {
        if src.is_loopback() || src == dest {
            SourceType::SameIpOrLoopback
        } else {
            SourceType::External
        }
    }
}

impl FilterChainMatch {
    /// Whether a connection can ever match (A36 hard-codes a miss for
    /// fields depending on features gRPC lacks).
    pub fn can_match(&self) -> bool {
        self.destination_port.is_none()
            && self.server_names.is_empty()
            && (self.transport_protocol.is_empty() || self.transport_protocol == "raw_buffer")
            && self.application_protocols.is_empty()
    }

    fn from_wire(m: &wire::FilterChainMatch, field: &str) -> Result<Self, FieldError> {
        use wire::filter_chain_match::ConnectionSourceType as T;
        let port = |p: u32, f: String| {
            u16::try_from(p).map_err(|_| FieldError::new(f, format!("port {p} is above 65535")))
        };
        let cidrs = |v: &[core::CidrRange], name: &str| {
            v.iter()
                .enumerate()
                .map(|(i, c)| CidrRange::from_wire(c, &format!("{field}.{name}[{i}]")))
                .collect::<Result<Vec<_>, _>>()
        };
        let source_type = match T::try_from(m.source_type) {
            Ok(T::Any) => SourceType::Any,
            Ok(T::SameIpOrLoopback) => SourceType::SameIpOrLoopback,
            Ok(T::External) => SourceType::External,
            Err(_) => {
                return Err(FieldError::new(
                    format!("{field}.source_type"),
                    format!("unknown source type {}", m.source_type),
                ));
            }
        };
        Ok(FilterChainMatch {
            destination_port: m
                .destination_port
                .map(|p| port(p.value, format!("{field}.destination_port")))
                .transpose()?,
            prefix_ranges: cidrs(&m.prefix_ranges, "prefix_ranges")?,
            direct_source_prefix_ranges: cidrs(
                &m.direct_source_prefix_ranges,
                "direct_source_prefix_ranges",
            )?,
            source_type,
            source_prefix_ranges: cidrs(&m.source_prefix_ranges, "source_prefix_ranges")?,
            source_ports: m
                .source_ports
                .iter()
                .enumerate()
                .map(|(i, p)| port(*p, format!("{field}.source_ports[{i}]")))
                .collect::<Result<_, _>>()?,
            server_names: m.server_names.clone(),
            transport_protocol: m.transport_protocol.clone(),
            application_protocols: m.application_protocols.clone(),
        })
    }
}

impl ServerListener {
    /// Every chain, the default one last.
    pub fn chains(&self) -> impl Iterator<Item = &FilterChain> {
        self.filter_chains
            .iter()
            .chain(self.default_filter_chain.as_ref())
    }

    /// Validates the server parts of a wire Listener (no `api_listener`).
    pub(crate) fn from_wire(l: wire::Listener) -> Result<Self, FieldError> {
        if !l.listener_filters.is_empty() {
            return Err(FieldError::new(
                "listener_filters",
                "listener filters are not supported",
            ));
        }
        if l.use_original_dst.is_some_and(|v| v.value) {
            return Err(FieldError::new(
                "use_original_dst",
                "use_original_dst is not supported",
            ));
        }
        if l.filter_chain_matcher.is_some() {
            return Err(FieldError::new(
                "filter_chain_matcher",
                "filter chain matcher trees are not supported: use filter_chain_match",
            ));
        }
        let address = l.address.as_ref().map(socket_address).transpose()?;
        let filter_chains = l
            .filter_chains
            .iter()
            .enumerate()
            .map(|(i, c)| FilterChain::from_wire(c).at_field(format!("filter_chains[{i}]")))
            .collect::<Result<Vec<_>, _>>()?;
        check_overlaps(&filter_chains)?;
        let default_filter_chain = l
            .default_filter_chain
            .as_ref()
            .map(|c| FilterChain::from_wire(c).at_field("default_filter_chain"))
            .transpose()?;
        Ok(ServerListener {
            address,
            filter_chains,
            default_filter_chain,
        })
    }
}

fn socket_address(a: &core::Address) -> Result<SocketAddr, FieldError> {
    use core::address::Address as A;
    use core::socket_address::PortSpecifier as P;
    let Some(A::SocketAddress(sa)) = &a.address else {
        return Err(FieldError::new(
            "address",
            "only socket_address listener addresses are supported",
        ));
    };
    let ip: IpAddr = sa.address.parse().map_err(|_| {
        FieldError::new(
            "address.socket_address.address",
            format!("\"{}\" is not an IP address", sa.address),
        )
    })?;
    let port = match &sa.port_specifier {
        Some(P::PortValue(p)) => u16::try_from(*p).map_err(|_| {
            FieldError::new(
                "address.socket_address.port_value",
                format!("port {p} is above 65535"),
            )
        })?,
        Some(P::NamedPort(_)) => {
            return Err(FieldError::new(
                "address.socket_address.named_port",
                "named ports are not supported: use port_value",
            ));
        }
        None => {
            return Err(FieldError::new(
                "address.socket_address.port_value",
                "no port_value",
            ));
        }
    };
    Ok(SocketAddr::new(ip, port))
}

impl FilterChain {
    /// Validates a wire chain; error paths are relative to the chain.
    fn from_wire(c: &wire::FilterChain) -> Result<Self, FieldError> {
        let filter_chain_match = match &c.filter_chain_match {
            Some(m) => FilterChainMatch::from_wire(m, "filter_chain_match")?,
            None => FilterChainMatch::default(),
        };
        let hcm = chain_hcm(&c.filters)?;
        let tls = c
            .transport_socket
            .as_ref()
            .map(transport_socket)
            .transpose()?
            .flatten();
        Ok(FilterChain {
            name: c.name.clone(),
            filter_chain_match,
            tls,
            hcm,
        })
    }
}

/// A36: exactly one network filter, the HCM, last; names unique.
fn chain_hcm(filters: &[wire::Filter]) -> Result<HttpConnectionManager, FieldError> {
    use wire::filter::ConfigType;
    if filters.is_empty() {
        return Err(FieldError::new(
            "filters",
            "no network filters: an HttpConnectionManager is required",
        ));
    }
    let mut names = HashSet::new();
    for (i, f) in filters.iter().enumerate() {
        if !names.insert(f.name.as_str()) {
            return Err(FieldError::new(
                format!("filters[{i}]"),
                format!("duplicate filter name \"{}\"", f.name),
            ));
        }
    }
    let last = filters.len() - 1;
    let mut hcm = None;
    for (i, f) in filters.iter().enumerate() {
        let field = format!("filters[{i}]");
        let any = match &f.config_type {
            Some(ConfigType::TypedConfig(any)) => any,
            Some(ConfigType::ConfigDiscovery(_)) => {
                return Err(FieldError::new(
                    format!("{field}.config_discovery"),
                    "extension config discovery (ECDS) is not supported",
                ));
            }
            None => return Err(FieldError::new(field, "no typed_config")),
        };
        let tc_field = format!("{field}.typed_config");
        let type_url = typed_struct_inner(any, &tc_field)?.unwrap_or_else(|| any.type_url.clone());
        if type_name(&type_url) != HCM_TYPE {
            return Err(FieldError::new(
                field,
                format!(
                    "unsupported network filter \"{}\" ({type_url}): only HttpConnectionManager is supported",
                    f.name
                ),
            ));
        }
        if i != last {
            return Err(FieldError::new(
                field,
                "the HttpConnectionManager must be the last network filter",
            ));
        }
        if type_name(&any.type_url) != HCM_TYPE {
            return Err(FieldError::new(
                tc_field,
                "an HttpConnectionManager in a TypedStruct is not supported",
            ));
        }
        hcm = Some(HttpConnectionManager::from_any(
            any,
            &tc_field,
            FilterSide::Server,
        )?);
    }
    Ok(hcm.expect("the last filter is the HCM"))
}

/// `Ok(None)` for plaintext (raw buffer).
fn transport_socket(
    ts: &core::TransportSocket,
) -> Result<Option<DownstreamTlsContext>, FieldError> {
    use core::transport_socket::ConfigType;
    const FIELD: &str = "transport_socket";
    let Some(ConfigType::TypedConfig(any)) = &ts.config_type else {
        if ts.name == RAW_BUFFER_NAME {
            return Ok(None);
        }
        return Err(FieldError::new(
            FIELD,
            format!("transport socket \"{}\" has no typed_config", ts.name),
        ));
    };
    let field = format!("{FIELD}.typed_config");
    match type_name(&any.type_url) {
        DOWNSTREAM_TLS => {
            let ctx: tls_wire::DownstreamTlsContext = decode_any(any, &field)?;
            DownstreamTlsContext::from_wire(&ctx, &field).map(Some)
        }
        RAW_BUFFER => Ok(None),
        _ => Err(FieldError::new(
            field,
            format!(
                "unsupported transport socket type {}: only DownstreamTlsContext and RawBuffer",
                any.type_url
            ),
        )),
    }
}

/// One point of a normalized match (A36): each list replaced by one of its
/// entries, or `None` when empty.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Point<'a> {
    destination_port: Option<u16>,
    prefix: Option<CidrRange>,
    direct_source_prefix: Option<CidrRange>,
    source_type: SourceType,
    source_prefix: Option<CidrRange>,
    source_port: Option<u16>,
    server_name: Option<&'a str>,
    transport_protocol: &'a str,
    application_protocol: Option<&'a str>,
}

/// Each entry as `Some`, or a single `None` for an empty list.
fn each<T: Copy>(v: &[T]) -> impl Iterator<Item = Option<T>> + Clone + '_ {
    v.iter()
        .copied()
        .map(Some)
        .chain(v.is_empty().then_some(None))
}

fn each_str(v: &[String]) -> impl Iterator<Item = Option<&str>> + Clone {
    v.iter()
        .map(|s| Some(s.as_str()))
        .chain(v.is_empty().then_some(None))
}

/// A36: NACK when two chains' normalized matches share a point, since the
/// most specific match would then not be unique.
fn check_overlaps(chains: &[FilterChain]) -> Result<(), FieldError> {
    let mut seen: HashMap<Point<'_>, usize> = HashMap::new();
    for (i, c) in chains.iter().enumerate() {
        let m = &c.filter_chain_match;
        let field = || format!("filter_chains[{i}].filter_chain_match");
        for prefix in each(&m.prefix_ranges) {
            for direct_source_prefix in each(&m.direct_source_prefix_ranges) {
                for source_prefix in each(&m.source_prefix_ranges) {
                    for source_port in each(&m.source_ports) {
                        for server_name in each_str(&m.server_names) {
                            for application_protocol in each_str(&m.application_protocols) {
                                let p = Point {
                                    destination_port: m.destination_port,
                                    prefix,
                                    direct_source_prefix,
                                    source_type: m.source_type,
                                    source_prefix,
                                    source_port,
                                    server_name,
                                    transport_protocol: &m.transport_protocol,
                                    application_protocol,
                                };
                                match seen.get(&p) {
                                    Some(&j) if j != i => {
                                        return Err(FieldError::new(
                                            field(),
                                            format!(
                                                "duplicates the match of filter_chains[{j}] (\"{}\"), so the most specific chain is not unique",
                                                chains[j].name
                                            ),
                                        ));
                                    }
                                    Some(_) => {}
                                    None => {
                                        if seen.len() >= MAX_MATCH_COMBINATIONS {
                                            return Err(FieldError::new(
                                                field(),
                                                format!(
                                                    "filter chain matches expand to more than {MAX_MATCH_COMBINATIONS} combinations"
                                                ),
                                            ));
                                        }
                                        seen.insert(p, i);
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    Ok(())
}
