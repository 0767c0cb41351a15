//! istiod's RouteConfigurations and how validated routes behave.

use super::*;

/// istiod's route for a service without a VirtualService.
fn istiod_default() -> wire::RouteConfiguration {
    let domains = [
        "echo.default.svc.cluster.local",
        "echo.default.svc.cluster.local:7070",
        "echo",
        "echo:7070",
        "echo.default",
        "echo.default:7070",
        "10.0.0.1",
        "10.0.0.1:7070",
    ];
    let mut default = to_cluster(ECHO);
    default.name = "default".into();
    let Some(wire::route::Action::Route(a)) = &mut default.action else {
        unreachable!()
    };
    a.timeout = secs(0);
    a.max_grpc_timeout = secs(0);
    a.retry_policy = Some(wire::RetryPolicy {
        retry_on: "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes"
            .into(),
        num_retries: Some(UInt32Value { value: 2 }),
        retry_host_predicate: vec![wire::retry_policy::RetryHostPredicate {
            name: "envoy.retry_host_predicates.previous_hosts".into(),
            config_type: None,
        }],
        host_selection_retry_max_attempts: 5,
        ..Default::default()
    });
    let mut vh = vhost(&domains, vec![default]);
    vh.name = "echo.default.svc.cluster.local:7070".into();
    config(vec![vh])
}

#[test]
fn istiod_default_route() {
    let any = to_any(
        ResourceType::RouteConfiguration.type_url(),
        &istiod_default(),
    );
    let (name, rc) = decode::<RouteConfig>(&any).unwrap();
    assert_eq!(name, ECHO);
    assert_eq!(rc.name, ECHO);
    assert_eq!(rc.cluster_names().into_iter().collect::<Vec<_>>(), [ECHO]);
    for authority in [
        "echo:7070",
        "ECHO.default.svc.cluster.local:7070",
        "10.0.0.1:7070",
        "echo",
    ] {
        let vh = rc.virtual_host_for(authority).expect(authority);
        assert_eq!(vh.name, "echo.default.svc.cluster.local:7070");
    }
    assert!(rc.virtual_host_for("other:7070").is_none());
    let vh = &rc.virtual_hosts[0];
    let r = vh
        .route_for(
            "/grpc.testing.TestService/UnaryCall",
            &HeaderMap::new(),
            || unreachable!("no runtime fraction"),
        )
        .unwrap();
    assert_eq!(r.name, "default");
    let f = forward(r);
    assert!(matches!(&f.cluster, ClusterTarget::Cluster(c) if c == ECHO));
    assert_eq!(f.timeout, None, "0s disables the timeout");
    assert_eq!(f.max_stream_duration, None);
    assert_eq!(
        f.grpc_timeout_header_max, None,
        "max_grpc_timeout is ignored"
    );
    assert_eq!(f.deadline_cap(None), None);
    let retry = f.retry_policy.as_ref().unwrap();
    assert_eq!(retry.num_retries, 2);
    assert!(retry.retry_on.retries_code(tonic::Code::Unavailable));
    assert!(retry.retry_on.retries_code(tonic::Code::Cancelled));
    assert!(!retry.retry_on.retries_code(tonic::Code::DeadlineExceeded));
    assert!(retry.retry_on.contains(RetryOn::CONNECT_FAILURE));
    assert_eq!(retry.back_off, RetryBackOff::default());
}

