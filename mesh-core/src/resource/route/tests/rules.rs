//! One test per validation rule, asserting the full field path.

use super::*;

#[test]
fn empty_domains_rejected() {
    let e = RouteConfig::try_from(config(vec![vhost(&[], vec![])])).unwrap_err();
    assert_eq!(e.error.field, "virtual_hosts[0].domains");
}

#[test]
fn empty_domain_rejected() {
    let e = RouteConfig::try_from(config(vec![
        vhost(&["a"], vec![]),
        vhost(&["b", ""], vec![]),
    ]))
    .unwrap_err();
    assert_eq!(e.error.field, "virtual_hosts[1].domains[1]");
}

#[test]
fn inner_wildcard_rejected() {
    let e = RouteConfig::try_from(config(vec![vhost(&["foo.*.com"], vec![])])).unwrap_err();
    assert_eq!(e.error.field, "virtual_hosts[0].domains[0]");
    assert!(e.to_string().contains("foo.*.com"), "{e}");
}

#[test]
fn route_without_match_rejected() {
    let mut r = to_cluster("c");
    r.r#match = None;
    assert_eq!(
        route_error(vec![to_cluster("c"), r]).field,
        "virtual_hosts[0].routes[1].match"
    );
}

#[test]
fn route_without_path_specifier_rejected() {
    let r = route(
        Some(wire::RouteMatch::default()),
        action(C::Cluster("c".into())),
    );
    assert_eq!(
        route_error(vec![r]).field,
        "virtual_hosts[0].routes[0].match"
    );
}

#[test]
fn unsupported_path_specifier_rejected() {
    let m = wire::RouteMatch {
        path_specifier: Some(P::PathSeparatedPrefix("/a".into())),
        ..Default::default()
    };
    let r = route(Some(m), action(C::Cluster("c".into())));
    assert_eq!(
        route_error(vec![r]).field,
        "virtual_hosts[0].routes[0].match.path_separated_prefix"
    );
}

#[test]
fn invalid_path_regex_rejected() {
    let m = wire::RouteMatch {
        path_specifier: Some(P::SafeRegex(RegexMatcher {
            regex: "[".into(),
            engine_type: None,
        })),
        ..Default::default()
    };
    let r = route(Some(m), action(C::Cluster("c".into())));
    assert_eq!(
        route_error(vec![r]).field,
        "virtual_hosts[0].routes[0].match.safe_regex.regex"
    );
}

#[test]
fn invalid_header_matcher_rejected() {
    let m = wire::RouteMatch {
        path_specifier: Some(P::Prefix("/".into())),
        headers: vec![wire::HeaderMatcher::default()],
        ..Default::default()
    };
    let r = route(Some(m), action(C::Cluster("c".into())));
    assert_eq!(
        route_error(vec![r]).field,
        "virtual_hosts[0].routes[0].match.headers[0].name"
    );
}

#[test]
fn empty_cluster_name_rejected() {
    assert_eq!(
        route_error(vec![to_cluster("")]).field,
        "virtual_hosts[0].routes[0].route.cluster"
    );
}

#[test]
fn empty_weighted_clusters_rejected() {
    let e = route_error(vec![to_cluster("c"), weighted(&[])]);
    assert_eq!(
        e.field,
        "virtual_hosts[0].routes[1].route.weighted_clusters"
    );
}

#[test]
fn zero_weight_sum_rejected() {
    let e = route_error(vec![
        to_cluster("c"),
        weighted(&[("a", Some(0)), ("b", Some(0))]),
    ]);
    assert_eq!(
        e.field,
        "virtual_hosts[0].routes[1].route.weighted_clusters"
    );
    assert!(e.reason.contains("sum to 0"), "{e}");
}

#[test]
fn overflowing_weight_sum_rejected() {
    let e = route_error(vec![weighted(&[("a", Some(u32::MAX)), ("b", Some(1))])]);
    assert_eq!(
        e.field,
        "virtual_hosts[0].routes[0].route.weighted_clusters"
    );
    assert!(e.reason.contains("4294967296"), "{e}");
}

#[test]
fn missing_cluster_weight_rejected() {
    let e = route_error(vec![weighted(&[("a", Some(1)), ("b", None)])]);
    assert_eq!(
        e.field,
        "virtual_hosts[0].routes[0].route.weighted_clusters.clusters[1].weight"
    );
}

#[test]
fn unnamed_cluster_weight_rejected() {
    let e = route_error(vec![weighted(&[("", Some(1))])]);
    assert_eq!(
        e.field,
        "virtual_hosts[0].routes[0].route.weighted_clusters.clusters[0].name"
    );
}

#[test]
fn unknown_cluster_specifier_plugin_rejected() {
    let r = route(prefix("/"), action(C::ClusterSpecifierPlugin("rls".into())));
    assert_eq!(
        route_error(vec![r]).field,
        "virtual_hosts[0].routes[0].route.cluster_specifier_plugin"
    );
}

#[test]
fn required_cluster_specifier_plugin_rejected() {
    let mut rc = config(vec![vhost(&["*"], vec![to_cluster("c")])]);
    rc.cluster_specifier_plugins = vec![plugin("a", true), plugin("b", false)];
    let e = RouteConfig::try_from(rc).unwrap_err();
    assert_eq!(
        e.error.field,
        "cluster_specifier_plugins[1].extension.typed_config"
    );
}

