//! Fixtures of the stack bench: validated configs and cluster runtimes
//! built directly, the in-process always-ready service, and the loops that
//! measure wall time, CPU time and allocations per request.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Empty};
use mesh_core::resource::cluster::{Cluster, LbPolicy};
use mesh_core::resource::endpoint::{Endpoint, HealthStatus};
use mesh_core::resource::filter::{FilterConfig, HttpFilter, TokenBucket};
use mesh_core::resource::listener::{HttpConnectionManager, Listener, ListenerKind, RouteSource};
use mesh_core::resource::route::{
    ClusterTarget, ForwardAction, Route, RouteAction, RouteConfig, RouteMatch, VirtualHost,
};
use mesh_core::testing::resources;
use mesh_core::watch::ClientConfig;
use mesh_tower::BoxError;
use mesh_tower::balance::Balancer;
use mesh_tower::breaker::Breaker;
use mesh_tower::cluster::{ClusterRuntime, EndpointHandle};
use mesh_tower::context::RouteDecision;
use mesh_tower::endpoint::{ConnectionSettings, ConnectivityState};
use mesh_tower::ratelimit;
use tower::{Service, ServiceExt};

use super::ALLOCS;

pub const TARGET: &str = "echo.test:7070";
pub const PATH: &str = "/grpc.testing.TestService/UnaryCall";

/// CPU time of the calling thread (Linux `schedstat`, ns); zero elsewhere.
pub fn thread_cpu() -> Duration {
    read_schedstat("/proc/thread-self/schedstat")
}

/// CPU time of the whole process: every thread (client, runtime workers,
/// the in-process backend).
pub fn process_cpu() -> Duration {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return Duration::ZERO;
    };
    dir.flatten()
        .map(|t| read_schedstat(&format!("{}/schedstat", t.path().display())))
        .sum()
}

pub fn read_schedstat(path: &str) -> Duration {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .map_or(Duration::ZERO, Duration::from_nanos)
}

/// Per-request wall time, CPU time and allocations of a loop.
#[derive(Clone, Copy)]
pub struct Cost {
    pub wall_ns: f64,
    pub cpu_ns: f64,
    pub allocs: f64,
}

impl Cost {
    fn over(self, base: Cost) -> Cost {
        Cost {
            wall_ns: self.wall_ns - base.wall_ns,
            cpu_ns: self.cpu_ns - base.cpu_ns,
            allocs: self.allocs - base.allocs,
        }
    }
}

// ---------------------------------------------------------------------
// Config and runtimes built directly from validated types.

pub fn endpoint_handle(addr: SocketAddr) -> Arc<EndpointHandle> {
    let e = Endpoint {
        address: addr,
        additional_addresses: Vec::new(),
        health: HealthStatus::Healthy,
        weight: 1,
        hostname: String::new(),
        metadata: Default::default(),
    };
    let h = Arc::new(EndpointHandle::new(
        e,
        Arc::new(ConnectionSettings::default()),
    ));
    h.connection.set_state(ConnectivityState::Ready);
    h
}

pub fn cluster_runtime(name: &str) -> Arc<ClusterRuntime> {
    let config =
        Arc::new(Cluster::try_from(resources::eds_cluster(name, "")).expect("valid cluster"));
    let balancer = Balancer::new(name).with_seed(1);
    balancer.update_flat(
        LbPolicy::RoundRobin,
        vec![endpoint_handle(SocketAddr::from(([10, 0, 0, 1], 8080)))],
    );
    Arc::new(ClusterRuntime {
        name: name.into(),
        breaker: Breaker::shared(name, name, &config.circuit_breakers),
        config,
        balancer: Arc::new(balancer),
    })
}

pub fn forward(cluster: &str) -> RouteAction {
    RouteAction::Forward(ForwardAction {
        cluster: ClusterTarget::Cluster(cluster.into()),
        hash_policy: Vec::new(),
        retry_policy: None,
        max_stream_duration: None,
        grpc_timeout_header_max: None,
        timeout: None,
    })
}

/// `n` prefix routes `/svc<i>.S/` then one for the benchmarked path.
pub fn routes(n: usize) -> Vec<Route> {
    let route = |name: String, prefix: &str| Route {
        name,
        matcher: RouteMatch::prefix(prefix),
        action: forward("c"),
        typed_per_filter_config: BTreeMap::new(),
    };
    let mut v: Vec<Route> = (0..n.saturating_sub(1))
        .map(|i| route(format!("r{i}"), &format!("/svc{i}.S/")))
        .collect();
    v.push(route("last".into(), "/grpc.testing.TestService/"));
    v
}

pub fn client_config(routes: Vec<Route>, filters: Vec<HttpFilter>) -> Arc<ClientConfig> {
    let mut http_filters = filters;
    http_filters.push(HttpFilter {
        name: "router".into(),
        config: FilterConfig::Router,
        disabled: false,
    });
    let vhost = VirtualHost {
        name: "vh".into(),
        domains: vec![TARGET.into()],
        routes,
        retry_policy: None,
        typed_per_filter_config: BTreeMap::new(),
    };
    let route_config = Arc::new(RouteConfig::new("routes", vec![vhost]));
    Arc::new(ClientConfig {
        target: TARGET.into(),
        listener: Arc::new(Listener {
            name: TARGET.into(),
            kind: ListenerKind::Client(HttpConnectionManager {
                route: RouteSource::Inline(route_config.clone()),
                http_filters,
                max_stream_duration: None,
            }),
        }),
        route_config,
        virtual_host_index: 0,
        clusters: BTreeMap::new(),
    })
}

