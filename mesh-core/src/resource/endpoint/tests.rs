use super::*;
use crate::resource::common::json_to_struct;
use envoy_types::pb::google::protobuf::UInt32Value;

pub(crate) fn addr(ip: &str, port: u32) -> core::Address {
    core::Address {
        address: Some(core::address::Address::SocketAddress(core::SocketAddress {
            address: ip.into(),
            port_specifier: Some(core::socket_address::PortSpecifier::PortValue(port)),
            ..Default::default()
        })),
    }
}

pub(crate) fn lb(ip: &str, port: u32) -> wire::LbEndpoint {
    wire::LbEndpoint {
        host_identifier: Some(wire::lb_endpoint::HostIdentifier::Endpoint(
            wire::Endpoint {
                address: Some(addr(ip, port)),
                ..Default::default()
            },
        )),
        ..Default::default()
    }
}

pub(crate) fn locality(
    zone: &str,
    weight: u32,
    eps: Vec<wire::LbEndpoint>,
) -> wire::LocalityLbEndpoints {
    wire::LocalityLbEndpoints {
        locality: Some(core::Locality {
            region: "us-central1".into(),
            zone: zone.into(),
            sub_zone: String::new(),
        }),
        lb_endpoints: eps,
        load_balancing_weight: Some(UInt32Value { value: weight }),
        ..Default::default()
    }
}

fn cla(localities: Vec<wire::LocalityLbEndpoints>) -> wire::ClusterLoadAssignment {
    wire::ClusterLoadAssignment {
        cluster_name: "outbound|7070||echo.default.svc.cluster.local".into(),
        endpoints: localities,
        ..Default::default()
    }
}

fn err(c: wire::ClusterLoadAssignment) -> FieldError {
    ClusterLoadAssignment::try_from(c).unwrap_err().error
}

fn endpoint_mut(c: &mut wire::ClusterLoadAssignment, i: usize, j: usize) -> &mut wire::Endpoint {
    match &mut c.endpoints[i].lb_endpoints[j].host_identifier {
        Some(wire::lb_endpoint::HostIdentifier::Endpoint(e)) => e,
        _ => unreachable!(),
    }
}

fn istio_ep(ip: &str, workload: &str) -> wire::LbEndpoint {
    let mut e = lb(ip, 7070);
    e.health_status = core::HealthStatus::Healthy as i32;
    e.load_balancing_weight = Some(UInt32Value { value: 1 });
    e.metadata = Some(core::Metadata {
        filter_metadata: [(
            "istio".to_owned(),
            json_to_struct(&serde_json::json!({"workload": workload})),
        )]
        .into(),
        ..Default::default()
    });
    e
}

#[test]
fn istiod_eds_with_two_localities() {
    let c = cla(vec![
        locality(
            "us-central1-a",
            2,
            vec![
                istio_ep("10.0.0.1", "echo-v1;default;echo;v1;Kubernetes"),
                istio_ep("10.0.0.2", "echo-v1;default;echo;v1;Kubernetes"),
            ],
        ),
        locality(
            "us-central1-b",
            1,
            vec![istio_ep("10.0.1.1", "echo-v2;default;echo;v2;Kubernetes")],
        ),
    ]);
    let a = ClusterLoadAssignment::try_from(c).unwrap();
    assert_eq!(
        a.cluster_name,
        "outbound|7070||echo.default.svc.cluster.local"
    );
    assert_eq!(a.priorities.len(), 1);
    let ls = &a.priorities[0].localities;
    assert_eq!((ls[0].weight, ls[1].weight), (2, 1));
    assert_eq!(ls[1].locality.zone, "us-central1-b");
    let e = &ls[0].endpoints[1];
    assert_eq!(e.address, "10.0.0.2:7070".parse().unwrap());
    assert_eq!(e.health, HealthStatus::Healthy);
    assert!(e.is_usable());
    assert_eq!(e.weight, 1);
    assert_eq!(e.workload(), Some("echo-v1;default;echo;v1;Kubernetes"));
    assert_eq!(a.endpoint_count(), 3);
    assert_eq!(a.overprovisioning_factor, 140);
    assert_eq!(a.endpoints().map(|(p, _, _)| p).max(), Some(0));
}

