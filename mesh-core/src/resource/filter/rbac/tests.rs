use std::net::{IpAddr, SocketAddr};

use super::*;
use envoy_types::pb::envoy::config::core::v3::CidrRange as WireCidr;
use envoy_types::pb::envoy::r#type::matcher::v3::string_matcher::MatchPattern;
use envoy_types::pb::envoy::r#type::v3::Int32Range;
use envoy_types::pb::google::api::expr::v1alpha1::Expr;
use envoy_types::pb::google::protobuf::UInt32Value;
use http::HeaderMap;
use policy::permission::Rule as R;
use policy::principal::Identifier as I;
use route::header_matcher::HeaderMatchSpecifier as H;

fn perm(r: R) -> policy::Permission {
    policy::Permission { rule: Some(r) }
}

fn prin(i: I) -> policy::Principal {
    policy::Principal {
        identifier: Some(i),
    }
}

fn exact(s: &str) -> matcher_wire::StringMatcher {
    matcher_wire::StringMatcher {
        ignore_case: false,
        match_pattern: Some(MatchPattern::Exact(s.into())),
    }
}

fn prefix(s: &str) -> matcher_wire::StringMatcher {
    matcher_wire::StringMatcher {
        ignore_case: false,
        match_pattern: Some(MatchPattern::Prefix(s.into())),
    }
}

fn path(m: matcher_wire::StringMatcher) -> matcher_wire::PathMatcher {
    matcher_wire::PathMatcher {
        rule: Some(matcher_wire::path_matcher::Rule::Path(m)),
    }
}

fn header(name: &str, value: &str) -> route::HeaderMatcher {
    route::HeaderMatcher {
        name: name.into(),
        header_match_specifier: Some(H::ExactMatch(value.into())),
        ..Default::default()
    }
}

fn cidr(a: &str, len: u32) -> WireCidr {
    WireCidr {
        address_prefix: a.into(),
        prefix_len: Some(UInt32Value { value: len }),
    }
}

fn any_principal() -> policy::Principal {
    prin(I::Any(true))
}

fn any_permission() -> policy::Permission {
    perm(R::Any(true))
}

fn rbac(action: i32, policies: Vec<(&str, policy::Policy)>) -> Rbac {
    Rbac::from_wire(
        &policy::Rbac {
            action,
            policies: policies
                .into_iter()
                .map(|(n, p)| (n.to_owned(), p))
                .collect(),
            ..Default::default()
        },
        "rules",
    )
    .unwrap()
}

fn pol(permissions: Vec<policy::Permission>, principals: Vec<policy::Principal>) -> policy::Policy {
    policy::Policy {
        permissions,
        principals,
        ..Default::default()
    }
}

const ALLOW: i32 = 0;
const DENY: i32 = 1;
const LOG: i32 = 2;

struct Req {
    headers: HeaderMap,
    path: &'static str,
    principal: Option<&'static str>,
    authenticated: bool,
    source: SocketAddr,
}

impl Req {
    fn new(path: &'static str) -> Self {
        Req {
            headers: HeaderMap::new(),
            path,
            principal: None,
            authenticated: false,
            source: "10.0.0.9:40000".parse().unwrap(),
        }
    }

    fn ctx(&self) -> RbacRequest<'_> {
        RbacRequest {
            headers: &self.headers,
            method: "POST",
            path: self.path,
            authority: Some("echo.default.svc.cluster.local:7070"),
            dest: "10.0.0.1:7070".parse().unwrap(),
            source: self.source,
            remote: self.source.ip(),
            principal: self.principal,
            sni: None,
            authenticated: self.authenticated,
        }
    }
}

