//! HTTP/1.1 upstreams through `mesh_tonic::http::Client`: an axum app
//! calls HTTP/1.1-only hyper servers (h2c to them would fail) and an
//! HTTP/2-only one, each cluster's version coming from its protocol
//! options, with per-request Host routing, a weighted split and a retry on
//! 503 applied as for gRPC.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::routing::get;
use envoy_types::pb::envoy::config::cluster::v3 as cluster;
use envoy_types::pb::envoy::config::route::v3 as route;
use envoy_types::pb::envoy::extensions::upstreams::http::v3 as upstream;
use envoy_types::pb::google::protobuf::UInt32Value;
use http_body_util::BodyExt;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use mesh_core::bootstrap::Bootstrap;
use mesh_core::resource::ResourceType;
use mesh_core::resource::cluster::HTTP_PROTOCOL_OPTIONS;
use mesh_core::testing::ads_server::TestAdsServer;
use mesh_core::testing::resources::{
    any, client_listener, eds_cluster, endpoints, prefix_route, route_config, type_url,
    weighted_route,
};
use tokio::net::TcpListener;
use tower::ServiceExt;

/// Serves `app` on loopback speaking only `version` (1 or 2).
async fn serve(app: Router, version: u8) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((io, _)) = listener.accept().await {
            let svc = TowerToHyperService::new(app.clone());
            let io = TokioIo::new(io);
            if version == 1 {
                tokio::spawn(hyper::server::conn::http1::Builder::new().serve_connection(io, svc));
            } else {
                let b = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
                tokio::spawn(async move { b.serve_connection(io, svc).await });
            }
        }
    });
    addr
}

/// A backend answering `/item` with its name and the HTTP version it saw.
fn named(name: &'static str) -> Router {
    Router::new().route(
        "/item",
        get(move |v: http::Version| async move { format!("{name} {v:?}") }),
    )
}

/// Fails every other request with 503 (the first, third, ...).
fn flaky(hits: Arc<AtomicUsize>) -> Router {
    Router::new().route(
        "/item",
        get(move || async move {
            if hits.fetch_add(1, Ordering::SeqCst).is_multiple_of(2) {
                (http::StatusCode::SERVICE_UNAVAILABLE, "try again")
            } else {
                (http::StatusCode::OK, "flaky ok")
            }
        }),
    )
}

fn with_protocol(mut c: cluster::Cluster, http2: bool) -> cluster::Cluster {
    use upstream::http_protocol_options::explicit_http_config::ProtocolConfig;
    use upstream::http_protocol_options::{ExplicitHttpConfig, UpstreamProtocolOptions};
    let config = if http2 {
        ProtocolConfig::Http2ProtocolOptions(Default::default())
    } else {
        ProtocolConfig::HttpProtocolOptions(Default::default())
    };
    let options = upstream::HttpProtocolOptions {
        upstream_protocol_options: Some(UpstreamProtocolOptions::ExplicitHttpConfig(
            ExplicitHttpConfig {
                protocol_config: Some(config),
            },
        )),
        ..Default::default()
    };
    c.typed_extension_protocol_options
        .insert(HTTP_PROTOCOL_OPTIONS.into(), any(&options));
    c
}

fn retry_on_503(mut r: route::Route) -> route::Route {
    if let Some(route::route::Action::Route(a)) = &mut r.action {
        a.retry_policy = Some(route::RetryPolicy {
            retry_on: "retriable-status-codes".into(),
            retriable_status_codes: vec![503],
            num_retries: Some(UInt32Value { value: 2 }),
            ..Default::default()
        });
    }
    r
}

/// The frontend: `/call/{host}` fetches `/item` from `host` through the
/// mesh, naming it only in the `Host` header.
fn frontend(mesh: mesh_tonic::http::Client) -> Router {
    async fn call(
        State(mesh): State<mesh_tonic::http::Client>,
        Path(host): Path<String>,
    ) -> String {
        let req = http::Request::get("/item")
            .header("host", host)
            .body(axum::body::Body::empty())
            .unwrap();
        let resp = mesh.request(req).await;
        let status = resp.status();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        format!("{} {}", status.as_u16(), String::from_utf8_lossy(&body))
    }
    Router::new()
        .route("/call/{host}", get(call))
        .with_state(mesh)
}

