//! grpcio (Python; gRPC's own xDS implementation) as the peer, both ways,
//! configured by the same TestAdsServer and reading `file_watcher`
//! certificate providers from its bootstrap (`grpcio_peer.py`, run by
//! [`mesh_core::testing::python`]).
//!
//! grpcio's xDS client (`xds_channel_credentials`, plaintext fallback) to
//! our xDS-enabled server: mTLS (our server sees grpcio's SPIFFE ID), a
//! wrong SAN refused, no client certificate refused, plaintext fallback,
//! a client of another CA refused. Our channel to grpcio's xDS server
//! (`grpc.server(xds=True)`, `xds_server_credentials`): mTLS (grpcio sees
//! our SPIFFE ID), a wrong SAN refused, no client certificate refused,
//! plaintext fallback.
//!
//! Without Python and grpcio the tests are skipped loudly
//! (`MESH_REQUIRE_PEERS=1` makes that fatal).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};

use mesh_core::testing::proto::grpc_testing::SimpleResponse;
use mesh_core::testing::python::{self, Python};
use serde_json::Value;

use super::*;

const GRPCIO_HOST: &str = "grpcio-server";

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/security/grpcio_peer.py")
}

/// `bootstrap` as a file in `dir` (grpcio reads GRPC_XDS_BOOTSTRAP).
fn bootstrap_file(dir: &Path, name: &str, bootstrap: &Bootstrap) -> PathBuf {
    let path = dir.join(format!("{name}.json"));
    std::fs::write(&path, bootstrap.to_json().to_string()).unwrap();
    path
}

/// What one grpcio client run saw.
#[derive(Debug)]
struct Outcome {
    ok: u64,
    hostnames: Vec<String>,
    errors: BTreeMap<String, u64>,
    details: Vec<String>,
}

impl Outcome {
    /// Every RPC failed with `code`.
    fn all_failed(&self, code: &str, rpcs: u64) -> bool {
        self.ok == 0 && self.errors.get(code) == Some(&rpcs)
    }
}

const RPCS: u64 = 5;

/// Runs grpcio's client (blocking; call from `spawn_blocking`).
fn grpcio_client(py: &Python, bootstrap: &Path) -> Outcome {
    let mut cmd = py.script(&script());
    cmd.args(["client", "--num-rpcs", &RPCS.to_string()])
        .arg(format!("--target=xds:///{TARGET}"))
        .env("GRPC_XDS_BOOTSTRAP", bootstrap)
        .env("GRPC_VERBOSITY", "NONE");
    let out = python::run(&mut cmd).unwrap_or_else(|e| panic!("grpcio client: {e}"));
    let v: Value = serde_json::from_str(out.trim()).expect("the client prints JSON");
    let strings = |k: &str| -> Vec<String> {
        v[k].as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_owned())
            .collect()
    };
    Outcome {
        ok: v["ok"].as_u64().unwrap(),
        hostnames: strings("hostnames"),
        errors: v["errors"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, n)| (k.clone(), n.as_u64().unwrap()))
            .collect(),
        details: strings("details"),
    }
}

/// Runs grpcio's client until `accept` holds for a run (at most
/// [`CONVERGE`]); the first runs may race the server's first config.
async fn grpcio_until(
    py: &Arc<Python>,
    bootstrap: &Path,
    what: &str,
    accept: impl Fn(&Outcome) -> bool,
) -> Outcome {
    let deadline = tokio::time::Instant::now() + CONVERGE;
    loop {
        let (py2, b) = (Arc::clone(py), bootstrap.to_owned());
        let o = tokio::task::spawn_blocking(move || grpcio_client(&py2, &b))
            .await
            .unwrap();
        if accept(&o) {
            return o;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "grpcio client, {what}: never converged; last {o:?}"
        );
    }
}

