//! The `mesh_ca` certificate provider against mesh-control's CA: both the
//! xDS-enabled server and the channel start with only a bootstrap token
//! and the CA's address, fetch short-lived SPIFFE certificates over
//! Istio's CA API and renew them under continuous traffic; a bad token is
//! reported, naming the provider; a CA that is down at a renewal leaves the
//! current certificate in force until a retry succeeds.

use std::collections::HashSet;
use std::time::SystemTime;

use mesh_control::ca::{Authority, CaServer};
use mesh_core::bootstrap::MeshCa;
use mesh_tower::tls::{CertificateProvider, ProviderStatus};

use super::*;

const SERVER_TOKEN: &str = "server-token";
const CLIENT_TOKEN: &str = "client-token";

/// mesh-control's CA on loopback, with a token per workload, and the files
/// a workload is given: the root and its token.
struct Ca {
    authority: Authority,
    addr: SocketAddr,
    server: Option<CaServer>,
    dir: tempfile::TempDir,
}

impl Ca {
    async fn start() -> Ca {
        let authority = Authority::generate("cluster.local").unwrap();
        let server = Self::serve(&authority, "127.0.0.1:0".parse().unwrap()).await;
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("root-cert.pem"), authority.root_pem()).unwrap();
        Ca {
            addr: server.local_addr(),
            authority,
            server: Some(server),
            dir,
        }
    }

    async fn serve(authority: &Authority, addr: SocketAddr) -> CaServer {
        CaServer::builder()
            .authority(authority.clone())
            .token(SERVER_TOKEN, "default", "echo")
            .token(CLIENT_TOKEN, "default", "client")
            .listen(addr)
            .start()
            .await
            .unwrap()
    }

    async fn stop(&mut self) {
        self.server.take().unwrap().shutdown().await;
    }

    /// Serves again on the same address, with the same root.
    async fn restart(&mut self) {
        self.server = Some(Self::serve(&self.authority, self.addr).await);
    }

    /// A `mesh_ca` config for a workload holding `token`, asking for
    /// `lifetime`, retrying fast.
    fn provider(&self, token: &str, lifetime: Duration) -> MeshCa {
        let token_file = self.dir.path().join(format!("{token}.jwt"));
        std::fs::write(&token_file, format!("{token}\n")).unwrap();
        MeshCa {
            certificate_lifetime: lifetime,
            renewal_jitter_ratio: 0.05,
            retry_initial_backoff: Duration::from_millis(100),
            retry_max_backoff: Duration::from_millis(300),
            request_timeout: Duration::from_secs(5),
            ..MeshCa::new(
                format!("https://{}", self.addr),
                token_file,
                self.dir.path().join("root-cert.pem"),
            )
        }
    }
}

/// A server registry and a client with `mesh_ca` providers, and the mesh
/// between them (istiod-shaped ISTIO_MUTUAL on both sides).
struct World {
    mesh: Mesh,
    client: Arc<Client>,
    /// Held so the providers run from the start (registries cache them
    /// weakly).
    server_provider: CertificateProvider,
    client_provider: CertificateProvider,
}

impl World {
    async fn start(server: MeshCa, client: MeshCa) -> World {
        let server_bootstrap = |ads: &TestAdsServer| {
            Bootstrap::builder()
                .xds_server(ads.local_addr().to_string())
                .node_id("secure-server")
                .server_listener_resource_name_template(TEMPLATE)
                .certificate_provider(PROVIDER, server.clone())
                .build()
                .unwrap()
        };
        let server_registry = Arc::new(ProviderRegistry::new(
            [(PROVIDER.to_owned(), server.clone().into())].into(),
        ));
        let server_provider = server_registry.get(PROVIDER).unwrap();
        let mesh = Mesh::start_with_bootstrap(
            Setup {
                server_secret: None,
                server_registry: Some(server_registry),
                handshake_timeout: None,
                mtls: true,
                rbac: &[],
                client_tls: ClientTls::Mutual(SERVER_ID),
            },
            server_bootstrap,
        )
        .await;
        let bootstrap = Bootstrap::builder()
            .xds_server(mesh.ads.local_addr().to_string())
            .node_id("client")
            .server_listener_resource_name_template(TEMPLATE)
            .certificate_provider(PROVIDER, client)
            .build()
            .unwrap();
        let registry = Arc::new(ProviderRegistry::from_bootstrap(&bootstrap));
        let client_provider = registry.get(PROVIDER).unwrap();
        World {
            mesh,
            client: Arc::new(Client {
                bootstrap,
                registry,
            }),
            server_provider,
            client_provider,
        }
    }
}

fn status(p: &CertificateProvider) -> ProviderStatus {
    p.status().expect("a mesh_ca provider reports its status")
}

/// The provider's current leaf (DER) and its not-after.
fn leaf(p: &CertificateProvider) -> (Vec<u8>, SystemTime) {
    let current = p.current();
    let chain = &current.identity().expect("a certificate").cert;
    let id = PeerIdentity::from_chain(chain).unwrap();
    (chain[0].to_vec(), id.not_after())
}

