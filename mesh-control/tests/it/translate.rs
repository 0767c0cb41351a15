//! Istio YAML (tests/fixtures/) → xDS: the Bookinfo-like mesh translated
//! and checked field by field, every resource validated by mesh-core (the
//! interop guarantee), config errors and warnings naming file, document
//! and field.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use envoy_types::pb::envoy::config::cluster::v3 as cluster;
use envoy_types::pb::envoy::config::core::v3 as core;
use envoy_types::pb::envoy::config::endpoint::v3 as endpoint;
use envoy_types::pb::envoy::config::listener::v3 as listener;
use envoy_types::pb::envoy::config::rbac::v3 as rbac;
use envoy_types::pb::envoy::config::route::v3 as route;
use envoy_types::pb::envoy::extensions::filters::http::fault::v3 as fault;
use envoy_types::pb::envoy::extensions::filters::http::rbac::v3 as rbac_filter;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3 as hcm;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3 as tls;
use envoy_types::pb::google::protobuf::Any;
use mesh_control::config;
use mesh_control::snapshot::{NodeInfo, XdsSnapshot};
use mesh_control::translate::{HealthOverrides, Translation, dump_json, translate};
use mesh_core::resource::{self as res, ResourceType};
use prost::Message;

mod config_errors;

const REVIEWS: &str = "reviews.default.svc.cluster.local";
const RATINGS: &str = "ratings.default.svc.cluster.local";
const PRODUCTPAGE: &str = "productpage.default.svc.cluster.local";

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn bookinfo() -> Translation {
    let loaded = config::load(fixture("bookinfo")).expect("bookinfo loads");
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    translate(&loaded.config, &HealthOverrides::default())
}

fn get<M: Message + Default>(snap: &XdsSnapshot, kind: ResourceType, name: &str) -> M {
    let r = snap
        .resources
        .get(&kind)
        .and_then(|m| m.get(name))
        .unwrap_or_else(|| panic!("no {kind} resource {name}"));
    M::decode(r.any.value.as_slice()).unwrap()
}

fn unpack<M: Message + Default>(any: &Any) -> M {
    M::decode(any.value.as_slice()).unwrap()
}

fn hcm_of(l: &listener::Listener) -> hcm::HttpConnectionManager {
    unpack(
        l.api_listener
            .as_ref()
            .unwrap()
            .api_listener
            .as_ref()
            .unwrap(),
    )
}

fn typed(f: &hcm::HttpFilter) -> &Any {
    match f.config_type.as_ref().unwrap() {
        hcm::http_filter::ConfigType::TypedConfig(a) => a,
        other => panic!("{other:?}"),
    }
}

fn secs(d: &envoy_types::pb::google::protobuf::Duration) -> f64 {
    d.seconds as f64 + f64::from(d.nanos) / 1e9
}

fn action(r: &route::Route) -> &route::RouteAction {
    match r.action.as_ref().unwrap() {
        route::route::Action::Route(a) => a,
        other => panic!("{other:?}"),
    }
}

/// The interop guarantee: every generated resource passes mesh-core's
/// validation (which follows gRPC's NACK rules).
fn assert_all_valid(snap: &XdsSnapshot, node: &NodeInfo) -> usize {
    let mut n = 0;
    for (kind, by_name) in &snap.resources {
        for (name, r) in by_name {
            let decoded = match kind {
                ResourceType::Listener => res::decode::<res::Listener>(&r.any).map(|(n, _)| n),
                ResourceType::RouteConfiguration => {
                    res::decode::<res::RouteConfig>(&r.any).map(|(n, _)| n)
                }
                ResourceType::Cluster => res::decode::<res::Cluster>(&r.any).map(|(n, _)| n),
                ResourceType::ClusterLoadAssignment => {
                    res::decode::<res::ClusterLoadAssignment>(&r.any).map(|(n, _)| n)
                }
            };
            assert_eq!(decoded.as_deref(), Ok(name.as_str()), "{kind} {name}");
            n += 1;
        }
    }
    for (ip, port) in snap.inbound.keys() {
        let name = format!(
            "xds.istio.io/grpc/lds/inbound/{}",
            SocketAddr::new(*ip, *port)
        );
        let node = NodeInfo {
            ips: vec![*ip],
            ..node.clone()
        };
        let any = snap
            .resolve(&node, ResourceType::Listener, &name)
            .expect("inbound resolves");
        let (_, l) = res::decode::<res::Listener>(&any).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(matches!(l.kind, res::listener::ListenerKind::Server(_)));
        n += 1;
    }
    n
}

