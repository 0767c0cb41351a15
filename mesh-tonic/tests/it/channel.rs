//! `mesh_tonic::Channel` and `mesh_tonic::http::Client` end to end: a
//! raw-resource ADS server (TestAdsServer) configures them, and unchanged
//! tonic-generated clients and plain HTTP requests reach loopback backends
//! (TestServiceBackends, a small axum app served as h2c).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use mesh_core::bootstrap::Bootstrap;
use mesh_core::resource::ResourceType;
use mesh_core::testing::ads_server::TestAdsServer;
use mesh_core::testing::proto::grpc_testing::test_service_client::TestServiceClient;
use mesh_core::testing::proto::grpc_testing::{Empty, SimpleRequest};
use mesh_core::testing::resources::{
    any, client_listener, eds_cluster, endpoints, prefix_route, route_config, type_url,
};
use mesh_core::testing::test_service::{RunningBackend, TestServiceBackend};
use mesh_tonic::{Channel, ErrorKind};
use tokio::net::TcpListener;
use tonic::Code;

const TARGET: &str = "echo.test:7070";
/// How long anything may take to converge before the test fails.
const CONVERGE: Duration = Duration::from_secs(15);

/// A cluster name and its endpoints.
type ClusterSpec<'a> = (&'a str, &'a [SocketAddr]);

/// A TestAdsServer serving, for each `(listener, clusters)`, a Listener, a
/// RouteConfiguration whose one virtual host (domain = the listener name)
/// sends everything to the first cluster, and the clusters' endpoints.
struct Mesh {
    ads: TestAdsServer,
    bootstrap: Bootstrap,
}