#[test]
fn endpoints_compare_by_value() {
    let mut c = cla(vec![locality(
        "a",
        1,
        vec![lb("10.0.0.1", 80), lb("10.0.0.2", 80)],
    )]);
    let before = ClusterLoadAssignment::try_from(c.clone()).unwrap();
    c.endpoints[0].lb_endpoints[1].health_status = core::HealthStatus::Draining as i32;
    let after = ClusterLoadAssignment::try_from(c).unwrap();
    let (b, a) = (
        &before.priorities[0].localities[0],
        &after.priorities[0].localities[0],
    );
    assert_eq!(b.endpoints[0], a.endpoints[0]);
    assert_ne!(b.endpoints[1], a.endpoints[1]);
    assert!(!a.endpoints[1].is_usable());
    let set: std::collections::HashSet<&Endpoint> = b.endpoints.iter().collect();
    assert!(set.contains(&a.endpoints[0]) && !set.contains(&a.endpoints[1]));
}

#[test]
fn priorities_must_be_contiguous() {
    let mut p2 = locality("b", 1, vec![lb("10.0.0.2", 80)]);
    p2.priority = 2;
    let mut p1 = locality("c", 1, vec![lb("10.0.0.3", 80)]);
    p1.priority = 1;
    let ok = ClusterLoadAssignment::try_from(cla(vec![
        p2.clone(),
        locality("a", 1, vec![lb("10.0.0.1", 80)]),
        p1,
    ]))
    .unwrap();
    assert_eq!(ok.priorities.len(), 3);
    assert_eq!(ok.priorities[2].localities[0].locality.zone, "b");
    // Priority 2 beside priority 0 only: priority 1 is missing.
    let e = err(cla(vec![
        locality("a", 1, vec![lb("10.0.0.1", 80)]),
        p2.clone(),
        locality("z", 1, vec![]),
    ]));
    assert_eq!(e.field, "endpoints");
    assert!(e.reason.contains("priority 1"), "{e}");
    // A priority no list of this length can reach.
    let e = err(cla(vec![locality("a", 1, vec![lb("10.0.0.1", 80)]), p2]));
    assert_eq!(e.field, "endpoints[1].priority");
}

#[test]
fn zero_weight_localities_are_dropped_for_eds_only() {
    let mut unset = locality("b", 1, vec![lb("10.0.0.2", 80)]);
    unset.load_balancing_weight = None;
    let c = cla(vec![
        locality("a", 1, vec![lb("10.0.0.1", 80)]),
        unset,
        locality("c", 0, vec![lb("10.0.0.3", 80)]),
    ]);
    let eds = ClusterLoadAssignment::try_from(c.clone()).unwrap();
    assert_eq!(eds.priorities[0].localities.len(), 1);
    let stat = ClusterLoadAssignment::from_static_wire(c).unwrap();
    assert_eq!(stat.priorities[0].localities.len(), 2);
    assert_eq!(stat.priorities[0].localities[1].weight, 1);
}

#[test]
fn duplicate_locality_in_a_priority() {
    let e = err(cla(vec![
        locality("a", 1, vec![lb("10.0.0.1", 80)]),
        locality("a", 1, vec![lb("10.0.0.2", 80)]),
    ]));
    assert_eq!(e.field, "endpoints[1].locality");
    // The same locality at another priority is fine.
    let mut other = locality("a", 1, vec![lb("10.0.0.2", 80)]);
    other.priority = 1;
    ClusterLoadAssignment::try_from(cla(vec![locality("a", 1, vec![lb("10.0.0.1", 80)]), other]))
        .unwrap();
}

