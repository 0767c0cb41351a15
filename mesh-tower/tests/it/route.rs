//! Routing end to end (xDS → discovery → stack → loopback backends):
//! header- and path-based routing, config updates, and routing failures
//! reported as UNAVAILABLE.

use envoy_types::pb::envoy::config::route::v3 as route;
use envoy_types::pb::envoy::r#type::matcher::v3::StringMatcher;
use envoy_types::pb::envoy::r#type::matcher::v3::string_matcher::MatchPattern;
use tonic::Code;

use super::stack::{Mesh, prefix, unary};

fn on_header(r: &mut route::Route, name: &str, exact: &str) {
    let m = r.r#match.as_mut().unwrap();
    m.headers.push(route::HeaderMatcher {
        name: name.into(),
        header_match_specifier: Some(route::header_matcher::HeaderMatchSpecifier::StringMatch(
            StringMatcher {
                match_pattern: Some(MatchPattern::Exact(exact.into())),
                ignore_case: false,
            },
        )),
        ..Default::default()
    });
}

#[tokio::test]
async fn header_based_routing() {
    let mut canary = prefix("/", "c-canary");
    on_header(&mut canary, "x-env", "canary");
    let mesh = Mesh::start(&["stable", "canary"], vec![canary, prefix("/", "c-stable")]).await;
    let mut client = mesh.client();
    for _ in 0..20 {
        assert_eq!(
            unary(&mut client, &[("x-env", "canary")]).await.unwrap(),
            "canary"
        );
        assert_eq!(unary(&mut client, &[]).await.unwrap(), "stable");
        assert_eq!(
            unary(&mut client, &[("x-env", "prod")]).await.unwrap(),
            "stable"
        );
    }
    assert_eq!(mesh.served()["canary"], 20);
    assert_eq!(mesh.served()["stable"], 40);
}

#[tokio::test]
async fn path_routing_and_unmatched_rpcs() {
    let mesh = Mesh::start(
        &["unary", "other"],
        vec![
            prefix("/grpc.testing.TestService/UnaryCall", "c-unary"),
            prefix("/grpc.testing.TestService/Empty", "c-other"),
        ],
    )
    .await;
    let mut client = mesh.client();
    assert_eq!(unary(&mut client, &[]).await.unwrap(), "unary");
    let empty = client
        .empty_call(mesh_core::testing::proto::grpc_testing::Empty::default())
        .await
        .unwrap();
    assert_eq!(empty.metadata().get("hostname").unwrap(), "other");

    // A route update that leaves UnaryCall unmatched: UNAVAILABLE, saying so.
    mesh.set_routes(vec![prefix("/grpc.testing.TestService/Empty", "c-other")]);
    let mut last = None;
    for _ in 0..100 {
        match unary(&mut client, &[]).await {
            Ok(_) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
            Err(s) => {
                last = Some(s);
                break;
            }
        }
    }
    let s = last.expect("the update applied");
    assert_eq!(s.code(), Code::Unavailable);
    assert!(s.message().contains("no route matched"), "{s:?}");
}

#[tokio::test]
async fn ring_hash_on_a_header_is_sticky_through_the_route_hash() {
    use envoy_types::pb::envoy::config::cluster::v3 as cluster;
    use mesh_core::resource::ResourceType;
    use mesh_core::testing::resources::{self, any, type_url};

    let mesh = Mesh::start(&["a", "b", "c"], vec![prefix("/", "c-a")]).await;
    // One ring-hash cluster over all three backends.
    let addrs: Vec<_> = mesh.backends.iter().map(|b| b.local_addr()).collect();
    let mut ring = resources::eds_cluster("c-ring", "");
    ring.lb_policy = cluster::cluster::LbPolicy::RingHash as i32;
    mesh.ads
        .set_resources(type_url(ResourceType::Cluster), vec![any(&ring)]);
    mesh.ads.set_resources(
        type_url(ResourceType::ClusterLoadAssignment),
        vec![any(&resources::endpoints("c-ring", &addrs))],
    );
    let mut hashed = prefix("/", "c-ring");
    if let Some(route::route::Action::Route(a)) = hashed.action.as_mut() {
        a.hash_policy = vec![route::route_action::HashPolicy {
            policy_specifier: Some(route::route_action::hash_policy::PolicySpecifier::Header(
                route::route_action::hash_policy::Header {
                    header_name: "x-user".into(),
                    regex_rewrite: None,
                },
            )),
            terminal: false,
        }];
    }
    mesh.set_routes(vec![hashed]);
    let mut client = mesh.client();
    // Wait until the ring-hash route applies: "c" only answers through it.
    let mut applied = false;
    for i in 0..200 {
        let user = format!("user-{i}");
        if unary(&mut client, &[("x-user", &user)]).await.unwrap() != "a" {
            applied = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(applied, "the ring-hash route never applied");
    let mut hosts = std::collections::HashSet::new();
    for i in 0..30 {
        let user = format!("user-{i}");
        let first = unary(&mut client, &[("x-user", &user)]).await.unwrap();
        for _ in 0..5 {
            let again = unary(&mut client, &[("x-user", &user)]).await.unwrap();
            assert_eq!(again, first, "{user} moved");
        }
        hosts.insert(first);
    }
    assert!(hosts.len() >= 2, "30 users spread over the ring: {hosts:?}");
}