/// A VirtualService with a header-matched route to subset v2 and an 80/20
/// split between subsets v1 and v2, with consistent hashing and a timeout.
fn virtual_service() -> wire::RouteConfiguration {
    let subset = |s: &str| format!("outbound|7070|{s}|echo.default.svc.cluster.local");
    let mut canary = route(
        Some(wire::RouteMatch {
            path_specifier: Some(P::Prefix("/grpc.testing.TestService/".into())),
            case_sensitive: Some(BoolValue { value: true }),
            headers: vec![wire::HeaderMatcher {
                name: "x-canary".into(),
                header_match_specifier: Some(H::StringMatch(StringMatcher {
                    ignore_case: false,
                    match_pattern: Some(MatchPattern::Exact("true".into())),
                })),
                ..Default::default()
            }],
            ..Default::default()
        }),
        action(C::Cluster(subset("v2"))),
    );
    canary.name = "canary".into();
    let mut split = weighted(&[(&subset("v1"), Some(80)), (&subset("v2"), Some(20))]);
    split.name = "split".into();
    let Some(wire::route::Action::Route(a)) = &mut split.action else {
        unreachable!()
    };
    a.max_stream_duration = Some(wire::route_action::MaxStreamDuration {
        max_stream_duration: secs(5),
        ..Default::default()
    });
    a.hash_policy = vec![wire::route_action::HashPolicy {
        policy_specifier: Some(wire::route_action::hash_policy::PolicySpecifier::Header(
            wire::route_action::hash_policy::Header {
                header_name: "X-User".into(),
                regex_rewrite: None,
            },
        )),
        terminal: false,
    }];
    a.retry_policy = Some(wire::RetryPolicy {
        retry_on: "unavailable,deadline-exceeded".into(),
        num_retries: Some(UInt32Value { value: 3 }),
        per_try_timeout: secs(1),
        ..Default::default()
    });
    // istiod puts a VirtualService's fault on the route; here the v2 subset
    // turns it off again.
    split
        .typed_per_filter_config
        .insert(FAULT.into(), fault_abort_unavailable());
    let Some(wire::route::Action::Route(a)) = &mut split.action else {
        unreachable!()
    };
    let Some(C::WeightedClusters(w)) = &mut a.cluster_specifier else {
        unreachable!()
    };
    w.clusters[1].typed_per_filter_config.insert(
        FAULT.into(),
        to_any(
            "type.googleapis.com/envoy.config.route.v3.FilterConfig",
            &wire::FilterConfig {
                config: None,
                is_optional: false,
                disabled: true,
            },
        ),
    );
    config(vec![vhost(
        &["echo.default.svc.cluster.local:7070", "echo:7070"],
        vec![canary, split],
    )])
}

const FAULT: &str = "envoy.filters.http.fault";

fn fault_abort_unavailable() -> Any {
    use envoy_types::pb::envoy::extensions::filters::http::fault::v3::{
        FaultAbort, HttpFault, fault_abort::ErrorType,
    };
    use envoy_types::pb::envoy::r#type::v3::FractionalPercent;
    to_any(
        "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault",
        &HttpFault {
            abort: Some(FaultAbort {
                percentage: Some(FractionalPercent {
                    numerator: 100,
                    denominator: 0,
                }),
                error_type: Some(ErrorType::GrpcStatus(14)),
                ..Default::default()
            }),
            ..Default::default()
        },
    )
}

