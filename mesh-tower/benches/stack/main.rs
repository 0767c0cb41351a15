//! The data plane's per-request cost: each layer's and the whole stack's
//! over an in-process, always-ready inner service (so the overhead is not
//! lost in loopback noise), with wall time, CPU time and heap allocations
//! per request (a counting global allocator); a route match over 100
//! routes; and the stack against a bare tonic `Channel` to the same
//! TestServiceBackend over loopback, as a ratio, in the same run.
//!
//! Goals, printed next to the measurements: the full stack with no fault
//! adds under 2 µs per request over the in-process service; it adds a
//! small fixed number of allocations per request; a route match over 100
//! routes takes under 1 µs.

#![allow(unsafe_code)] // The counting allocator only.
#![allow(missing_docs)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http::HeaderMap;
use mesh_core::resource::cluster::Cluster;
use mesh_core::resource::common::Fraction;
use mesh_core::resource::endpoint::ClusterLoadAssignment;
use mesh_core::resource::filter::{FilterConfig, HttpFilter, LocalRateLimit, TokenBucket};
use mesh_core::resource::listener::{Listener, ListenerKind, RouteSource};
use mesh_core::testing::proto::grpc_testing::SimpleRequest;
use mesh_core::testing::proto::grpc_testing::test_service_client::TestServiceClient;
use mesh_core::testing::resources;
use mesh_core::testing::test_service::TestServiceBackend;
use mesh_core::watch::{ClientConfig, ResolvedCluster};
use mesh_tower::BoxError;
use mesh_tower::balance::BalanceLayer;
use mesh_tower::breaker::BreakerLayer;
use mesh_tower::context::{RouteDecision, RoutePolicy};
use mesh_tower::discovery::{Discovery, DiscoveryOptions};
use mesh_tower::fault::FaultLayer;
use mesh_tower::outlier::OutlierLayer;
use mesh_tower::ratelimit::RateLimitLayer;
use mesh_tower::retry::RetryLayer;
use mesh_tower::route::{HostSelection, RandomSource, RouteLayer, RouteTable, Selected};
use mesh_tower::stack::ClientStack;
use mesh_tower::timeout::TimeoutLayer;
use tower::Layer;

struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

mod support;

use support::*;

// ---------------------------------------------------------------------
// Benchmarks.