// ---------------------------------------------------------------------
// The in-process inner service and the request loop.

/// Always ready; answers a Trailers-Only OK at once.
#[derive(Clone, Copy)]
pub struct Ready;

impl<B> Service<Request<B>> for Ready {
    type Response = Response<Empty<Bytes>>;
    type Error = BoxError;
    type Future = std::future::Ready<Result<Self::Response, BoxError>>;
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }
    fn call(&mut self, _req: Request<B>) -> Self::Future {
        let mut resp = Response::new(Empty::new());
        let h = resp.headers_mut();
        h.insert(
            "content-type",
            http::HeaderValue::from_static("application/grpc"),
        );
        h.insert("grpc-status", http::HeaderValue::from_static("0"));
        std::future::ready(Ok(resp))
    }
}

pub fn request() -> Request<tonic::body::Body> {
    let mut req = Request::new(tonic::body::Body::empty());
    *req.uri_mut() =
        http::Uri::from_static("http://echo.test:7070/grpc.testing.TestService/UnaryCall");
    let h = req.headers_mut();
    h.insert(
        "content-type",
        http::HeaderValue::from_static("application/grpc"),
    );
    h.insert("te", http::HeaderValue::from_static("trailers"));
    req
}

/// Inserts a fixed decision (what the route layer does) for layers
/// measured without it.
#[derive(Clone)]
pub struct Decide<S> {
    pub decision: RouteDecision,
    pub inner: S,
}

impl<S: Service<Request<B>>, B> Service<Request<B>> for Decide<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }
    fn call(&mut self, mut req: Request<B>) -> S::Future {
        req.extensions_mut().insert(self.decision.clone());
        self.inner.call(req)
    }
}

/// One request through `svc`, its response body read to the end.
pub async fn one<S, RB>(svc: &mut S)
where
    S: Service<Request<tonic::body::Body>, Response = Response<RB>>,
    S::Error: std::fmt::Debug,
    RB: http_body::Body,
    RB::Error: std::fmt::Debug,
{
    let resp = svc.ready().await.unwrap().call(request()).await.unwrap();
    let mut body = std::pin::pin!(resp.into_body());
    while let Some(frame) = body.as_mut().frame().await {
        black_box(frame.unwrap());
    }
}

/// Runs `iters` requests on a current-thread runtime; returns the time.
pub fn run<S, RB>(rt: &tokio::runtime::Runtime, svc: &mut S, iters: u64) -> Duration
where
    S: Service<Request<tonic::body::Body>, Response = Response<RB>>,
    S::Error: std::fmt::Debug,
    RB: http_body::Body,
    RB::Error: std::fmt::Debug,
{
    rt.block_on(async {
        let start = Instant::now();
        for _ in 0..iters {
            one(svc).await;
        }
        start.elapsed()
    })
}

pub fn cost<S, RB>(rt: &tokio::runtime::Runtime, svc: &mut S, iters: u64) -> Cost
where
    S: Service<Request<tonic::body::Body>, Response = Response<RB>>,
    S::Error: std::fmt::Debug,
    RB: http_body::Body,
    RB::Error: std::fmt::Debug,
{
    run(rt, svc, 1_000); // warm up
    let (cpu0, allocs0) = (thread_cpu(), ALLOCS.load(Ordering::Relaxed));
    let wall = run(rt, svc, iters);
    let (cpu1, allocs1) = (thread_cpu(), ALLOCS.load(Ordering::Relaxed));
    Cost {
        wall_ns: wall.as_nanos() as f64 / iters as f64,
        cpu_ns: (cpu1 - cpu0).as_nanos() as f64 / iters as f64,
        allocs: (allocs1 - allocs0) as f64 / iters as f64,
    }
}

pub fn print_cost(name: &str, c: Cost, base: Option<Cost>, goal: &str) {
    match base {
        Some(b) => {
            let d = c.over(b);
            println!(
                "{name:<34} {:>8.0} ns wall {:>8.0} ns cpu {:>6.2} allocs/req | added: {:>7.0} ns wall {:>7.0} ns cpu {:>+6.2} allocs  {goal}",
                c.wall_ns, c.cpu_ns, c.allocs, d.wall_ns, d.cpu_ns, d.allocs
            );
        }
        None => println!(
            "{name:<34} {:>8.0} ns wall {:>8.0} ns cpu {:>6.2} allocs/req  {goal}",
            c.wall_ns, c.cpu_ns, c.allocs
        ),
    }
}

pub fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

pub fn big_bucket() -> Arc<ratelimit::TokenBucket> {
    Arc::new(ratelimit::TokenBucket::from_bucket(TokenBucket {
        max_tokens: u32::MAX,
        tokens_per_fill: u32::MAX,
        fill_interval: Duration::from_millis(1),
    }))
}
