//! Small builders for the wire pieces every generator uses: `Any` packing,
//! the ADS config source, HTTP filter entries, durations, matchers and the
//! names of resources.

use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3 as core;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3 as hcm;
use envoy_types::pb::envoy::r#type::matcher::v3 as matcher;
use envoy_types::pb::google::protobuf::{Any, Duration as PbDuration};
use prost::{Message, Name};

/// The HCM's network filter name.
pub(crate) const HCM_NAME: &str = "envoy.filters.network.http_connection_manager";
/// The fault filter's name (and `typed_per_filter_config` key).
pub(crate) const FAULT_NAME: &str = "envoy.filters.http.fault";
/// The router's name.
pub(crate) const ROUTER_NAME: &str = "envoy.filters.http.router";
/// The ALLOW RBAC filter's name.
pub(crate) const RBAC_NAME: &str = "envoy.filters.http.rbac";
/// The DENY RBAC filter's name.
pub(crate) const RBAC_DENY_NAME: &str = "envoy.filters.http.rbac.DENY";
/// The trust domain of SPIFFE identities.
pub(crate) const TRUST_DOMAIN: &str = "cluster.local";

/// Packs `m` with its own type URL.
pub(crate) fn any<M: Message + Name>(m: &M) -> Any {
    Any {
        type_url: M::type_url(),
        value: m.encode_to_vec(),
    }
}

/// `ads: {}`, v3.
pub(crate) fn ads() -> core::ConfigSource {
    core::ConfigSource {
        config_source_specifier: Some(core::config_source::ConfigSourceSpecifier::Ads(
            core::AggregatedConfigSource::default(),
        )),
        resource_api_version: core::ApiVersion::V3 as i32,
        ..Default::default()
    }
}

/// An HTTP filter entry with a typed config.
pub(crate) fn http_filter<M: Message + Name>(name: &str, config: &M) -> hcm::HttpFilter {
    hcm::HttpFilter {
        name: name.to_owned(),
        config_type: Some(hcm::http_filter::ConfigType::TypedConfig(any(config))),
        ..Default::default()
    }
}

/// Marks a filter `is_optional`, so clients that do not know its type skip
/// it instead of NACKing the listener (A39). Use for every filter gRPC
/// lacks (local rate limit, ...).
pub fn optional_filter(mut filter: hcm::HttpFilter) -> hcm::HttpFilter {
    filter.is_optional = true;
    filter
}

/// A protobuf duration.
pub(crate) fn duration(d: Duration) -> PbDuration {
    PbDuration {
        seconds: d.as_secs() as i64,
        nanos: d.subsec_nanos() as i32,
    }
}

/// A string matcher of one pattern.
pub(crate) fn string_matcher(p: matcher::string_matcher::MatchPattern) -> matcher::StringMatcher {
    matcher::StringMatcher {
        match_pattern: Some(p),
        ignore_case: false,
    }
}

/// An exact string matcher.
pub(crate) fn exact(s: impl Into<String>) -> matcher::StringMatcher {
    string_matcher(matcher::string_matcher::MatchPattern::Exact(s.into()))
}

/// A full-match RE2 regex string matcher.
pub(crate) fn regex(s: impl Into<String>) -> matcher::StringMatcher {
    string_matcher(matcher::string_matcher::MatchPattern::SafeRegex(
        matcher::RegexMatcher {
            regex: s.into(),
            ..Default::default()
        },
    ))
}

/// A socket address.
pub(crate) fn socket_address(ip: std::net::IpAddr, port: u16) -> core::Address {
    core::Address {
        address: Some(core::address::Address::SocketAddress(core::SocketAddress {
            address: ip.to_string(),
            port_specifier: Some(core::socket_address::PortSpecifier::PortValue(u32::from(
                port,
            ))),
            ..Default::default()
        })),
    }
}

/// `outbound|PORT|SUBSET|HOST`, istiod's cluster (and route) name.
pub(crate) fn cluster_name(port: u16, subset: &str, host: &str) -> String {
    format!("outbound|{port}|{subset}|{host}")
}

/// `spiffe://cluster.local/ns/NS/sa/SA`.
pub(crate) fn spiffe_id(namespace: &str, service_account: &str) -> String {
    format!("spiffe://{TRUST_DOMAIN}/ns/{namespace}/sa/{service_account}")
}