fn layers(c: &mut Criterion) {
    let rt = current_thread();
    let _guard = rt.enter();
    let cluster = cluster_runtime("c");
    let decision = RouteDecision {
        route: Arc::new(RoutePolicy {
            name: "r".into(),
            ..Default::default()
        }),
        cluster: cluster.clone(),
        hash: None,
    };
    let limited = RouteDecision {
        route: Arc::new(RoutePolicy {
            name: "r".into(),
            rate_limit: Some(big_bucket()),
            ..Default::default()
        }),
        ..decision.clone()
    };
    fn with<S>(decision: &RouteDecision, inner: S) -> Decide<S> {
        Decide {
            decision: decision.clone(),
            inner,
        }
    }
    let config = client_config(routes(1), Vec::new());
    let lookup = |_: &str| Ok::<_, String>(cluster.clone());
    let iters = 200_000;

    println!(
        "\n== per-request cost over an in-process, always-ready service ({iters} requests each)"
    );
    let mut bare = Ready;
    let base = cost(&rt, &mut bare, iters);
    print_cost("inner alone (request + response)", base, None, "");
    let mut decided = with(&decision, Ready);
    let with_decision = cost(&rt, &mut decided, iters);
    print_cost(
        "+ hand-inserted RouteDecision",
        with_decision,
        Some(base),
        "",
    );

    let route_layer = RouteLayer::client().with_rng(RandomSource::seeded(1));
    route_layer.routes().update(&config, &lookup);
    let mut route = route_layer.layer(Ready);
    print_cost(
        "route (1 route)",
        cost(&rt, &mut route, iters),
        Some(base),
        "",
    );

    let mut timeout = with(&decision, TimeoutLayer::new().layer(Ready));
    print_cost(
        "timeout",
        cost(&rt, &mut timeout, iters),
        Some(with_decision),
        "",
    );
    let mut fault = with(&decision, FaultLayer::new().layer(Ready));
    print_cost(
        "fault (none configured)",
        cost(&rt, &mut fault, iters),
        Some(with_decision),
        "",
    );
    let mut rl = Decide {
        decision: limited.clone(),
        inner: RateLimitLayer::new().layer(Ready),
    };
    print_cost(
        "ratelimit (token bucket)",
        cost(&rt, &mut rl, iters),
        Some(with_decision),
        "",
    );
    let mut retry = with(&decision, RetryLayer::new().seed(1).layer(Ready));
    print_cost(
        "retry (no policy)",
        cost(&rt, &mut retry, iters),
        Some(with_decision),
        "",
    );
    let mut breaker = with(&decision, BreakerLayer::new().layer(Ready));
    print_cost(
        "breaker",
        cost(&rt, &mut breaker, iters),
        Some(with_decision),
        "",
    );
    let mut balance = with(
        &decision,
        BalanceLayer.layer(OutlierLayer::new().layer(Ready)),
    );
    print_cost(
        "balance + outlier",
        cost(&rt, &mut balance, iters),
        Some(with_decision),
        "",
    );

    let stack = ClientStack::builder().seed(1).build_manual();
    stack.routes().update(&config, &lookup);
    let mut full = stack.layer_over(Ready);
    let full_cost = cost(&rt, &mut full, iters);
    print_cost(
        "FULL STACK (no fault)",
        full_cost,
        Some(base),
        "goal: added < 2000 ns; allocations: a small fixed number",
    );
    let limit_filter = HttpFilter {
        name: "rl".into(),
        config: FilterConfig::LocalRateLimit(LocalRateLimit {
            stat_prefix: "rl".into(),
            token_bucket: Some(TokenBucket {
                max_tokens: u32::MAX,
                tokens_per_fill: u32::MAX,
                fill_interval: Duration::from_millis(1),
            }),
            filter_enabled: Fraction::ALWAYS,
            filter_enforced: Fraction::ALWAYS,
            status: 429,
            rate_limited_as_resource_exhausted: false,
        }),
        disabled: false,
    };
    let rl_stack = ClientStack::builder().seed(1).build_manual();
    rl_stack
        .routes()
        .update(&client_config(routes(1), vec![limit_filter]), &lookup);
    let mut full_rl = rl_stack.layer_over(Ready);
    print_cost(
        "full stack + local rate limit",
        cost(&rt, &mut full_rl, iters),
        Some(base),
        "",
    );

    let mut group = c.benchmark_group("layer");
    macro_rules! bench {
        ($name:expr, $svc:expr) => {
            group.bench_function($name, |b| b.iter_custom(|n| run(&rt, &mut $svc, n)));
        };
    }
    bench!("inner_alone", bare);
    bench!("inner_with_decision", decided);
    bench!("route", route);
    bench!("timeout", timeout);
    bench!("fault_none", fault);
    bench!("ratelimit", rl);
    bench!("retry", retry);
    bench!("breaker", breaker);
    bench!("balance_outlier", balance);
    bench!("full_stack", full);
    group.finish();
}

fn route_match(c: &mut Criterion) {
    let cluster = cluster_runtime("c");
    let lookup = |_: &str| Ok::<_, String>(cluster.clone());
    let table = RouteTable::compile(
        &client_config(routes(100), Vec::new()),
        HostSelection::PerChannel,
        &lookup,
        None,
    );
    let headers = HeaderMap::new();
    let rng = RandomSource::Thread;
    let select = |path: &str| match table.select(None, path, &headers, &rng, 0) {
        Ok(Selected::Forward(d)) => d,
        _ => panic!("routed"),
    };
    let iters = 200_000u32;
    let (t0, a0) = (Instant::now(), ALLOCS.load(Ordering::Relaxed));
    for _ in 0..iters {
        black_box(select(black_box(PATH)));
    }
    let per = t0.elapsed().as_nanos() as f64 / f64::from(iters);
    let allocs = (ALLOCS.load(Ordering::Relaxed) - a0) as f64 / f64::from(iters);
    println!(
        "\n== route match over 100 prefix routes, the last one matching: {per:.0} ns, {allocs:.2} allocs per match   goal: < 1000 ns"
    );
    c.bench_function("route_match_100_routes_last", |b| {
        b.iter(|| select(black_box(PATH)))
    });
    c.bench_function("route_match_100_routes_first", |b| {
        b.iter(|| select(black_box("/svc0.S/M")))
    });
}