#[test]
fn virtual_service_weighted_subsets_and_header_match() {
    let rc = RouteConfig::try_from(virtual_service()).unwrap();
    let v1 = "outbound|7070|v1|echo.default.svc.cluster.local";
    let v2 = "outbound|7070|v2|echo.default.svc.cluster.local";
    assert_eq!(rc.cluster_names().into_iter().collect::<Vec<_>>(), [v1, v2]);
    let vh = rc.virtual_host_for("echo:7070").unwrap();
    let path = "/grpc.testing.TestService/UnaryCall";
    let mut canary = HeaderMap::new();
    canary.insert("x-canary", "true".parse().unwrap());
    assert_eq!(vh.route_for(path, &canary, || 0).unwrap().name, "canary");
    let r = vh.route_for(path, &HeaderMap::new(), || 0).unwrap();
    assert_eq!(r.name, "split");
    let f = forward(r);
    let ClusterTarget::Weighted(w) = &f.cluster else {
        panic!("not weighted")
    };
    assert_eq!(w.total(), 100);
    let to_v1 = (0..w.total()).filter(|&d| w.pick(d).name == v1).count();
    assert_eq!(to_v1, 80);
    assert_eq!(
        f.max_stream_duration,
        Some(DurationCap::Max(Duration::from_secs(5)))
    );
    assert_eq!(
        f.deadline_cap(Some(Duration::from_secs(60))),
        Some(Duration::from_secs(5))
    );
    assert!(matches!(
        &f.hash_policy[..],
        [HashPolicy { kind: HashPolicyKind::Header { name, regex_rewrite: None }, terminal: false }]
            if name == "x-user"
    ));
    let fault = |cluster| vh.filter_override(r, cluster, FAULT);
    assert!(matches!(fault(None), Some(FilterConfig::Fault(_))));
    assert!(
        matches!(fault(Some(w.pick(0))), Some(FilterConfig::Fault(_))),
        "v1"
    );
    assert!(
        matches!(fault(Some(w.pick(99))), Some(FilterConfig::Disabled)),
        "v2"
    );
    assert!(
        vh.filter_override(r, None, "envoy.filters.http.rbac")
            .is_none()
    );
    let retry = f.retry_policy.as_ref().unwrap();
    assert_eq!(retry.num_retries, 3);
    assert_eq!(retry.per_try_timeout, Some(Duration::from_secs(1)));
    assert!(retry.retry_on.retries_code(tonic::Code::DeadlineExceeded));
}

#[test]
fn virtual_host_precedence_through_route_config() {
    let rc = RouteConfig::try_from(config(vec![
        vhost(&["*"], vec![to_cluster("any")]),
        vhost(&["*.svc.cluster.local"], vec![to_cluster("suffix")]),
        vhost(&["echo.*"], vec![to_cluster("prefix")]),
        vhost(
            &["echo.default.svc.cluster.local"],
            vec![to_cluster("exact")],
        ),
    ]))
    .unwrap();
    let cluster_for = |authority: &str| {
        let vh = rc.virtual_host_for(authority).unwrap();
        match &forward(&vh.routes[0]).cluster {
            ClusterTarget::Cluster(c) => c.clone(),
            ClusterTarget::Weighted(_) => unreachable!(),
        }
    };
    assert_eq!(cluster_for("Echo.Default.Svc.Cluster.Local"), "exact");
    assert_eq!(cluster_for("echo.other.svc.cluster.local"), "suffix");
    assert_eq!(cluster_for("echo.example.com"), "prefix");
    assert_eq!(cluster_for("example.com"), "any");
}

#[test]
fn total_weight_is_ignored_and_zero_weights_dropped() {
    let mut r = weighted(&[("a", Some(1)), ("idle", Some(0)), ("b", Some(2))]);
    let Some(wire::route::Action::Route(a)) = &mut r.action else {
        unreachable!()
    };
    let Some(C::WeightedClusters(w)) = &mut a.cluster_specifier else {
        unreachable!()
    };
    w.total_weight = Some(UInt32Value { value: 100 });
    let rc = RouteConfig::try_from(config(vec![vhost(&["*"], vec![r])])).unwrap();
    let ClusterTarget::Weighted(w) = &forward(&rc.virtual_hosts[0].routes[0]).cluster else {
        panic!()
    };
    assert_eq!(w.total(), 3);
    assert_eq!(
        rc.cluster_names().into_iter().collect::<Vec<_>>(),
        ["a", "b"]
    );
}

#[test]
fn routes_grpc_ignores_are_dropped() {
    let header = route(prefix("/"), action(C::ClusterHeader("x-cluster".into())));
    let no_specifier = route(prefix("/"), wire::RouteAction::default());
    let plugin = route(prefix("/"), action(C::ClusterSpecifierPlugin("rls".into())));
    let mut rc = config(vec![vhost(
        &["*"],
        vec![header, no_specifier, plugin, to_cluster("c")],
    )]);
    rc.cluster_specifier_plugins = vec![wire::ClusterSpecifierPlugin {
        extension: Some(TypedExtensionConfig {
            name: "rls".into(),
            typed_config: Some(Any {
                type_url: "type.googleapis.com/grpc.lookup.v1.RouteLookupClusterSpecifier".into(),
                value: vec![],
            }),
        }),
        is_optional: true,
    }];
    let rc = RouteConfig::try_from(rc).unwrap();
    let vh = &rc.virtual_hosts[0];
    assert_eq!(vh.routes.len(), 1);
    assert_eq!(rc.cluster_names().into_iter().collect::<Vec<_>>(), ["c"]);
}