#[test]
fn allow_by_path() {
    let r = rbac(
        ALLOW,
        vec![(
            "echo-unary",
            pol(
                vec![perm(R::UrlPath(path(exact(
                    "/grpc.testing.TestService/UnaryCall",
                ))))],
                vec![any_principal()],
            ),
        )],
    );
    let d = r.evaluate(&Req::new("/grpc.testing.TestService/UnaryCall").ctx());
    assert_eq!(
        d,
        RbacDecision {
            allowed: true,
            matched_policy: Some("echo-unary")
        }
    );
    let d = r.evaluate(&Req::new("/grpc.testing.TestService/EmptyCall").ctx());
    assert!(!d.allowed);
    assert_eq!(d.matched_policy, None);
    assert!(
        r.evaluate(&Req::new("/grpc.testing.TestService/UnaryCall?x=1").ctx())
            .allowed,
        "url_path ignores the query"
    );
}

#[test]
fn deny_by_header() {
    let r = rbac(
        DENY,
        vec![(
            "no-bob",
            pol(
                vec![perm(R::Header(header("x-user", "bob")))],
                vec![any_principal()],
            ),
        )],
    );
    let mut req = Req::new("/a/b");
    assert!(r.evaluate(&req.ctx()).allowed, "no header: not denied");
    req.headers.insert("x-user", "bob".parse().unwrap());
    let d = r.evaluate(&req.ctx());
    assert!(!d.allowed);
    assert_eq!(d.matched_policy, Some("no-bob"));
    req.headers.insert("x-user", "alice".parse().unwrap());
    assert!(r.evaluate(&req.ctx()).allowed);
}

#[test]
fn pseudo_headers_come_from_the_request() {
    let r = rbac(
        ALLOW,
        vec![(
            "p",
            pol(
                vec![perm(R::AndRules(policy::permission::Set {
                    rules: vec![
                        perm(R::Header(header(":method", "POST"))),
                        perm(R::Header(header(":path", "/a/b"))),
                        perm(R::Header(header(
                            "host",
                            "echo.default.svc.cluster.local:7070",
                        ))),
                    ],
                }))],
                vec![any_principal()],
            ),
        )],
    );
    assert!(r.evaluate(&Req::new("/a/b").ctx()).allowed);
    assert!(!r.evaluate(&Req::new("/a/c").ctx()).allowed);
}

#[test]
fn principal_matches_only_when_authenticated() {
    let spiffe = "spiffe://cluster.local/ns/default/sa/echo";
    let r = rbac(
        ALLOW,
        vec![(
            "echo-sa",
            pol(
                vec![any_permission()],
                vec![prin(I::Authenticated(policy::principal::Authenticated {
                    principal_name: Some(exact(spiffe)),
                }))],
            ),
        )],
    );
    let mut req = Req::new("/a/b");
    req.principal = Some(spiffe);
    assert!(
        !r.evaluate(&req.ctx()).allowed,
        "plaintext never authenticated"
    );
    req.authenticated = true;
    assert!(r.evaluate(&req.ctx()).allowed);
    req.principal = Some("spiffe://cluster.local/ns/default/sa/other");
    assert!(!r.evaluate(&req.ctx()).allowed);

    let any_tls = rbac(
        ALLOW,
        vec![(
            "tls",
            pol(
                vec![any_permission()],
                vec![prin(I::Authenticated(Default::default()))],
            ),
        )],
    );
    let mut req = Req::new("/a/b");
    assert!(!any_tls.evaluate(&req.ctx()).allowed);
    req.authenticated = true;
    assert!(
        any_tls.evaluate(&req.ctx()).allowed,
        "TLS without a client cert"
    );
}

