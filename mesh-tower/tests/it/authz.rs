//! The RBAC layer (A41) over an in-process service: ALLOW and DENY by
//! path, header, principal, addresses and ports; DENY filters before
//! ALLOW ones; `authenticated` principals only over TLS; `RBACPerRoute`
//! overrides; and denials that never name a policy.

// Also included by the tls tests: each module compiles its own copy.
#[allow(clippy::duplicate_mod)]
#[path = "../../src/tls/testing.rs"]
mod certs;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use envoy_types::pb::envoy::config::core::v3::CidrRange;
use envoy_types::pb::envoy::config::listener::v3 as listener;
use envoy_types::pb::envoy::config::rbac::v3 as rbac;
use envoy_types::pb::envoy::config::route::v3 as route;
use envoy_types::pb::envoy::extensions::filters::http::rbac::v3 as rbac_filter;
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3 as hcm;
use envoy_types::pb::envoy::r#type::matcher::v3 as matcher;
use envoy_types::pb::google::protobuf::UInt32Value;
use http::{Request, Response, StatusCode};
use mesh_core::resource::filter::RbacConfig;
use mesh_core::resource::listener::{HttpConnectionManager, Listener};
use mesh_core::testing::resources::{any, http_filter, inbound_routes};
use mesh_tower::authz::{
    ConnectionFacts, DENIED_MESSAGE, Inbound, RbacLayer, effective_filters, evaluate,
};
use mesh_tower::tls::PeerIdentity;
use tower::{Layer, Service, ServiceExt};

const CLIENT: &str = "spiffe://cluster.local/ns/default/sa/client";
const OTHER: &str = "spiffe://cluster.local/ns/default/sa/other";
const SECRET_POLICY: &str = "ns[default]-policy[secret-name]-rule[0]";

fn exact(s: &str) -> matcher::StringMatcher {
    matcher::StringMatcher {
        match_pattern: Some(matcher::string_matcher::MatchPattern::Exact(s.into())),
        ..Default::default()
    }
}

fn path_is(p: &str) -> rbac::Permission {
    rbac::Permission {
        rule: Some(rbac::permission::Rule::UrlPath(matcher::PathMatcher {
            rule: Some(matcher::path_matcher::Rule::Path(exact(p))),
        })),
    }
}

fn header_is(name: &str, value: &str) -> route::HeaderMatcher {
    route::HeaderMatcher {
        name: name.into(),
        header_match_specifier: Some(route::header_matcher::HeaderMatchSpecifier::StringMatch(
            exact(value),
        )),
        ..Default::default()
    }
}

fn any_permission() -> rbac::Permission {
    rbac::Permission {
        rule: Some(rbac::permission::Rule::Any(true)),
    }
}

fn any_principal() -> rbac::Principal {
    rbac::Principal {
        identifier: Some(rbac::principal::Identifier::Any(true)),
    }
}

fn principal_is(name: &str) -> rbac::Principal {
    rbac::Principal {
        identifier: Some(rbac::principal::Identifier::Authenticated(
            rbac::principal::Authenticated {
                principal_name: Some(exact(name)),
            },
        )),
    }
}

fn from_ip(prefix: &str, len: u32) -> rbac::Principal {
    rbac::Principal {
        identifier: Some(rbac::principal::Identifier::DirectRemoteIp(CidrRange {
            address_prefix: prefix.into(),
            prefix_len: Some(UInt32Value { value: len }),
        })),
    }
}

