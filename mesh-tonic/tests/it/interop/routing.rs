//! path_matching, header_matching and affinity (ring hash on a header).

use envoy_types::pb::envoy::config::cluster::v3 as cluster;
use envoy_types::pb::envoy::config::route::v3 as rt;
use envoy_types::pb::envoy::r#type::matcher::v3::{RegexMatcher, StringMatcher, string_matcher};
use envoy_types::pb::envoy::r#type::v3::Int64Range;
use envoy_types::pb::google::protobuf::BoolValue;
use mesh_core::testing::proto::grpc_testing::LoadBalancerStatsResponse;
use mesh_tonic::interop_client::RpcType;
use rt::header_matcher::HeaderMatchSpecifier as H;

use super::{
    Backends, Client, Xds, by_method, cla, eds_cluster, match_all, match_path, match_prefix, route,
    to_cluster,
};

const EMPTY: &str = "/grpc.testing.TestService/EmptyCall";

/// Two services with one backend each, a default route to the first;
/// the client sends both RPCs with the header-matching test's metadata.
async fn two_services() -> (Xds, Backends, Backends, Client) {
    let default = Backends::start("default", 1).await;
    let alt = Backends::start("alt", 1).await;
    let xds = Xds::start().await;
    xds.clusters(vec![
        eds_cluster("cluster-default"),
        eds_cluster("cluster-alt"),
    ]);
    xds.endpoints(vec![
        cla("cluster-default", &default.addrs),
        cla("cluster-alt", &alt.addrs),
    ]);
    xds.routes(vec![route(match_all(), to_cluster("cluster-default"))]);
    let client = Client::start_with(&xds.bootstrap, |c| {
        c.qps = 50;
        c.fail_on_failed_rpc = true;
        c.rpc.types = vec![RpcType::EmptyCall, RpcType::UnaryCall];
        c.rpc.metadata = [
            (RpcType::EmptyCall, "xds_md", "empty_ytpme"),
            (RpcType::UnaryCall, "xds_md", "unary_yranu"),
            (RpcType::UnaryCall, "xds_md_numeric", "159"),
        ]
        .iter()
        .map(|(t, k, v)| mesh_tonic::interop_client::RpcMetadata::new(*t, k, v).unwrap())
        .collect();
    })
    .await;
    (xds, default, alt, client)
}

/// Waits until, in one block, every UnaryCall reached `unary` and every
/// EmptyCall reached `empty`.
async fn expect(client: &Client, case: &str, unary: &str, empty: &str) {
    let all_to = |r: &LoadBalancerStatsResponse, rpc: RpcType, peer: &str| {
        let total: i32 = r
            .rpcs_by_method
            .get(rpc.method())
            .map(|m| m.rpcs_by_peer.values().sum())
            .unwrap_or(0);
        total > 0 && by_method(r, rpc, peer) == total
    };
    client
        .stats_until(
            &format!("{case}: UnaryCall -> {unary}, EmptyCall -> {empty}"),
            100,
            |r| {
                r.num_failures == 0
                    && all_to(r, RpcType::UnaryCall, unary)
                    && all_to(r, RpcType::EmptyCall, empty)
            },
        )
        .await;
}

fn header(name: &str, spec: H, invert: bool) -> rt::RouteMatch {
    rt::RouteMatch {
        headers: vec![rt::HeaderMatcher {
            name: name.into(),
            invert_match: invert,
            header_match_specifier: Some(spec),
            ..Default::default()
        }],
        ..match_all()
    }
}

fn string(p: string_matcher::MatchPattern) -> H {
    H::StringMatch(StringMatcher {
        match_pattern: Some(p),
        ignore_case: false,
    })
}

