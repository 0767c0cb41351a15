use super::*;
use crate::resource::matcher::StringMatcher;
use crate::resource::to_any;
use envoy_types::pb::envoy::config::endpoint::v3 as ep;
use envoy_types::pb::envoy::r#type::matcher::v3 as m;
use envoy_types::pb::google::protobuf::{self, Any};
use tls_wire::common_tls_context::{
    CertificateProviderInstance, CombinedCertificateValidationContext, ValidationContextType,
};

const NAME: &str = "outbound|7070||echo.default.svc.cluster.local";

fn ads() -> core::ConfigSource {
    core::ConfigSource {
        config_source_specifier: Some(core::config_source::ConfigSourceSpecifier::Ads(
            Default::default(),
        )),
        resource_api_version: core::ApiVersion::V3 as i32,
        ..Default::default()
    }
}

fn eds_cluster() -> wire::Cluster {
    wire::Cluster {
        name: NAME.into(),
        cluster_discovery_type: Some(wire::cluster::ClusterDiscoveryType::Type(
            wire::cluster::DiscoveryType::Eds as i32,
        )),
        eds_cluster_config: Some(wire::cluster::EdsClusterConfig {
            eds_config: Some(ads()),
            service_name: NAME.into(),
        }),
        ..Default::default()
    }
}

fn err(c: wire::Cluster) -> FieldError {
    Cluster::try_from(c).unwrap_err().error
}

fn any<M: Message>(name: &str, msg: &M) -> Any {
    to_any(&format!("type.googleapis.com/{name}"), msg)
}

fn istio_tls(san: &str) -> core::TransportSocket {
    let plugin = |name: &str, cert: &str| tls_wire::CertificateProviderPluginInstance {
        instance_name: name.into(),
        certificate_name: cert.into(),
    };
    let old = |name: &str, cert: &str| CertificateProviderInstance {
        instance_name: name.into(),
        certificate_name: cert.into(),
    };
    let ctx = tls_wire::UpstreamTlsContext {
        common_tls_context: Some(tls_wire::CommonTlsContext {
            tls_certificate_provider_instance: Some(plugin("default", "default")),
            tls_certificate_certificate_provider_instance: Some(old("default", "default")),
            alpn_protocols: vec!["h2".into()],
            validation_context_type: Some(ValidationContextType::CombinedValidationContext(
                CombinedCertificateValidationContext {
                    default_validation_context: Some(tls_wire::CertificateValidationContext {
                        match_subject_alt_names: vec![m::StringMatcher {
                            match_pattern: Some(m::string_matcher::MatchPattern::Exact(san.into())),
                            ignore_case: false,
                        }],
                        ca_certificate_provider_instance: Some(plugin("default", "ROOTCA")),
                        ..Default::default()
                    }),
                    validation_context_certificate_provider_instance: Some(old(
                        "default", "ROOTCA",
                    )),
                    ..Default::default()
                },
            )),
            ..Default::default()
        }),
        sni: "outbound_.7070_._.echo.default.svc.cluster.local".into(),
        ..Default::default()
    };
    core::TransportSocket {
        name: "envoy.transport_sockets.tls".into(),
        config_type: Some(core::transport_socket::ConfigType::TypedConfig(any(
            UPSTREAM_TLS,
            &ctx,
        ))),
    }
}

fn thresholds(max_requests: u32) -> wire::CircuitBreakers {
    wire::CircuitBreakers {
        thresholds: vec![wire::circuit_breakers::Thresholds {
            max_requests: Some(UInt32Value {
                value: max_requests,
            }),
            max_connections: Some(UInt32Value { value: 4294967295 }),
            max_pending_requests: Some(UInt32Value { value: 4294967295 }),
            max_retries: Some(UInt32Value { value: 4294967295 }),
            ..Default::default()
        }],
        ..Default::default()
    }
}