#[test]
fn duplicate_cluster_specifier_plugin_rejected() {
    let mut rc = config(vec![]);
    rc.cluster_specifier_plugins = vec![plugin("a", true), plugin("a", true)];
    let e = RouteConfig::try_from(rc).unwrap_err();
    assert_eq!(e.error.field, "cluster_specifier_plugins[1].extension.name");
}

#[test]
fn cluster_specifier_plugin_without_extension_rejected() {
    let mut rc = config(vec![]);
    rc.cluster_specifier_plugins = vec![wire::ClusterSpecifierPlugin::default()];
    let e = RouteConfig::try_from(rc).unwrap_err();
    assert_eq!(e.error.field, "cluster_specifier_plugins[0].extension");
}

#[test]
fn virtual_host_retry_errors_name_the_host() {
    let mut vh = vhost(&["*"], vec![]);
    vh.retry_policy = Some(wire::RetryPolicy {
        num_retries: Some(UInt32Value { value: 0 }),
        ..Default::default()
    });
    let e = RouteConfig::try_from(config(vec![vh])).unwrap_err();
    assert_eq!(e.error.field, "virtual_hosts[0].retry_policy.num_retries");
}

#[test]
fn route_retry_errors_name_the_route() {
    let r = with_action(|a| {
        a.retry_policy = Some(wire::RetryPolicy {
            retry_back_off: Some(wire::retry_policy::RetryBackOff {
                base_interval: secs(0),
                max_interval: None,
            }),
            ..Default::default()
        })
    });
    assert_eq!(
        route_error(vec![r]).field,
        "virtual_hosts[0].routes[0].route.retry_policy.retry_back_off.base_interval"
    );
}

#[test]
fn negative_durations_rejected() {
    let r = with_action(|a| a.timeout = secs(-1));
    assert_eq!(
        route_error(vec![r]).field,
        "virtual_hosts[0].routes[0].route.timeout"
    );
    let r = with_action(|a| {
        a.max_stream_duration = Some(wire::route_action::MaxStreamDuration {
            max_stream_duration: secs(-5),
            ..Default::default()
        })
    });
    assert_eq!(
        route_error(vec![r]).field,
        "virtual_hosts[0].routes[0].route.max_stream_duration.max_stream_duration"
    );
    let r = with_action(|a| {
        a.max_stream_duration = Some(wire::route_action::MaxStreamDuration {
            grpc_timeout_header_max: secs(-5),
            ..Default::default()
        })
    });
    assert_eq!(
        route_error(vec![r]).field,
        "virtual_hosts[0].routes[0].route.max_stream_duration.grpc_timeout_header_max"
    );
}

#[test]
fn hash_policy_without_header_name_rejected() {
    use wire::route_action::hash_policy::{self as hp, PolicySpecifier as S};
    let r = with_action(|a| {
        a.hash_policy = vec![
            hash_policy(S::ConnectionProperties(Default::default()), false),
            hash_policy(S::Header(hp::Header::default()), false),
        ]
    });
    assert_eq!(
        route_error(vec![r]).field,
        "virtual_hosts[0].routes[0].route.hash_policy[1].header.header_name"
    );
}

#[test]
fn hash_policy_regex_rewrite_errors() {
    use wire::route_action::hash_policy::{self as hp, PolicySpecifier as S};
    let rewrite = |pattern: Option<&str>, substitution: &str| {
        with_action(|a| {
            a.hash_policy = vec![hash_policy(
                S::Header(hp::Header {
                    header_name: "x".into(),
                    regex_rewrite: Some(RegexMatchAndSubstitute {
                        pattern: pattern.map(|p| RegexMatcher {
                            regex: p.into(),
                            engine_type: None,
                        }),
                        substitution: substitution.into(),
                    }),
                }),
                false,
            )]
        })
    };
    let base = "virtual_hosts[0].routes[0].route.hash_policy[0].header.regex_rewrite";
    let e = route_error(vec![rewrite(None, "")]);
    assert_eq!(e.field, format!("{base}.pattern"));
    let e = route_error(vec![rewrite(Some("("), "")]);
    assert_eq!(e.field, format!("{base}.pattern.regex"));
    let e = route_error(vec![rewrite(Some("a"), "\\1")]);
    assert_eq!(e.field, format!("{base}.substitution"));
}

#[test]
fn empty_typed_per_filter_config_key_rejected() {
    let mut vh = vhost(&["*"], vec![to_cluster("c")]);
    vh.typed_per_filter_config
        .insert(String::new(), Any::default());
    let e = RouteConfig::try_from(config(vec![vh])).unwrap_err();
    assert_eq!(e.error.field, "virtual_hosts[0].typed_per_filter_config[]");
}

#[test]
fn unknown_required_override_rejected_with_its_path() {
    let mut r = to_cluster("c");
    r.typed_per_filter_config
        .insert("example.unknown".into(), unknown_override(false));
    let e = route_error(vec![r]);
    assert!(
        e.field
            .starts_with("virtual_hosts[0].routes[0].typed_per_filter_config[example.unknown]"),
        "{e}"
    );
    let mut w = weighted(&[("a", Some(1))]);
    let Some(wire::route::Action::Route(a)) = &mut w.action else {
        unreachable!()
    };
    let Some(C::WeightedClusters(wc)) = &mut a.cluster_specifier else {
        unreachable!()
    };
    wc.clusters[0]
        .typed_per_filter_config
        .insert("example.unknown".into(), unknown_override(false));
    let e = route_error(vec![w]);
    assert!(
        e.field.starts_with(
            "virtual_hosts[0].routes[0].route.weighted_clusters.clusters[0].\
             typed_per_filter_config[example.unknown]"
        ),
        "{e}"
    );
}
