//! TLS over loopback TCP: mTLS handshakes and their failures (another CA,
//! a wrong SPIFFE SAN, an expired certificate, no client certificate),
//! rotation of watched files under an open connection, and a gRPC call
//! through the endpoint connector to a TestService served over TLS.

#[path = "../../src/tls/testing.rs"]
mod certs;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use certs::{CA, CERT, KEY, KubeSecretDir, Leaf, TestCa, write_plain};
use mesh_core::bootstrap::{CertificateProviderConfig, FileWatcher};
use mesh_core::resource::endpoint::{Endpoint, HealthStatus};
use mesh_core::resource::matcher::StringMatcher;
use mesh_core::resource::tls::{
    CertProviderInstance, CertValidation, DownstreamTlsContext, UpstreamTlsContext,
};
use mesh_core::testing::proto::grpc_testing::SimpleRequest;
use mesh_core::testing::proto::grpc_testing::test_service_client::TestServiceClient;
use mesh_core::testing::proto::grpc_testing::test_service_server::TestServiceServer;
use mesh_core::testing::test_service::TestServiceBackend;
use mesh_tower::cluster::EndpointHandle;
use mesh_tower::endpoint::{ConnectBackoff, ConnectionSettings, Connector};
use mesh_tower::tls::client::client_config_from;
use mesh_tower::tls::server::server_config_from;
use mesh_tower::tls::{
    CertificateProvider, CertifiedMaterial, PeerIdentity, ProviderRegistry, TlsAcceptor,
    TlsConnector,
};
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

const ECHO: &str = "spiffe://cluster.local/ns/default/sa/echo";
const CLIENT: &str = "spiffe://cluster.local/ns/default/sa/client";

fn fixed(name: &str, leaf: Option<&Leaf>, ca: Option<&TestCa>) -> CertificateProvider {
    let ca_pem = ca.map(TestCa::pem);
    let material = CertifiedMaterial::from_pem(
        name,
        leaf.map(|l| l.chain_pem.as_bytes()),
        leaf.map(|l| l.key_pem.as_bytes()),
        ca_pem.as_deref().map(str::as_bytes),
    )
    .unwrap();
    CertificateProvider::fixed(name, material)
}

/// What the echo server saw of one handshake.
type Accepted = Result<Option<PeerIdentity>, String>;

/// A TLS echo server: reports every handshake, then echoes until EOF.
async fn echo_server(acceptor: TlsAcceptor) -> (SocketAddr, mpsc::UnboundedReceiver<Accepted>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let (acceptor, tx) = (acceptor.clone(), tx.clone());
            tokio::spawn(async move {
                match mesh_tower::tls::accept(&acceptor, tcp).await {
                    Ok((mut stream, peer)) => {
                        let _ = tx.send(Ok(peer));
                        let mut buf = [0u8; 1024];
                        while let Ok(n @ 1..) = stream.read(&mut buf).await {
                            if stream.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e.to_string()));
                    }
                }
            });
        }
    });
    (addr, rx)
}

/// Connects through the endpoint [`Connector`] and echoes one message; the
/// error text on failure (a handshake failure, or a server's rejection
/// that TLS 1.3 only reports at the first read).
async fn round_trip(connector: &TlsConnector, addr: SocketAddr) -> Result<(), String> {
    let mut io = connector.connect(addr).await.map_err(|e| e.to_string())?;
    echo(&mut io).await
}

async fn echo(io: &mut (impl AsyncRead + AsyncWrite + Unpin)) -> Result<(), String> {
    io.write_all(b"ping").await.map_err(|e| e.to_string())?;
    let mut buf = [0u8; 4];
    io.read_exact(&mut buf).await.map_err(|e| e.to_string())?;
    assert_eq!(&buf, b"ping");
    Ok(())
}

async fn next(rx: &mut mpsc::UnboundedReceiver<Accepted>) -> Accepted {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("a handshake")
        .unwrap()
}

/// A server with `server_leaf` requiring client certs from `ca`, and a
/// connector trusting `ca`, expecting `sans`, presenting `client_leaf`.
struct Pair {
    connector: TlsConnector,
    addr: SocketAddr,
    accepted: mpsc::UnboundedReceiver<Accepted>,
}

