//! Clusters `outbound|P||H` and `outbound|P|subset|H`: EDS over ADS, with
//! the DestinationRule's load balancing, circuit breaking, outlier
//! detection and ISTIO_MUTUAL TLS, and the upstream HTTP version by port
//! protocol as istiod sends it (HTTP/2 for GRPC and HTTP2 ports, the
//! downstream's for ports whose protocol is sniffed, nothing, so HTTP/1.1,
//! for HTTP and the rest). gRPC clients ignore the version; mesh's HTTP
//! client follows it.

use std::collections::BTreeSet;

use envoy_types::pb::envoy::config::cluster::v3 as cluster;
use envoy_types::pb::envoy::config::core::v3 as core;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3 as tls;
use envoy_types::pb::envoy::extensions::upstreams::http::v3 as http_options;
use envoy_types::pb::google::protobuf::{UInt32Value, UInt64Value};
use mesh_core::resource::ResourceType;
use mesh_core::resource::cluster::HTTP_PROTOCOL_OPTIONS;

use crate::config::{
    DestinationRule, HashKey, LoadBalancer, RingKind, ServicePort, SimpleLb, TlsMode, TrafficPolicy,
};

use super::Out;
use super::index::{Index, Service, selects};
use super::wire::{ads, any, cluster_name, duration, exact, spiffe_id};

/// The clusters of `svc`'s `port`: the service's and one per subset.
pub(super) fn outbound(ix: &Index<'_>, svc: &Service<'_>, port: &ServicePort, out: &mut Out) {
    let dr = ix.destination_rule(&svc.host);
    let base = dr.map(|d| d.traffic_policy.clone()).unwrap_or_default();
    let all = svc.workloads.iter().collect::<Vec<_>>();
    build(svc, port, "", &base, &all, dr, out);
    for subset in dr.map(|d| d.subsets.as_slice()).unwrap_or_default() {
        let policy = base.merged_with(&subset.traffic_policy);
        let members = svc
            .workloads
            .iter()
            .filter(|w| selects(&subset.labels, &w.labels))
            .collect::<Vec<_>>();
        build(svc, port, &subset.name, &policy, &members, dr, out);
    }
}

