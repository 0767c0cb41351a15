//! The xDS-enabled server on loopback, configured by a raw-resource ADS
//! server: serving mode, routing, the non_forwarding_action check, draining
//! on Listener changes, and an axum Router.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::CidrRange;
use envoy_types::pb::envoy::config::listener::v3 as listener;
use mesh_core::bootstrap::Bootstrap;
use mesh_core::resource::ResourceType;
use mesh_core::testing::ads_server::TestAdsServer;
use mesh_core::testing::proto::grpc_testing::test_service_client::TestServiceClient;
use mesh_core::testing::proto::grpc_testing::test_service_server::TestServiceServer;
use mesh_core::testing::proto::grpc_testing::{SimpleRequest, SimpleResponse};
use mesh_core::testing::resources::{
    any, inbound_routes, prefix_route, route_config, server_listener, type_url,
};
use mesh_core::testing::test_service::TestServiceBackend;
use mesh_tonic::server::{ErrorKind, ServingMode, XdsServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

/// gRPC's usual server listener template (A36).
pub(crate) const TEMPLATE: &str = "grpc/server?xds.resource.listening_address=%s";
/// How long a test waits for something to converge.
pub(crate) const CONVERGE: Duration = Duration::from_secs(15);

pub(crate) fn lds() -> &'static str {
    type_url(ResourceType::Listener)
}

pub(crate) fn rds() -> &'static str {
    type_url(ResourceType::RouteConfiguration)
}

type Modes = Arc<Mutex<Vec<(ServingMode, Option<String>)>>>;

/// An XdsServer on 127.0.0.1 with its own ADS server.
struct Fixture {
    ads: TestAdsServer,
    addr: SocketAddr,
    /// The Listener name the server asks for.
    name: String,
    modes: Modes,
    backend: TestServiceBackend,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), mesh_tonic::server::Error>>,
}

impl Fixture {
    async fn start() -> Self {
        let backend = TestServiceBackend::new("xds-server-1");
        let routes = tonic::service::Routes::new(TestServiceServer::new(backend.clone()));
        Self::start_with(routes, backend).await
    }