async fn pair(
    ca: &TestCa,
    server_leaf: &Leaf,
    client_leaf: Option<&Leaf>,
    sans: Vec<StringMatcher>,
    require_client_cert: bool,
) -> Pair {
    let server = server_config_from(
        fixed("server", Some(server_leaf), None),
        Some(fixed("server-ca", None, Some(ca))),
        require_client_cert,
    )
    .unwrap();
    let (addr, accepted) = echo_server(TlsAcceptor::new(server)).await;
    let client = client_config_from(
        fixed("ca", None, Some(ca)),
        client_leaf.map(|l| fixed("client", Some(l), None)),
        sans,
    )
    .unwrap();
    Pair {
        connector: TlsConnector::new(client, None),
        addr,
        accepted,
    }
}

#[tokio::test]
async fn mtls_succeeds_and_the_server_sees_the_client_spiffe_id() {
    let ca = TestCa::new("mesh root");
    let mut p = pair(
        &ca,
        &ca.leaf(&[ECHO]),
        Some(&ca.leaf(&[CLIENT, "client.default.svc"])),
        vec![StringMatcher::exact(ECHO)],
        true,
    )
    .await;
    round_trip(&p.connector, p.addr).await.unwrap();
    let peer = next(&mut p.accepted)
        .await
        .unwrap()
        .expect("a client identity");
    assert_eq!(peer.spiffe_id(), Some(CLIENT));
    assert_eq!(peer.principal(), CLIENT);
    assert_eq!(peer.uri_sans(), [CLIENT]);
    assert_eq!(peer.dns_sans(), ["client.default.svc"]);
    assert_eq!(peer.subject(), format!("CN={CLIENT}"));
    assert_eq!(peer.chain_der().len(), 1);
    assert!(peer.not_after() > std::time::SystemTime::now());
    assert!(peer.matches_principal(&StringMatcher::exact(CLIENT)));
    assert!(!peer.matches_principal(&StringMatcher::exact(ECHO)));
}

#[tokio::test]
async fn a_server_from_another_ca_is_refused() {
    let (ca, other) = (TestCa::new("mesh root"), TestCa::new("other root"));
    let p = pair(
        &ca,
        &other.leaf(&[ECHO]),
        Some(&ca.leaf(&[CLIENT])),
        vec![],
        true,
    )
    .await;
    let e = round_trip(&p.connector, p.addr).await.unwrap_err();
    assert!(e.contains("UnknownIssuer"), "{e}");
}

#[tokio::test]
async fn a_client_from_another_ca_is_refused() {
    let (ca, other) = (TestCa::new("mesh root"), TestCa::new("other root"));
    let mut p = pair(
        &ca,
        &ca.leaf(&[ECHO]),
        Some(&other.leaf(&[CLIENT])),
        vec![],
        true,
    )
    .await;
    assert!(round_trip(&p.connector, p.addr).await.is_err());
    let e = next(&mut p.accepted).await.unwrap_err();
    assert!(e.contains("UnknownIssuer"), "{e}");
}

#[tokio::test]
async fn a_wrong_spiffe_san_is_refused_naming_the_expected_san() {
    let ca = TestCa::new("mesh root");
    let p = pair(
        &ca,
        &ca.leaf(&["spiffe://cluster.local/ns/default/sa/other"]),
        Some(&ca.leaf(&[CLIENT])),
        vec![StringMatcher::exact(ECHO)],
        true,
    )
    .await;
    let e = round_trip(&p.connector, p.addr).await.unwrap_err();
    assert!(
        e.contains(
            "peer certificate SANs [spiffe://cluster.local/ns/default/sa/other] match none of \
             [exact spiffe://cluster.local/ns/default/sa/echo]"
        ),
        "{e}"
    );
    assert!(
        e.contains(&format!("TLS handshake with {} failed", p.addr)),
        "{e}"
    );
}

#[tokio::test]
async fn expired_certificates_are_refused_on_both_sides() {
    let ca = TestCa::new("mesh root");
    let p = pair(
        &ca,
        &ca.expired_leaf(&[ECHO]),
        Some(&ca.leaf(&[CLIENT])),
        vec![],
        true,
    )
    .await;
    let e = round_trip(&p.connector, p.addr).await.unwrap_err();
    assert!(e.contains("certificate expired"), "{e}");

    let mut p = pair(
        &ca,
        &ca.leaf(&[ECHO]),
        Some(&ca.expired_leaf(&[CLIENT])),
        vec![],
        true,
    )
    .await;
    assert!(round_trip(&p.connector, p.addr).await.is_err());
    let e = next(&mut p.accepted).await.unwrap_err();
    assert!(e.contains("certificate expired"), "{e}");
}