/// Starts `setup` and runs grpcio's client (identified by `secret`)
/// against it until `accept` holds.
async fn grpcio_against(
    py: &Arc<Python>,
    setup: Setup<'_>,
    secret: &Secret,
    what: &str,
    accept: impl Fn(&Outcome) -> bool,
) -> (Mesh, Outcome) {
    let mesh = Mesh::start(setup).await;
    let dir = tempfile::tempdir().unwrap();
    let b = bootstrap_file(
        dir.path(),
        "grpcio-client",
        &bootstrap(&mesh.ads, "grpcio-client", Some(secret)),
    );
    let o = grpcio_until(py, &b, what, accept).await;
    (mesh, o)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpcio_xds_client_to_our_server() {
    let Some(py) = python::peer_or_skip("security::grpcio::grpcio_xds_client_to_our_server").await
    else {
        return;
    };
    let ca = TestCa::new("mesh-root");
    let (_, server_secret) = workload(&ca, SERVER_ID);
    let (_, client_secret) = workload(&ca, CLIENT_ID);
    let setup = |mtls, client_tls| Setup {
        server_secret: Some(&server_secret),
        server_registry: None,
        handshake_timeout: None,
        mtls,
        rbac: &[],
        client_tls,
    };

    // mTLS: our server sees grpcio's SPIFFE ID.
    let ok = |o: &Outcome| o.ok == RPCS;
    let refused = |o: &Outcome| o.all_failed("UNAVAILABLE", RPCS);
    let (mesh, o) = grpcio_against(
        &py,
        setup(true, ClientTls::Mutual(SERVER_ID)),
        &client_secret,
        "mTLS",
        ok,
    )
    .await;
    assert_eq!(o.hostnames, ["secure-server"]);
    let seen = mesh.seen();
    assert!(!seen.is_empty());
    for peer in seen {
        let (id, _) = peer.expect("a client certificate");
        assert_eq!(id.as_deref(), Some(CLIENT_ID));
    }

    // grpcio checks our server's SAN against the cluster's.
    let (mesh, o) = grpcio_against(
        &py,
        setup(true, ClientTls::Mutual(OTHER_ID)),
        &client_secret,
        "wrong SAN",
        refused,
    )
    .await;
    assert!(o.details.iter().all(|d| d.contains("SANs")), "{o:?}");
    assert!(mesh.seen().is_empty());

    // Without a client certificate, our server (requiring one) refuses.
    let (mesh, _) = grpcio_against(
        &py,
        setup(true, ClientTls::NoCertificate(SERVER_ID)),
        &client_secret,
        "no client certificate",
        refused,
    )
    .await;
    assert!(mesh.seen().is_empty());

    // A client of another CA: neither side trusts the other.
    let (_, stranger) = workload(&TestCa::new("other-root"), CLIENT_ID);
    let (mesh, _) = grpcio_against(
        &py,
        setup(true, ClientTls::Mutual(SERVER_ID)),
        &stranger,
        "another CA",
        refused,
    )
    .await;
    assert!(mesh.seen().is_empty());

    // No TLS contexts: both fall back to plaintext.
    let (mesh, _) = grpcio_against(
        &py,
        setup(false, ClientTls::Plaintext),
        &client_secret,
        "plaintext",
        ok,
    )
    .await;
    assert!(mesh.seen().iter().all(Option::is_none), "{:?}", mesh.seen());
}

/// The grpcio server process, killed when dropped.
struct GrpcioServer {
    child: Child,
    log: PathBuf,
}

impl GrpcioServer {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for GrpcioServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Calls through a new channel of `client` until `accept` holds.
async fn mesh_until(
    client: &Client,
    server: &GrpcioServer,
    what: &str,
    accept: impl Fn(&Result<tonic::Response<SimpleResponse>, Status>) -> bool,
) -> Result<tonic::Response<SimpleResponse>, Status> {
    let deadline = tokio::time::Instant::now() + CONVERGE;
    let mut rpc = client.connect().await;
    loop {
        let r = rpc.unary_call(SimpleRequest::default()).await;
        if accept(&r) {
            return r;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "our client, {what}: never; last {r:?}; grpcio server log:\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_client_to_a_grpcio_xds_server() {
    let Some(py) =
        python::peer_or_skip("security::grpcio::our_client_to_a_grpcio_xds_server").await
    else {
        return;
    };
    let ca = TestCa::new("mesh-root");
    let (_, server_secret) = workload(&ca, SERVER_ID);
    let (_, client_secret) = workload(&ca, CLIENT_ID);
    let ads = TestAdsServer::start().await;
    let port = std::net::TcpListener::bind("0.0.0.0:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listening: SocketAddr = format!("0.0.0.0:{port}").parse().unwrap();
    let name = TEMPLATE.replace("%s", &listening.to_string());
    let rc = "echo-routes";
    let lds = |mtls| {
        ads.set_resources(
            type_url(ResourceType::Listener),
            vec![
                any(&server_listener(&name, listening, mtls, &[])),
                any(&client_listener(TARGET, rc)),
            ],
        );
    };
    let cds = |tls| {
        ads.set_resources(
            type_url(ResourceType::Cluster),
            vec![any(&echo_cluster(tls))],
        );
    };
    lds(true);
    cds(ClientTls::Mutual(SERVER_ID));
    ads.set_resources(
        type_url(ResourceType::RouteConfiguration),
        vec![any(&route_config(
            rc,
            &[TARGET],
            vec![prefix_route("", "echo")],
        ))],
    );
    let backend: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    ads.set_resources(
        type_url(ResourceType::ClusterLoadAssignment),
        vec![any(&endpoints("echo", &[backend]))],
    );

    let dir = tempfile::tempdir().unwrap();
    let b = bootstrap_file(
        dir.path(),
        "grpcio-server",
        &bootstrap(&ads, "grpcio-server", Some(&server_secret)),
    );
    let log = dir.path().join("grpcio-server.log");
    let mut cmd = py.script(&script());
    cmd.args([
        "server",
        "--port",
        &port.to_string(),
        "--hostname",
        GRPCIO_HOST,
    ])
    .env("GRPC_XDS_BOOTSTRAP", &b)
    .env("GRPC_VERBOSITY", "ERROR")
    .stdout(Stdio::null())
    .stderr(std::fs::File::create(&log).unwrap());
    let server = GrpcioServer {
        child: cmd.spawn().expect("spawn the grpcio server"),
        log,
    };
    let client = Client::new(&ads, "mesh-client", Some(&client_secret));

    // mTLS: grpcio sees our SPIFFE ID.
    let r = mesh_until(&client, &server, "mTLS", Result::is_ok)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.hostname, GRPCIO_HOST);
    assert_eq!(r.username, CLIENT_ID);

    // Our client checks grpcio's SAN against the cluster's.
    cds(ClientTls::Mutual(OTHER_ID));
    let s = mesh_until(&client, &server, "wrong SAN refused", Result::is_err)
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::Unavailable, "{s:?}");

    // Without our certificate, grpcio's server (requiring one) refuses.
    cds(ClientTls::NoCertificate(SERVER_ID));
    let s = mesh_until(
        &client,
        &server,
        "no client certificate refused",
        Result::is_err,
    )
    .await
    .unwrap_err();
    assert_eq!(s.code(), Code::Unavailable, "{s:?}");

    // No TLS contexts: both fall back to plaintext.
    lds(false);
    cds(ClientTls::Plaintext);
    let r = mesh_until(&client, &server, "plaintext", |r| {
        r.as_ref().is_ok_and(|r| r.get_ref().username.is_empty())
    })
    .await
    .unwrap()
    .into_inner();
    assert_eq!(r.hostname, GRPCIO_HOST);
}