async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + CONVERGE;
    while !cond() {
        assert!(tokio::time::Instant::now() < deadline, "never {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The distinct client leaves the server has seen, all `CLIENT_ID`'s.
fn client_leaves_seen(mesh: &Mesh) -> HashSet<Vec<u8>> {
    mesh.seen()
        .into_iter()
        .map(|p| {
            let (id, der) = p.expect("a client certificate");
            assert_eq!(id.as_deref(), Some(CLIENT_ID));
            der
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_renew_under_continuous_traffic_without_a_failed_rpc() {
    let ca = Ca::start().await;
    let lifetime = Duration::from_secs(4);
    let w = World::start(
        ca.provider(SERVER_TOKEN, lifetime),
        ca.provider(CLIENT_TOKEN, lifetime),
    )
    .await;
    wait_until("both workloads have a certificate", || {
        status(&w.server_provider).issued >= 1 && status(&w.client_provider).issued >= 1
    })
    .await;
    let (_, first_server_not_after) = leaf(&w.server_provider);
    let (_, first_client_not_after) = leaf(&w.client_provider);

    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let open = w.client.connect().await;
    let mut tasks = Vec::new();
    // Two callers on one open channel (in-flight RPCs on old connections)
    // and one on a fresh channel per call (a new handshake each).
    for fresh in [false, false, true] {
        let (stop, ok, failures, client) =
            (stop.clone(), ok.clone(), failures.clone(), w.client.clone());
        let mut open = open.clone();
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let result = if fresh {
                    unary(&mut client.connect().await).await
                } else {
                    unary(&mut open).await
                };
                match result {
                    Ok(()) => {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(s) => failures
                        .lock()
                        .unwrap()
                        .push(format!("fresh={fresh}: {s:?}")),
                }
            }
        }));
    }

    // Two renewals on each side, seen by new handshakes, and traffic on
    // past the first certificates' expiry (so handshakes must be using
    // renewed ones).
    wait_until("two renewals on both sides", || {
        status(&w.server_provider).issued >= 3 && status(&w.client_provider).issued >= 3
    })
    .await;
    let expired = first_server_not_after.max(first_client_not_after);
    wait_until("the first certificates have expired", || {
        SystemTime::now() > expired + Duration::from_millis(500)
    })
    .await;
    wait_until("the server has seen three client certificates", || {
        client_leaves_seen(&w.mesh).len() >= 3
    })
    .await;
    let before = ok.load(Ordering::Relaxed);
    wait_until("traffic flows", || {
        ok.load(Ordering::Relaxed) >= before + 20
    })
    .await;

    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    let failures = failures.lock().unwrap().clone();
    assert!(
        failures.is_empty(),
        "RPCs failed during renewals: {failures:?}"
    );
    assert!(ok.load(Ordering::Relaxed) > 0);
    for p in [&w.server_provider, &w.client_provider] {
        let s = status(p);
        assert_eq!(s.last_error, None, "{s:?}");
        assert_eq!(s.failures, 0, "{s:?}");
    }
    let (_, server_not_after) = leaf(&w.server_provider);
    assert!(server_not_after > first_server_not_after);
}

#[tokio::test]
async fn a_bad_token_is_reported_and_handshakes_fail_naming_the_provider() {
    let ca = Ca::start().await;
    let lifetime = Duration::from_secs(60);
    let w = World::start(
        ca.provider(SERVER_TOKEN, lifetime),
        ca.provider("not-a-token", lifetime),
    )
    .await;
    wait_until("the client's request is refused", || {
        status(&w.client_provider).failures >= 1
    })
    .await;
    let error = status(&w.client_provider).last_error.unwrap();
    assert!(
        error.starts_with("certificate provider instance \"default\" (mesh_ca): certificate request failed: CA https://"),
        "{error}"
    );
    assert!(
        error.contains("Unauthenticated: unknown bearer token"),
        "{error}"
    );
    assert!(w.client_provider.current().identity().is_none());

    let status = refused(&mut w.client.connect().await).await;
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(
        status
            .message()
            .contains("certificate provider instance \"default\" has no certificate yet"),
        "{status:?}"
    );
    assert!(
        status.message().contains("unknown bearer token"),
        "{status:?}"
    );
    assert!(w.mesh.seen().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ca_down_at_renewal_keeps_the_current_certificate_and_retries() {
    let mut ca = Ca::start().await;
    let lifetime = Duration::from_secs(8);
    let w = World::start(
        ca.provider(SERVER_TOKEN, lifetime),
        ca.provider(CLIENT_TOKEN, lifetime),
    )
    .await;
    wait_until("both workloads have a certificate", || {
        status(&w.server_provider).issued >= 1 && status(&w.client_provider).issued >= 1
    })
    .await;
    let (client_leaf, client_not_after) = leaf(&w.client_provider);
    let (server_leaf, _) = leaf(&w.server_provider);
    unary(&mut w.client.connect().await).await.unwrap();

    // Down before the renewal point (about half the lifetime in).
    ca.stop().await;
    wait_until("both renewals have failed twice", || {
        status(&w.server_provider).failures >= 2 && status(&w.client_provider).failures >= 2
    })
    .await;
    let error = status(&w.client_provider).last_error.unwrap();
    assert!(
        error.starts_with(
            "certificate provider instance \"default\" (mesh_ca): certificate request failed"
        ),
        "{error}"
    );
    assert!(SystemTime::now() < client_not_after, "still valid");
    assert_eq!(leaf(&w.client_provider).0, client_leaf, "kept");
    assert_eq!(leaf(&w.server_provider).0, server_leaf, "kept");
    // New handshakes still work on the current certificates.
    w.mesh.seen.lock().unwrap().clear();
    unary(&mut w.client.connect().await).await.unwrap();
    assert_eq!(
        client_leaves_seen(&w.mesh),
        HashSet::from([client_leaf.clone()])
    );

    // Back up: the next retry renews.
    ca.restart().await;
    wait_until("both sides renewed", || {
        status(&w.server_provider).issued >= 2 && status(&w.client_provider).issued >= 2
    })
    .await;
    assert_eq!(status(&w.client_provider).last_error, None);
    let (renewed, _) = leaf(&w.client_provider);
    assert_ne!(renewed, client_leaf);
    w.mesh.seen.lock().unwrap().clear();
    unary(&mut w.client.connect().await).await.unwrap();
    assert_eq!(client_leaves_seen(&w.mesh), HashSet::from([renewed]));
}
