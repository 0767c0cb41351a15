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

use crate::certs;

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
use mesh_tower::discovery::{DiscoveryOptions, shared_tls_registry};
use mesh_tower::tls::{PeerIdentity, ProviderRegistry};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tonic::{Code, Status};

use crate::server::{CONVERGE, TEMPLATE};

mod authz;
mod grpcio;
mod mesh_ca;
mod mtls;
mod rotation;

const TARGET: &str = "echo.test:7070";
pub(crate) const SERVER_ID: &str = "spiffe://cluster.local/ns/default/sa/echo";
pub(crate) const CLIENT_ID: &str = "spiffe://cluster.local/ns/default/sa/client";
const OTHER_ID: &str = "spiffe://cluster.local/ns/default/sa/other";
/// The name of the provider instance every TLS context here uses (istiod's).
pub(crate) const PROVIDER: &str = "default";

/// One workload's certificate files (a Kubernetes-style secret volume).
pub(crate) struct Secret {
    _dir: tempfile::TempDir,
    files: KubeSecretDir,
}

impl Secret {
    pub(crate) fn new(leaf: &Leaf, ca_pem: &str) -> Secret {
        let dir = tempfile::tempdir().unwrap();
        let files = KubeSecretDir::new(dir.path(), leaf, ca_pem);
        Secret { _dir: dir, files }
    }

    pub(crate) fn file_watcher(&self) -> FileWatcher {
        FileWatcher {
            certificate_file: Some(self.files.path(CERT)),
            private_key_file: Some(self.files.path(KEY)),
            ca_certificate_file: Some(self.files.path(CA)),
            refresh_interval: Duration::from_millis(100),
        }
    }
}

pub(crate) fn bootstrap(ads: &TestAdsServer, node: &str, secret: Option<&Secret>) -> Bootstrap {
    let mut b = Bootstrap::builder()
        .xds_server(ads.local_addr().to_string())
        .node_id(node)
        .server_listener_resource_name_template(TEMPLATE);
    if let Some(s) = secret {
        b = b.certificate_provider(PROVIDER, s.file_watcher());
    }
    b.build().unwrap()
}

pub(crate) fn instance(cert: &str) -> tls::CertificateProviderPluginInstance {
    tls::CertificateProviderPluginInstance {
        instance_name: PROVIDER.into(),
        certificate_name: cert.into(),
    }
}

/// istiod's `inbound-mtls` DownstreamTlsContext.
pub(crate) fn downstream_mtls() -> core::TransportSocket {
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
        // As a process would: one registry per bootstrap, shared by channels.
        let registry = shared_tls_registry(&bootstrap);
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
    /// The server's address.
    addr: SocketAddr,
    seen: Seen,
    stop: Option<oneshot::Sender<()>>,
}

struct Setup<'a> {
    server_secret: Option<&'a Secret>,
    /// The server's provider registry; `None`: the one XdsServer builds
    /// from its bootstrap.
    server_registry: Option<Arc<ProviderRegistry>>,
    /// The server's TLS handshake timeout, if not the default.
    handshake_timeout: Option<Duration>,
    mtls: bool,
    rbac: &'a [(&'a str, rbac_filter::Rbac)],
    client_tls: ClientTls<'a>,
}

impl Mesh {
    async fn start(setup: Setup<'_>) -> Mesh {
        let secret = setup.server_secret;
        Self::start_with_bootstrap(setup, |ads| bootstrap(ads, "secure-server", secret)).await
    }

    /// Like [`Mesh::start`], with the server's bootstrap from
    /// `server_bootstrap` (for providers other than a [`Secret`]'s).
    async fn start_with_bootstrap(
        setup: Setup<'_>,
        server_bootstrap: impl FnOnce(&TestAdsServer) -> Bootstrap,
    ) -> Mesh {
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
            .bootstrap(server_bootstrap(&ads))
            .drain_grace(Duration::from_secs(1))
            .on_serving_mode_change(move |mode, _| {
                serving_tx.send_replace(mode == ServingMode::Serving);
            });
        if let Some(r) = setup.server_registry {
            server = server.tls_registry(r);
        }
        if let Some(t) = setup.handshake_timeout {
            server = server.tls_handshake_timeout(t);
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
            addr,
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
