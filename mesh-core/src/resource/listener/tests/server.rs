//! Server listener (A36) validation tests, and the istiod-shaped inbound
//! listener.

use super::*;

fn rbac_filter(name: &str, action: policy::rbac::Action) -> hcm::HttpFilter {
    let any_principal = policy::Principal {
        identifier: Some(policy::principal::Identifier::Any(true)),
    };
    let rules = policy::Rbac {
        action: action as i32,
        policies: [(
            "ns[default]-policy[deny-bob]-rule[0]".to_owned(),
            policy::Policy {
                permissions: vec![policy::Permission {
                    rule: Some(policy::permission::Rule::Any(true)),
                }],
                principals: vec![any_principal],
                ..Default::default()
            },
        )]
        .into_iter()
        .collect(),
        ..Default::default()
    };
    filter(
        name,
        any_of(
            names::RBAC,
            &rbac_wire::Rbac {
                rules: Some(rules),
                ..Default::default()
            },
        ),
    )
}

fn inbound_route() -> route::RouteConfiguration {
    route::RouteConfiguration {
        name: "inbound".into(),
        virtual_hosts: vec![route::VirtualHost {
            name: "inbound|http|7070".into(),
            domains: vec!["*".into()],
            routes: vec![route::Route {
                name: "default".into(),
                r#match: Some(route::RouteMatch {
                    path_specifier: Some(route::route_match::PathSpecifier::Prefix("/".into())),
                    ..Default::default()
                }),
                action: Some(route::route::Action::NonForwardingAction(Default::default())),
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn inbound_hcm_with_rds(name: &str) -> hcm::HttpConnectionManager {
    hcm::HttpConnectionManager {
        route_specifier: rds(name),
        http_filters: vec![router()],
        ..Default::default()
    }
}

fn inbound_hcm() -> hcm::HttpConnectionManager {
    hcm::HttpConnectionManager {
        stat_prefix: "inbound_7070".into(),
        route_specifier: Some(RouteSpecifier::RouteConfig(inbound_route())),
        http_filters: vec![
            rbac_filter("envoy.filters.http.rbac.DENY", policy::rbac::Action::Deny),
            rbac_filter("envoy.filters.http.rbac", policy::rbac::Action::Allow),
            router(),
        ],
        ..Default::default()
    }
}

fn provider(name: &str, cert: &str) -> tls::CertificateProviderPluginInstance {
    tls::CertificateProviderPluginInstance {
        instance_name: name.into(),
        certificate_name: cert.into(),
    }
}

fn istio_mtls_socket() -> core::TransportSocket {
    let ctx = tls::DownstreamTlsContext {
        common_tls_context: Some(tls::CommonTlsContext {
            tls_certificate_provider_instance: Some(provider("default", "default")),
            validation_context_type: Some(
                tls::common_tls_context::ValidationContextType::CombinedValidationContext(
                    tls::common_tls_context::CombinedCertificateValidationContext {
                        default_validation_context: Some(tls::CertificateValidationContext {
                            ca_certificate_provider_instance: Some(provider("default", "ROOTCA")),
                            ..Default::default()
                        }),
                        ..Default::default()
                    },
                ),
            ),
            ..Default::default()
        }),
        require_client_certificate: Some(protobuf::BoolValue { value: true }),
        ..Default::default()
    };
    core::TransportSocket {
        name: "envoy.transport_sockets.tls".into(),
        config_type: Some(core::transport_socket::ConfigType::TypedConfig(to_any(
            "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
            &ctx,
        ))),
    }
}

fn hcm_filter(h: &hcm::HttpConnectionManager) -> wire::Filter {
    wire::Filter {
        name: "envoy.filters.network.http_connection_manager".into(),
        config_type: Some(wire::filter::ConfigType::TypedConfig(hcm_any(h))),
    }
}

fn chain(
    name: &str,
    m: Option<wire::FilterChainMatch>,
    h: &hcm::HttpConnectionManager,
) -> wire::FilterChain {
    wire::FilterChain {
        name: name.into(),
        filter_chain_match: m,
        filters: vec![hcm_filter(h)],
        ..Default::default()
    }
}

fn address(ip: &str, port: Option<u32>) -> core::Address {
    core::Address {
        address: Some(core::address::Address::SocketAddress(core::SocketAddress {
            address: ip.into(),
            port_specifier: port.map(core::socket_address::PortSpecifier::PortValue),
            ..Default::default()
        })),
    }
}

fn server(chains: Vec<wire::FilterChain>) -> wire::Listener {
    wire::Listener {
        name: INBOUND.into(),
        address: Some(address("10.0.0.1", Some(7070))),
        filter_chains: chains,
        ..Default::default()
    }
}

fn plain_server() -> wire::Listener {
    server(vec![chain(
        "inbound-plaintext",
        None,
        &inbound_hcm_with_rds("r0"),
    )])
}

fn istiod_inbound() -> wire::Listener {
    let mut c = chain("inbound-mtls", None, &inbound_hcm());
    c.transport_socket = Some(istio_mtls_socket());
    server(vec![c])
}

/// Needs `route::RouteConfig` (inline route with non_forwarding_action) and
/// `tls::DownstreamTlsContext` from the route and TLS modules.
#[test]
fn istiod_inbound_server_listener() {
    let l = Listener::try_from(istiod_inbound()).unwrap();
    assert_eq!(l.name, INBOUND);
    let s = l.server().expect("server listener");
    assert_eq!(s.address, Some("10.0.0.1:7070".parse().unwrap()));
    assert_eq!(s.filter_chains.len(), 1);
    let c = s
        .select_chain(
            "10.0.0.1:7070".parse().unwrap(),
            "10.0.0.2:41000".parse().unwrap(),
        )
        .expect("the only chain matches everything");
    assert_eq!(c.name, "inbound-mtls");
    assert!(c.tls.as_ref().expect("mTLS").require_client_certificate);
    let RouteSource::Inline(rc) = &c.hcm.route else {
        panic!("inline routes expected");
    };
    assert_eq!(rc.name, "inbound");
    assert_eq!(rc.virtual_hosts[0].domains, ["*"]);
    let actions: Vec<_> = c
        .hcm
        .http_filters
        .iter()
        .map(|f| match &f.config {
            FilterConfig::Rbac(r) => format!("{:?}", r.rules.as_ref().unwrap().action),
            other => other.kind().to_owned(),
        })
        .collect();
    assert_eq!(actions, ["Deny", "Allow", "router"]);
    assert!(l.route_names().is_empty(), "inline routes need no RDS");
}

#[test]
fn plaintext_server_with_rds() {
    let mut l = plain_server();
    l.default_filter_chain = Some(chain("default", None, &inbound_hcm_with_rds("r-default")));
    let l = Listener::try_from(l).unwrap();
    let s = l.server().unwrap();
    assert!(s.filter_chains[0].tls.is_none());
    assert_eq!(
        l.route_names().into_iter().collect::<Vec<_>>(),
        ["r-default", "r0"]
    );
}

#[test]
fn listener_filters_rejected() {
    let mut l = plain_server();
    l.listener_filters = vec![wire::ListenerFilter {
        name: "envoy.filters.listener.tls_inspector".into(),
        ..Default::default()
    }];
    assert_eq!(nack(l).field, "listener_filters");
}

#[test]
fn use_original_dst_rejected() {
    let mut l = plain_server();
    l.use_original_dst = Some(protobuf::BoolValue { value: false });
    assert!(Listener::try_from(l.clone()).is_ok(), "false is fine");
    l.use_original_dst = Some(protobuf::BoolValue { value: true });
    assert_eq!(nack(l).field, "use_original_dst");
}

#[test]
fn filter_chain_matcher_rejected() {
    let mut l = plain_server();
    l.filter_chain_matcher = Some(Default::default());
    assert_eq!(nack(l).field, "filter_chain_matcher");
}

#[test]
fn address_needs_ip_and_port() {
    let mut l = plain_server();
    l.address = Some(address("10.0.0.1", None));
    assert_eq!(nack(l.clone()).field, "address.socket_address.port_value");
    l.address = Some(address("pod.local", Some(80)));
    assert_eq!(nack(l.clone()).field, "address.socket_address.address");
    l.address = Some(core::Address {
        address: Some(core::address::Address::Pipe(Default::default())),
    });
    assert_eq!(nack(l.clone()).field, "address");
    l.address = None;
    assert_eq!(
        Listener::try_from(l).unwrap().server().unwrap().address,
        None
    );
}

fn prefix_match(prefixes: &[(&str, u32)]) -> Option<wire::FilterChainMatch> {
    Some(wire::FilterChainMatch {
        prefix_ranges: prefixes
            .iter()
            .map(|(a, l)| core::CidrRange {
                address_prefix: (*a).into(),
                prefix_len: Some(protobuf::UInt32Value { value: *l }),
            })
            .collect(),
        ..Default::default()
    })
}

#[test]
fn duplicate_matches_rejected_after_normalization() {
    let h = inbound_hcm_with_rds("r");
    // Same /16 written with different host bits.
    let l = server(vec![
        chain("a", prefix_match(&[("10.1.0.0", 16)]), &h),
        chain("b", prefix_match(&[("10.1.2.3", 16)]), &h),
    ]);
    let e = nack(l);
    assert_eq!(e.field, "filter_chains[1].filter_chain_match");
    assert!(e.reason.contains("filter_chains[0]"), "{e}");
    // Overlap in one entry of a list (the Cartesian product).
    let l = server(vec![
        chain(
            "a",
            prefix_match(&[("10.1.0.0", 16), ("192.168.0.0", 16)]),
            &h,
        ),
        chain("b", prefix_match(&[("192.168.0.0", 16)]), &h),
    ]);
    assert_eq!(nack(l).field, "filter_chains[1].filter_chain_match");
    // Two chains without matches.
    let l = server(vec![chain("a", None, &h), chain("b", None, &h)]);
    assert_eq!(nack(l).field, "filter_chains[1].filter_chain_match");
    // Never-matching chains are still checked.
    let sni = Some(wire::FilterChainMatch {
        server_names: vec!["a.example".into()],
        ..Default::default()
    });
    let l = server(vec![chain("a", sni.clone(), &h), chain("b", sni, &h)]);
    assert_eq!(nack(l).field, "filter_chains[1].filter_chain_match");
    // Distinct prefixes are fine, and a repeat inside one chain is harmless.
    let l = server(vec![
        chain("a", prefix_match(&[("10.1.0.0", 16), ("10.1.0.0", 16)]), &h),
        chain("b", prefix_match(&[("10.1.0.0", 24)]), &h),
        chain("c", None, &h),
    ]);
    assert!(Listener::try_from(l).is_ok());
}

#[test]
fn match_fields_validated() {
    let h = inbound_hcm_with_rds("r");
    let bad_port = Some(wire::FilterChainMatch {
        source_ports: vec![80, 70000],
        ..Default::default()
    });
    let e = nack(server(vec![chain("a", bad_port, &h)]));
    assert_eq!(
        e.field,
        "filter_chains[0].filter_chain_match.source_ports[1]"
    );
    let e = nack(server(vec![chain("a", prefix_match(&[("nope", 8)]), &h)]));
    assert_eq!(
        e.field,
        "filter_chains[0].filter_chain_match.prefix_ranges[0].address_prefix"
    );
    let bad_type = Some(wire::FilterChainMatch {
        source_type: 7,
        ..Default::default()
    });
    let e = nack(server(vec![chain("a", bad_type, &h)]));
    assert_eq!(e.field, "filter_chains[0].filter_chain_match.source_type");
}

#[test]
fn chain_needs_filters() {
    let mut l = plain_server();
    l.filter_chains[0].filters.clear();
    assert_eq!(nack(l).field, "filter_chains[0].filters");
}

fn tcp_proxy() -> wire::Filter {
    wire::Filter {
        name: "envoy.filters.network.tcp_proxy".into(),
        config_type: Some(wire::filter::ConfigType::TypedConfig(any_of(
            "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
            &protobuf::Empty {},
        ))),
    }
}

#[test]
fn hcm_must_be_the_last_and_only_network_filter() {
    let mut l = plain_server();
    l.filter_chains[0].filters.push(tcp_proxy());
    let e = nack(l);
    assert_eq!(e.field, "filter_chains[0].filters[0]");
    assert!(e.reason.contains("last"), "{e}");
    let mut l = plain_server();
    l.filter_chains[0].filters.insert(0, tcp_proxy());
    let e = nack(l);
    assert_eq!(e.field, "filter_chains[0].filters[0]");
    assert!(e.reason.contains("only HttpConnectionManager"), "{e}");
    let mut l = plain_server();
    l.filter_chains[0].filters = vec![tcp_proxy()];
    assert_eq!(nack(l).field, "filter_chains[0].filters[0]");
    let mut l = plain_server();
    let hcm = l.filter_chains[0].filters[0].clone();
    l.filter_chains[0].filters.push(hcm);
    let e = nack(l);
    assert_eq!(e.field, "filter_chains[0].filters[1]");
    assert!(e.reason.contains("duplicate"), "{e}");
}

#[test]
fn network_filter_in_typed_struct_or_ecds_rejected() {
    let mut l = plain_server();
    l.filter_chains[0].filters[0].config_type =
        Some(wire::filter::ConfigType::TypedConfig(any_of(
            names::TYPED_STRUCT,
            &crate::resource::filter::TypedStruct {
                type_url: format!("type.googleapis.com/{HCM_TYPE}"),
                value: None,
            },
        )));
    assert_eq!(nack(l).field, "filter_chains[0].filters[0].typed_config");
    let mut l = plain_server();
    l.filter_chains[0].filters[0].config_type =
        Some(wire::filter::ConfigType::ConfigDiscovery(Default::default()));
    assert_eq!(
        nack(l).field,
        "filter_chains[0].filters[0].config_discovery"
    );
}

#[test]
fn server_hcm_errors_carry_the_chain_path() {
    let mut h = inbound_hcm_with_rds("r");
    h.http_filters.insert(0, fault());
    let e = nack(server(vec![chain("a", None, &h)]));
    assert_eq!(
        e.field,
        "filter_chains[0].filters[0].typed_config.http_filters[0]"
    );
    let e = nack(wire::Listener {
        default_filter_chain: Some(wire::FilterChain::default()),
        ..plain_server()
    });
    assert_eq!(e.field, "default_filter_chain.filters");
}

#[test]
fn xff_hops_rejected_with_rbac() {
    let h = hcm::HttpConnectionManager {
        xff_num_trusted_hops: 1,
        http_filters: vec![
            rbac_filter("envoy.filters.http.rbac", policy::rbac::Action::Allow),
            router(),
        ],
        ..inbound_hcm_with_rds("r")
    };
    let e = nack(server(vec![chain("a", None, &h)]));
    assert_eq!(
        e.field,
        "filter_chains[0].filters[0].typed_config.xff_num_trusted_hops"
    );
    let h = hcm::HttpConnectionManager {
        xff_num_trusted_hops: 0,
        original_ip_detection_extensions: vec![Default::default()],
        ..h
    };
    let e = nack(server(vec![chain("a", None, &h)]));
    assert_eq!(
        e.field,
        "filter_chains[0].filters[0].typed_config.original_ip_detection_extensions"
    );
}

#[test]
fn transport_sockets() {
    let mut l = plain_server();
    l.filter_chains[0].transport_socket = Some(core::TransportSocket {
        name: "envoy.transport_sockets.raw_buffer".into(),
        config_type: None,
    });
    assert!(
        Listener::try_from(l.clone())
            .unwrap()
            .server()
            .unwrap()
            .filter_chains[0]
            .tls
            .is_none()
    );
    l.filter_chains[0].transport_socket = Some(core::TransportSocket {
        name: "envoy.transport_sockets.alts".into(),
        config_type: Some(core::transport_socket::ConfigType::TypedConfig(any_of(
            "envoy.extensions.transport_sockets.alts.v3.Alts",
            &protobuf::Empty {},
        ))),
    });
    assert_eq!(
        nack(l.clone()).field,
        "filter_chains[0].transport_socket.typed_config"
    );
    l.filter_chains[0].transport_socket = Some(core::TransportSocket {
        name: "envoy.transport_sockets.tls".into(),
        config_type: None,
    });
    assert_eq!(nack(l).field, "filter_chains[0].transport_socket");
}

/// Needs `tls::DownstreamTlsContext` validation from the TLS module.
#[test]
fn tls_errors_carry_the_chain_path() {
    let mut l = plain_server();
    let mut socket = istio_mtls_socket();
    let Some(core::transport_socket::ConfigType::TypedConfig(any)) = &mut socket.config_type else {
        unreachable!()
    };
    let mut ctx: tls::DownstreamTlsContext = prost::Message::decode(any.value.as_slice()).unwrap();
    ctx.common_tls_context = None;
    any.value = prost::Message::encode_to_vec(&ctx);
    l.filter_chains[0].transport_socket = Some(socket);
    let e = nack(l);
    assert!(
        e.field
            .starts_with("filter_chains[0].transport_socket.typed_config"),
        "{e}"
    );
}

/// Needs `route::RouteConfig` validation from the route module.
#[test]
fn inline_route_errors_carry_the_hcm_path() {
    let mut rc = inbound_route();
    rc.virtual_hosts[0].routes[0].r#match = Some(route::RouteMatch::default());
    let h = hcm::HttpConnectionManager {
        route_specifier: Some(RouteSpecifier::RouteConfig(rc)),
        ..outbound_hcm()
    };
    let e = nack(client(h));
    assert!(
        e.field
            .starts_with("api_listener.api_listener.route_config.virtual_hosts[0].routes[0]"),
        "{e}"
    );
}
