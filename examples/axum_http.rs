//! axum apps on the mesh: a frontend calls two HTTP services through
//! `mesh_tonic::http::Client`, which routes each request by its host.
//!
//! ```sh
//! cargo run --example axum-http [-- --fast]
//! ```
//!
//! - `catalog.default.svc.cluster.local:8080`: two versions; requests from
//!   the user `tester` (header `x-user`) go to v2, the rest split 80/20.
//! - `reviews.default.svc.cluster.local:9080`: one workload; later a fault
//!   aborts half its requests, and the frontend degrades gracefully.
//!
//! The frontend is a plain axum app serving HTTP/1.1 to its callers. Its
//! outgoing requests go through the mesh client, which speaks HTTP/2
//! (h2c) to the upstream axum apps (served with hyper-util's auto
//! builder, which accepts both). The mesh client picks each request's
//! route by its host, exactly as an `xds:///host:port` channel would.

#[path = "common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::get;
use common::{BoxError, Options, note, section};
use http_body_util::BodyExt;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use mesh_control::server::{ControlPlane, RunningControlPlane};
use tokio::net::{TcpListener, TcpStream};

const CATALOG: &str = "catalog.default.svc.cluster.local:8080";
const REVIEWS: &str = "reviews.default.svc.cluster.local:9080";

/// Serves `router` on loopback (HTTP/1.1 and h2c) in the background.
async fn serve(router: Router) -> Result<SocketAddr, BoxError> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
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
    Ok(addr)
}

/// The frontend: one page built from two upstream calls.
async fn page(State(mesh): State<mesh_tonic::http::Client>, headers: HeaderMap) -> String {
    let mut req = http::Request::get(format!("http://{CATALOG}/item"));
    if let Some(user) = headers.get("x-user") {
        req = req.header("x-user", user);
    }
    let catalog = text(mesh.request(req.body(String::new()).unwrap()).await).await;
    let req = http::Request::get(format!("http://{REVIEWS}/reviews"));
    let resp = mesh.request(req.body(String::new()).unwrap()).await;
    let reviews = if resp.status().is_success() {
        text(resp).await
    } else {
        // What the mesh says when it fails a request: status and reason.
        let why = resp
            .headers()
            .get(mesh_tonic::http::MESH_ERROR_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        format!("(reviews unavailable: {} {why})", resp.status().as_u16())
    };
    format!("{catalog} | {reviews}")
}

async fn text(resp: http::Response<mesh_tonic::http::Body>) -> String {
    match resp.into_body().collect().await {
        Ok(b) => String::from_utf8_lossy(&b.to_bytes()).into_owned(),
        Err(e) => format!("(body error: {e})"),
    }
}

/// GET `path` from the frontend over HTTP/1.1, as a browser would.
async fn get_page(frontend: SocketAddr, user: Option<&str>) -> Result<String, BoxError> {
    let io = TokioIo::new(TcpStream::connect(frontend).await?);
    let (mut send, conn) = hyper::client::conn::http1::handshake(io).await?;
    tokio::spawn(conn);
    let mut req = http::Request::get("/page").header("host", "frontend");
    if let Some(u) = user {
        req = req.header("x-user", u);
    }
    let resp = send.send_request(req.body(String::new())?).await?;
    Ok(String::from_utf8(
        resp.into_body().collect().await?.to_bytes().to_vec(),
    )?)
}

fn service(name: &str, port: u16, workloads: &[(&str, SocketAddr)]) -> String {
    let mut y = format!(
        "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: {name}, namespace: default}}
spec:
  hosts: [{name}.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{{number: {port}, name: http, protocol: HTTP}}]
  workloadSelector: {{labels: {{app: {name}}}}}
"
    );
    for (version, addr) in workloads {
        y += &format!(
            "---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: {name}-{version}, namespace: default}}
spec:
  address: 127.0.0.1
  ports: {{http: {}}}
  labels: {{app: {name}, version: {version}}}
",
            addr.port()
        );
    }
    y
}

/// The whole config; `reviews_fault` adds a fault to reviews' routes.
fn config(catalog: &[(&str, SocketAddr)], reviews: SocketAddr, reviews_fault: bool) -> String {
    let mut y = service("catalog", 8080, catalog);
    y += "---\n";
    y += &service("reviews", 9080, &[("v1", reviews)]);
    y += "---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: catalog, namespace: default}
spec:
  host: catalog.default.svc.cluster.local
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: catalog, namespace: default}
spec:
  hosts: [catalog.default.svc.cluster.local]
  http:
  - match: [{headers: {x-user: {exact: tester}}}]
    route: [{destination: {host: catalog.default.svc.cluster.local, subset: v2}}]
  - route:
    - {destination: {host: catalog.default.svc.cluster.local, subset: v1}, weight: 80}
    - {destination: {host: catalog.default.svc.cluster.local, subset: v2}, weight: 20}
";
    if reviews_fault {
        y += "---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews.default.svc.cluster.local]
  http:
  - fault: {abort: {percentage: {value: 50}, httpStatus: 503}}
    route: [{destination: {host: reviews.default.svc.cluster.local}}]
";
    }
    y
}