#[test]
fn and_or_not_and_ips() {
    // Allow /admin/* only from 10.0.0.0/8 and not from 10.0.0.9.
    let r = rbac(
        ALLOW,
        vec![(
            "admin",
            pol(
                vec![perm(R::OrRules(policy::permission::Set {
                    rules: vec![
                        perm(R::UrlPath(path(prefix("/admin/")))),
                        perm(R::UrlPath(path(prefix("/ops/")))),
                    ],
                }))],
                vec![prin(I::AndIds(policy::principal::Set {
                    ids: vec![
                        prin(I::DirectRemoteIp(cidr("10.0.0.0", 8))),
                        prin(I::NotId(Box::new(prin(I::RemoteIp(cidr("10.0.0.9", 32)))))),
                    ],
                }))],
            ),
        )],
    );
    let mut req = Req::new("/admin/x");
    assert!(
        !r.evaluate(&req.ctx()).allowed,
        "10.0.0.9 excluded by not_id"
    );
    req.source = "10.1.1.1:5".parse().unwrap();
    assert!(r.evaluate(&req.ctx()).allowed);
    req.path = "/ops/y";
    assert!(r.evaluate(&req.ctx()).allowed);
    req.path = "/user/z";
    assert!(!r.evaluate(&req.ctx()).allowed);
    req.path = "/admin/x";
    req.source = "192.168.1.1:5".parse().unwrap();
    assert!(!r.evaluate(&req.ctx()).allowed);
}

#[test]
fn destination_and_metadata_permissions() {
    let one = |p: policy::Permission| rbac(ALLOW, vec![("p", pol(vec![p], vec![any_principal()]))]);
    let req = Req::new("/a/b");
    assert!(
        one(perm(R::DestinationPort(7070)))
            .evaluate(&req.ctx())
            .allowed
    );
    assert!(
        !one(perm(R::DestinationPort(80)))
            .evaluate(&req.ctx())
            .allowed
    );
    let range = |start, end| perm(R::DestinationPortRange(Int32Range { start, end }));
    assert!(one(range(7000, 7071)).evaluate(&req.ctx()).allowed);
    assert!(
        !one(range(7000, 7070)).evaluate(&req.ctx()).allowed,
        "end is exclusive"
    );
    assert!(
        one(perm(R::DestinationIp(cidr("10.0.0.0", 24))))
            .evaluate(&req.ctx())
            .allowed
    );
    let md = |invert| {
        perm(R::Metadata(matcher_wire::MetadataMatcher {
            invert,
            ..Default::default()
        }))
    };
    assert!(
        !one(md(false)).evaluate(&req.ctx()).allowed,
        "metadata never matches"
    );
    assert!(
        one(md(true)).evaluate(&req.ctx()).allowed,
        "inverted, it always does"
    );
    assert!(
        one(perm(R::RequestedServerName(exact(""))))
            .evaluate(&req.ctx())
            .allowed,
        "no SNI is the empty string"
    );
}

#[test]
fn log_and_unset_rules_allow() {
    let r = rbac(
        LOG,
        vec![("p", pol(vec![any_permission()], vec![any_principal()]))],
    );
    let d = r.evaluate(&Req::new("/a/b").ctx());
    assert!(d.allowed);
    assert_eq!(d.matched_policy, Some("p"));
    let none = RbacConfig { rules: None };
    assert!(none.evaluate(&Req::new("/a/b").ctx()).allowed);
    let deny_nothing = rbac(DENY, vec![]);
    assert!(deny_nothing.evaluate(&Req::new("/a/b").ctx()).allowed);
    let allow_nothing = rbac(ALLOW, vec![]);
    assert!(!allow_nothing.evaluate(&Req::new("/a/b").ctx()).allowed);
}

fn rules_err(p: policy::Policy) -> FieldError {
    let w = wire::Rbac {
        rules: Some(policy::Rbac {
            action: ALLOW,
            policies: [("pol".to_owned(), p)].into_iter().collect(),
            ..Default::default()
        }),
        ..Default::default()
    };
    RbacConfig::from_wire(&w, "http_filters[1].typed_config").unwrap_err()
}

const POL: &str = "http_filters[1].typed_config.rules.policies[\"pol\"]";

#[test]
fn cel_conditions_rejected() {
    let mut p = pol(vec![any_permission()], vec![any_principal()]);
    p.condition = Some(Expr::default());
    assert_eq!(rules_err(p).field, format!("{POL}.condition"));
    let mut p = pol(vec![any_permission()], vec![any_principal()]);
    p.checked_condition = Some(Default::default());
    assert_eq!(rules_err(p).field, format!("{POL}.checked_condition"));
}