fn build(
    svc: &Service<'_>,
    port: &ServicePort,
    subset: &str,
    policy: &TrafficPolicy,
    workloads: &[&super::index::Workload<'_>],
    dr: Option<&DestinationRule>,
    out: &mut Out,
) {
    let name = cluster_name(port.number, subset, &svc.host);
    let source = dr.map(|d| d.meta.source.to_string()).unwrap_or_default();
    let mut c = cluster::Cluster {
        name: name.clone(),
        cluster_discovery_type: Some(cluster::cluster::ClusterDiscoveryType::Type(
            cluster::cluster::DiscoveryType::Eds as i32,
        )),
        eds_cluster_config: Some(cluster::cluster::EdsClusterConfig {
            eds_config: Some(ads()),
            service_name: name.clone(),
        }),
        ..Default::default()
    };
    load_balancer(&mut c, policy, &source, out);
    if let Some(options) = protocol_options(port) {
        c.typed_extension_protocol_options
            .insert(HTTP_PROTOCOL_OPTIONS.into(), any(&options));
    }
    if let Some(cp) = &policy.connection_pool {
        c.circuit_breakers = Some(cluster::CircuitBreakers {
            thresholds: vec![cluster::circuit_breakers::Thresholds {
                max_requests: cp.http2_max_requests.map(|value| UInt32Value { value }),
                max_pending_requests: cp
                    .http1_max_pending_requests
                    .map(|value| UInt32Value { value }),
                max_retries: cp.max_retries.map(|value| UInt32Value { value }),
                ..Default::default()
            }],
            ..Default::default()
        });
    }
    if let Some(od) = &policy.outlier_detection {
        c.outlier_detection = Some(cluster::OutlierDetection {
            consecutive_5xx: od.consecutive_5xx.map(|value| UInt32Value { value }),
            consecutive_gateway_failure: od.consecutive_gateway.map(|value| UInt32Value { value }),
            interval: od.interval.map(duration),
            base_ejection_time: od.base_ejection_time.map(duration),
            max_ejection_percent: od.max_ejection_percent.map(|value| UInt32Value { value }),
            // gRPC enforces success-rate ejection at 100% when this is
            // unset; Istio's outlierDetection never asks for it.
            enforcing_success_rate: Some(UInt32Value { value: 0 }),
            ..Default::default()
        });
    }
    if policy.tls == Some(TlsMode::IstioMutual) {
        let sans: BTreeSet<String> = workloads
            .iter()
            .map(|w| spiffe_id(w.namespace, w.service_account()))
            .collect();
        c.transport_socket = Some(upstream_tls(&sans));
    }
    out.add(ResourceType::Cluster, name, any(&c));
}

fn load_balancer(c: &mut cluster::Cluster, policy: &TrafficPolicy, source: &str, out: &mut Out) {
    use cluster::cluster::LbPolicy;
    match &policy.load_balancer {
        None | Some(LoadBalancer::Simple(SimpleLb::RoundRobin)) => {}
        Some(LoadBalancer::Simple(SimpleLb::LeastRequest)) => {
            c.lb_policy = LbPolicy::LeastRequest as i32;
        }
        Some(LoadBalancer::Simple(SimpleLb::Random)) => out.warn(format!(
            "{source}: cluster {}: RANDOM is not supported by gRPC: using round robin (as istiod)",
            c.name
        )),
        Some(LoadBalancer::Simple(SimpleLb::Passthrough)) => out.warn(format!(
            "{source}: cluster {}: PASSTHROUGH needs an original-destination proxy: \
             using round robin",
            c.name
        )),
        Some(LoadBalancer::ConsistentHash { key, ring }) => {
            if let HashKey::Unsupported(k) = key {
                out.warn(format!(
                    "{source}: cluster {}: consistentHash.{k} is not supported by gRPC: \
                     requests hash randomly",
                    c.name
                ));
            }
            let size = match ring {
                RingKind::RingHash { minimum_ring_size } => *minimum_ring_size,
                RingKind::Maglev { .. } => {
                    out.warn(format!(
                        "{source}: cluster {}: MAGLEV is NACKed by gRPC: sent as RING_HASH \
                         (istiod sends MAGLEV)",
                        c.name
                    ));
                    None
                }
            };
            c.lb_policy = LbPolicy::RingHash as i32;
            c.lb_config = Some(cluster::cluster::LbConfig::RingHashLbConfig(
                cluster::cluster::RingHashLbConfig {
                    minimum_ring_size: size.map(|value| UInt64Value { value }),
                    ..Default::default()
                },
            ));
        }
    }
}

/// The port's protocol as Istio reads it: `protocol`, else the name's
/// prefix before `-` (`grpc-api`, `http2`); upper case, empty when unknown.
fn port_protocol(port: &ServicePort) -> String {
    if !port.protocol.is_empty() {
        return port.protocol.to_ascii_uppercase();
    }
    let prefix = port.name.split('-').next().unwrap_or_default();
    match prefix.to_ascii_uppercase().as_str() {
        p @ ("GRPC" | "GRPC-WEB" | "HTTP" | "HTTP2" | "HTTPS" | "TCP" | "TLS" | "MONGO"
        | "MYSQL" | "REDIS") => p.to_owned(),
        _ => String::new(),
    }
}

/// `typed_extension_protocol_options[HttpProtocolOptions]` for `port`, as
/// istiod: explicit HTTP/2 for GRPC and HTTP2, use-downstream (HTTP/1.1 and
/// HTTP/2) for an unknown protocol (sniffed), none otherwise (HTTP/1.1).
fn protocol_options(port: &ServicePort) -> Option<http_options::HttpProtocolOptions> {
    use http_options::http_protocol_options::{
        ExplicitHttpConfig, UpstreamProtocolOptions as P, UseDownstreamHttpConfig,
        explicit_http_config::ProtocolConfig,
    };
    let upstream = match port_protocol(port).as_str() {
        "GRPC" | "HTTP2" => P::ExplicitHttpConfig(ExplicitHttpConfig {
            protocol_config: Some(ProtocolConfig::Http2ProtocolOptions(Default::default())),
        }),
        "" => P::UseDownstreamProtocolConfig(UseDownstreamHttpConfig {
            http_protocol_options: Some(Default::default()),
            http2_protocol_options: Some(Default::default()),
            ..Default::default()
        }),
        _ => return None,
    };
    Some(http_options::HttpProtocolOptions {
        upstream_protocol_options: Some(upstream),
        ..Default::default()
    })
}

/// A provider instance as istiod names them (`default`, `ROOTCA`).
pub(crate) fn provider(certificate_name: &str) -> tls::CertificateProviderPluginInstance {
    tls::CertificateProviderPluginInstance {
        instance_name: "default".into(),
        certificate_name: certificate_name.into(),
    }
}

/// The deprecated twin of [`provider`], which istiod sets too.
#[allow(deprecated)]
pub(crate) fn legacy_provider(
    certificate_name: &str,
) -> tls::common_tls_context::CertificateProviderInstance {
    tls::common_tls_context::CertificateProviderInstance {
        instance_name: "default".into(),
        certificate_name: certificate_name.into(),
    }
}

/// The ISTIO_MUTUAL transport socket, verifying the server's SPIFFE ID.
#[allow(deprecated)] // istiod sets the deprecated twins too
fn upstream_tls(sans: &BTreeSet<String>) -> core::TransportSocket {
    let validation = tls::CertificateValidationContext {
        match_subject_alt_names: sans.iter().map(exact).collect(),
        ca_certificate_provider_instance: Some(provider("ROOTCA")),
        ..Default::default()
    };
    let ctx = tls::UpstreamTlsContext {
        common_tls_context: Some(tls::CommonTlsContext {
            tls_certificate_provider_instance: Some(provider("default")),
            tls_certificate_certificate_provider_instance: Some(legacy_provider("default")),
            validation_context_type: Some(
                tls::common_tls_context::ValidationContextType::CombinedValidationContext(
                    tls::common_tls_context::CombinedCertificateValidationContext {
                        default_validation_context: Some(validation),
                        validation_context_certificate_provider_instance: Some(legacy_provider(
                            "ROOTCA",
                        )),
                        ..Default::default()
                    },
                ),
            ),
            ..Default::default()
        }),
        ..Default::default()
    };
    tls_socket(any(&ctx))
}

/// `envoy.transport_sockets.tls` around a TLS context.
pub(crate) fn tls_socket(ctx: envoy_types::pb::google::protobuf::Any) -> core::TransportSocket {
    core::TransportSocket {
        name: "envoy.transport_sockets.tls".into(),
        config_type: Some(core::transport_socket::ConfigType::TypedConfig(ctx)),
    }
}

#[cfg(test)]
mod tests {
    use mesh_core::resource::cluster::UpstreamProtocol;

    use super::*;

    fn version(name: &str, protocol: &str) -> UpstreamProtocol {
        let port = ServicePort {
            number: 80,
            name: name.into(),
            protocol: protocol.into(),
            target_port: None,
        };
        let mut c = cluster::Cluster::default();
        if let Some(o) = protocol_options(&port) {
            c.typed_extension_protocol_options
                .insert(HTTP_PROTOCOL_OPTIONS.into(), any(&o));
        }
        c.name = "c".into();
        c.load_assignment = Some(Default::default());
        mesh_core::resource::Cluster::try_from(c)
            .unwrap()
            .upstream_http
            .protocol
    }

    #[test]
    fn the_upstream_version_follows_the_port_protocol_as_istiod() {
        assert_eq!(version("grpc", "GRPC"), UpstreamProtocol::Http2);
        assert_eq!(version("grpc-api", ""), UpstreamProtocol::Http2);
        assert_eq!(version("x", "HTTP2"), UpstreamProtocol::Http2);
        assert_eq!(version("http", "HTTP"), UpstreamProtocol::Http1);
        assert_eq!(version("http-web", ""), UpstreamProtocol::Http1);
        assert_eq!(version("web", "TCP"), UpstreamProtocol::Http1);
        assert_eq!(version("web", ""), UpstreamProtocol::UseDownstream);
    }
}