/// One policy named `SECRET_POLICY`.
fn rules(
    action: rbac::rbac::Action,
    permissions: Vec<rbac::Permission>,
    principals: Vec<rbac::Principal>,
) -> rbac_filter::Rbac {
    rbac_filter::Rbac {
        rules: Some(rbac::Rbac {
            action: action as i32,
            policies: [(
                SECRET_POLICY.to_owned(),
                rbac::Policy {
                    permissions,
                    principals,
                    ..Default::default()
                },
            )]
            .into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn allow(permissions: Vec<rbac::Permission>, principals: Vec<rbac::Principal>) -> RbacConfig {
    let wire = rules(rbac::rbac::Action::Allow, permissions, principals);
    RbacConfig::from_wire(&wire, "rbac").unwrap()
}

fn deny(permissions: Vec<rbac::Permission>, principals: Vec<rbac::Principal>) -> RbacConfig {
    let wire = rules(rbac::rbac::Action::Deny, permissions, principals);
    RbacConfig::from_wire(&wire, "rbac").unwrap()
}

fn facts(peer: &str, tls: bool) -> ConnectionFacts {
    ConnectionFacts {
        local_addr: "127.0.0.1:8080".parse().unwrap(),
        peer_addr: peer.parse().unwrap(),
        tls,
        sni: None,
    }
}

fn identity(ca: &certs::TestCa, spiffe: &str) -> PeerIdentity {
    PeerIdentity::from_chain(&[ca.leaf(&[spiffe]).der]).unwrap()
}

/// A gRPC request to `path` on a connection with these facts.
fn grpc(path: &str, conn: ConnectionFacts, peer: Option<PeerIdentity>) -> Request<String> {
    let mut req = Request::builder()
        .method("POST")
        .uri(format!("http://echo:8080{path}"))
        .header("content-type", "application/grpc")
        .body(String::new())
        .unwrap();
    req.extensions_mut().insert(conn);
    if let Some(p) = peer {
        req.extensions_mut().insert(p);
    }
    req
}

/// The layer over a service counting the requests that reach it.
#[allow(clippy::type_complexity)]
fn service(
    layer: RbacLayer,
) -> (
    impl Service<
        Request<String>,
        Response = Response<impl http_body::Body<Error = Box<dyn std::error::Error + Send + Sync>>>,
        Error = Infallible,
    >,
    Arc<AtomicUsize>,
) {
    let reached = Arc::new(AtomicUsize::new(0));
    let counter = reached.clone();
    let inner = tower::service_fn(move |_req: Request<String>| {
        counter.fetch_add(1, Ordering::SeqCst);
        async { Ok::<_, Infallible>(Response::new(String::from("ok"))) }
    });
    (layer.layer(inner), reached)
}

/// `Some(grpc-status)` of a Trailers-Only refusal, `None` if served.
async fn call<S, B>(svc: &mut S, req: Request<String>) -> Option<String>
where
    S: Service<Request<String>, Response = Response<B>, Error = Infallible>,
{
    let resp = svc.ready().await.unwrap().call(req).await.unwrap();
    let status = resp.headers().get("grpc-status")?;
    let message = resp.headers()["grpc-message"].to_str().unwrap();
    assert_eq!(message, DENIED_MESSAGE);
    assert!(!message.contains("secret-name"), "{message}");
    Some(status.to_str().unwrap().to_owned())
}

const PERMISSION_DENIED: &str = "7";

#[tokio::test]
async fn allow_by_path() {
    let layer = RbacLayer::new([(
        "envoy.filters.http.rbac",
        allow(vec![path_is("/pkg.Svc/Open")], vec![any_principal()]),
    )]);
    let (mut svc, reached) = service(layer);
    let conn = facts("127.0.0.1:5000", false);
    assert_eq!(
        call(&mut svc, grpc("/pkg.Svc/Open", conn.clone(), None)).await,
        None
    );
    assert_eq!(
        call(&mut svc, grpc("/pkg.Svc/Closed", conn.clone(), None))
            .await
            .as_deref(),
        Some(PERMISSION_DENIED)
    );
    // url_path ignores the query; `:path` would not.
    assert_eq!(
        call(&mut svc, grpc("/pkg.Svc/Open?x=1", conn, None)).await,
        None
    );
    assert_eq!(reached.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn deny_by_header_and_plain_http_gets_403() {
    let layer = RbacLayer::new([(
        "envoy.filters.http.rbac.DENY",
        deny(
            vec![rbac::Permission {
                rule: Some(rbac::permission::Rule::Header(header_is(
                    "x-user", "mallory",
                ))),
            }],
            vec![any_principal()],
        ),
    )]);
    let (mut svc, reached) = service(layer);
    let conn = facts("127.0.0.1:5000", false);
    let mut req = grpc("/pkg.Svc/M", conn.clone(), None);
    req.headers_mut().insert("x-user", "alice".parse().unwrap());
    assert_eq!(call(&mut svc, req).await, None);
    let mut req = grpc("/pkg.Svc/M", conn.clone(), None);
    req.headers_mut()
        .insert("x-user", "mallory".parse().unwrap());
    assert_eq!(
        call(&mut svc, req).await.as_deref(),
        Some(PERMISSION_DENIED)
    );
    assert_eq!(reached.load(Ordering::SeqCst), 1);

    // Plain HTTP: 403, and the body names no policy either.
    let mut req = Request::get("http://echo/page")
        .header("x-user", "mallory")
        .body(String::new())
        .unwrap();
    req.extensions_mut().insert(conn);
    let resp = svc.ready().await.unwrap().call(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let body = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .unwrap()
        .to_bytes();
    let body = String::from_utf8_lossy(&body);
    assert!(
        body.contains(DENIED_MESSAGE) && !body.contains("secret-name"),
        "{body}"
    );
}

#[tokio::test]
async fn principals_match_only_over_tls() {
    let ca = certs::TestCa::new("root");
    let layer = RbacLayer::new([(
        "envoy.filters.http.rbac",
        allow(vec![any_permission()], vec![principal_is(CLIENT)]),
    )]);
    let (mut svc, reached) = service(layer);
    let tls = facts("127.0.0.1:5000", true);
    // The right SPIFFE ID over mTLS.
    let req = grpc("/pkg.Svc/M", tls.clone(), Some(identity(&ca, CLIENT)));
    assert_eq!(call(&mut svc, req).await, None);
    // Another workload.
    let req = grpc("/pkg.Svc/M", tls.clone(), Some(identity(&ca, OTHER)));
    assert_eq!(
        call(&mut svc, req).await.as_deref(),
        Some(PERMISSION_DENIED)
    );
    // TLS without a client certificate.
    let req = grpc("/pkg.Svc/M", tls, None);
    assert_eq!(
        call(&mut svc, req).await.as_deref(),
        Some(PERMISSION_DENIED)
    );
    // A certificate on a connection that is not TLS is not trusted.
    let plain = facts("127.0.0.1:5000", false);
    let req = grpc("/pkg.Svc/M", plain, Some(identity(&ca, CLIENT)));
    assert_eq!(
        call(&mut svc, req).await.as_deref(),
        Some(PERMISSION_DENIED)
    );
    // The same policy over plaintext denies, whatever claims the request
    // makes (a header is not an identity).
    let mut req = grpc("/pkg.Svc/M", facts("127.0.0.1:5000", false), None);
    req.headers_mut().insert(
        "x-forwarded-client-cert",
        format!("URI={CLIENT}").parse().unwrap(),
    );
    assert_eq!(
        call(&mut svc, req).await.as_deref(),
        Some(PERMISSION_DENIED)
    );
    assert_eq!(reached.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn addresses_and_ports() {
    let layer = RbacLayer::new([
        (
            "envoy.filters.http.rbac.DENY",
            deny(vec![any_permission()], vec![from_ip("10.0.0.0", 8)]),
        ),
        (
            "envoy.filters.http.rbac",
            allow(
                vec![rbac::Permission {
                    rule: Some(rbac::permission::Rule::DestinationPort(8080)),
                }],
                vec![any_principal()],
            ),
        ),
    ]);
    let (mut svc, reached) = service(layer);
    let ok = grpc("/pkg.Svc/M", facts("127.0.0.1:5000", false), None);
    assert_eq!(call(&mut svc, ok).await, None);
    let blocked = grpc("/pkg.Svc/M", facts("10.1.2.3:5000", false), None);
    assert_eq!(
        call(&mut svc, blocked).await.as_deref(),
        Some(PERMISSION_DENIED)
    );
    let mut other_port = facts("127.0.0.1:5000", false);
    other_port.local_addr = "127.0.0.1:9090".parse().unwrap();
    let req = grpc("/pkg.Svc/M", other_port, None);
    assert_eq!(
        call(&mut svc, req).await.as_deref(),
        Some(PERMISSION_DENIED)
    );
    assert_eq!(reached.load(Ordering::SeqCst), 1);

    // Without ConnectionFacts, tonic's TcpConnectInfo gives the addresses.
    let mut req = Request::post("http://echo:8080/pkg.Svc/M")
        .header("content-type", "application/grpc")
        .body(String::new())
        .unwrap();
    req.extensions_mut()
        .insert(tonic::transport::server::TcpConnectInfo {
            local_addr: Some("127.0.0.1:8080".parse().unwrap()),
            remote_addr: Some("10.9.9.9:1".parse::<SocketAddr>().unwrap()),
        });
    assert_eq!(
        call(&mut svc, req).await.as_deref(),
        Some(PERMISSION_DENIED)
    );
}

#[test]
fn the_deny_filter_is_checked_before_the_allow_filter() {
    let filters = [
        (
            "envoy.filters.http.rbac.DENY",
            deny(vec![path_is("/pkg.Svc/Admin")], vec![any_principal()]),
        ),
        (
            "envoy.filters.http.rbac",
            allow(vec![path_is("/pkg.Svc/Open")], vec![any_principal()]),
        ),
    ];
    let conn = facts("127.0.0.1:5000", false);
    let decide = |path: &str| {
        let req = grpc(path, conn.clone(), None);
        let (parts, _) = req.into_parts();
        let inbound = Inbound::from_parts(&parts, &conn, None);
        let list = filters
            .iter()
            .map(|(name, config)| mesh_tower::authz::RbacFilter { name, config });
        evaluate(list, &inbound).map_err(|d| (d.filter.to_owned(), d.policy.map(str::to_owned)))
    };
    // Both filters would deny /Admin: the DENY filter decides.
    assert_eq!(
        decide("/pkg.Svc/Admin"),
        Err((
            "envoy.filters.http.rbac.DENY".to_owned(),
            Some(SECRET_POLICY.to_owned())
        ))
    );
    assert_eq!(
        decide("/pkg.Svc/Other"),
        Err(("envoy.filters.http.rbac".to_owned(), None))
    );
    assert_eq!(decide("/pkg.Svc/Open"), Ok(()));
}

/// A server listener's HCM with these RBAC filters (then the router) and
/// istiod's inbound routes, where `route_override` (if any) is set on the
/// catch-all route for the filter named `envoy.filters.http.rbac`.
fn hcm_with(
    filters: Vec<(&str, rbac_filter::Rbac)>,
    route_override: Option<rbac_filter::RbacPerRoute>,
) -> HttpConnectionManager {
    let mut routes = inbound_routes();
    if let Some(o) = route_override {
        routes.virtual_hosts[0].routes[0]
            .typed_per_filter_config
            .insert("envoy.filters.http.rbac".into(), any(&o));
    }
    let mut http_filters: Vec<_> = filters
        .iter()
        .map(|(name, config)| http_filter(name, config))
        .collect();
    http_filters.push(http_filter("envoy.filters.http.router", &Router::default()));
    let manager = hcm::HttpConnectionManager {
        stat_prefix: "inbound".into(),
        route_specifier: Some(hcm::http_connection_manager::RouteSpecifier::RouteConfig(
            routes,
        )),
        http_filters,
        ..Default::default()
    };
    let wire = listener::Listener {
        name: "inbound".into(),
        address: Some(mesh_core::testing::resources::socket_address(
            "127.0.0.1:8080".parse().unwrap(),
        )),
        filter_chains: vec![listener::FilterChain {
            name: "inbound-plaintext".into(),
            filters: vec![listener::Filter {
                name: "envoy.filters.network.http_connection_manager".into(),
                config_type: Some(listener::filter::ConfigType::TypedConfig(any(&manager))),
            }],
            ..Default::default()
        }],
        ..Default::default()
    };
    let l = Listener::try_from(wire).unwrap();
    l.server().unwrap().filter_chains[0].hcm.clone()
}

#[tokio::test]
async fn rbac_per_route_replaces_or_disables_a_filter() {
    let deny_all = rules(
        rbac::rbac::Action::Deny,
        vec![any_permission()],
        vec![any_principal()],
    );
    let only_open = rules(
        rbac::rbac::Action::Allow,
        vec![path_is("/pkg.Svc/Open")],
        vec![any_principal()],
    );
    let conn = facts("127.0.0.1:5000", false);
    let run = async |route_override: Option<rbac_filter::RbacPerRoute>, path: &str| {
        let hcm = hcm_with(
            vec![("envoy.filters.http.rbac", deny_all.clone())],
            route_override,
        );
        let mesh_core::resource::listener::RouteSource::Inline(rc) = &hcm.route else {
            panic!("inline routes")
        };
        let vh = &rc.virtual_hosts[0];
        let route = &vh.routes[0];
        let req = grpc(path, conn.clone(), None);
        let (parts, _) = req.into_parts();
        let inbound = Inbound::from_parts(&parts, &conn, None);
        let direct = evaluate(effective_filters(&hcm, vh, route), &inbound).is_ok();
        // The layer built for the route agrees.
        let (mut svc, _) = service(RbacLayer::for_route(&hcm, vh, route));
        let layered = call(&mut svc, grpc(path, conn.clone(), None))
            .await
            .is_none();
        assert_eq!(direct, layered);
        direct
    };
    // No override: the top-level DENY-all.
    assert!(!run(None, "/pkg.Svc/Open").await);
    // Replaced by an ALLOW for /Open.
    let replace = rbac_filter::RbacPerRoute {
        rbac: Some(only_open),
    };
    assert!(run(Some(replace.clone()), "/pkg.Svc/Open").await);
    assert!(!run(Some(replace), "/pkg.Svc/Other").await);
    // An override without `rbac` turns the filter off on the route.
    assert!(
        run(
            Some(rbac_filter::RbacPerRoute { rbac: None }),
            "/pkg.Svc/Other"
        )
        .await
    );
}