#[test]
fn unsupported_actions_kept_and_matched() {
    let redirect = wire::Route {
        name: "redirect".into(),
        r#match: prefix("/old/"),
        action: Some(wire::route::Action::Redirect(Default::default())),
        ..Default::default()
    };
    let server = wire::Route {
        r#match: prefix("/"),
        action: Some(wire::route::Action::NonForwardingAction(Default::default())),
        ..Default::default()
    };
    let rc = RouteConfig::try_from(config(vec![vhost(&["*"], vec![redirect, server])])).unwrap();
    let vh = rc.virtual_host_for("anything").unwrap();
    let r = vh.route_for("/old/x", &HeaderMap::new(), || 0).unwrap();
    assert!(matches!(&r.action, RouteAction::Unsupported(why) if why.contains("redirect")));
    let r = vh.route_for("/new/x", &HeaderMap::new(), || 0).unwrap();
    assert!(matches!(r.action, RouteAction::NonForwarding));
    assert!(rc.cluster_names().is_empty());
}

#[test]
fn query_parameter_routes_are_skipped() {
    let mut r = to_cluster("query");
    r.r#match.as_mut().unwrap().query_parameters = vec![wire::QueryParameterMatcher {
        name: "q".into(),
        ..Default::default()
    }];
    let rc = RouteConfig::try_from(config(vec![vhost(&["*"], vec![r, to_cluster("c")])])).unwrap();
    let vh = &rc.virtual_hosts[0];
    assert_eq!(vh.routes.len(), 2, "kept, not NACKed");
    let picked = vh.route_for("/a/b", &HeaderMap::new(), || 0).unwrap();
    assert!(matches!(&forward(picked).cluster, ClusterTarget::Cluster(c) if c == "c"));
}

#[test]
fn runtime_fraction_uses_the_draw() {
    let mut r = to_cluster("sampled");
    r.r#match.as_mut().unwrap().runtime_fraction = Some(
        envoy_types::pb::envoy::config::core::v3::RuntimeFractionalPercent {
            default_value: Some(envoy_types::pb::envoy::r#type::v3::FractionalPercent {
                numerator: 10,
                denominator: 0,
            }),
            runtime_key: "ignored".into(),
        },
    );
    let rc =
        RouteConfig::try_from(config(vec![vhost(&["*"], vec![r, to_cluster("rest")])])).unwrap();
    let vh = &rc.virtual_hosts[0];
    let name = |draw: u32| {
        let r = vh.route_for("/a/b", &HeaderMap::new(), || draw).unwrap();
        match &forward(r).cluster {
            ClusterTarget::Cluster(c) => c.clone(),
            ClusterTarget::Weighted(_) => unreachable!(),
        }
    };
    assert_eq!(name(99_999), "sampled");
    assert_eq!(name(100_000), "rest");
}

#[test]
fn virtual_host_retry_policy_is_inherited() {
    let mut own = to_cluster("own");
    let Some(wire::route::Action::Route(a)) = &mut own.action else {
        unreachable!()
    };
    a.retry_policy = Some(wire::RetryPolicy {
        retry_on: "internal".into(),
        ..Default::default()
    });
    let mut vh = vhost(&["*"], vec![own, to_cluster("inherits")]);
    vh.retry_policy = Some(wire::RetryPolicy {
        retry_on: "unavailable".into(),
        num_retries: Some(UInt32Value { value: 4 }),
        ..Default::default()
    });
    let rc = RouteConfig::try_from(config(vec![vh])).unwrap();
    let vh = &rc.virtual_hosts[0];
    let own = forward(&vh.routes[0]).retry_policy.as_ref().unwrap();
    assert!(own.retry_on.retries_code(tonic::Code::Internal));
    assert_eq!(own.num_retries, 1);
    let inherited = forward(&vh.routes[1]).retry_policy.as_ref().unwrap();
    assert!(inherited.retry_on.retries_code(tonic::Code::Unavailable));
    assert_eq!(inherited.num_retries, 4);
    assert_eq!(vh.retry_policy.as_ref(), Some(inherited));
}