fn regex(r: &str) -> RegexMatcher {
    #[allow(deprecated)]
    RegexMatcher {
        regex: r.into(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_matching() {
    let (xds, default, alt, client) = two_services().await;
    let (d, a) = (default.name(0), alt.name(0));
    expect(&client, "default route", &d, &d).await;
    let to_alt = |m| route(m, to_cluster("cluster-alt"));
    let to_default = |m| route(m, to_cluster("cluster-default"));
    let fallback = || route(match_all(), to_cluster("cluster-default"));

    xds.routes(vec![to_alt(match_path(EMPTY)), fallback()]);
    expect(&client, "path", &d, &a).await;

    xds.routes(vec![
        to_alt(match_prefix("/grpc.testing.TestService/Unary")),
        fallback(),
    ]);
    expect(&client, "prefix", &a, &d).await;

    xds.routes(vec![
        to_default(match_prefix("/grpc.testing.TestService/Unary")),
        to_alt(match_path(EMPTY)),
        fallback(),
    ]);
    expect(&client, "prefix and path", &d, &a).await;

    let safe_regex = rt::RouteMatch {
        path_specifier: Some(rt::route_match::PathSpecifier::SafeRegex(regex(
            r"^\/.*\/UnaryCall$",
        ))),
        ..Default::default()
    };
    xds.routes(vec![to_alt(safe_regex), fallback()]);
    expect(&client, "regex", &a, &d).await;

    let ignore_case = rt::RouteMatch {
        case_sensitive: Some(BoolValue { value: false }),
        ..match_path("/gRpC.tEsTinG.tEstseRvice/empTycaLl")
    };
    xds.routes(vec![to_alt(ignore_case), fallback()]);
    expect(&client, "case-insensitive path", &d, &a).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_matching() {
    use string_matcher::MatchPattern as P;
    let (xds, default, alt, client) = two_services().await;
    let (d, a) = (default.name(0), alt.name(0));
    expect(&client, "default route", &d, &d).await;
    #[allow(deprecated)]
    let cases: Vec<(&str, rt::RouteMatch, &str, &str)> = vec![
        (
            "exact",
            header("xds_md", string(P::Exact("empty_ytpme".into())), false),
            &d,
            &a,
        ),
        (
            "prefix",
            header("xds_md", string(P::Prefix("un".into())), false),
            &a,
            &d,
        ),
        (
            "suffix",
            header("xds_md", string(P::Suffix("me".into())), false),
            &d,
            &a,
        ),
        (
            "present",
            header("xds_md_numeric", H::PresentMatch(true), false),
            &a,
            &d,
        ),
        (
            // The deprecated field, as older control planes send it.
            "inverted exact",
            header("xds_md", H::ExactMatch("unary_yranu".into()), true),
            &d,
            &a,
        ),
        (
            "range",
            header(
                "xds_md_numeric",
                H::RangeMatch(Int64Range {
                    start: 100,
                    end: 200,
                }),
                false,
            ),
            &a,
            &d,
        ),
        (
            "regex",
            header("xds_md", H::SafeRegexMatch(regex("^em.*me$")), false),
            &d,
            &a,
        ),
    ];
    for (case, m, unary, empty) in cases {
        xds.routes(vec![
            route(m, to_cluster("cluster-alt")),
            route(match_all(), to_cluster("cluster-default")),
        ]);
        expect(&client, case, unary, empty).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn affinity() {
    let backends = Backends::start("affinity", 3).await;
    let xds = Xds::start().await;
    let mut ring = eds_cluster("cluster-ring");
    ring.lb_policy = cluster::cluster::LbPolicy::RingHash as i32;
    xds.clusters(vec![ring]);
    xds.endpoints(vec![cla("cluster-ring", &backends.addrs)]);
    let mut action = to_cluster("cluster-ring");
    action.hash_policy = vec![rt::route_action::HashPolicy {
        policy_specifier: Some(rt::route_action::hash_policy::PolicySpecifier::Header(
            rt::route_action::hash_policy::Header {
                header_name: "session-id".into(),
                regex_rewrite: None,
            },
        )),
        ..Default::default()
    }];
    xds.routes(vec![route(match_all(), action)]);
    let client = Client::start(&xds.bootstrap, &[RpcType::UnaryCall]).await;

    // Each header value sticks to one backend; different values spread.
    let mut chosen = Vec::new();
    for value in ["s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7", "s0"] {
        client
            .configure(
                &[RpcType::UnaryCall],
                &[(RpcType::UnaryCall, "session-id", value)],
                0,
            )
            .await;
        let r = client
            .stats_until(&format!("session {value} on one backend"), 100, |r| {
                r.num_failures == 0 && r.rpcs_by_peer.len() == 1
            })
            .await;
        chosen.push(r.rpcs_by_peer.keys().next().unwrap().clone());
    }
    assert_eq!(
        chosen[0], chosen[8],
        "the same key returns to its backend: {chosen:?}"
    );
    let mut distinct = chosen.clone();
    distinct.sort();
    distinct.dedup();
    assert!(distinct.len() >= 2, "keys spread over backends: {chosen:?}");
}
