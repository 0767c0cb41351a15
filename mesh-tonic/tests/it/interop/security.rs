//! The interop security cases (#6) with both interop apps in secure mode:
//! the `xds-interop-server` binary (`--secure_mode=true`, an xDS-enabled
//! server) and the interop client (`--secure_mode=true`, xDS credentials;
//! in-process, the code the `xds-interop-client` binary wraps), configured
//! by one TestAdsServer with istiod-shaped resources and `file_watcher`
//! certificate providers over Kubernetes-style secret volumes.
//!
//! Covered: mTLS; a wrong SAN refused; plaintext fallback (no TLS
//! contexts); insecure credentials (`--secure_mode=false`) ignoring the
//! clusters' TLS contexts; and the authz cases: ALLOW and DENY by path, by
//! header and by principal, principal rules matching only over mTLS.

// The same helpers security/ includes: a second copy keeps this module
// independent of that one's private items.
use crate::certs;

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use certs::{CA, CERT, KEY, KubeSecretDir, TestCa};
use envoy_types::pb::envoy::config::core::v3 as core;
use envoy_types::pb::envoy::config::listener::v3 as listener;
use envoy_types::pb::envoy::config::rbac::v3 as rbac;
use envoy_types::pb::envoy::config::route::v3 as route_wire;
use envoy_types::pb::envoy::extensions::filters::http::rbac::v3 as rbac_filter;
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3 as hcm;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3 as tls;
use envoy_types::pb::envoy::r#type::matcher::v3 as matcher;
use envoy_types::pb::google::protobuf::BoolValue;
use mesh_core::bootstrap::{Bootstrap, FileWatcher};
use mesh_core::resource::ResourceType;
use mesh_core::testing::ads_server::TestAdsServer;
use mesh_core::testing::proto::grpc_testing::load_balancer_accumulated_stats_response::MethodStats;
use mesh_core::testing::resources::{
    any, http_filter, inbound_routes, server_listener, with_istio_mutual,
};
use mesh_tonic::interop_client::{RpcMetadata, RpcType};
use tonic::Code;

use super::{
    Client, cla, client_listener, completed, converge, count, delta, eds_cluster, match_all,
    method_stats, route, route_config, to_cluster,
};
use crate::server::TEMPLATE;

const SERVER_ID: &str = "spiffe://cluster.local/ns/default/sa/interop-server";
const CLIENT_ID: &str = "spiffe://cluster.local/ns/default/sa/interop-client";
const OTHER_ID: &str = "spiffe://cluster.local/ns/default/sa/other";
/// The provider instance istiod's contexts name.
const PROVIDER: &str = "default";
/// The hostname the server reports.
const HOSTNAME: &str = "secure-server";
const CLUSTER: &str = "secure-cluster";
/// Per client: 2 RPCs per tick, modest for 2 cores.
const QPS: u32 = 40;

/// One workload's certificate files.
struct Secret {
    _dir: tempfile::TempDir,
    files: KubeSecretDir,
}

impl Secret {
    fn new(ca: &TestCa, id: &str) -> Secret {
        let dir = tempfile::tempdir().unwrap();
        let files = KubeSecretDir::new(dir.path(), &ca.leaf(&[id]), &ca.pem());
        Secret { _dir: dir, files }
    }

    fn file_watcher(&self) -> FileWatcher {
        FileWatcher {
            certificate_file: Some(self.files.path(CERT)),
            private_key_file: Some(self.files.path(KEY)),
            ca_certificate_file: Some(self.files.path(CA)),
            refresh_interval: Duration::from_secs(1),
        }
    }
}

fn bootstrap(ads: &TestAdsServer, node: &str, secret: &Secret) -> Bootstrap {
    Bootstrap::builder()
        .xds_server(ads.local_addr().to_string())
        .node_id(node)
        .server_listener_resource_name_template(TEMPLATE)
        .certificate_provider(PROVIDER, secret.file_watcher())
        .build()
        .unwrap()
}