#[test]
fn stream_durations_and_timeout() {
    let r = with_action(|a| {
        a.timeout = secs(3);
        a.max_stream_duration = Some(wire::route_action::MaxStreamDuration {
            max_stream_duration: secs(0),
            grpc_timeout_header_max: secs(2),
            grpc_timeout_header_offset: secs(1),
        });
    });
    let rc = RouteConfig::try_from(config(vec![vhost(&["*"], vec![r])])).unwrap();
    let f = forward(&rc.virtual_hosts[0].routes[0]);
    assert_eq!(f.timeout, Some(Duration::from_secs(3)));
    assert_eq!(f.max_stream_duration, Some(DurationCap::Unlimited));
    assert_eq!(
        f.grpc_timeout_header_max,
        Some(DurationCap::Max(Duration::from_secs(2)))
    );
    assert_eq!(f.deadline_cap(None), Some(Duration::from_secs(2)));
}

#[test]
fn hash_policies_converted() {
    use wire::route_action::hash_policy::{self as hp, PolicySpecifier as S};
    let r = with_action(|a| {
        a.hash_policy = vec![
            hash_policy(
                S::Header(hp::Header {
                    header_name: "x-session".into(),
                    regex_rewrite: Some(RegexMatchAndSubstitute {
                        pattern: Some(RegexMatcher {
                            regex: "^user-(\\d+)$".into(),
                            engine_type: None,
                        }),
                        substitution: "\\1".into(),
                    }),
                }),
                false,
            ),
            hash_policy(S::Cookie(Default::default()), true),
            hash_policy(
                S::FilterState(hp::FilterState {
                    key: "io.grpc.channel_id".into(),
                }),
                false,
            ),
            hash_policy(
                S::FilterState(hp::FilterState {
                    key: "other".into(),
                }),
                false,
            ),
        ]
    });
    let rc = RouteConfig::try_from(config(vec![vhost(&["*"], vec![r])])).unwrap();
    let policies = &forward(&rc.virtual_hosts[0].routes[0]).hash_policy;
    assert_eq!(policies.len(), 4);
    let HashPolicyKind::Header {
        name,
        regex_rewrite: Some(rw),
    } = &policies[0].kind
    else {
        panic!("{:?}", policies[0])
    };
    assert_eq!(name, "x-session");
    assert_eq!(rw.apply("user-42"), "42");
    assert!(matches!(
        policies[1].kind,
        HashPolicyKind::Unsupported("cookie")
    ));
    assert!(policies[1].terminal, "kept so it still ends the list");
    assert!(matches!(policies[2].kind, HashPolicyKind::ChannelId));
    assert!(matches!(
        policies[3].kind,
        HashPolicyKind::Unsupported("filter_state")
    ));
}

#[test]
fn optional_unknown_overrides_are_skipped() {
    let mut vh = vhost(&["*"], vec![to_cluster("c")]);
    vh.typed_per_filter_config
        .insert("example.unknown".into(), unknown_override(true));
    vh.routes[0]
        .typed_per_filter_config
        .insert("example.unknown".into(), unknown_override(true));
    let rc = RouteConfig::try_from(config(vec![vh])).unwrap();
    let vh = &rc.virtual_hosts[0];
    assert!(vh.typed_per_filter_config.is_empty());
    assert!(vh.routes[0].typed_per_filter_config.is_empty());
    assert!(
        vh.filter_override(&vh.routes[0], None, "example.unknown")
            .is_none()
    );
}
