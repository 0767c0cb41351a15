//! RBAC end to end (A41): istiod's DENY and ALLOW filters over mTLS and
//! plaintext.

use super::*;

const DENY_FILTER: &str = "envoy.filters.http.rbac.DENY";
const ALLOW_FILTER: &str = "envoy.filters.http.rbac";

fn exact(s: &str) -> matcher::StringMatcher {
    matcher::StringMatcher {
        match_pattern: Some(matcher::string_matcher::MatchPattern::Exact(s.into())),
        ..Default::default()
    }
}

fn any_principal() -> rbac::Principal {
    rbac::Principal {
        identifier: Some(rbac::principal::Identifier::Any(true)),
    }
}

fn policies(action: rbac::rbac::Action, policies: Vec<(&str, rbac::Policy)>) -> rbac_filter::Rbac {
    rbac_filter::Rbac {
        rules: Some(rbac::Rbac {
            action: action as i32,
            policies: policies
                .into_iter()
                .map(|(n, p)| (n.to_owned(), p))
                .collect(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// As istiod sends them: a DENY filter (EmptyCall, and anyone sending
/// `x-user: mallory`), then an ALLOW filter (only the client workload).
fn istio_filters() -> Vec<(&'static str, rbac_filter::Rbac)> {
    let deny_path = rbac::Policy {
        permissions: vec![rbac::Permission {
            rule: Some(rbac::permission::Rule::UrlPath(matcher::PathMatcher {
                rule: Some(matcher::path_matcher::Rule::Path(exact(
                    "/grpc.testing.TestService/EmptyCall",
                ))),
            })),
        }],
        principals: vec![any_principal()],
        ..Default::default()
    };
    let deny_header = rbac::Policy {
        permissions: vec![rbac::Permission {
            rule: Some(rbac::permission::Rule::Header(route::HeaderMatcher {
                name: "x-user".into(),
                header_match_specifier: Some(
                    route::header_matcher::HeaderMatchSpecifier::StringMatch(exact("mallory")),
                ),
                ..Default::default()
            })),
        }],
        principals: vec![any_principal()],
        ..Default::default()
    };
    let allow_client = rbac::Policy {
        permissions: vec![rbac::Permission {
            rule: Some(rbac::permission::Rule::Any(true)),
        }],
        principals: vec![rbac::Principal {
            identifier: Some(rbac::principal::Identifier::Authenticated(
                rbac::principal::Authenticated {
                    principal_name: Some(exact(CLIENT_ID)),
                },
            )),
        }],
        ..Default::default()
    };
    vec![
        (
            DENY_FILTER,
            policies(
                rbac::rbac::Action::Deny,
                vec![
                    ("ns[default]-policy[deny-empty]-rule[0]", deny_path),
                    ("ns[default]-policy[deny-mallory]-rule[0]", deny_header),
                ],
            ),
        ),
        (
            ALLOW_FILTER,
            policies(
                rbac::rbac::Action::Allow,
                vec![("ns[default]-policy[allow-client]-rule[0]", allow_client)],
            ),
        ),
    ]
}

fn assert_denied(result: Result<(), Status>) {
    let status = result.expect_err("RBAC denies the RPC");
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert_eq!(status.message(), mesh_tower::authz::DENIED_MESSAGE);
    assert!(!status.message().contains("policy"), "{status:?}");
}

async fn unary_as(client: &mut TestServiceClient<Channel>, user: &str) -> Result<(), Status> {
    let mut req = tonic::Request::new(SimpleRequest::default());
    req.metadata_mut().insert("x-user", user.parse().unwrap());
    client.unary_call(req).await.map(drop)
}

#[tokio::test]
async fn rbac_allows_and_denies_by_path_header_and_principal_over_mtls() {
    let ca = TestCa::new("mesh-root");
    let (_, server_secret) = workload(&ca, SERVER_ID);
    let (_, client_secret) = workload(&ca, CLIENT_ID);
    let (_, other_secret) = workload(&ca, OTHER_ID);
    let filters = istio_filters();
    let mesh = Mesh::start(Setup {
        server_secret: Some(&server_secret),
        server_registry: None,
        handshake_timeout: None,
        mtls: true,
        rbac: &filters,
        client_tls: ClientTls::Mutual(SERVER_ID),
    })
    .await;
    let client = Client::new(&mesh.ads, "client", Some(&client_secret));
    let mut rpc = client.connect().await;
    // The ALLOW filter's principal.
    unary(&mut rpc).await.unwrap();
    unary_as(&mut rpc, "alice").await.unwrap();
    // The DENY filter runs first: its path and header policies deny even
    // the allowed principal.
    assert_denied(rpc.empty_call(Empty::default()).await.map(drop));
    assert_denied(unary_as(&mut rpc, "mallory").await);
    assert_eq!(mesh.seen().len(), 2, "denied RPCs never reach the service");

    // Another workload of the same mesh: no ALLOW policy matches.
    let other = Client::new(&mesh.ads, "other", Some(&other_secret));
    assert_denied(unary(&mut other.connect().await).await);
    assert_eq!(mesh.seen().len(), 2);
}

#[tokio::test]
async fn rbac_principals_match_only_over_mtls() {
    let filters = istio_filters();
    let mesh = Mesh::start(Setup {
        server_secret: None,
        server_registry: None,
        handshake_timeout: None,
        mtls: false,
        rbac: &filters,
        client_tls: ClientTls::Plaintext,
    })
    .await;
    let client = Client::new(&mesh.ads, "client", None);
    let mut rpc = client.connect().await;
    // The same policies: over plaintext nobody is the client workload.
    assert_denied(unary(&mut rpc).await);
    assert_denied(rpc.empty_call(Empty::default()).await.map(drop));
    assert!(mesh.seen().is_empty());
}