/// The stack against a bare tonic `Channel`, both to one in-process
/// TestServiceBackend over loopback.
fn loopback(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (mut bare, mut meshed, _backend) = rt.block_on(async {
        let backend = TestServiceBackend::new("bench").serve().await.unwrap();
        let addr = backend.local_addr();
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let bare = TestServiceClient::new(channel);
        let listener = Listener::try_from(resources::client_listener_inline(
            TARGET,
            resources::route_config("routes", &[TARGET], vec![resources::prefix_route("/", "c")]),
        ))
        .unwrap();
        let route_config = match &listener.kind {
            ListenerKind::Client(hcm) => match &hcm.route {
                RouteSource::Inline(rc) => rc.clone(),
                RouteSource::Rds(_) => unreachable!(),
            },
            ListenerKind::Server(_) => unreachable!(),
        };
        let cluster = Cluster::try_from(resources::eds_cluster("c", "")).unwrap();
        let endpoints =
            ClusterLoadAssignment::try_from(resources::endpoints("c", &[addr])).unwrap();
        let config = ClientConfig {
            target: TARGET.into(),
            listener: Arc::new(listener),
            route_config,
            virtual_host_index: 0,
            clusters: BTreeMap::from([(
                "c".to_owned(),
                Ok(ResolvedCluster {
                    cluster: Arc::new(cluster),
                    endpoints: Arc::new(endpoints),
                }),
            )]),
        };
        let discovery = Discovery::from_static(config, DiscoveryOptions::default()).await;
        let stack = ClientStack::new(discovery);
        let meshed = TestServiceClient::with_origin(
            stack.service(),
            format!("http://{TARGET}").parse().unwrap(),
        );
        (bare, meshed, backend)
    });

    async fn calls<T>(client: &mut TestServiceClient<T>, n: u64) -> Duration
    where
        T: tonic::client::GrpcService<tonic::body::Body>,
        T::Error: Into<BoxError>,
        T::ResponseBody: http_body::Body<Data = Bytes> + Send + 'static,
        <T::ResponseBody as http_body::Body>::Error: Into<BoxError> + Send,
    {
        let start = Instant::now();
        for _ in 0..n {
            let req = SimpleRequest {
                payload: None,
                ..Default::default()
            };
            client.unary_call(req).await.unwrap();
        }
        start.elapsed()
    }

    // Three alternating rounds; medians.
    let n = 3_000;
    let mut rounds: Vec<(f64, f64, f64, f64)> = Vec::new();
    rt.block_on(calls(&mut bare, 500));
    rt.block_on(calls(&mut meshed, 500));
    for _ in 0..3 {
        let cpu0 = process_cpu();
        let bare_wall = rt.block_on(calls(&mut bare, n));
        let cpu1 = process_cpu();
        let mesh_wall = rt.block_on(calls(&mut meshed, n));
        let cpu2 = process_cpu();
        rounds.push((
            bare_wall.as_nanos() as f64 / n as f64,
            (cpu1 - cpu0).as_nanos() as f64 / n as f64,
            mesh_wall.as_nanos() as f64 / n as f64,
            (cpu2 - cpu1).as_nanos() as f64 / n as f64,
        ));
    }
    let median = |f: fn(&(f64, f64, f64, f64)) -> f64| {
        let mut v: Vec<f64> = rounds.iter().map(f).collect();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (bw, bc, mw, mc) = (
        median(|r| r.0),
        median(|r| r.1),
        median(|r| r.2),
        median(|r| r.3),
    );
    println!(
        "\n== loopback unary RPCs, 1 in flight, {n} per round, median of 3 (CPU: whole process, backend included)"
    );
    println!(
        "bare tonic Channel: {:>8.1} µs/RPC wall {:>8.1} µs/RPC cpu",
        bw / 1e3,
        bc / 1e3
    );
    println!(
        "mesh ClientStack:   {:>8.1} µs/RPC wall {:>8.1} µs/RPC cpu",
        mw / 1e3,
        mc / 1e3
    );
    println!(
        "ratio stack/bare:   {:>8.3} wall         {:>8.3} cpu   (throughput ratio {:.3})",
        mw / bw,
        mc / bc,
        bw / mw
    );

    let mut group = c.benchmark_group("loopback_unary");
    group.bench_function("bare_channel", |b| {
        b.iter_custom(|iters| rt.block_on(calls(&mut bare, iters)))
    });
    group.bench_function("mesh_stack", |b| {
        b.iter_custom(|iters| rt.block_on(calls(&mut meshed, iters)))
    });
    group.finish();
}

fn main_benches(c: &mut Criterion) {
    route_match(c);
    layers(c);
    loopback(c);
}

criterion_group!(benches, main_benches);
criterion_main!(benches);