#[tokio::test]
async fn a_client_without_a_certificate_is_refused_when_one_is_required() {
    let ca = TestCa::new("mesh root");
    let mut p = pair(&ca, &ca.leaf(&[ECHO]), None, vec![], true).await;
    assert!(round_trip(&p.connector, p.addr).await.is_err());
    let e = next(&mut p.accepted).await.unwrap_err();
    assert!(e.contains("peer sent no certificates"), "{e}");

    // Optional: accepted, with no identity.
    let mut p = pair(&ca, &ca.leaf(&[ECHO]), None, vec![], false).await;
    round_trip(&p.connector, p.addr).await.unwrap();
    assert!(next(&mut p.accepted).await.unwrap().is_none());
}

fn file_watcher(dir: &Path) -> CertificateProviderConfig {
    CertificateProviderConfig::FileWatcher(FileWatcher {
        certificate_file: Some(dir.join(CERT)),
        private_key_file: Some(dir.join(KEY)),
        ca_certificate_file: Some(dir.join(CA)),
        refresh_interval: Duration::from_secs(600),
    })
}

fn instance(name: &str, cert: &str) -> CertProviderInstance {
    CertProviderInstance {
        instance_name: name.into(),
        certificate_name: cert.into(),
    }
}

/// The contexts istiod sends: the client expects the echo SPIFFE ID; the
/// server requires a client certificate and checks no SAN.
fn contexts(client: &str, server: &str) -> (UpstreamTlsContext, DownstreamTlsContext) {
    (
        UpstreamTlsContext {
            identity: Some(instance(client, "default")),
            validation: CertValidation {
                ca: instance(client, "ROOTCA"),
                match_subject_alt_names: vec![StringMatcher::exact(ECHO)],
            },
            sni: String::new(),
        },
        DownstreamTlsContext {
            identity: instance(server, "default"),
            validation: Some(CertValidation {
                ca: instance(server, "ROOTCA"),
                match_subject_alt_names: vec![],
            }),
            require_client_certificate: true,
        },
    )
}

/// The server certificate a fresh handshake gets.
async fn server_cert(config: Arc<ClientConfig>, addr: SocketAddr) -> Vec<u8> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = ServerName::IpAddress(addr.ip().into());
    let mut tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .unwrap();
    echo(&mut tls).await.unwrap();
    tls.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

#[tokio::test]
async fn rotated_files_reach_new_handshakes_and_spare_open_connections() {
    let ca = TestCa::new("mesh root");
    let (server_dir, client_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (one, two) = (ca.leaf(&[ECHO]), ca.leaf(&[ECHO, "echo.default.svc"]));
    let mut secret = KubeSecretDir::new(server_dir.path(), &one, &ca.pem());
    write_plain(client_dir.path(), &ca.leaf(&[CLIENT]), &ca.pem());
    let registry = ProviderRegistry::new(BTreeMap::from([
        ("server".to_owned(), file_watcher(server_dir.path())),
        ("client".to_owned(), file_watcher(client_dir.path())),
    ]))
    .change_poll(Duration::from_millis(20));
    let (upstream, downstream) = contexts("client", "server");

    let acceptor = TlsAcceptor::from_context(&downstream, &registry).unwrap();
    let (addr, mut accepted) = echo_server(acceptor).await;
    let client = mesh_tower::tls::client::client_config(&upstream, &registry).unwrap();

    // An open connection made with the first certificate.
    let tcp = TcpStream::connect(addr).await.unwrap();
    let mut open = tokio_rustls::TlsConnector::from(Arc::clone(&client))
        .connect(ServerName::IpAddress(addr.ip().into()), tcp)
        .await
        .unwrap();
    echo(&mut open).await.unwrap();
    assert_eq!(open.get_ref().1.peer_certificates().unwrap()[0], one.der);
    let peer = next(&mut accepted).await.unwrap().unwrap();
    assert_eq!(peer.spiffe_id(), Some(CLIENT));

    // Swap the server's files as Kubernetes does; wait for the reload.
    let server_provider = registry.get("server").unwrap();
    let mut reloaded = server_provider.subscribe();
    secret.swap(&two, &ca.pem());
    tokio::time::timeout(Duration::from_secs(10), reloaded.changed())
        .await
        .expect("reloaded")
        .unwrap();

    // The open connection keeps working; a new handshake gets the new cert.
    echo(&mut open).await.unwrap();
    assert_eq!(server_cert(client, addr).await, two.der.to_vec());
    echo(&mut open).await.unwrap();
}

// ---- gRPC through the endpoint connector ----

/// A TLS stream as tonic's server sees it: its connect info is the peer
/// identity, which tonic inserts into every request's extensions.
struct TlsConn(
    tokio_rustls::server::TlsStream<TcpStream>,
    Option<PeerIdentity>,
);

impl tonic::transport::server::Connected for TlsConn {
    type ConnectInfo = Option<PeerIdentity>;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.1.clone()
    }
}

