//! mTLS and RBAC end to end (#6): an xDS-enabled server whose Listener has
//! an `inbound-mtls` chain (DownstreamTlsContext requiring client
//! certificates) and a `mesh_tonic::Channel` whose cluster has istiod's
//! ISTIO_MUTUAL UpstreamTlsContext, both configured by one TestAdsServer,
//! with `file_watcher` certificate providers over rcgen-made files laid out
//! as Kubernetes secret volumes.
//!
//! Covered: mTLS success (the service sees the client's SPIFFE ID), a wrong
//! SPIFFE SAN, a server from another CA, a client without a certificate,
//! plaintext fallback, a CA rotation under continuous traffic that loses no
//! RPC, and RBAC by path, header and principal (principals only over mTLS,
//! denials that name no policy).

#[path = "../../../mesh-tower/src/tls/testing.rs"]
mod certs;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use certs::{CA, CERT, KEY, KubeSecretDir, Leaf, TestCa};
use envoy_types::pb::envoy::config::cluster::v3 as cluster;
use envoy_types::pb::envoy::config::core::v3 as core;
use envoy_types::pb::envoy::config::listener::v3 as listener;
use envoy_types::pb::envoy::config::rbac::v3 as rbac;
use envoy_types::pb::envoy::config::route::v3 as route;
use envoy_types::pb::envoy::extensions::filters::http::rbac::v3 as rbac_filter;
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3 as hcm;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3 as tls;
use envoy_types::pb::envoy::r#type::matcher::v3 as matcher;
use envoy_types::pb::google::protobuf::BoolValue;
use mesh_core::bootstrap::{Bootstrap, FileWatcher};
use mesh_core::resource::ResourceType;
use mesh_core::testing::ads_server::TestAdsServer;
use mesh_core::testing::proto::grpc_testing::test_service_client::TestServiceClient;
use mesh_core::testing::proto::grpc_testing::test_service_server::TestServiceServer;
use mesh_core::testing::proto::grpc_testing::{Empty, SimpleRequest};
use mesh_core::testing::resources::{
    any, client_listener, eds_cluster, endpoints, http_filter, inbound_routes, prefix_route,
    route_config, socket_address, type_url, with_istio_mutual,
};
use mesh_core::testing::test_service::TestServiceBackend;
use mesh_tonic::Channel;
use mesh_tonic::server::{ServingMode, XdsServer};
use mesh_tower::discovery::DiscoveryOptions;
use mesh_tower::tls::{PeerIdentity, ProviderRegistry};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tonic::{Code, Status};

use crate::server::{CONVERGE, TEMPLATE};

const TARGET: &str = "echo.test:7070";
const SERVER_ID: &str = "spiffe://cluster.local/ns/default/sa/echo";
const CLIENT_ID: &str = "spiffe://cluster.local/ns/default/sa/client";
const OTHER_ID: &str = "spiffe://cluster.local/ns/default/sa/other";
/// The name of the provider instance every TLS context here uses (istiod's).
const PROVIDER: &str = "default";

/// One workload's certificate files (a Kubernetes-style secret volume).
struct Secret {
    _dir: tempfile::TempDir,
    files: KubeSecretDir,
}

impl Secret {
    fn new(leaf: &Leaf, ca_pem: &str) -> Secret {
        let dir = tempfile::tempdir().unwrap();
        let files = KubeSecretDir::new(dir.path(), leaf, ca_pem);
        Secret { _dir: dir, files }
    }

    fn file_watcher(&self) -> FileWatcher {
        FileWatcher {
            certificate_file: Some(self.files.path(CERT)),
            private_key_file: Some(self.files.path(KEY)),
            ca_certificate_file: Some(self.files.path(CA)),
            refresh_interval: Duration::from_millis(100),
        }
    }
}

fn bootstrap(ads: &TestAdsServer, node: &str, secret: Option<&Secret>) -> Bootstrap {
    let mut b = Bootstrap::builder()
        .xds_server(ads.local_addr().to_string())
        .node_id(node)
        .server_listener_resource_name_template(TEMPLATE);
    if let Some(s) = secret {
        b = b.certificate_provider(PROVIDER, s.file_watcher());
    }
    b.build().unwrap()
}