    async fn start_with<S, B>(service: S, backend: TestServiceBackend) -> Self
    where
        S: tower::Service<
                http::Request<hyper::body::Incoming>,
                Response = http::Response<B>,
                Error = std::convert::Infallible,
            > + Clone
            + Send
            + 'static,
        S::Future: Send + 'static,
        B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let ads = TestAdsServer::start().await;
        let bootstrap = Bootstrap::builder()
            .xds_server(ads.local_addr().to_string())
            .node_id("xds-server-test")
            .server_listener_resource_name_template(TEMPLATE)
            .build()
            .unwrap();
        let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = tcp.local_addr().unwrap();
        let modes = Modes::default();
        let (stop, stopped) = oneshot::channel::<()>();
        let server = XdsServer::builder()
            .bootstrap(bootstrap)
            .drain_grace(Duration::from_secs(5))
            .on_serving_mode_change({
                let modes = modes.clone();
                move |mode, why| modes.lock().unwrap().push((mode, why))
            });
        let task = tokio::spawn(server.serve_with_shutdown(tcp, service, async {
            let _ = stopped.await;
        }));
        Fixture {
            ads,
            addr,
            name: TEMPLATE.replace("%s", &addr.to_string()),
            modes,
            backend,
            stop: Some(stop),
            task,
        }
    }

    /// A fresh channel (its own connection).
    fn client(&self) -> TestServiceClient<Channel> {
        let channel = Endpoint::from_shared(format!("http://{}", self.addr))
            .unwrap()
            .connect_lazy();
        TestServiceClient::new(channel)
    }

    fn set_listener(&self, l: listener::Listener) {
        self.ads.set_resources(lds(), vec![any(&l)]);
    }

    fn modes(&self) -> Vec<(ServingMode, Option<String>)> {
        self.modes.lock().unwrap().clone()
    }

    async fn wait_for_mode(&self, mode: ServingMode) -> Option<String> {
        let deadline = tokio::time::Instant::now() + CONVERGE;
        loop {
            if let Some((_, why)) = self.modes().into_iter().rev().find(|(m, _)| *m == mode) {
                return why;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no {mode:?} callback; got {:?}",
                self.modes()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn shutdown(mut self) {
        let _ = self.stop.take().unwrap().send(());
        let done = tokio::time::timeout(CONVERGE, &mut self.task).await;
        done.expect("server stops after the signal")
            .unwrap()
            .unwrap();
    }
}

pub(crate) async fn unary(
    client: &mut TestServiceClient<Channel>,
) -> Result<tonic::Response<SimpleResponse>, Status> {
    client.unary_call(SimpleRequest::default()).await
}

/// Calls until `pred` holds for the result (or panics after [`CONVERGE`]).
pub(crate) async fn call_until(
    client: &mut TestServiceClient<Channel>,
    what: &str,
    mut pred: impl FnMut(&Result<tonic::Response<SimpleResponse>, Status>) -> bool,
) -> Result<tonic::Response<SimpleResponse>, Status> {
    let deadline = tokio::time::Instant::now() + CONVERGE;
    loop {
        let r = unary(client).await;
        if pred(&r) {
            return r;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never {what}; last result {r:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A connection the server closed: tonic reports CANCELLED ("connection
/// closed") or UNAVAILABLE, depending on when it noticed.
fn closed(status: &Status) -> bool {
    matches!(status.code(), Code::Unavailable | Code::Cancelled)
}

fn refused_for(status: &Status, needle: &str) -> bool {
    status.code() == Code::Unavailable && status.message().contains(needle)
}

#[tokio::test]
async fn serves_once_its_listener_arrives() {
    let f = Fixture::start().await;
    // The server asks for the Listener named by the template.
    let name = f.name.clone();
    let asked = f
        .ads
        .wait_for_request(CONVERGE, |r| r.request.resource_names.contains(&name))
        .await;
    assert!(asked.is_some(), "no LDS request for {name}");
    // Not serving yet: connections are closed, RPCs fail.
    let mut client = f.client();
    let e = unary(&mut client).await.unwrap_err();
    assert!(closed(&e), "{e:?}");
    assert_eq!(f.backend.served(), 0);
    assert!(
        f.modes().is_empty(),
        "nothing resolved yet: {:?}",
        f.modes()
    );

    f.set_listener(server_listener(&f.name, f.addr, None));
    assert_eq!(f.wait_for_mode(ServingMode::Serving).await, None);
    let r = call_until(&mut client, "served", Result::is_ok)
        .await
        .unwrap();
    assert_eq!(r.metadata().get("hostname").unwrap(), "xds-server-1");
    assert_eq!(r.into_inner().server_id, "xds-server-1");
    f.shutdown().await;
}

#[tokio::test]
async fn rds_routes_apply_and_forwarding_routes_are_refused() {
    let f = Fixture::start().await;
    f.set_listener(server_listener(&f.name, f.addr, Some("inbound")));
    f.ads.set_resources(rds(), vec![any(&inbound_routes())]);
    let mut client = f.client();
    call_until(&mut client, "served over RDS", Result::is_ok)
        .await
        .unwrap();

    // A client-style route (to a cluster) on the same connection: RDS
    // updates apply without draining, and the RPC fails UNAVAILABLE.
    let forward = route_config("inbound", &["*"], vec![prefix_route("", "some-cluster")]);
    f.ads.set_resources(rds(), vec![any(&forward)]);
    let e = call_until(&mut client, "refused", |r| r.is_err())
        .await
        .unwrap_err();
    assert!(refused_for(&e, "non_forwarding_action"), "{e:?}");
    let served = f.backend.served();

    // No virtual host for the authority: UNAVAILABLE too.
    let elsewhere = route_config("inbound", &["elsewhere.example"], vec![]);
    f.ads.set_resources(rds(), vec![any(&elsewhere)]);
    let e = call_until(&mut client, "refused for the authority", |r| {
        r.as_ref()
            .is_err_and(|e| e.message().contains("no virtual host"))
    })
    .await
    .unwrap_err();
    assert_eq!(e.code(), Code::Unavailable);
    assert_eq!(
        f.backend.served(),
        served,
        "refused RPCs never reach the service"
    );
    // Still serving all along: routes do not change the mode.
    assert_eq!(f.modes().len(), 1, "{:?}", f.modes());
    f.shutdown().await;
}

#[tokio::test]
async fn a_listener_for_another_address_is_not_served() {
    let f = Fixture::start().await;
    let other: SocketAddr = format!("0.0.0.0:{}", f.addr.port()).parse().unwrap();
    f.set_listener(server_listener(&f.name, other, None));
    let why = f.wait_for_mode(ServingMode::NotServing).await.unwrap();
    assert!(
        why.contains("does not match the listening address"),
        "{why}"
    );
    let mut client = f.client();
    let e = unary(&mut client).await.unwrap_err();
    assert!(closed(&e), "{e:?}");
    assert_eq!(f.backend.served(), 0);

    // The right address: serving.
    f.set_listener(server_listener(&f.name, f.addr, None));
    f.wait_for_mode(ServingMode::Serving).await;
    call_until(&mut client, "served", Result::is_ok)
        .await
        .unwrap();
    assert_eq!(f.modes()[0].0, ServingMode::NotServing);
    f.shutdown().await;
}

#[tokio::test]
async fn connections_without_a_matching_chain_are_closed() {
    let f = Fixture::start().await;
    let mut l = server_listener(&f.name, f.addr, None);
    l.filter_chains[0].filter_chain_match = Some(listener::FilterChainMatch {
        prefix_ranges: vec![CidrRange {
            address_prefix: "10.0.0.0".into(),
            prefix_len: Some(envoy_types::pb::google::protobuf::UInt32Value { value: 8 }),
        }],
        ..Default::default()
    });
    f.set_listener(l.clone());
    f.wait_for_mode(ServingMode::Serving).await;
    let mut client = f.client();
    let e = unary(&mut client).await.unwrap_err();
    assert!(closed(&e), "{e:?}");
    assert_eq!(f.backend.served(), 0);
    // A default chain takes what no chain matches.
    l.default_filter_chain = Some(l.filter_chains[0].clone());
    l.default_filter_chain.as_mut().unwrap().filter_chain_match = None;
    l.default_filter_chain.as_mut().unwrap().name = "default".into();
    f.set_listener(l);
    call_until(&mut client, "served by the default chain", Result::is_ok)
        .await
        .unwrap();
    f.shutdown().await;
}

/// Sends an empty UnaryCall over a bare HTTP/2 connection and returns the
/// `grpc-status` of its Trailers-Only answer, if it was one.
async fn raw_unary_status(addr: SocketAddr, metadata: &[(&str, &str)]) -> Option<String> {
    use http_body_util::Full;
    let io = hyper_util::rt::TokioIo::new(tokio::net::TcpStream::connect(addr).await.ok()?);
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io)
            .await
            .ok()?;
    tokio::spawn(conn);
    let mut req = http::Request::post(format!("http://{addr}/grpc.testing.TestService/UnaryCall"))
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    for (k, v) in metadata {
        req = req.header(*k, *v);
    }
    // One empty message: no compression, length 0.
    let body = Full::new(bytes::Bytes::from_static(&[0, 0, 0, 0, 0]));
    let res = send.send_request(req.body(body).unwrap()).await.ok()?;
    let status = res.headers().get("grpc-status")?;
    Some(status.to_str().ok()?.to_owned())
}

#[tokio::test]
async fn the_callers_grpc_timeout_is_enforced() {
    let f = Fixture::start().await;
    f.set_listener(server_listener(&f.name, f.addr, None));
    let mut client = f.client();
    call_until(&mut client, "served", Result::is_ok)
        .await
        .unwrap();
    // The handler sleeps 1 s; the caller allows 100 ms. tonic's client
    // enforces `grpc-timeout` itself, so a bare HTTP/2 client sends the
    // RPC: the answer must be the server's.
    let status = raw_unary_status(
        f.addr,
        &[("rpc-behavior", "sleep-1"), ("grpc-timeout", "100m")],
    )
    .await;
    assert_eq!(
        status.as_deref(),
        Some("4"),
        "DEADLINE_EXCEEDED from the server"
    );
    // A timeout the handler meets is no problem.
    let mut req = tonic::Request::new(SimpleRequest::default());
    req.metadata_mut()
        .insert("grpc-timeout", "10S".parse().unwrap());
    client.unary_call(req).await.unwrap();
    f.shutdown().await;
}

#[tokio::test]
async fn a_listener_change_drains_in_flight_rpcs() {
    let f = Fixture::start().await;
    f.set_listener(server_listener(&f.name, f.addr, None));
    let mut old = f.client();
    call_until(&mut old, "served", Result::is_ok).await.unwrap();

    // An RPC in flight on the old connection...
    let served_before = f.backend.served();
    let mut in_flight_client = old.clone();
    let in_flight = tokio::spawn(async move {
        let mut req = tonic::Request::new(SimpleRequest::default());
        req.metadata_mut()
            .insert("rpc-behavior", "sleep-1".parse().unwrap());
        in_flight_client.unary_call(req).await
    });
    let deadline = tokio::time::Instant::now() + CONVERGE;
    while f.backend.served() == served_before {
        assert!(tokio::time::Instant::now() < deadline, "RPC never arrived");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    // ...when a new Listener arrives whose routes refuse everything.
    let mut changed = server_listener(&f.name, f.addr, None);
    let hcm = &mut changed.filter_chains[0];
    hcm.name = "inbound-v2".into();
    hcm.filters[0] = forwarding_hcm_filter();
    f.set_listener(changed);

    // The in-flight RPC completes on the draining connection.
    let r = tokio::time::timeout(CONVERGE, in_flight)
        .await
        .unwrap()
        .unwrap();
    assert!(r.is_ok(), "in-flight RPC failed: {r:?}");
    // New connections (the old channel reconnects after GOAWAY, a new
    // channel connects) get the new Listener.
    let e = call_until(&mut old, "refused by the new listener", |r| {
        r.as_ref()
            .is_err_and(|e| refused_for(e, "non_forwarding_action"))
    })
    .await
    .unwrap_err();
    assert_eq!(e.code(), Code::Unavailable);
    let e = unary(&mut f.client()).await.unwrap_err();
    assert!(refused_for(&e, "non_forwarding_action"), "{e:?}");
    assert_eq!(
        f.modes().len(),
        1,
        "a Listener change is no mode change: {:?}",
        f.modes()
    );
    f.shutdown().await;
}

/// An HCM network filter whose inline routes forward to a cluster (a client
/// route, which a server must refuse).
fn forwarding_hcm_filter() -> listener::Filter {
    use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
    use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3 as hcm;
    let manager = hcm::HttpConnectionManager {
        stat_prefix: "inbound".into(),
        route_specifier: Some(hcm::http_connection_manager::RouteSpecifier::RouteConfig(
            route_config("inbound-v2", &["*"], vec![prefix_route("", "some-cluster")]),
        )),
        http_filters: vec![mesh_core::testing::resources::http_filter(
            "envoy.filters.http.router",
            &Router::default(),
        )],
        ..Default::default()
    };
    listener::Filter {
        name: "envoy.filters.network.http_connection_manager".into(),
        config_type: Some(listener::filter::ConfigType::TypedConfig(any(&manager))),
    }
}

/// One HTTP/1.1 request on a fresh connection; `None` if the server closed
/// the connection without answering.
async fn http1_get(addr: SocketAddr, path: &str) -> Option<String> {
    let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: app.example\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).await.ok()?;
    (!out.is_empty()).then_some(out)
}

#[tokio::test]
async fn serves_an_axum_router_over_http1() {
    let app = axum::Router::new().route("/hello", axum::routing::get(|| async { "hi from axum" }));
    let f = Fixture::start_with(app, TestServiceBackend::new("unused")).await;
    assert_eq!(http1_get(f.addr, "/hello").await, None, "not serving yet");
    f.set_listener(server_listener(&f.name, f.addr, Some("inbound")));
    f.ads.set_resources(rds(), vec![any(&inbound_routes())]);
    let deadline = tokio::time::Instant::now() + CONVERGE;
    let response = loop {
        if let Some(r) = http1_get(f.addr, "/hello").await {
            break r;
        }
        assert!(tokio::time::Instant::now() < deadline, "never served");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.ends_with("hi from axum"), "{response}");

    // Plain HTTP refusals are HTTP statuses, not gRPC trailers.
    let forward = route_config("inbound", &["*"], vec![prefix_route("", "c")]);
    f.ads.set_resources(rds(), vec![any(&forward)]);
    let deadline = tokio::time::Instant::now() + CONVERGE;
    loop {
        let r = http1_get(f.addr, "/hello").await.unwrap_or_default();
        if r.starts_with("HTTP/1.1 503") {
            assert!(r.contains("non_forwarding_action"), "{r}");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "never refused: {r}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    f.shutdown().await;
}

#[tokio::test]
async fn a_bootstrap_without_the_template_is_an_error() {
    let ads = TestAdsServer::start().await;
    let bootstrap = Bootstrap::builder()
        .xds_server(ads.local_addr().to_string())
        .build()
        .unwrap();
    let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let app = axum::Router::new();
    let e = XdsServer::builder()
        .bootstrap(bootstrap)
        .serve(tcp, app)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Bootstrap);
    assert!(
        e.to_string()
            .contains("server_listener_resource_name_template"),
        "{e}"
    );
}

/// Refuses requests carrying `x-deny` (RBAC's slot).
struct DenyHeader;

impl mesh_tonic::server::InboundHook for DenyHeader {
    fn on_request(
        &self,
        request: &http::request::Parts,
        ctx: &mesh_tonic::server::RequestContext<'_>,
    ) -> Result<(), Status> {
        assert_eq!(ctx.filter_chain.name, "inbound-plaintext");
        assert_eq!(ctx.virtual_host.name, "inbound|http|0");
        if request.headers.contains_key("x-deny") {
            return Err(Status::permission_denied("denied by the test hook"));
        }
        Ok(())
    }
}

#[tokio::test]
async fn the_inbound_hook_runs_and_the_connection_info_reaches_the_service() {
    use axum::Extension;
    use mesh_tonic::server::ConnectionInfo;
    let ads = TestAdsServer::start().await;
    let bootstrap = Bootstrap::builder()
        .xds_server(ads.local_addr().to_string())
        .server_listener_resource_name_template(TEMPLATE)
        .build()
        .unwrap();
    let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = tcp.local_addr().unwrap();
    let app = axum::Router::new().route(
        "/who",
        axum::routing::get(|Extension(info): Extension<ConnectionInfo>| async move {
            format!("{} {}", info.filter_chain, info.local_addr)
        }),
    );
    let server = XdsServer::builder()
        .bootstrap(bootstrap)
        .inbound_hook(DenyHeader)
        .serve(tcp, app);
    let _server = tokio::spawn(server);
    let name = TEMPLATE.replace("%s", &addr.to_string());
    ads.set_resources(lds(), vec![any(&server_listener(&name, addr, None))]);
    let deadline = tokio::time::Instant::now() + CONVERGE;
    let response = loop {
        if let Some(r) = http1_get(addr, "/who").await {
            break r;
        }
        assert!(tokio::time::Instant::now() < deadline, "never served");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(
        response.ends_with(&format!("inbound-plaintext {addr}")),
        "{response}"
    );

    // The hook's refusal, as gRPC sees it: Trailers-Only PERMISSION_DENIED.
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = "GET /who HTTP/1.1\r\nHost: a\r\nx-deny: 1\r\n\
               content-type: application/grpc\r\nConnection: close\r\n\r\n";
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    let out = out.to_ascii_lowercase();
    assert!(out.contains("grpc-status: 7\r\n"), "{out}");
    assert!(
        out.contains("grpc-message: denied by the test hook"),
        "{out}"
    );
}
