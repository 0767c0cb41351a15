//! Wire resources for tests, shaped as istiod and other control planes
//! send them. Each returns the protobuf message; [`any`] packs it.

use envoy_types::pb::envoy::config::cluster::v3 as cluster;
use envoy_types::pb::envoy::config::core::v3 as core;
use envoy_types::pb::envoy::config::endpoint::v3 as endpoint;
use envoy_types::pb::envoy::config::listener::v3 as listener;
use envoy_types::pb::envoy::config::route::v3 as route;
use envoy_types::pb::envoy::extensions::filters::http::fault::v3::HttpFault;
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3 as hcm;
use envoy_types::pb::google::protobuf::{Any, UInt32Value};
use prost::{Message, Name};

use crate::resource::ResourceType;

/// Packs a message with its own type URL.
pub fn any<M: Message + Name>(m: &M) -> Any {
    Any {
        type_url: M::type_url(),
        value: m.encode_to_vec(),
    }
}

/// An ADS config source (`ads: {}`).
pub fn ads_source() -> core::ConfigSource {
    core::ConfigSource {
        config_source_specifier: Some(core::config_source::ConfigSourceSpecifier::Ads(
            core::AggregatedConfigSource::default(),
        )),
        resource_api_version: core::ApiVersion::V3 as i32,
        ..Default::default()
    }
}

/// A `self: {}` config source, as some control planes send.
pub fn self_source() -> core::ConfigSource {
    core::ConfigSource {
        config_source_specifier: Some(core::config_source::ConfigSourceSpecifier::Self_(
            core::SelfConfigSource::default(),
        )),
        resource_api_version: core::ApiVersion::V3 as i32,
        ..Default::default()
    }
}

/// An HTTP filter entry with a typed config.
pub fn http_filter<M: Message + Name>(name: &str, config: &M) -> hcm::HttpFilter {
    hcm::HttpFilter {
        name: name.into(),
        config_type: Some(hcm::http_filter::ConfigType::TypedConfig(any(config))),
        ..Default::default()
    }
}

/// istiod's outbound client listener: HCM with fault + router, routes over
/// RDS (ADS) named `route_name`.
pub fn client_listener(name: &str, route_name: &str) -> listener::Listener {
    let manager = hcm::HttpConnectionManager {
        stat_prefix: name.into(),
        route_specifier: Some(hcm::http_connection_manager::RouteSpecifier::Rds(
            hcm::Rds {
                config_source: Some(ads_source()),
                route_config_name: route_name.into(),
            },
        )),
        http_filters: vec![
            http_filter("envoy.filters.http.fault", &HttpFault::default()),
            http_filter("envoy.filters.http.router", &Router::default()),
        ],
        ..Default::default()
    };
    listener::Listener {
        name: name.into(),
        api_listener: Some(listener::ApiListener {
            api_listener: Some(any(&manager)),
        }),
        ..Default::default()
    }
}

/// A client listener whose HCM carries `routes` inline.
pub fn client_listener_inline(name: &str, routes: route::RouteConfiguration) -> listener::Listener {
    let manager = hcm::HttpConnectionManager {
        route_specifier: Some(hcm::http_connection_manager::RouteSpecifier::RouteConfig(
            routes,
        )),
        http_filters: vec![http_filter("router", &Router::default())],
        ..Default::default()
    };
    listener::Listener {
        name: name.into(),
        api_listener: Some(listener::ApiListener {
            api_listener: Some(any(&manager)),
        }),
        ..Default::default()
    }
}

/// A route sending everything under `prefix` to `cluster`.
pub fn prefix_route(prefix: &str, cluster: &str) -> route::Route {
    route::Route {
        r#match: Some(route::RouteMatch {
            path_specifier: Some(route::route_match::PathSpecifier::Prefix(prefix.into())),
            ..Default::default()
        }),
        action: Some(route::route::Action::Route(route::RouteAction {
            cluster_specifier: Some(route::route_action::ClusterSpecifier::Cluster(
                cluster.into(),
            )),
            ..Default::default()
        })),
        ..Default::default()
    }
}