/// Requests `n` pages; counts of each distinct page.
async fn tally(
    frontend: SocketAddr,
    n: usize,
    user: Option<&str>,
) -> Result<BTreeMap<String, usize>, BoxError> {
    let mut seen = BTreeMap::new();
    for _ in 0..n {
        *seen.entry(get_page(frontend, user).await?).or_default() += 1;
    }
    Ok(seen)
}

fn print(seen: &BTreeMap<String, usize>) {
    let total: usize = seen.values().sum();
    for (page, n) in seen {
        println!(
            "   {n:>4} ({:>5.1}%)  {page}",
            *n as f64 * 100.0 / total.max(1) as f64
        );
    }
}

/// Applies `yaml` and waits until a client ACKs the new version (only the
/// hosts whose config changed get it).
async fn apply(cp: &RunningControlPlane, yaml: &str) -> Result<(), BoxError> {
    cp.apply_yaml(yaml)?;
    let want = cp.snapshot().version.to_string();
    for _ in 0..1000 {
        let done = cp
            .clients()
            .iter()
            .any(|c| c.connected && c.acked.values().any(|v| *v == want));
        if done {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let opts = Options::from_env();
    let n = opts.pick(100, 30);

    println!("mesh axum-http: an axum frontend calling HTTP services through the mesh");
    let v1 =
        serve(Router::new().route("/item", get(|| async { "catalog v1: Teapot, 12 EUR" }))).await?;
    let v2 = serve(Router::new().route(
        "/item",
        get(|| async { "catalog v2: Teapot, 12 EUR, free shipping" }),
    ))
    .await?;
    let reviews =
        serve(Router::new().route("/reviews", get(|| async { "reviews: 4.5/5" }))).await?;
    let catalog = [("v1", v1), ("v2", v2)];

    let cp = ControlPlane::builder()
        .listen("127.0.0.1:0".parse()?)
        .config_yaml(config(&catalog, reviews, false))
        .start()
        .await?;
    let client = mesh_tonic::http::Client::builder()
        .bootstrap(
            cp.client_bootstrap("sidecar~127.0.0.1~frontend.default~default.svc.cluster.local"),
        )
        // How long the first request to a new host may wait for its
        // config (20 s by default).
        .config_timeout(opts.pick(Duration::from_secs(2), Duration::from_millis(500)))
        .build()?;
    let frontend = serve(
        Router::new()
            .route("/page", get(page))
            .with_state(client.clone()),
    )
    .await?;

    println!("   control plane  mesh-control on {}", cp.local_addr());
    println!("   catalog        v1 on {v1}, v2 on {v2}   ({CATALOG})");
    println!("   reviews        on {reviews}   ({REVIEWS})");
    println!("   frontend       axum on {frontend}, calling both with mesh_tonic::http::Client");

    section("1. Per-request host routing, catalog split 80/20");
    note(&format!("the frontend requests http://{CATALOG}/item"));
    note(&format!(
        "and http://{REVIEWS}/reviews: each host has its own"
    ));
    note("routes, resolved on its first request");
    print(&tally(frontend, n, None).await?);

    section("2. Header-based routing: x-user: tester always gets catalog v2");
    print(&tally(frontend, opts.pick(20, 10), Some("tester")).await?);

    section("3. A fault on reviews: 50% aborted with 503; the page degrades");
    note("VirtualService reviews: fault: {abort: {percentage: {value: 50}, httpStatus: 503}}");
    apply(&cp, &config(&catalog, reviews, true)).await?;
    print(&tally(frontend, n, Some("tester")).await?);

    section("4. A host the mesh does not know");
    let resp = client
        .request(
            http::Request::get("http://unknown.default.svc.cluster.local:80/")
                .body(String::new())?,
        )
        .await;
    println!(
        "   GET http://unknown.default.svc.cluster.local:80/ → {}",
        resp.status()
    );
    println!("   {}", text(resp).await);

    section("Done");
    Ok(())
}