fn instance(cert: &str) -> tls::CertificateProviderPluginInstance {
    tls::CertificateProviderPluginInstance {
        instance_name: PROVIDER.into(),
        certificate_name: cert.into(),
    }
}

/// istiod's `inbound-mtls` DownstreamTlsContext.
fn downstream_mtls() -> core::TransportSocket {
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

/// The server's Listener: one chain (mTLS or plaintext) with these RBAC
/// filters before the router and istiod's inbound routes.
fn server_listener(
    name: &str,
    addr: SocketAddr,
    mtls: bool,
    rbac: &[(&str, rbac_filter::Rbac)],
) -> listener::Listener {
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
    listener::Listener {
        name: name.into(),
        address: Some(socket_address(addr)),
        filter_chains: vec![listener::FilterChain {
            name: if mtls {
                "inbound-mtls"
            } else {
                "inbound-plaintext"
            }
            .into(),
            filters: vec![listener::Filter {
                name: "envoy.filters.network.http_connection_manager".into(),
                config_type: Some(listener::filter::ConfigType::TypedConfig(any(&manager))),
            }],
            transport_socket: mtls.then(downstream_mtls),
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// The client's TLS for the `echo` cluster.
#[derive(Clone, Copy)]
enum ClientTls<'a> {
    /// No transport socket: plaintext.
    Plaintext,
    /// istiod's ISTIO_MUTUAL, expecting this SAN.
    Mutual(&'a str),
    /// ISTIO_MUTUAL without the client certificate.
    NoCertificate(&'a str),
}

fn echo_cluster(client_tls: ClientTls<'_>) -> cluster::Cluster {
    let plain = eds_cluster("echo", "");
    match client_tls {
        ClientTls::Plaintext => plain,
        ClientTls::Mutual(san) => with_istio_mutual(plain, PROVIDER, san),
        ClientTls::NoCertificate(san) => {
            let mut c = with_istio_mutual(plain, PROVIDER, san);
            let socket = c.transport_socket.as_mut().unwrap();
            let Some(core::transport_socket::ConfigType::TypedConfig(a)) = &mut socket.config_type
            else {
                unreachable!()
            };
            let mut ctx: tls::UpstreamTlsContext = prost::Message::decode(&a.value[..]).unwrap();
            let common = ctx.common_tls_context.as_mut().unwrap();
            common.tls_certificate_provider_instance = None;
            #[allow(deprecated)]
            {
                common.tls_certificate_certificate_provider_instance = None;
            }
            *a = any(&ctx);
            c
        }
    }
}

/// What the service saw of each request's peer: the SPIFFE ID and the leaf
/// certificate, or `None` on a connection without a client certificate.
type Seen = Arc<Mutex<Vec<Option<(Option<String>, Vec<u8>)>>>>;

/// A client identity: its bootstrap and certificate providers.
struct Client {
    bootstrap: Bootstrap,
    registry: Arc<ProviderRegistry>,
}

impl Client {
    fn new(ads: &TestAdsServer, node: &str, secret: Option<&Secret>) -> Client {
        let bootstrap = bootstrap(ads, node, secret);
        let registry = Arc::new(ProviderRegistry::from_bootstrap(&bootstrap));
        Client {
            bootstrap,
            registry,
        }
    }

    /// A new channel (its own connections, so its own handshakes).
    async fn connect(&self) -> TestServiceClient<Channel> {
        let channel = Channel::builder(format!("xds:///{TARGET}"))
            .bootstrap(self.bootstrap.clone())
            .config_timeout(CONVERGE)
            .discovery_options(DiscoveryOptions {
                tls_registry: Some(self.registry.clone()),
                ..Default::default()
            })
            .connect()
            .await
            .unwrap();
        TestServiceClient::new(channel)
    }
}

/// An XdsServer and the ADS server configuring it and the clients.
struct Mesh {
    ads: TestAdsServer,
    seen: Seen,
    stop: Option<oneshot::Sender<()>>,
}

struct Setup<'a> {
    server_secret: Option<&'a Secret>,
    /// The server's provider registry; `None`: the one XdsServer builds
    /// from its bootstrap.
    server_registry: Option<Arc<ProviderRegistry>>,
    mtls: bool,
    rbac: &'a [(&'a str, rbac_filter::Rbac)],
    client_tls: ClientTls<'a>,
}

impl Mesh {
    async fn start(setup: Setup<'_>) -> Mesh {
        let ads = TestAdsServer::start().await;
        let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = tcp.local_addr().unwrap();
        let name = TEMPLATE.replace("%s", &addr.to_string());
        let rc = "echo-routes";
        ads.set_resources(
            type_url(ResourceType::Listener),
            vec![
                any(&server_listener(&name, addr, setup.mtls, setup.rbac)),
                any(&client_listener(TARGET, rc)),
            ],
        );
        ads.set_resources(
            type_url(ResourceType::RouteConfiguration),
            vec![any(&route_config(
                rc,
                &[TARGET],
                vec![prefix_route("", "echo")],
            ))],
        );
        ads.set_resources(
            type_url(ResourceType::Cluster),
            vec![any(&echo_cluster(setup.client_tls))],
        );
        ads.set_resources(
            type_url(ResourceType::ClusterLoadAssignment),
            vec![any(&endpoints("echo", &[addr]))],
        );

        let seen = Seen::default();
        let record = seen.clone();
        let routes = tonic::service::Routes::new(TestServiceServer::new(TestServiceBackend::new(
            "secure-server",
        )));
        let service = tower::ServiceBuilder::new()
            .map_request(move |req: http::Request<hyper::body::Incoming>| {
                let peer = req
                    .extensions()
                    .get::<PeerIdentity>()
                    .map(|p| (p.spiffe_id().map(str::to_owned), p.chain_der()[0].to_vec()));
                record.lock().unwrap().push(peer);
                req
            })
            .service(routes);
        let (serving_tx, serving_rx) = tokio::sync::watch::channel(false);
        let mut server = XdsServer::builder()
            .bootstrap(bootstrap(&ads, "secure-server", setup.server_secret))
            .drain_grace(Duration::from_secs(1))
            .on_serving_mode_change(move |mode, _| {
                serving_tx.send_replace(mode == ServingMode::Serving);
            });
        if let Some(r) = setup.server_registry {
            server = server.tls_registry(r);
        }
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(server.serve_with_shutdown(tcp, service, async {
            let _ = stopped.await;
        }));
        let mut serving = serving_rx;
        tokio::time::timeout(CONVERGE, serving.wait_for(|s| *s))
            .await
            .expect("the server serves")
            .unwrap();
        Mesh {
            ads,
            seen,
            stop: Some(stop),
        }
    }

    fn seen(&self) -> Vec<Option<(Option<String>, Vec<u8>)>> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for Mesh {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

fn workload(ca: &TestCa, id: &str) -> (Leaf, Secret) {
    let leaf = ca.leaf(&[id]);
    let secret = Secret::new(&leaf, &ca.pem());
    (leaf, secret)
}

async fn unary(client: &mut TestServiceClient<Channel>) -> Result<(), Status> {
    client.unary_call(SimpleRequest::default()).await.map(drop)
}

/// Calls until the result is an error (a new channel may race its first
/// connect attempt), returning it; panics on success.
async fn refused(client: &mut TestServiceClient<Channel>) -> Status {
    match unary(client).await {
        Ok(()) => panic!("the RPC succeeded"),
        Err(s) => s,
    }
}

#[tokio::test]
async fn mtls_succeeds_and_the_service_sees_the_client_spiffe_id() {
    let ca = TestCa::new("mesh-root");
    let (_, server_secret) = workload(&ca, SERVER_ID);
    let (client_leaf, client_secret) = workload(&ca, CLIENT_ID);
    let mesh = Mesh::start(Setup {
        server_secret: Some(&server_secret),
        server_registry: None,
        mtls: true,
        rbac: &[],
        client_tls: ClientTls::Mutual(SERVER_ID),
    })
    .await;
    let client = Client::new(&mesh.ads, "client", Some(&client_secret));
    let mut rpc = client.connect().await;
    unary(&mut rpc).await.unwrap();
    unary(&mut rpc).await.unwrap();
    let seen = mesh.seen();
    assert_eq!(seen.len(), 2);
    for peer in seen {
        let (spiffe, leaf) = peer.expect("a PeerIdentity in the request extensions");
        assert_eq!(spiffe.as_deref(), Some(CLIENT_ID));
        assert_eq!(leaf, client_leaf.der.to_vec());
    }
}

#[tokio::test]
async fn a_wrong_spiffe_san_is_refused_naming_the_expected_san() {
    let ca = TestCa::new("mesh-root");
    let (_, server_secret) = workload(&ca, SERVER_ID);
    let (_, client_secret) = workload(&ca, CLIENT_ID);
    const EXPECTED: &str = "spiffe://cluster.local/ns/default/sa/not-echo";
    let mesh = Mesh::start(Setup {
        server_secret: Some(&server_secret),
        server_registry: None,
        mtls: true,
        rbac: &[],
        client_tls: ClientTls::Mutual(EXPECTED),
    })
    .await;
    let client = Client::new(&mesh.ads, "client", Some(&client_secret));
    let status = refused(&mut client.connect().await).await;
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(status.message().contains(EXPECTED), "{status:?}");
    assert!(mesh.seen().is_empty());
}

#[tokio::test]
async fn a_server_from_another_ca_is_refused() {
    let ca = TestCa::new("mesh-root");
    let rogue = TestCa::new("rogue-root");
    let (_, server_secret) = workload(&rogue, SERVER_ID);
    let (_, client_secret) = workload(&ca, CLIENT_ID);
    let mesh = Mesh::start(Setup {
        server_secret: Some(&server_secret),
        server_registry: None,
        mtls: true,
        rbac: &[],
        client_tls: ClientTls::Mutual(SERVER_ID),
    })
    .await;
    let client = Client::new(&mesh.ads, "client", Some(&client_secret));
    let status = refused(&mut client.connect().await).await;
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(status.message().contains("TLS handshake"), "{status:?}");
    assert!(mesh.seen().is_empty());
}

#[tokio::test]
async fn a_client_without_a_certificate_is_refused() {
    let ca = TestCa::new("mesh-root");
    let (_, server_secret) = workload(&ca, SERVER_ID);
    let (_, client_secret) = workload(&ca, CLIENT_ID);
    let mesh = Mesh::start(Setup {
        server_secret: Some(&server_secret),
        server_registry: None,
        mtls: true,
        rbac: &[],
        client_tls: ClientTls::NoCertificate(SERVER_ID),
    })
    .await;
    let client = Client::new(&mesh.ads, "client", Some(&client_secret));
    let status = refused(&mut client.connect().await).await;
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(mesh.seen().is_empty());
}

#[tokio::test]
async fn plaintext_without_tls_contexts() {
    let mesh = Mesh::start(Setup {
        server_secret: None,
        server_registry: None,
        mtls: false,
        rbac: &[],
        client_tls: ClientTls::Plaintext,
    })
    .await;
    // No certificate providers at all on either side.
    let client = Client::new(&mesh.ads, "client", None);
    unary(&mut client.connect().await).await.unwrap();
    assert_eq!(mesh.seen(), vec![None]);
}

/// Polls `cond` until it holds (or panics naming `what` after [`CONVERGE`]).
async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + CONVERGE;
    while !cond() {
        assert!(tokio::time::Instant::now() < deadline, "never {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The provider `PROVIDER`'s current leaf (DER) and number of CAs.
fn material(registry: &ProviderRegistry) -> (Vec<u8>, usize) {
    let current = registry.get(PROVIDER).unwrap().current();
    let leaf = current.identity().expect("an identity").cert[0].to_vec();
    let cas = current.roots().map_or(0, |r| r.len());
    (leaf, cas)
}

/// Rotates both workloads from one CA to another, as a mesh does: trust
/// both roots, move both leaves to the new root, drop the old root. RPCs
/// run throughout on an open channel and on a fresh channel per call (a
/// new handshake each); none may fail. At the end only the new material
/// can complete a handshake, and the server sees the new client leaf.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ca_rotation_under_continuous_traffic_loses_no_rpc() {
    let old_ca = TestCa::new("root-1");
    let new_ca = TestCa::new("root-2");
    let (server_old, mut server_secret) = workload(&old_ca, SERVER_ID);
    let (client_old, mut client_secret) = workload(&old_ca, CLIENT_ID);
    let server_registry = Arc::new(ProviderRegistry::new(
        [(PROVIDER.to_owned(), server_secret.file_watcher().into())].into(),
    ));
    let mesh = Mesh::start(Setup {
        server_secret: Some(&server_secret),
        server_registry: Some(server_registry.clone()),
        mtls: true,
        rbac: &[],
        client_tls: ClientTls::Mutual(SERVER_ID),
    })
    .await;
    let client = Arc::new(Client::new(&mesh.ads, "client", Some(&client_secret)));

    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut tasks = Vec::new();
    let open = client.connect().await;
    for fresh in [false, false, true] {
        let (stop, ok, failures, client) =
            (stop.clone(), ok.clone(), failures.clone(), client.clone());
        let mut open = open.clone();
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let result = if fresh {
                    unary(&mut client.connect().await).await
                } else {
                    unary(&mut open).await
                };
                match result {
                    Ok(()) => ok.fetch_add(1, Ordering::Relaxed),
                    Err(s) => {
                        failures
                            .lock()
                            .unwrap()
                            .push(format!("fresh={fresh}: {s:?}"));
                        0
                    }
                };
            }
        }));
    }
    let progress = |n: u64| {
        let start = ok.load(Ordering::Relaxed);
        let ok = ok.clone();
        move || ok.load(Ordering::Relaxed) >= start + n
    };
    wait_until("traffic flows", progress(20)).await;

    // 1. Trust both roots.
    let bundle = format!("{}{}", old_ca.pem(), new_ca.pem());
    server_secret.files.swap(&server_old, &bundle);
    client_secret.files.swap(&client_old, &bundle);
    wait_until("both sides trust both roots", || {
        material(&server_registry).1 == 2 && material(&client.registry).1 == 2
    })
    .await;
    wait_until("traffic flows", progress(20)).await;

    // 2. New leaves from the new root.
    let server_new = new_ca.leaf(&[SERVER_ID]);
    let client_new = new_ca.leaf(&[CLIENT_ID]);
    server_secret.files.swap(&server_new, &bundle);
    client_secret.files.swap(&client_new, &bundle);
    wait_until("both sides present their new leaf", || {
        material(&server_registry).0 == server_new.der.to_vec()
            && material(&client.registry).0 == client_new.der.to_vec()
    })
    .await;
    wait_until("traffic flows", progress(20)).await;

    // 3. Drop the old root: old material can no longer handshake.
    server_secret.files.swap(&server_new, &new_ca.pem());
    client_secret.files.swap(&client_new, &new_ca.pem());
    wait_until("both sides trust only the new root", || {
        material(&server_registry).1 == 1 && material(&client.registry).1 == 1
    })
    .await;
    wait_until("traffic flows", progress(20)).await;

    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    let failures = failures.lock().unwrap().clone();
    assert!(
        failures.is_empty(),
        "RPCs failed during rotation: {failures:?}"
    );

    // A new connection now runs on the new material only.
    mesh.seen.lock().unwrap().clear();
    unary(&mut client.connect().await).await.unwrap();
    let seen = mesh.seen();
    let (_, leaf) = seen[0].clone().unwrap();
    assert_eq!(leaf, client_new.der.to_vec());
}

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