#[test]
fn istiod_cds_cluster() {
    let san = "spiffe://cluster.local/ns/default/sa/echo";
    let mut w = eds_cluster();
    w.connect_timeout = Some(protobuf::Duration {
        seconds: 10,
        nanos: 0,
    });
    w.circuit_breakers = Some(thresholds(100));
    w.transport_socket = Some(istio_tls(san));
    w.common_lb_config = Some(wire::cluster::CommonLbConfig {
        override_host_status: Some(core::HealthStatusSet {
            statuses: vec![
                core::HealthStatus::Healthy as i32,
                core::HealthStatus::Draining as i32,
            ],
        }),
        ..Default::default()
    });
    w.metadata = Some(core::Metadata {
        filter_metadata: [(
            "istio".to_owned(),
            crate::resource::common::json_to_struct(&serde_json::json!({
                "services": [{"host": "echo.default.svc.cluster.local", "name": "echo", "namespace": "default"}]
            })),
        )]
        .into(),
        ..Default::default()
    });
    let c = Cluster::try_from(w).unwrap();
    assert_eq!(c.name, NAME);
    assert_eq!(c.eds_service_name(), Some(NAME));
    assert_eq!(c.lb_policy, LbPolicy::RoundRobin);
    assert_eq!(c.circuit_breakers.max_requests, 100);
    assert_eq!(c.circuit_breakers.max_retries, Some(u32::MAX));
    let tls = c.tls.as_ref().unwrap();
    assert_eq!(tls.identity.as_ref().unwrap().certificate_name, "default");
    assert_eq!(tls.validation.ca.certificate_name, "ROOTCA");
    assert_eq!(
        tls.validation.match_subject_alt_names,
        vec![StringMatcher::exact(san)]
    );
    assert_eq!(tls.provider_names(), vec!["default"]);
    assert!(c.override_host_status.contains(HealthStatus::Draining));
    assert!(!c.override_host_status.contains(HealthStatus::Unhealthy));
    assert!(c.metadata.filter_metadata.contains_key("istio"));
    assert!(!c.lrs_server);
    assert!(c.outlier_detection.is_none());
}

#[test]
fn eds_defaults_service_name_and_accepts_self() {
    let mut w = eds_cluster();
    w.eds_cluster_config.as_mut().unwrap().service_name.clear();
    w.eds_cluster_config.as_mut().unwrap().eds_config = Some(core::ConfigSource {
        config_source_specifier: Some(core::config_source::ConfigSourceSpecifier::Self_(
            Default::default(),
        )),
        ..Default::default()
    });
    let c = Cluster::try_from(w).unwrap();
    assert_eq!(c.eds_service_name(), Some(NAME));
    assert_eq!(c.circuit_breakers, CircuitBreakers::default());
    assert_eq!(c.circuit_breakers.max_requests, 1024);
    assert_eq!(c.circuit_breakers.max_pending_requests, None);
}

#[test]
fn eds_config_must_be_ads_or_self() {
    let mut w = eds_cluster();
    w.eds_cluster_config.as_mut().unwrap().eds_config = Some(core::ConfigSource {
        config_source_specifier: Some(core::config_source::ConfigSourceSpecifier::ApiConfigSource(
            Default::default(),
        )),
        ..Default::default()
    });
    assert_eq!(err(w).field, "eds_cluster_config.eds_config");
    let mut w = eds_cluster();
    w.eds_cluster_config.as_mut().unwrap().eds_config = None;
    assert_eq!(err(w).field, "eds_cluster_config.eds_config");
    let mut w = eds_cluster();
    w.eds_cluster_config = None;
    assert_eq!(err(w).field, "eds_cluster_config");
}

#[test]
fn xdstp_cluster_needs_service_name() {
    let mut w = eds_cluster();
    w.name = "xdstp://authority/envoy.config.cluster.v3.Cluster/echo".into();
    w.eds_cluster_config.as_mut().unwrap().service_name.clear();
    assert_eq!(err(w).field, "eds_cluster_config.service_name");
}