#[test]
fn duplicate_addresses_anywhere() {
    let e = err(cla(vec![locality(
        "a",
        1,
        vec![lb("10.0.0.1", 80), lb("10.0.0.1", 80)],
    )]));
    assert_eq!(e.field, "endpoints[0].lb_endpoints[1].endpoint.address");
    assert!(e.reason.contains("endpoints[0].lb_endpoints[0]"), "{e}");
    let mut p1 = locality("b", 1, vec![lb("10.0.0.1", 80)]);
    p1.priority = 1;
    let e = err(cla(vec![locality("a", 1, vec![lb("10.0.0.1", 80)]), p1]));
    assert_eq!(e.field, "endpoints[1].lb_endpoints[0].endpoint.address");
    // Same IP, other port: distinct.
    ClusterLoadAssignment::try_from(cla(vec![locality(
        "a",
        1,
        vec![lb("10.0.0.1", 80), lb("10.0.0.1", 81)],
    )]))
    .unwrap();
    // Additional addresses count too.
    let mut c = cla(vec![locality(
        "a",
        1,
        vec![lb("10.0.0.1", 80), lb("10.0.0.2", 80)],
    )]);
    endpoint_mut(&mut c, 0, 1).additional_addresses = vec![wire::endpoint::AdditionalAddress {
        address: Some(addr("10.0.0.1", 80)),
    }];
    assert_eq!(
        err(c).field,
        "endpoints[0].lb_endpoints[1].endpoint.additional_addresses[0].address"
    );
}

#[test]
fn additional_addresses_are_kept() {
    let mut c = cla(vec![locality("a", 1, vec![lb("10.0.0.1", 80)])]);
    endpoint_mut(&mut c, 0, 0).additional_addresses = vec![wire::endpoint::AdditionalAddress {
        address: Some(addr("fd00::1", 80)),
    }];
    let a = ClusterLoadAssignment::try_from(c).unwrap();
    assert_eq!(
        a.priorities[0].localities[0].endpoints[0].additional_addresses,
        vec!["[fd00::1]:80".parse::<SocketAddr>().unwrap()]
    );
}

#[test]
fn endpoints_need_ip_and_port() {
    let base = || {
        cla(vec![locality(
            "a",
            1,
            vec![lb("10.0.0.1", 80), lb("10.0.0.2", 80)],
        )])
    };
    let p = "endpoints[0].lb_endpoints[1]";
    let mut c = base();
    endpoint_mut(&mut c, 0, 1).address = None;
    assert_eq!(err(c).field, format!("{p}.endpoint.address"));
    let mut c = base();
    endpoint_mut(&mut c, 0, 1).address = Some(core::Address {
        address: Some(core::address::Address::Pipe(core::Pipe {
            path: "/tmp/s".into(),
            mode: 0,
        })),
    });
    assert_eq!(err(c).field, format!("{p}.endpoint.address.pipe"));
    let mut c = base();
    endpoint_mut(&mut c, 0, 1).address = Some(addr("echo.default.svc", 80));
    assert_eq!(
        err(c).field,
        format!("{p}.endpoint.address.socket_address.address")
    );
    for port in [0, 70000] {
        let mut c = base();
        endpoint_mut(&mut c, 0, 1).address = Some(addr("10.0.0.2", port));
        assert_eq!(
            err(c).field,
            format!("{p}.endpoint.address.socket_address.port_value")
        );
    }
    let mut c = base();
    if let Some(core::address::Address::SocketAddress(sa)) =
        &mut endpoint_mut(&mut c, 0, 1).address.as_mut().unwrap().address
    {
        sa.port_specifier = Some(core::socket_address::PortSpecifier::NamedPort(
            "http".into(),
        ));
    }
    assert_eq!(
        err(c).field,
        format!("{p}.endpoint.address.socket_address.named_port")
    );
    let mut c = base();
    c.endpoints[0].lb_endpoints[1].host_identifier = None;
    assert_eq!(err(c).field, format!("{p}.endpoint"));
    let mut c = base();
    c.endpoints[0].lb_endpoints[1].host_identifier =
        Some(wire::lb_endpoint::HostIdentifier::EndpointName("x".into()));
    assert_eq!(err(c).field, format!("{p}.endpoint_name"));
}