impl AsyncRead for TlsConn {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsConn {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
}

/// Serves TestService over TLS; records the peer identity each request
/// carried in its extensions.
async fn grpc_server(acceptor: TlsAcceptor) -> (SocketAddr, Arc<Mutex<Vec<Option<PeerIdentity>>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let incoming =
        futures::stream::unfold((listener, acceptor), |(listener, acceptor)| async move {
            loop {
                let (tcp, _) = listener.accept().await.ok()?;
                if let Ok((stream, peer)) = mesh_tower::tls::accept(&acceptor, tcp).await {
                    return Some((
                        Ok::<_, std::io::Error>(TlsConn(stream, peer)),
                        (listener, acceptor),
                    ));
                }
            }
        });
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = {
        let seen = Arc::clone(&seen);
        tower::util::MapRequestLayer::new(move |req: http::Request<tonic::body::Body>| {
            let peer = req.extensions().get::<Option<PeerIdentity>>().cloned();
            seen.lock().unwrap().push(peer.flatten());
            req
        })
    };
    let router = tonic::transport::Server::builder()
        .layer(record)
        .add_service(TestServiceServer::new(TestServiceBackend::new(
            "tls-backend",
        )));
    tokio::spawn(router.serve_with_incoming(incoming));
    (addr, seen)
}

#[derive(Clone)]
struct Direct(Arc<EndpointHandle>);

impl tower::Service<http::Request<tonic::body::Body>> for Direct {
    type Response = http::Response<hyper::body::Incoming>;
    type Error = mesh_tower::BoxError;
    type Future = mesh_tower::endpoint::ResponseFuture;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<tonic::body::Body>) -> Self::Future {
        self.0.connection.call(req)
    }
}

fn tls_endpoint(address: SocketAddr, connector: TlsConnector) -> Arc<EndpointHandle> {
    let settings = ConnectionSettings {
        connector: Arc::new(connector),
        backoff: ConnectBackoff {
            initial: Duration::from_millis(50),
            max: Duration::from_millis(200),
            min_connect_timeout: Duration::from_secs(2),
            ..ConnectBackoff::default()
        },
        seed: Some(1),
        ..ConnectionSettings::default()
    };
    Arc::new(EndpointHandle::new(
        Endpoint {
            address,
            additional_addresses: Vec::new(),
            health: HealthStatus::Healthy,
            weight: 1,
            hostname: String::new(),
            metadata: Default::default(),
        },
        Arc::new(settings),
    ))
}

#[tokio::test]
async fn grpc_over_mtls_through_the_endpoint_connector() {
    let ca = TestCa::new("mesh root");
    let (server_dir, client_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    write_plain(server_dir.path(), &ca.leaf(&[ECHO]), &ca.pem());
    write_plain(client_dir.path(), &ca.leaf(&[CLIENT]), &ca.pem());
    let registry = ProviderRegistry::new(BTreeMap::from([
        ("server".to_owned(), file_watcher(server_dir.path())),
        ("client".to_owned(), file_watcher(client_dir.path())),
    ]));
    let (upstream, downstream) = contexts("client", "server");
    let (addr, seen) =
        grpc_server(TlsAcceptor::from_context(&downstream, &registry).unwrap()).await;

    let connector = TlsConnector::from_context(&upstream, &registry).unwrap();
    assert_eq!(connector.scheme(), http::uri::Scheme::HTTPS);
    let mut client = TestServiceClient::new(Direct(tls_endpoint(addr, connector)));
    for _ in 0..3 {
        let resp = client.unary_call(SimpleRequest::default()).await.unwrap();
        assert_eq!(resp.get_ref().server_id, "tls-backend");
    }
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 3);
    for peer in seen {
        assert_eq!(
            peer.expect("identity in extensions").spiffe_id(),
            Some(CLIENT)
        );
    }

    // A client expecting another identity fails the RPC with UNAVAILABLE,
    // naming the SAN it expected.
    let mut wrong = upstream.clone();
    wrong.validation.match_subject_alt_names = vec![StringMatcher::exact(
        "spiffe://cluster.local/ns/default/sa/other",
    )];
    let connector = TlsConnector::from_context(&wrong, &registry).unwrap();
    let mut client = TestServiceClient::new(Direct(tls_endpoint(addr, connector)));
    let status = client
        .unary_call(SimpleRequest::default())
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    assert!(
        status.message().contains(&format!(
            "peer certificate SANs [{ECHO}] match none of \
             [exact spiffe://cluster.local/ns/default/sa/other]"
        )),
        "{status:?}"
    );
}