#[test]
fn bookinfo_resources_all_pass_mesh_core_validation() {
    let t = bookinfo();
    let n = assert_all_valid(&t.snapshot, &NodeInfo::default());
    // 4 names × 3 services listeners, 3 routes, 3 + 3 subsets clusters and
    // as many EDS, 5 inbound listeners.
    assert_eq!(n, 12 + 3 + 6 + 6 + 5);
    assert_eq!(t.snapshot.version, 0, "the server sets the version");
}

#[test]
fn outbound_listeners_answer_for_every_name() {
    let t = bookinfo();
    for name in [
        "reviews.default.svc.cluster.local:9080",
        "reviews:9080",
        "reviews.default:9080",
        "reviews.default.svc:9080",
    ] {
        let l: listener::Listener = get(&t.snapshot, ResourceType::Listener, name);
        assert_eq!(l.name, name);
        let h = hcm_of(&l);
        let names: Vec<&str> = h.http_filters.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(
            names,
            ["envoy.filters.http.fault", "envoy.filters.http.router"]
        );
        let fault: fault::HttpFault = unpack(typed(&h.http_filters[0]));
        assert_eq!(fault, fault::HttpFault::default());
        match h.route_specifier.unwrap() {
            hcm::http_connection_manager::RouteSpecifier::Rds(rds) => {
                assert_eq!(rds.route_config_name, format!("outbound|9080||{REVIEWS}"));
                assert!(matches!(
                    rds.config_source.unwrap().config_source_specifier,
                    Some(core::config_source::ConfigSourceSpecifier::Ads(_))
                ));
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn virtual_service_routes_translate_as_istiod_does() {
    let t = bookinfo();
    let rc: route::RouteConfiguration = get(
        &t.snapshot,
        ResourceType::RouteConfiguration,
        &format!("outbound|9080||{REVIEWS}"),
    );
    let vh = &rc.virtual_hosts[0];
    for d in [
        REVIEWS,
        "reviews",
        "reviews:9080",
        "reviews.default.svc:9080",
    ] {
        assert!(vh.domains.iter().any(|x| x == d), "{d} in {:?}", vh.domains);
    }
    assert_eq!(vh.routes.len(), 3, "one route per match, then the split");

    let r0 = &vh.routes[0];
    assert_eq!(r0.name, "jason.user");
    let m = r0.r#match.as_ref().unwrap();
    assert_eq!(
        m.path_specifier,
        Some(route::route_match::PathSpecifier::Prefix(
            "/bookinfo.Reviews/".into()
        ))
    );
    assert_eq!(m.headers[0].name, "end-user");
    let a = action(r0);
    assert_eq!(
        a.cluster_specifier,
        Some(route::route_action::ClusterSpecifier::Cluster(format!(
            "outbound|9080|v2|{REVIEWS}"
        )))
    );
    let msd = a.max_stream_duration.as_ref().unwrap();
    assert_eq!(secs(msd.max_stream_duration.as_ref().unwrap()), 2.5);
    assert!(a.timeout.is_none());
    let retry = a.retry_policy.as_ref().unwrap();
    assert_eq!(retry.num_retries.unwrap().value, 3);
    assert_eq!(retry.retry_on, "unavailable,retriable-status-codes");
    assert_eq!(retry.retriable_status_codes, [503]);
    assert_eq!(secs(retry.per_try_timeout.as_ref().unwrap()), 1.0);
    // Subset v2 hashes on x-user.
    match a.hash_policy[0].policy_specifier.as_ref().unwrap() {
        route::route_action::hash_policy::PolicySpecifier::Header(h) => {
            assert_eq!(h.header_name, "x-user")
        }
        other => panic!("{other:?}"),
    }

    let m1 = vh.routes[1].r#match.as_ref().unwrap();
    assert!(matches!(
        &m1.path_specifier,
        Some(route::route_match::PathSpecifier::SafeRegex(r)) if r.regex == "/bookinfo\\.Reviews/.*"
    ));
    assert_eq!(m1.headers[0].name, ":method");

    let r2 = &vh.routes[2];
    let a = action(r2);
    let Some(route::route_action::ClusterSpecifier::WeightedClusters(w)) = &a.cluster_specifier
    else {
        panic!("{a:?}")
    };
    let split: Vec<(String, u32)> = w
        .clusters
        .iter()
        .map(|c| (c.name.clone(), c.weight.unwrap().value))
        .collect();
    assert_eq!(
        split,
        [
            (format!("outbound|9080|v1|{REVIEWS}"), 40),
            (format!("outbound|9080|v2|{REVIEWS}"), 40),
            (format!("outbound|9080|v3|{REVIEWS}"), 20),
        ]
    );
    assert_eq!(
        secs(
            a.max_stream_duration
                .as_ref()
                .unwrap()
                .max_stream_duration
                .as_ref()
                .unwrap()
        ),
        0.0,
        "no timeout: 0s, no limit"
    );
    assert_eq!(
        a.retry_policy.as_ref().unwrap().retry_on,
        "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes"
    );
    let f: fault::HttpFault = unpack(&r2.typed_per_filter_config["envoy.filters.http.fault"]);
    let delay = f.delay.unwrap();
    assert_eq!(delay.percentage.unwrap().numerator, 125_000);
    assert_eq!(delay.percentage.unwrap().denominator, 2, "MILLION");
    let abort = f.abort.unwrap();
    assert_eq!(
        abort.error_type,
        Some(fault::fault_abort::ErrorType::GrpcStatus(14))
    );
    assert_eq!(abort.percentage.unwrap().numerator, 10_000);
}

#[test]
#[allow(deprecated)]
fn default_route_without_virtual_service() {
    let t = bookinfo();
    let rc: route::RouteConfiguration = get(
        &t.snapshot,
        ResourceType::RouteConfiguration,
        &format!("outbound|9080||{RATINGS}"),
    );
    let r = &rc.virtual_hosts[0].routes[0];
    assert_eq!(r.name, "default");
    assert_eq!(
        r.r#match.as_ref().unwrap().path_specifier,
        Some(route::route_match::PathSpecifier::Prefix("/".into()))
    );
    let a = action(r);
    assert_eq!(
        a.cluster_specifier,
        Some(route::route_action::ClusterSpecifier::Cluster(format!(
            "outbound|9080||{RATINGS}"
        )))
    );
    let retry = a.retry_policy.as_ref().unwrap();
    assert_eq!(retry.num_retries.unwrap().value, 2);
    assert_eq!(
        retry.retry_on,
        "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes"
    );
    assert_eq!(secs(a.timeout.as_ref().unwrap()), 0.0);
    assert_eq!(secs(a.max_grpc_timeout.as_ref().unwrap()), 0.0);
    assert!(a.max_stream_duration.is_none());
    assert_eq!(a.hash_policy.len(), 1, "consistentHash → hash_policy");
}

#[test]
#[allow(deprecated)]
fn clusters_carry_destination_rule_policy() {
    let t = bookinfo();
    let c: cluster::Cluster = get(
        &t.snapshot,
        ResourceType::Cluster,
        &format!("outbound|9080||{REVIEWS}"),
    );
    assert_eq!(
        c.cluster_discovery_type,
        Some(cluster::cluster::ClusterDiscoveryType::Type(
            cluster::cluster::DiscoveryType::Eds as i32
        ))
    );
    assert_eq!(c.eds_cluster_config.as_ref().unwrap().service_name, c.name);
    assert_eq!(c.lb_policy, cluster::cluster::LbPolicy::LeastRequest as i32);
    let th = &c.circuit_breakers.as_ref().unwrap().thresholds[0];
    assert_eq!(th.max_requests.unwrap().value, 100);
    assert_eq!(th.max_pending_requests.unwrap().value, 10);
    assert_eq!(th.max_retries.unwrap().value, 3);
    let od = c.outlier_detection.as_ref().unwrap();
    assert_eq!(od.consecutive_5xx.unwrap().value, 5);
    assert_eq!(od.consecutive_gateway_failure.unwrap().value, 2);
    assert_eq!(secs(od.interval.as_ref().unwrap()), 10.0);
    assert_eq!(secs(od.base_ejection_time.as_ref().unwrap()), 30.0);
    assert_eq!(od.max_ejection_percent.unwrap().value, 50);
    assert_eq!(od.enforcing_success_rate.unwrap().value, 0);

    let ts = c.transport_socket.as_ref().unwrap();
    assert_eq!(ts.name, "envoy.transport_sockets.tls");
    let Some(core::transport_socket::ConfigType::TypedConfig(any)) = &ts.config_type else {
        panic!()
    };
    let ctx: tls::UpstreamTlsContext = unpack(any);
    let common = ctx.common_tls_context.unwrap();
    let id = common.tls_certificate_provider_instance.unwrap();
    assert_eq!(
        (id.instance_name.as_str(), id.certificate_name.as_str()),
        ("default", "default")
    );
    let legacy = common
        .tls_certificate_certificate_provider_instance
        .unwrap();
    assert_eq!(legacy.instance_name, "default");
    let Some(tls::common_tls_context::ValidationContextType::CombinedValidationContext(cvc)) =
        common.validation_context_type
    else {
        panic!()
    };
    let v = cvc.default_validation_context.unwrap();
    assert_eq!(
        v.ca_certificate_provider_instance.unwrap().certificate_name,
        "ROOTCA"
    );
    let sans: Vec<_> = v
        .match_subject_alt_names
        .iter()
        .map(|m| m.match_pattern.clone().unwrap())
        .collect();
    assert_eq!(
        sans,
        [
            envoy_types::pb::envoy::r#type::matcher::v3::string_matcher::MatchPattern::Exact(
                "spiffe://cluster.local/ns/default/sa/bookinfo-reviews".into()
            )
        ]
    );
    assert_eq!(
        cvc.validation_context_certificate_provider_instance
            .unwrap()
            .certificate_name,
        "ROOTCA"
    );

    // Subset v2 overrides the load balancer only.
    let v2: cluster::Cluster = get(
        &t.snapshot,
        ResourceType::Cluster,
        &format!("outbound|9080|v2|{REVIEWS}"),
    );
    assert_eq!(v2.lb_policy, cluster::cluster::LbPolicy::RingHash as i32);
    let Some(cluster::cluster::LbConfig::RingHashLbConfig(rh)) = &v2.lb_config else {
        panic!()
    };
    assert_eq!(rh.minimum_ring_size.unwrap().value, 1024);
    assert!(v2.circuit_breakers.is_some() && v2.transport_socket.is_some());

    let ratings: cluster::Cluster = get(
        &t.snapshot,
        ResourceType::Cluster,
        &format!("outbound|9080||{RATINGS}"),
    );
    let Some(cluster::cluster::LbConfig::RingHashLbConfig(rh)) = &ratings.lb_config else {
        panic!()
    };
    assert_eq!(rh.minimum_ring_size.unwrap().value, 2048);
    let pp: cluster::Cluster = get(
        &t.snapshot,
        ResourceType::Cluster,
        &format!("outbound|9080||{PRODUCTPAGE}"),
    );
    assert_eq!(pp.lb_policy, 0, "round robin: no field");
    assert!(pp.transport_socket.is_none() && pp.outlier_detection.is_none());
}

fn workload_of(e: &endpoint::LbEndpoint) -> String {
    let s = &e.metadata.as_ref().unwrap().filter_metadata["istio"].fields["workload"];
    match &s.kind {
        Some(envoy_types::pb::google::protobuf::value::Kind::StringValue(v)) => v.clone(),
        other => panic!("{other:?}"),
    }
}

fn addr_of(e: &endpoint::LbEndpoint) -> SocketAddr {
    let Some(endpoint::lb_endpoint::HostIdentifier::Endpoint(ep)) = &e.host_identifier else {
        panic!()
    };
    let Some(core::address::Address::SocketAddress(sa)) = &ep.address.as_ref().unwrap().address
    else {
        panic!()
    };
    let Some(core::socket_address::PortSpecifier::PortValue(p)) = sa.port_specifier else {
        panic!()
    };
    SocketAddr::new(sa.address.parse().unwrap(), p as u16)
}

#[test]
fn endpoints_grouped_by_locality_with_istio_metadata() {
    let t = bookinfo();
    let cla: endpoint::ClusterLoadAssignment = get(
        &t.snapshot,
        ResourceType::ClusterLoadAssignment,
        &format!("outbound|9080||{REVIEWS}"),
    );
    assert_eq!(cla.cluster_name, format!("outbound|9080||{REVIEWS}"));
    assert_eq!(cla.endpoints.len(), 2);
    let a = &cla.endpoints[0];
    let loc = a.locality.as_ref().unwrap();
    assert_eq!(
        (loc.region.as_str(), loc.zone.as_str()),
        ("us-east", "zone-a")
    );
    assert_eq!(a.priority, 0);
    assert_eq!(a.load_balancing_weight.unwrap().value, 2);
    let v1 = &a.lb_endpoints[0];
    assert_eq!(addr_of(v1), "10.0.2.1:19080".parse().unwrap(), "targetPort");
    assert_eq!(v1.health_status, core::HealthStatus::Healthy as i32);
    assert_eq!(workload_of(v1), "reviews-v1;default;reviews;v1;Kubernetes");
    let tls_match = &v1.metadata.as_ref().unwrap().filter_metadata["envoy.transport_socket_match"];
    assert!(tls_match.fields.contains_key("tlsMode"));
    let v3 = &a.lb_endpoints[1];
    assert_eq!(
        addr_of(v3),
        "10.0.2.3:29080".parse().unwrap(),
        "WorkloadEntry port"
    );
    assert_eq!(
        v3.health_status,
        core::HealthStatus::Unhealthy as i32,
        "annotation"
    );
    assert_eq!(
        workload_of(v3),
        "reviews-v3;default;reviews-canonical;;Kubernetes"
    );
    assert!(
        !v3.metadata
            .as_ref()
            .unwrap()
            .filter_metadata
            .contains_key("envoy.transport_socket_match")
    );
    let b = &cla.endpoints[1];
    assert_eq!(b.locality.as_ref().unwrap().zone, "zone-b");
    assert_eq!(b.load_balancing_weight.unwrap().value, 3);
    assert_eq!(b.lb_endpoints[0].load_balancing_weight.unwrap().value, 3);

    let sub: endpoint::ClusterLoadAssignment = get(
        &t.snapshot,
        ResourceType::ClusterLoadAssignment,
        &format!("outbound|9080|v1|{REVIEWS}"),
    );
    let addrs: Vec<_> = sub
        .endpoints
        .iter()
        .flat_map(|l| &l.lb_endpoints)
        .map(addr_of)
        .collect();
    assert_eq!(addrs, ["10.0.2.1:19080".parse::<SocketAddr>().unwrap()]);

    // Inline ServiceEntry endpoints are named after the ServiceEntry.
    let ratings: endpoint::ClusterLoadAssignment = get(
        &t.snapshot,
        ResourceType::ClusterLoadAssignment,
        &format!("outbound|9080||{RATINGS}"),
    );
    assert_eq!(
        workload_of(&ratings.endpoints[0].lb_endpoints[0]),
        "ratings;default;ratings;v1;Kubernetes"
    );
}

#[test]
fn health_overrides_mark_endpoints_unhealthy() {
    let loaded = config::load(fixture("bookinfo")).unwrap();
    let mut health = HealthOverrides::default();
    health.unhealthy.insert("10.0.2.1:19080".parse().unwrap());
    let t = translate(&loaded.config, &health);
    let cla: endpoint::ClusterLoadAssignment = get(
        &t.snapshot,
        ResourceType::ClusterLoadAssignment,
        &format!("outbound|9080|v1|{REVIEWS}"),
    );
    assert_eq!(
        cla.endpoints[0].lb_endpoints[0].health_status,
        core::HealthStatus::Unhealthy as i32
    );
}

fn inbound(t: &Translation, ip: &str, port: u16) -> listener::Listener {
    let ip: IpAddr = ip.parse().unwrap();
    t.snapshot.inbound[&(ip, port)].listener.clone()
}

fn chain_hcm(l: &listener::Listener) -> hcm::HttpConnectionManager {
    let f = &l.filter_chains[0].filters[0];
    assert_eq!(f.name, "envoy.filters.network.http_connection_manager");
    let Some(listener::filter::ConfigType::TypedConfig(any)) = &f.config_type else {
        panic!()
    };
    unpack(any)
}

#[test]
fn strict_workload_gets_mtls_chain_and_rbac() {
    let t = bookinfo();
    let l = inbound(&t, "10.0.2.1", 19080);
    assert!(l.api_listener.is_none() && l.listener_filters.is_empty());
    let chain = &l.filter_chains[0];
    assert_eq!(chain.name, "inbound-mtls");
    let Some(core::transport_socket::ConfigType::TypedConfig(any)) =
        &chain.transport_socket.as_ref().unwrap().config_type
    else {
        panic!()
    };
    let ctx: tls::DownstreamTlsContext = unpack(any);
    assert!(ctx.require_client_certificate.unwrap().value);
    let h = chain_hcm(&l);
    let names: Vec<&str> = h.http_filters.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "envoy.filters.http.rbac.DENY",
            "envoy.filters.http.rbac",
            "envoy.filters.http.router"
        ]
    );
    let deny: rbac_filter::Rbac = unpack(typed(&h.http_filters[0]));
    let deny = deny.rules.unwrap();
    assert_eq!(deny.action, rbac::rbac::Action::Deny as i32);
    assert!(
        deny.policies
            .contains_key("ns[default]-policy[deny-blocked]-rule[0]")
    );
    let allow: rbac_filter::Rbac = unpack(typed(&h.http_filters[1]));
    let allow = allow.rules.unwrap();
    assert_eq!(allow.action, rbac::rbac::Action::Allow as i32);
    let p = &allow.policies["ns[default]-policy[reviews-viewer]-rule[0]"];
    assert_eq!(p.principals.len(), 2, "one per source");
    assert_eq!(p.permissions.len(), 1);
    let dbg = format!("{p:?}");
    for needle in [
        "spiffe://cluster.local/ns/default/sa/bookinfo-productpage",
        ".*/ns/test/.*",
        "Prefix(\"/bookinfo.Reviews/\")",
        ":method",
        "DestinationPort(19080)",
    ] {
        assert!(dbg.contains(needle), "{needle} in {dbg}");
    }
    let Some(hcm::http_connection_manager::RouteSpecifier::RouteConfig(rc)) = &h.route_specifier
    else {
        panic!()
    };
    assert_eq!(rc.name, "inbound");
    assert_eq!(rc.virtual_hosts[0].domains, ["*"]);
    assert!(matches!(
        rc.virtual_hosts[0].routes[0].action,
        Some(route::route::Action::NonForwardingAction(_))
    ));
}

#[test]
fn permissive_and_disabled_workloads() {
    let t = bookinfo();
    // DISABLE: plaintext, and no ALLOW policy means no enforcement.
    let l = inbound(&t, "10.0.1.1", 9080);
    assert_eq!(l.filter_chains[0].name, "inbound-plaintext");
    assert!(l.filter_chains[0].transport_socket.is_none());
    let h = chain_hcm(&l);
    let allow: rbac_filter::Rbac = unpack(typed(&h.http_filters[1]));
    assert!(allow.rules.is_none());
    // PERMISSIVE mesh-wide, labelled tlsMode istio: mTLS.
    let l = inbound(&t, "10.0.3.1", 9080);
    assert_eq!(l.filter_chains[0].name, "inbound-mtls");
    // A selector policy (STRICT) beats the mesh-wide PERMISSIVE, label or not.
    let l = inbound(&t, "10.0.2.3", 29080);
    assert_eq!(l.filter_chains[0].name, "inbound-mtls");
}

#[test]
fn dump_renders_readable_json() {
    let t = bookinfo();
    let j = dump_json(&t.snapshot);
    let c = &j["resources"]["CDS"][format!("outbound|9080||{REVIEWS}")];
    assert_eq!(c["lb_policy"], "LeastRequest");
    assert_eq!(c["outlier_detection"]["interval"], "10s");
    assert_eq!(c["circuit_breakers"]["thresholds"][0]["max_requests"], 100);
    let tls = &c["transport_socket"]["config_type"]["TypedConfig"];
    assert_eq!(
        tls["@type"],
        "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"
    );
    let l = &j["resources"]["LDS"]["reviews:9080"];
    let h = &l["api_listener"]["api_listener"];
    assert_eq!(h["http_filters"][1]["name"], "envoy.filters.http.router");
    let e = &j["resources"]["EDS"][format!("outbound|9080|v1|{REVIEWS}")];
    assert_eq!(
        e["endpoints"][0]["lb_endpoints"][0]["metadata"]["filter_metadata"]["istio"]["workload"],
        "reviews-v1;default;reviews;v1;Kubernetes"
    );
    assert!(j["inbound"]["10.0.2.1:19080"]["filter_chains"][0]["name"] == "inbound-mtls");
}