#[test]
fn endpoint_weight_and_health() {
    let mut c = cla(vec![locality("a", 1, vec![lb("10.0.0.1", 80)])]);
    c.endpoints[0].lb_endpoints[0].load_balancing_weight = Some(UInt32Value { value: 0 });
    assert_eq!(
        err(c).field,
        "endpoints[0].lb_endpoints[0].load_balancing_weight"
    );
    let mut c = cla(vec![locality(
        "a",
        1,
        vec![lb("10.0.0.1", 80), lb("10.0.0.2", 80)],
    )]);
    for e in &mut c.endpoints[0].lb_endpoints {
        e.load_balancing_weight = Some(UInt32Value {
            value: u32::MAX / 2 + 1,
        });
    }
    let e = err(c);
    assert_eq!(
        e.field,
        "endpoints[0].lb_endpoints[1].load_balancing_weight"
    );
    assert!(e.reason.contains("sum"), "{e}");
    let mut c = cla(vec![locality("a", 1, vec![lb("10.0.0.1", 80)])]);
    c.endpoints[0].lb_endpoints[0].health_status = 42;
    assert_eq!(err(c).field, "endpoints[0].lb_endpoints[0].health_status");
}

#[test]
fn locality_weight_sum_overflow() {
    let e = err(cla(vec![
        locality("a", u32::MAX, vec![lb("10.0.0.1", 80)]),
        locality("b", 1, vec![lb("10.0.0.2", 80)]),
    ]));
    assert_eq!(e.field, "endpoints[1].load_balancing_weight");
}

#[test]
fn leds_is_rejected() {
    let mut l = locality("a", 1, vec![]);
    l.lb_config =
        Some(wire::locality_lb_endpoints::LbConfig::LedsClusterLocalityConfig(Default::default()));
    assert_eq!(
        err(cla(vec![l])).field,
        "endpoints[0].leds_cluster_locality_config"
    );
}

#[test]
fn policy_fields() {
    use envoy_types::pb::envoy::r#type::v3::FractionalPercent;
    use wire::cluster_load_assignment::{Policy, policy::DropOverload};
    let mut c = cla(vec![locality("a", 1, vec![lb("10.0.0.1", 80)])]);
    c.policy = Some(Policy {
        overprovisioning_factor: Some(UInt32Value { value: 200 }),
        drop_overloads: vec![DropOverload {
            category: "throttle".into(),
            drop_percentage: Some(FractionalPercent {
                numerator: 5,
                denominator: 0,
            }),
        }],
        ..Default::default()
    });
    let a = ClusterLoadAssignment::try_from(c.clone()).unwrap();
    assert_eq!(a.overprovisioning_factor, 200);
    assert_eq!(
        a.drop_overloads,
        vec![("throttle".to_owned(), Fraction::per_million(50_000))]
    );
    c.policy.as_mut().unwrap().drop_overloads[0]
        .drop_percentage
        .as_mut()
        .unwrap()
        .denominator = 9;
    assert_eq!(
        err(c.clone()).field,
        "policy.drop_overloads[0].drop_percentage.denominator"
    );
    c.policy.as_mut().unwrap().overprovisioning_factor = Some(UInt32Value { value: 0 });
    assert_eq!(err(c).field, "policy.overprovisioning_factor");
}

#[test]
fn ten_thousand_endpoints_decode() {
    let localities = (0..10)
        .map(|z| {
            let eps = (0..1000u32)
                .map(|n| {
                    istio_ep(
                        &format!("10.{z}.{}.{}", n / 256, n % 256),
                        "echo-v1;default;echo;v1;Kubernetes",
                    )
                })
                .collect();
            locality(&format!("zone-{z}"), 1, eps)
        })
        .collect();
    let c = cla(localities);
    // Speed is measured in benches/ (xds_decode); this checks the shape.
    let a = ClusterLoadAssignment::try_from(c).unwrap();
    assert_eq!(a.endpoint_count(), 10_000);
    assert_eq!(a.priorities[0].localities.len(), 10);
}