#[tokio::test]
async fn contexts_naming_missing_or_unusable_providers_fail_with_the_instance_name() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("mesh root");
    write_plain(dir.path(), &ca.leaf(&[ECHO]), &ca.pem());
    let ca_only = CertificateProviderConfig::FileWatcher(FileWatcher {
        certificate_file: None,
        private_key_file: None,
        ca_certificate_file: Some(dir.path().join(CA)),
        refresh_interval: Duration::from_secs(600),
    });
    let registry = ProviderRegistry::new(BTreeMap::from([("roots".to_owned(), ca_only)]));

    let (upstream, _) = contexts("missing", "missing");
    let e = TlsConnector::from_context(&upstream, &registry).unwrap_err();
    assert!(e.to_string().contains("\"missing\" is not defined"), "{e}");

    let (upstream, downstream) = contexts("roots", "roots");
    let e = TlsConnector::from_context(&upstream, &registry).unwrap_err();
    assert_eq!(e.kind(), mesh_tower::tls::TlsErrorKind::MissingMaterial);
    assert!(
        e.to_string()
            .contains("\"roots\" has no identity certificate"),
        "{e}"
    );
    let e = TlsAcceptor::from_context(&downstream, &registry).unwrap_err();
    assert!(
        e.to_string()
            .contains("\"roots\" has no identity certificate"),
        "{e}"
    );

    // Without an identity, the CA-only instance is enough for a client.
    let mut anonymous = upstream;
    anonymous.identity = None;
    TlsConnector::from_context(&anonymous, &registry).unwrap();

    // istiod's SNI form is a valid server name; garbage is not.
    anonymous.sni = "outbound_.7070_._.echo.default.svc.cluster.local".into();
    TlsConnector::from_context(&anonymous, &registry).unwrap();
    anonymous.sni = "not a name!".into();
    let e = TlsConnector::from_context(&anonymous, &registry).unwrap_err();
    assert_eq!(e.kind(), mesh_tower::tls::TlsErrorKind::Config);
    assert!(
        e.to_string()
            .starts_with("sni \"not a name!\" is not a valid DNS name"),
        "{e}"
    );
}

#[tokio::test]
async fn alpn_offers_what_the_connections_speak() {
    let ca = TestCa::new("mesh root");
    let (server_dir, client_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    write_plain(server_dir.path(), &ca.leaf(&[ECHO]), &ca.pem());
    write_plain(client_dir.path(), &ca.leaf(&[CLIENT]), &ca.pem());
    let registry = ProviderRegistry::new(BTreeMap::from([
        ("server".to_owned(), file_watcher(server_dir.path())),
        ("client".to_owned(), file_watcher(client_dir.path())),
    ]));
    let (upstream, downstream) = contexts("client", "server");
    // mesh's server offers both; the client's offer decides.
    let acceptor = TlsAcceptor::from_context(&downstream, &registry).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let (mut tls, _) = mesh_tower::tls::accept(&acceptor, tcp).await.unwrap();
            let alpn = tls.get_ref().1.alpn_protocol().unwrap_or_default().to_vec();
            tokio::io::AsyncWriteExt::write_all(&mut tls, &alpn)
                .await
                .unwrap();
            tokio::io::AsyncWriteExt::shutdown(&mut tls).await.unwrap();
        }
    });
    let negotiated = |connector: TlsConnector| async move {
        let mut io = connector.connect(addr).await.unwrap();
        let mut out = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut io, &mut out)
            .await
            .unwrap();
        String::from_utf8(out).unwrap()
    };
    let h2 = TlsConnector::from_context(&upstream, &registry).unwrap();
    assert_eq!(negotiated(h2.clone()).await, "h2");
    let http1 = h2.with_alpn(vec![b"http/1.1".to_vec()]);
    assert_eq!(negotiated(http1).await, "http/1.1");
}