async fn get_via(app: &Router, host: &str) -> String {
    let req = http::Request::get(format!("/call/{host}"))
        .body(axum::body::Body::empty())
        .unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(15), app.clone().oneshot(req))
        .await
        .expect("answers")
        .unwrap();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(body.to_vec()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_axum_app_calls_http1_only_services_through_the_mesh() {
    let v1 = serve(named("v1"), 1).await;
    let v2 = serve(named("v2"), 1).await;
    let hits = Arc::new(AtomicUsize::new(0));
    let flaky_addr = serve(flaky(Arc::clone(&hits)), 1).await;
    let h2 = serve(named("h2"), 2).await;

    let ads = TestAdsServer::start().await;
    let hosts = ["shop.test:80", "flaky.test:80", "fast.test:80"];
    let mut listeners = Vec::new();
    let mut routes = Vec::new();
    for (host, r) in hosts.iter().zip([
        weighted_route(&[("shop-v1", 1), ("shop-v2", 1)]),
        retry_on_503(prefix_route("", "flaky")),
        prefix_route("", "fast"),
    ]) {
        let rc = format!("routes-{host}");
        listeners.push(any(&client_listener(host, &rc)));
        routes.push(any(&route_config(&rc, &[host], vec![r])));
    }
    // shop-v1 says nothing (HTTP/1.1, Envoy's default), shop-v2 and flaky
    // say HTTP/1.1, fast says HTTP/2.
    let clusters = vec![
        any(&eds_cluster("shop-v1", "")),
        any(&with_protocol(eds_cluster("shop-v2", ""), false)),
        any(&with_protocol(eds_cluster("flaky", ""), false)),
        any(&with_protocol(eds_cluster("fast", ""), true)),
    ];
    let assignments = vec![
        any(&endpoints("shop-v1", &[v1])),
        any(&endpoints("shop-v2", &[v2])),
        any(&endpoints("flaky", &[flaky_addr])),
        any(&endpoints("fast", &[h2])),
    ];
    ads.set_resources(type_url(ResourceType::Listener), listeners);
    ads.set_resources(type_url(ResourceType::RouteConfiguration), routes);
    ads.set_resources(type_url(ResourceType::Cluster), clusters);
    ads.set_resources(type_url(ResourceType::ClusterLoadAssignment), assignments);
    let bootstrap = Bootstrap::builder()
        .xds_server(ads.local_addr().to_string())
        .node_id("mesh-tonic-http1-it")
        .build()
        .unwrap();
    let mesh = mesh_tonic::http::Client::builder()
        .bootstrap(bootstrap)
        .config_timeout(Duration::from_secs(15))
        .seed(7)
        .build()
        .unwrap();
    let app = frontend(mesh);

    // The weighted split reaches both HTTP/1.1-only versions.
    let mut v1_seen = 0;
    let mut v2_seen = 0;
    for _ in 0..40 {
        match get_via(&app, "shop.test:80").await.as_str() {
            "200 v1 HTTP/1.1" => v1_seen += 1,
            "200 v2 HTTP/1.1" => v2_seen += 1,
            other => panic!("unexpected answer {other:?}"),
        }
    }
    assert!(v1_seen >= 5 && v2_seen >= 5, "v1 {v1_seen}, v2 {v2_seen}");

    // Every first attempt gets a 503; the route's retry hides it.
    for _ in 0..5 {
        assert_eq!(get_via(&app, "flaky.test:80").await, "200 flaky ok");
    }
    assert_eq!(hits.load(Ordering::SeqCst), 10, "one retry per request");

    // An HTTP/2 cluster side by side.
    assert_eq!(get_via(&app, "fast.test:80").await, "200 h2 HTTP/2.0");
}