impl Mesh {
    async fn start(targets: &[(&str, &[ClusterSpec<'_>])]) -> Mesh {
        let ads = TestAdsServer::start().await;
        let mut listeners = Vec::new();
        let mut routes = Vec::new();
        let mut clusters = Vec::new();
        let mut assignments = Vec::new();
        for (target, cs) in targets {
            let rc = format!("routes-{target}");
            listeners.push(any(&client_listener(target, &rc)));
            routes.push(any(&route_config(
                &rc,
                &[target],
                vec![prefix_route("", cs[0].0)],
            )));
            for (c, addrs) in *cs {
                clusters.push(any(&eds_cluster(c, "")));
                assignments.push(any(&endpoints(c, addrs)));
            }
        }
        ads.set_resources(type_url(ResourceType::Listener), listeners);
        ads.set_resources(type_url(ResourceType::RouteConfiguration), routes);
        ads.set_resources(type_url(ResourceType::Cluster), clusters);
        ads.set_resources(type_url(ResourceType::ClusterLoadAssignment), assignments);
        let bootstrap = Bootstrap::builder()
            .xds_server(ads.local_addr().to_string())
            .node_id("mesh-tonic-channel-it")
            .build()
            .unwrap();
        Mesh { ads, bootstrap }
    }

    async fn channel(&self) -> Channel {
        Channel::builder(format!("xds:///{TARGET}"))
            .bootstrap(self.bootstrap.clone())
            .config_timeout(CONVERGE)
            .connect()
            .await
            .expect("the channel gets its config")
    }
}

async fn backends(names: &[&str]) -> Vec<RunningBackend> {
    let mut v = Vec::new();
    for n in names {
        v.push(TestServiceBackend::new(*n).serve().await.unwrap());
    }
    v
}

/// One UnaryCall, bounded: the answering backend's hostname.
async fn unary(client: &mut TestServiceClient<Channel>) -> Result<String, tonic::Status> {
    let call = client.unary_call(SimpleRequest::default());
    let resp = tokio::time::timeout(CONVERGE, call)
        .await
        .expect("the RPC finishes")?;
    Ok(resp.into_inner().hostname)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generated_client_works_through_the_channel() {
    let bs = backends(&["a", "b"]).await;
    let addrs: Vec<SocketAddr> = bs.iter().map(|b| b.local_addr()).collect();
    let mesh = Mesh::start(&[(TARGET, &[("echo", &addrs)])]).await;
    let channel = mesh.channel().await;
    assert_eq!(channel.authority(), TARGET);

    // The only change from plain tonic: how the channel is built.
    let mut client = TestServiceClient::new(channel.clone());
    let mut seen = BTreeMap::new();
    for _ in 0..20 {
        *seen.entry(unary(&mut client).await.unwrap()).or_insert(0) += 1;
    }
    assert_eq!(seen.keys().collect::<Vec<_>>(), ["a", "b"], "{seen:?}");

    // Clients on clones of the channel, inside spawned tasks.
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let mut client = TestServiceClient::new(channel.clone());
            tokio::spawn(async move {
                client.empty_call(Empty {}).await?;
                unary(&mut client).await
            })
        })
        .collect();
    for t in tasks {
        let host = t.await.unwrap().unwrap();
        assert!(host == "a" || host == "b", "{host}");
    }
    assert!(bs.iter().all(|b| b.served() > 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_changes_apply_to_a_live_channel() {
    let bs = backends(&["a", "b"]).await;
    let (a, b) = ([bs[0].local_addr()], [bs[1].local_addr()]);
    let mesh = Mesh::start(&[(TARGET, &[("ca", &a), ("cb", &b)])]).await;
    let mut client = TestServiceClient::new(mesh.channel().await);
    assert_eq!(unary(&mut client).await.unwrap(), "a");

    mesh.ads.set_resources(
        type_url(ResourceType::RouteConfiguration),
        vec![any(&route_config(
            &format!("routes-{TARGET}"),
            &[TARGET],
            vec![prefix_route("", "cb")],
        ))],
    );
    let deadline = tokio::time::Instant::now() + CONVERGE;
    loop {
        if unary(&mut client).await.unwrap() == "b" {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "never moved to cb");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Once moved, it stays moved.
    for _ in 0..10 {
        assert_eq!(unary(&mut client).await.unwrap(), "b");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_listener_fails_unavailable_naming_it() {
    let mesh = Mesh::start(&[]).await;
    let err = Channel::builder("xds:///missing.test:7070")
        .bootstrap(mesh.bootstrap.clone())
        .config_timeout(Duration::from_millis(300))
        .connect()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    let status = tonic::Status::from(err);
    assert_eq!(status.code(), Code::Unavailable);
    assert!(
        status.message().contains("\"missing.test:7070\""),
        "{}",
        status.message()
    );

    let err = Channel::builder("dns:///echo:7070")
        .bootstrap(mesh.bootstrap.clone())
        .connect()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidTarget);
    let err = Channel::builder("xds://unknown-authority/echo:7070")
        .bootstrap(mesh.bootstrap.clone())
        .connect()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidTarget);
    assert!(err.to_string().contains("unknown-authority"), "{err}");
}

/// Serves `router` on loopback as HTTP/1.1 and h2c (hyper-util's auto
/// builder), as an axum app behind the mesh would be.
async fn serve_h2c(router: Router) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((io, _)) = listener.accept().await {
            let service = TowerToHyperService::new(router.clone());
            tokio::spawn(async move {
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(io), service)
                    .await;
            });
        }
    });
    addr
}

/// A gRPC EmptyCall answer that reports, in the `seen-authority` header,
/// the `:authority` the request arrived with.
async fn echo_authority(req: axum::extract::Request) -> axum::response::Response {
    let authority = req
        .uri()
        .authority()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let mut trailers = http::HeaderMap::new();
    trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
    let frames = futures::stream::iter([
        // One length-prefixed message: grpc.testing.Empty encodes to 0 bytes.
        Ok::<_, Infallible>(Frame::data(Bytes::from_static(&[0, 0, 0, 0, 0]))),
        Ok(Frame::trailers(trailers)),
    ]);
    http::Response::builder()
        .header("content-type", "application/grpc")
        .header("seen-authority", authority)
        .body(axum::body::Body::new(StreamBody::new(frames)))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_backend_sees_the_target_as_authority() {
    let app = Router::new().route("/grpc.testing.TestService/EmptyCall", post(echo_authority));
    let addr = serve_h2c(app).await;
    let mesh = Mesh::start(&[(TARGET, &[("echo", &[addr])])]).await;
    let mut client = TestServiceClient::new(mesh.channel().await);
    let resp = tokio::time::timeout(CONVERGE, client.empty_call(Empty {}))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resp.metadata().get("seen-authority").unwrap(), TARGET);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_axum_app_works_through_the_http_client() {
    let web = serve_h2c(Router::new().route("/hello", get(|| async { "hello from web" }))).await;
    let api = serve_h2c(Router::new().route("/hello", get(|| async { "hello from api" }))).await;
    let mesh = Mesh::start(&[
        ("web.test:80", &[("web", &[web])]),
        ("api.test:80", &[("api", &[api])]),
    ])
    .await;
    let client = mesh_tonic::http::Client::builder()
        .bootstrap(mesh.bootstrap.clone())
        .config_timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let body = |resp: http::Response<mesh_tonic::http::Body>| async move {
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8(bytes.to_vec()).unwrap())
    };

    // Each request's host picks its target: absolute URIs and Host headers.
    let req = http::Request::get("http://web.test:80/hello")
        .body(String::new())
        .unwrap();
    let got = body(client.request(req).await).await;
    assert_eq!(got, (http::StatusCode::OK, "hello from web".into()));
    let req = http::Request::get("/hello")
        .header("host", "api.test:80")
        .body(axum::body::Body::empty())
        .unwrap();
    let got = body(client.request(req).await).await;
    assert_eq!(got, (http::StatusCode::OK, "hello from api".into()));

    // The upstream's own statuses pass through.
    let req = http::Request::get("http://web.test:80/nope")
        .body(String::new())
        .unwrap();
    assert_eq!(
        client.request(req).await.status(),
        http::StatusCode::NOT_FOUND
    );

    // A host the mesh does not know: 503 naming its Listener.
    let req = http::Request::get("http://unknown.test:80/")
        .body(String::new())
        .unwrap();
    let (status, text) = body(client.request(req).await).await;
    assert_eq!(status, http::StatusCode::SERVICE_UNAVAILABLE);
    assert!(text.contains("\"unknown.test:80\""), "{text}");
}

#[tokio::test]
async fn without_a_bootstrap_the_environment_is_asked() {
    let set = |k| std::env::var_os(k).is_some_and(|v| !v.is_empty());
    if set("GRPC_XDS_BOOTSTRAP") || set("GRPC_XDS_BOOTSTRAP_CONFIG") {
        // This environment has a bootstrap; what it points to is unknown.
        return;
    }
    let err = Channel::from_target(format!("xds:///{TARGET}"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Bootstrap);
    assert_eq!(err.code(), Code::Unavailable);
    assert!(err.to_string().contains("bootstrap"), "{err}");
}