/// The `xds-interop-server` child process, killed when dropped.
struct ServerProcess(Child);

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("0.0.0.0:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// istiod's `inbound-mtls` DownstreamTlsContext (client certificates
/// required).
fn downstream_mtls() -> core::TransportSocket {
    let instance = |cert: &str| tls::CertificateProviderPluginInstance {
        instance_name: PROVIDER.into(),
        certificate_name: cert.into(),
    };
    let ctx = tls::DownstreamTlsContext {
        common_tls_context: Some(tls::CommonTlsContext {
            tls_certificate_provider_instance: Some(instance("default")),
            validation_context_type: Some(
                tls::common_tls_context::ValidationContextType::CombinedValidationContext(
                    tls::common_tls_context::CombinedCertificateValidationContext {
                        default_validation_context: Some(tls::CertificateValidationContext {
                            ca_certificate_provider_instance: Some(instance("ROOTCA")),
                            ..Default::default()
                        }),
                        ..Default::default()
                    },
                ),
            ),
            ..Default::default()
        }),
        require_client_certificate: Some(BoolValue { value: true }),
        ..Default::default()
    };
    core::TransportSocket {
        name: "envoy.transport_sockets.tls".into(),
        config_type: Some(core::transport_socket::ConfigType::TypedConfig(any(&ctx))),
    }
}

/// The interop server, its control plane and its certificates.
struct Secure {
    ads: TestAdsServer,
    ca: TestCa,
    client_secret: Secret,
    _server_secret: Secret,
    _server: ServerProcess,
    listening: SocketAddr,
}

impl Secure {
    async fn start() -> Secure {
        let ads = TestAdsServer::start().await;
        let ca = TestCa::new("mesh-root");
        let server_secret = Secret::new(&ca, SERVER_ID);
        let client_secret = Secret::new(&ca, CLIENT_ID);
        let (port, maintenance) = (free_port(), free_port());
        let child = Command::new(env!("CARGO_BIN_EXE_xds-interop-server"))
            .args([
                format!("--port={port}"),
                format!("--maintenance_port={maintenance}"),
                "--secure_mode=true".into(),
                format!("--host_name_override={HOSTNAME}"),
            ])
            .env("RUST_LOG", "error")
            .env_remove("GRPC_XDS_BOOTSTRAP")
            .env(
                "GRPC_XDS_BOOTSTRAP_CONFIG",
                bootstrap(&ads, "interop-server", &server_secret)
                    .to_json()
                    .to_string(),
            )
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn xds-interop-server");
        let s = Secure {
            ads,
            ca,
            client_secret,
            _server_secret: server_secret,
            _server: ServerProcess(child),
            listening: format!("0.0.0.0:{port}").parse().unwrap(),
        };
        s.ads.set_resources(
            ResourceType::RouteConfiguration.type_url(),
            vec![any(&route_config(vec![route(
                match_all(),
                to_cluster(CLUSTER),
            )]))],
        );
        let backend: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        s.ads.set_resources(
            ResourceType::ClusterLoadAssignment.type_url(),
            vec![any(&cla(CLUSTER, &[backend]))],
        );
        s
    }

    /// The server's Listener (as control planes name it, for the wildcard
    /// address): one chain, mTLS or plaintext, with `rbac` filters before
    /// the router and istiod's inbound routes.
    fn listener(&self, mtls: bool, rbac: &[(&str, rbac_filter::Rbac)]) {
        let name = TEMPLATE.replace("%s", &self.listening.to_string());
        let mut l = server_listener(&name, self.listening, None);
        let mut http_filters: Vec<_> = rbac.iter().map(|(n, c)| http_filter(n, c)).collect();
        http_filters.push(http_filter("envoy.filters.http.router", &Router::default()));
        let manager = hcm::HttpConnectionManager {
            stat_prefix: "inbound".into(),
            route_specifier: Some(hcm::http_connection_manager::RouteSpecifier::RouteConfig(
                inbound_routes(),
            )),
            http_filters,
            ..Default::default()
        };
        let chain = &mut l.filter_chains[0];
        chain.filters[0].config_type =
            Some(listener::filter::ConfigType::TypedConfig(any(&manager)));
        if mtls {
            chain.name = "inbound-mtls".into();
            chain.transport_socket = Some(downstream_mtls());
        }
        self.ads.set_resources(
            ResourceType::Listener.type_url(),
            vec![any(&client_listener()), any(&l)],
        );
    }

    /// The client cluster: ISTIO_MUTUAL expecting `san`, or plaintext.
    fn cluster(&self, san: Option<&str>) {
        let plain = eds_cluster(CLUSTER);
        let c = match san {
            Some(san) => with_istio_mutual(plain, PROVIDER, san),
            None => plain,
        };
        self.ads
            .set_resources(ResourceType::Cluster.type_url(), vec![any(&c)]);
    }

    /// An interop client sending both RPCs, with xDS credentials
    /// (`secure`) or insecure ones, identified by `secret` (the client's by
    /// default).
    async fn client(
        &self,
        secure: bool,
        secret: Option<&Secret>,
        metadata: &[RpcMetadata],
    ) -> Client {
        let b = bootstrap(
            &self.ads,
            "interop-client",
            secret.unwrap_or(&self.client_secret),
        );
        Client::start_with(&b, |c| {
            c.qps = QPS;
            c.secure_mode = secure;
            c.rpc.types = vec![RpcType::UnaryCall, RpcType::EmptyCall];
            c.rpc.metadata = metadata.to_vec();
            c.rpc.timeout = Duration::from_secs(5);
        })
        .await
    }
}

/// The results of both methods over a fresh window of traffic.
async fn window(client: &Client) -> (MethodStats, MethodStats) {
    let before = client.accumulated().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = client.accumulated().await;
    let d = |rpc| delta(&method_stats(&after, rpc), &method_stats(&before, rpc));
    (d(RpcType::UnaryCall), d(RpcType::EmptyCall))
}

/// Some RPCs completed in `m`, all with `code`.
fn all(m: &MethodStats, code: Code) -> bool {
    let n = count(m, code);
    n > 0 && completed(m) == n
}

/// A connection the server's TLS refused to a plaintext client: the TLS
/// alert breaks the HTTP/2 connection, which gRPC reports as UNAVAILABLE.
const REFUSED: Code = Code::Unavailable;

/// Polls until, over one window, every UnaryCall of `client` ended with
/// `unary` and every EmptyCall with `empty`.
async fn until(client: &Client, what: &str, unary: Code, empty: Code) {
    converge(
        what,
        || window(client),
        |(u, e)| all(u, unary) && all(e, empty),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mtls_between_the_interop_apps_and_a_wrong_san_refused() {
    let mesh = Secure::start().await;
    mesh.listener(true, &[]);
    mesh.cluster(Some(SERVER_ID));
    let client = mesh.client(true, None, &[]).await;
    until(&client, "mTLS", Code::Ok, Code::Ok).await;
    let stats = client.stats(20, 10).await;
    assert_eq!(
        stats.rpcs_by_peer.get(HOSTNAME).copied(),
        Some(20),
        "{stats:?}"
    );
    // An insecure client cannot talk to a server requiring mTLS.
    let insecure = mesh.client(false, None, &[]).await;
    until(
        &insecure,
        "plaintext refused by the mTLS chain",
        REFUSED,
        REFUSED,
    )
    .await;
    // The server's certificate does not carry the SAN the cluster now
    // expects: every new handshake is refused.
    mesh.cluster(Some(OTHER_ID));
    until(
        &client,
        "wrong SAN refused",
        Code::Unavailable,
        Code::Unavailable,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plaintext_fallback_and_insecure_credentials() {
    let mesh = Secure::start().await;
    mesh.listener(false, &[]);
    mesh.cluster(None);
    // No TLS context on either side: xDS credentials fall back to
    // plaintext.
    let secure = mesh.client(true, None, &[]).await;
    let insecure = mesh.client(false, None, &[]).await;
    until(&secure, "plaintext fallback", Code::Ok, Code::Ok).await;
    until(&insecure, "insecure client", Code::Ok, Code::Ok).await;
    // The cluster now asks for mTLS, but the server is plaintext: xDS
    // credentials try TLS and fail; insecure credentials ignore the context.
    mesh.cluster(Some(SERVER_ID));
    until(
        &secure,
        "TLS to a plaintext server fails",
        Code::Unavailable,
        Code::Unavailable,
    )
    .await;
    until(
        &insecure,
        "insecure credentials ignore TLS contexts",
        Code::Ok,
        Code::Ok,
    )
    .await;
}

// ------------------------------------------------------------------ authz

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

fn any_permission() -> rbac::Permission {
    rbac::Permission {
        rule: Some(rbac::permission::Rule::Any(true)),
    }
}

fn path(method: &str) -> rbac::Permission {
    rbac::Permission {
        rule: Some(rbac::permission::Rule::UrlPath(matcher::PathMatcher {
            rule: Some(matcher::path_matcher::Rule::Path(exact(&format!(
                "/grpc.testing.TestService/{method}"
            )))),
        })),
    }
}

fn header(name: &str, value: &str) -> rbac::Permission {
    rbac::Permission {
        rule: Some(rbac::permission::Rule::Header(route_wire::HeaderMatcher {
            name: name.into(),
            header_match_specifier: Some(
                route_wire::header_matcher::HeaderMatchSpecifier::StringMatch(exact(value)),
            ),
            ..Default::default()
        })),
    }
}

fn principal(id: &str) -> rbac::Principal {
    rbac::Principal {
        identifier: Some(rbac::principal::Identifier::Authenticated(
            rbac::principal::Authenticated {
                principal_name: Some(exact(id)),
            },
        )),
    }
}

/// One RBAC filter with one policy, named as istiod names its filters.
fn filter(
    action: rbac::rbac::Action,
    permission: rbac::Permission,
    principal: rbac::Principal,
) -> (&'static str, rbac_filter::Rbac) {
    let name = match action {
        rbac::rbac::Action::Deny => DENY_FILTER,
        _ => ALLOW_FILTER,
    };
    let policy = rbac::Policy {
        permissions: vec![permission],
        principals: vec![principal],
        ..Default::default()
    };
    let rbac = rbac_filter::Rbac {
        rules: Some(rbac::Rbac {
            action: action as i32,
            policies: [("ns[default]-policy[interop]-rule[0]".to_owned(), policy)].into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    (name, rbac)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authz_by_path_header_and_principal() {
    use rbac::rbac::Action::{Allow, Deny};
    use tonic::Code::{Ok as OK, PermissionDenied as DENIED};

    let mesh = Secure::start().await;
    mesh.listener(true, &[]);
    mesh.cluster(Some(SERVER_ID));
    // UnaryCall carries `x-user: mallory`, EmptyCall `x-user: alice`.
    let metadata = [
        RpcMetadata::new(RpcType::UnaryCall, "x-user", "mallory").unwrap(),
        RpcMetadata::new(RpcType::EmptyCall, "x-user", "alice").unwrap(),
    ];
    let client = mesh.client(true, None, &metadata).await;
    // Another workload of the same CA, for the principal cases.
    let other_secret = Secret::new(&mesh.ca, OTHER_ID);
    let other = mesh.client(true, Some(&other_secret), &metadata).await;
    until(&client, "no policy", OK, OK).await;

    let mtls_cases = [
        (
            "DENY by path",
            filter(Deny, path("EmptyCall"), any_principal()),
            OK,
            DENIED,
        ),
        (
            "ALLOW by path",
            filter(Allow, path("EmptyCall"), any_principal()),
            DENIED,
            OK,
        ),
        (
            "DENY by header",
            filter(Deny, header("x-user", "mallory"), any_principal()),
            DENIED,
            OK,
        ),
        (
            "ALLOW by header",
            filter(Allow, header("x-user", "mallory"), any_principal()),
            OK,
            DENIED,
        ),
    ];
    for (what, rbac, unary, empty) in mtls_cases {
        mesh.listener(true, &[rbac]);
        until(&client, what, unary, empty).await;
    }

    // By principal: the client's SPIFFE ID, over mTLS.
    mesh.listener(
        true,
        &[filter(Deny, any_permission(), principal(CLIENT_ID))],
    );
    until(&client, "DENY by principal", DENIED, DENIED).await;
    until(&other, "DENY by principal: another principal", OK, OK).await;
    mesh.listener(
        true,
        &[filter(Allow, any_permission(), principal(CLIENT_ID))],
    );
    until(&client, "ALLOW by principal", OK, OK).await;
    until(
        &other,
        "ALLOW by principal: another principal",
        DENIED,
        DENIED,
    )
    .await;

    // Over plaintext there is no principal: a DENY rule naming one does
    // not match, an ALLOW rule naming one does not allow.
    drop(other);
    let plaintext = mesh.client(false, None, &metadata).await;
    mesh.listener(
        false,
        &[filter(Deny, any_permission(), principal(CLIENT_ID))],
    );
    until(
        &plaintext,
        "plaintext: DENY by principal does not match",
        OK,
        OK,
    )
    .await;
    mesh.listener(
        false,
        &[filter(Allow, any_permission(), principal(CLIENT_ID))],
    );
    until(
        &plaintext,
        "plaintext: ALLOW by principal does not allow",
        DENIED,
        DENIED,
    )
    .await;
}