#[test]
fn static_cluster_validates_load_assignment() {
    let lb = |ip: &str| ep::LbEndpoint {
        host_identifier: Some(ep::lb_endpoint::HostIdentifier::Endpoint(ep::Endpoint {
            address: Some(core::Address {
                address: Some(core::address::Address::SocketAddress(core::SocketAddress {
                    address: ip.into(),
                    port_specifier: Some(core::socket_address::PortSpecifier::PortValue(8080)),
                    ..Default::default()
                })),
            }),
            ..Default::default()
        })),
        ..Default::default()
    };
    let mut w = wire::Cluster {
        name: "local".into(),
        load_assignment: Some(ep::ClusterLoadAssignment {
            cluster_name: "local".into(),
            endpoints: vec![ep::LocalityLbEndpoints {
                lb_endpoints: vec![lb("127.0.0.1"), lb("127.0.0.2")],
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    };
    let c = Cluster::try_from(w.clone()).unwrap();
    let Discovery::Static(cla) = &c.discovery else {
        panic!("not static")
    };
    assert_eq!(cla.endpoint_count(), 2);
    assert_eq!(c.eds_service_name(), None);
    w.load_assignment.as_mut().unwrap().endpoints[0].lb_endpoints[1] = lb("127.0.0.1");
    assert_eq!(
        err(w.clone()).field,
        "load_assignment.endpoints[0].lb_endpoints[1].endpoint.address"
    );
    w.load_assignment = None;
    assert_eq!(err(w).field, "load_assignment");
}

#[test]
fn unsupported_discovery_types() {
    use wire::cluster::{ClusterDiscoveryType as T, CustomClusterType, DiscoveryType as D};
    for (t, reason) in [
        (D::LogicalDns, "not supported yet"),
        (D::StrictDns, "STRICT_DNS"),
        (D::OriginalDst, "ORIGINAL_DST"),
    ] {
        let mut w = eds_cluster();
        w.cluster_discovery_type = Some(T::Type(t as i32));
        let e = err(w);
        assert_eq!(e.field, "type");
        assert!(e.reason.contains(reason), "{e}");
    }
    let mut w = eds_cluster();
    w.cluster_discovery_type = Some(T::ClusterType(CustomClusterType {
        name: "envoy.clusters.aggregate".into(),
        typed_config: Some(any(AGGREGATE, &protobuf::Empty {})),
    }));
    let e = err(w);
    assert_eq!(e.field, "cluster_type");
    assert!(e.reason.contains("not supported yet"), "{e}");
    let mut w = eds_cluster();
    w.cluster_discovery_type = Some(T::ClusterType(CustomClusterType {
        name: "envoy.clusters.redis".into(),
        typed_config: None,
    }));
    assert_eq!(err(w).field, "cluster_type");
}

#[test]
fn circuit_breakers_use_default_priority_only() {
    let mut w = eds_cluster();
    let mut cb = thresholds(7);
    cb.thresholds[0].priority = core::RoutingPriority::High as i32;
    cb.thresholds.push(wire::circuit_breakers::Thresholds {
        max_requests: Some(UInt32Value { value: 9 }),
        max_retries: Some(UInt32Value { value: 1 }),
        ..Default::default()
    });
    w.circuit_breakers = Some(cb);
    let c = Cluster::try_from(w).unwrap().circuit_breakers;
    assert_eq!(c.max_requests, 9);
    assert_eq!(c.max_retries, Some(1));
    assert_eq!(c.max_connections, None);
}

#[test]
fn outlier_detection_paths_are_prefixed() {
    let mut w = eds_cluster();
    w.outlier_detection = Some(wire::OutlierDetection {
        max_ejection_percent: Some(UInt32Value { value: 101 }),
        ..Default::default()
    });
    assert_eq!(err(w).field, "outlier_detection.max_ejection_percent");
    let mut w = eds_cluster();
    w.outlier_detection = Some(wire::OutlierDetection {
        enforcing_success_rate: Some(UInt32Value { value: 0 }),
        ..Default::default()
    });
    let od = Cluster::try_from(w).unwrap().outlier_detection.unwrap();
    assert!(od.success_rate.is_none());
}

#[test]
fn transport_socket_must_be_tls() {
    let mut w = eds_cluster();
    w.transport_socket = Some(core::TransportSocket {
        name: "envoy.transport_sockets.raw_buffer".into(),
        config_type: Some(core::transport_socket::ConfigType::TypedConfig(any(
            "envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer",
            &protobuf::Empty {},
        ))),
    });
    assert_eq!(err(w).field, "transport_socket.typed_config");
    let mut w = eds_cluster();
    w.transport_socket = Some(core::TransportSocket {
        name: "envoy.transport_sockets.tls".into(),
        config_type: None,
    });
    assert_eq!(err(w).field, "transport_socket.typed_config");
    // Errors inside the context carry the full path.
    let mut w = eds_cluster();
    let mut ts = istio_tls("x");
    let Some(core::transport_socket::ConfigType::TypedConfig(a)) = &mut ts.config_type else {
        unreachable!()
    };
    let mut ctx = tls_wire::UpstreamTlsContext::decode(a.value.as_slice()).unwrap();
    let Some(ValidationContextType::CombinedValidationContext(cvc)) = &mut ctx
        .common_tls_context
        .as_mut()
        .unwrap()
        .validation_context_type
    else {
        unreachable!()
    };
    cvc.default_validation_context
        .as_mut()
        .unwrap()
        .ca_certificate_provider_instance = None;
    cvc.validation_context_certificate_provider_instance = None;
    a.value = ctx.encode_to_vec();
    w.transport_socket = Some(ts);
    assert_eq!(
        err(w).field,
        "transport_socket.typed_config.common_tls_context.combined_validation_context"
    );
}

#[test]
fn lrs_server_must_be_self() {
    let mut w = eds_cluster();
    w.lrs_server = Some(core::ConfigSource {
        config_source_specifier: Some(core::config_source::ConfigSourceSpecifier::Self_(
            Default::default(),
        )),
        ..Default::default()
    });
    assert!(Cluster::try_from(w).unwrap().lrs_server);
    let mut w = eds_cluster();
    w.lrs_server = Some(ads());
    assert_eq!(err(w).field, "lrs_server");
}

#[test]
fn override_host_status_rejects_unknown_values() {
    let mut w = eds_cluster();
    w.common_lb_config = Some(wire::cluster::CommonLbConfig {
        override_host_status: Some(core::HealthStatusSet {
            statuses: vec![1, 77],
        }),
        ..Default::default()
    });
    assert_eq!(
        err(w).field,
        "common_lb_config.override_host_status.statuses[1]"
    );
}