/// A route splitting everything between weighted clusters.
pub fn weighted_route(clusters: &[(&str, u32)]) -> route::Route {
    route::Route {
        r#match: Some(route::RouteMatch {
            path_specifier: Some(route::route_match::PathSpecifier::Prefix("/".into())),
            ..Default::default()
        }),
        action: Some(route::route::Action::Route(route::RouteAction {
            cluster_specifier: Some(route::route_action::ClusterSpecifier::WeightedClusters(
                route::WeightedCluster {
                    clusters: clusters
                        .iter()
                        .map(|(name, w)| route::weighted_cluster::ClusterWeight {
                            name: (*name).into(),
                            weight: Some(UInt32Value { value: *w }),
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                },
            )),
            ..Default::default()
        })),
        ..Default::default()
    }
}

/// A route configuration with one virtual host for `domains`.
pub fn route_config(
    name: &str,
    domains: &[&str],
    routes: Vec<route::Route>,
) -> route::RouteConfiguration {
    route::RouteConfiguration {
        name: name.into(),
        virtual_hosts: vec![route::VirtualHost {
            name: format!("{name}-vh"),
            domains: domains.iter().map(|d| (*d).into()).collect(),
            routes,
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// An EDS cluster over ADS; `service_name` empty means the cluster's name.
pub fn eds_cluster(name: &str, service_name: &str) -> cluster::Cluster {
    cluster::Cluster {
        name: name.into(),
        cluster_discovery_type: Some(cluster::cluster::ClusterDiscoveryType::Type(
            cluster::cluster::DiscoveryType::Eds as i32,
        )),
        eds_cluster_config: Some(cluster::cluster::EdsClusterConfig {
            eds_config: Some(ads_source()),
            service_name: service_name.into(),
        }),
        ..Default::default()
    }
}

/// One locality's endpoints (priority 0, weight 1) for `cluster_name`.
pub fn endpoints(
    cluster_name: &str,
    addrs: &[std::net::SocketAddr],
) -> endpoint::ClusterLoadAssignment {
    endpoint::ClusterLoadAssignment {
        cluster_name: cluster_name.into(),
        endpoints: vec![locality_endpoints("z1", 0, addrs)],
        ..Default::default()
    }
}

/// A locality's endpoints at `priority`, each healthy with weight 1.
pub fn locality_endpoints(
    zone: &str,
    priority: u32,
    addrs: &[std::net::SocketAddr],
) -> endpoint::LocalityLbEndpoints {
    endpoint::LocalityLbEndpoints {
        locality: Some(core::Locality {
            region: "r1".into(),
            zone: zone.into(),
            sub_zone: String::new(),
        }),
        load_balancing_weight: Some(UInt32Value { value: 1 }),
        priority,
        lb_endpoints: addrs.iter().map(|a| lb_endpoint(*a)).collect(),
        ..Default::default()
    }
}

/// A healthy endpoint.
pub fn lb_endpoint(addr: std::net::SocketAddr) -> endpoint::LbEndpoint {
    endpoint::LbEndpoint {
        health_status: core::HealthStatus::Healthy as i32,
        host_identifier: Some(endpoint::lb_endpoint::HostIdentifier::Endpoint(
            endpoint::Endpoint {
                address: Some(socket_address(addr)),
                ..Default::default()
            },
        )),
        ..Default::default()
    }
}

/// A core `Address` for a socket address.
pub fn socket_address(addr: std::net::SocketAddr) -> core::Address {
    core::Address {
        address: Some(core::address::Address::SocketAddress(core::SocketAddress {
            address: addr.ip().to_string(),
            port_specifier: Some(core::socket_address::PortSpecifier::PortValue(u32::from(
                addr.port(),
            ))),
            ..Default::default()
        })),
    }
}

/// The type URL of a resource type (shorthand for tests).
pub fn type_url(t: ResourceType) -> &'static str {
    t.type_url()
}

// istiod still sends the deprecated SAN field; so do these fixtures.
#[allow(deprecated)]
/// `cluster` with istiod's ISTIO_MUTUAL UpstreamTlsContext: identity and
/// CA from provider instance `provider` (`default`/`default` and
/// `default`/`ROOTCA` in istiod's output) and an exact SAN.
pub fn with_istio_mutual(
    mut cluster: cluster::Cluster,
    provider: &str,
    san: &str,
) -> cluster::Cluster {
    use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3 as tls;
    use envoy_types::pb::envoy::r#type::matcher::v3 as matcher;
    let instance = |cert: &str| tls::CertificateProviderPluginInstance {
        instance_name: provider.into(),
        certificate_name: cert.into(),
    };
    let ctx = tls::UpstreamTlsContext {
        common_tls_context: Some(tls::CommonTlsContext {
            tls_certificate_provider_instance: Some(instance("default")),
            validation_context_type: Some(
                tls::common_tls_context::ValidationContextType::CombinedValidationContext(
                    tls::common_tls_context::CombinedCertificateValidationContext {
                        default_validation_context: Some(tls::CertificateValidationContext {
                            ca_certificate_provider_instance: Some(instance("ROOTCA")),
                            match_subject_alt_names: vec![matcher::StringMatcher {
                                match_pattern: Some(matcher::string_matcher::MatchPattern::Exact(
                                    san.into(),
                                )),
                                ..Default::default()
                            }],
                            ..Default::default()
                        }),
                        ..Default::default()
                    },
                ),
            ),
            ..Default::default()
        }),
        ..Default::default()
    };
    cluster.transport_socket = Some(core::TransportSocket {
        name: "envoy.transport_sockets.tls".into(),
        config_type: Some(core::transport_socket::ConfigType::TypedConfig(any(&ctx))),
    });
    cluster
}

/// A server listener (A36) at `addr` with one plaintext filter chain whose
/// HCM takes its routes over RDS (`Some(name)`) or inline (a catch-all
/// `non_forwarding_action` route, as istiod sends).
pub fn server_listener(
    name: &str,
    addr: std::net::SocketAddr,
    rds: Option<&str>,
) -> listener::Listener {
    let route_specifier = match rds {
        Some(r) => hcm::http_connection_manager::RouteSpecifier::Rds(hcm::Rds {
            config_source: Some(ads_source()),
            route_config_name: r.into(),
        }),
        None => hcm::http_connection_manager::RouteSpecifier::RouteConfig(inbound_routes()),
    };
    let manager = hcm::HttpConnectionManager {
        stat_prefix: "inbound".into(),
        route_specifier: Some(route_specifier),
        http_filters: vec![http_filter("envoy.filters.http.router", &Router::default())],
        ..Default::default()
    };
    listener::Listener {
        name: name.into(),
        address: Some(socket_address(addr)),
        filter_chains: vec![listener::FilterChain {
            name: "inbound-plaintext".into(),
            filters: vec![listener::Filter {
                name: "envoy.filters.network.http_connection_manager".into(),
                config_type: Some(listener::filter::ConfigType::TypedConfig(any(&manager))),
            }],
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// istiod's inbound routes: `inbound`, domains `*`, prefix `/`,
/// `non_forwarding_action`.
pub fn inbound_routes() -> route::RouteConfiguration {
    route::RouteConfiguration {
        name: "inbound".into(),
        virtual_hosts: vec![route::VirtualHost {
            name: "inbound|http|0".into(),
            domains: vec!["*".into()],
            routes: vec![route::Route {
                r#match: Some(route::RouteMatch {
                    path_specifier: Some(route::route_match::PathSpecifier::Prefix("/".into())),
                    ..Default::default()
                }),
                action: Some(route::route::Action::NonForwardingAction(
                    route::NonForwardingAction::default(),
                )),
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    }
}