#[test]
fn grpc_and_scheme_headers_rejected() {
    for name in ["grpc-timeout", "Grpc-Encoding", ":scheme"] {
        let p = pol(
            vec![perm(R::Header(header(name, "x")))],
            vec![any_principal()],
        );
        assert_eq!(
            rules_err(p).field,
            format!("{POL}.permissions[0].header.name"),
            "{name}"
        );
    }
    let p = pol(
        vec![any_permission()],
        vec![prin(I::OrIds(policy::principal::Set {
            ids: vec![any_principal(), prin(I::Header(header("grpc-x", "y")))],
        }))],
    );
    assert_eq!(
        rules_err(p).field,
        format!("{POL}.principals[0].or_ids.ids[1].header.name")
    );
}

#[test]
fn matcher_trees_rejected() {
    let w = wire::Rbac {
        matcher: Some(Default::default()),
        ..Default::default()
    };
    assert_eq!(
        RbacConfig::from_wire(&w, "c").unwrap_err().field,
        "c.matcher"
    );
    let p = pol(
        vec![perm(R::Matcher(Default::default()))],
        vec![any_principal()],
    );
    assert_eq!(rules_err(p).field, format!("{POL}.permissions[0].matcher"));
    let p = pol(
        vec![any_permission()],
        vec![prin(I::Custom(Default::default()))],
    );
    assert_eq!(rules_err(p).field, format!("{POL}.principals[0].custom"));
}

#[test]
fn empty_or_unset_rules_and_identifiers_rejected() {
    assert_eq!(
        rules_err(pol(vec![], vec![any_principal()])).field,
        format!("{POL}.permissions")
    );
    assert_eq!(
        rules_err(pol(vec![any_permission()], vec![])).field,
        format!("{POL}.principals")
    );
    let p = pol(
        vec![policy::Permission { rule: None }],
        vec![any_principal()],
    );
    assert_eq!(rules_err(p).field, format!("{POL}.permissions[0]"));
    let p = pol(
        vec![perm(R::NotRule(Box::new(perm(R::DestinationPort(70000)))))],
        vec![any_principal()],
    );
    assert_eq!(
        rules_err(p).field,
        format!("{POL}.permissions[0].not_rule.destination_port")
    );
    let p = pol(
        vec![any_permission()],
        vec![prin(I::SourceIp(WireCidr {
            address_prefix: "nope".into(),
            prefix_len: None,
        }))],
    );
    assert_eq!(
        rules_err(p).field,
        format!("{POL}.principals[0].source_ip.address_prefix")
    );
}

#[test]
fn unknown_action_rejected() {
    let w = wire::Rbac {
        rules: Some(policy::Rbac {
            action: 9,
            ..Default::default()
        }),
        ..Default::default()
    };
    assert_eq!(
        RbacConfig::from_wire(&w, "c").unwrap_err().field,
        "c.rules.action"
    );
}

#[test]
fn per_route_rbac_unset_disables() {
    let p = RbacPerRoute::from_wire(&wire::RbacPerRoute { rbac: None }, "r").unwrap();
    assert!(p.rbac.is_none());
    let bad = wire::RbacPerRoute {
        rbac: Some(wire::Rbac {
            matcher: Some(Default::default()),
            ..Default::default()
        }),
    };
    assert_eq!(
        RbacPerRoute::from_wire(&bad, "r").unwrap_err().field,
        "r.rbac.matcher"
    );
}

#[test]
fn source_ip_is_the_direct_peer() {
    let r = rbac(
        ALLOW,
        vec![(
            "p",
            pol(
                vec![any_permission()],
                vec![prin(I::SourceIp(cidr("10.0.0.9", 32)))],
            ),
        )],
    );
    let req = Req::new("/a/b");
    assert!(r.evaluate(&req.ctx()).allowed);
    let other: IpAddr = "10.0.0.8".parse().unwrap();
    let mut ctx = req.ctx();
    ctx.remote = other;
    assert!(
        r.evaluate(&ctx).allowed,
        "source_ip ignores the remote address"
    );
}
