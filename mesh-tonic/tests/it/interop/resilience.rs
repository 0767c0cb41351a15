//! circuit_breaking, timeout, fault_injection, retry and
//! outlier_detection.

use std::collections::HashMap;
use std::time::Duration;

use envoy_types::pb::envoy::config::cluster::v3 as cluster;
use envoy_types::pb::envoy::config::core::v3::RoutingPriority;
use envoy_types::pb::envoy::config::route::v3 as rt;
use envoy_types::pb::envoy::extensions::filters::common::fault::v3::{FaultDelay, fault_delay};
use envoy_types::pb::envoy::extensions::filters::http::fault::v3::{
    FaultAbort, HttpFault, fault_abort,
};
use envoy_types::pb::envoy::r#type::v3::{FractionalPercent, fractional_percent};
use envoy_types::pb::google::protobuf::{Duration as PbDuration, UInt32Value};
use mesh_core::testing::proto::grpc_testing::load_balancer_accumulated_stats_response::MethodStats;
use mesh_core::testing::resources::any;
use mesh_tonic::interop_client::RpcType;
use tonic::Code;

use super::{
    Backends, Client, Xds, cla, completed, converge, count, delta, eds_cluster, match_all,
    match_path, method_stats, route, to_cluster,
};

const UNARY: &str = "/grpc.testing.TestService/UnaryCall";
const EMPTY: &str = "/grpc.testing.TestService/EmptyCall";

fn secs(s: i64) -> PbDuration {
    PbDuration {
        seconds: s,
        nanos: 0,
    }
}

fn millis(ms: i32) -> PbDuration {
    PbDuration {
        seconds: 0,
        nanos: ms * 1_000_000,
    }
}

/// What `rpc` did during `span` (accumulated stats before and after).
async fn window(client: &Client, rpc: RpcType, span: Duration) -> MethodStats {
    let before = method_stats(&client.accumulated().await, rpc);
    tokio::time::sleep(span).await;
    delta(&method_stats(&client.accumulated().await, rpc), &before)
}

/// Waits for a window in which at least `min` RPCs of `rpc` completed and
/// the share with `code` is within `range` percent.
async fn share_until(
    client: &Client,
    what: &str,
    rpc: RpcType,
    code: Code,
    range: std::ops::RangeInclusive<f64>,
    min: i32,
) -> MethodStats {
    converge(
        what,
        || window(client, rpc, Duration::from_secs(3)),
        |m| {
            let done = completed(m);
            done >= min && range.contains(&(f64::from(count(m, code)) * 100.0 / f64::from(done)))
        },
    )
    .await
}

fn breaker(name: &str, max_requests: u32) -> cluster::Cluster {
    let mut c = eds_cluster(name);
    c.circuit_breakers = Some(cluster::CircuitBreakers {
        thresholds: vec![cluster::circuit_breakers::Thresholds {
            priority: RoutingPriority::Default as i32,
            max_requests: Some(UInt32Value {
                value: max_requests,
            }),
            ..Default::default()
        }],
        ..Default::default()
    });
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn circuit_breaking() {
    let one = Backends::start("cb-1", 2).await;
    let two = Backends::start("cb-2", 2).await;
    let xds = Xds::start().await;
    xds.clusters(vec![breaker("cluster-1", 10), breaker("cluster-2", 20)]);
    xds.endpoints(vec![
        cla("cluster-1", &one.addrs),
        cla("cluster-2", &two.addrs),
    ]);
    xds.routes(vec![
        route(match_path(UNARY), to_cluster("cluster-1")),
        route(match_path(EMPTY), to_cluster("cluster-2")),
        route(match_all(), to_cluster("cluster-1")),
    ]);
    let client = Client::start(&xds.bootstrap, &[RpcType::UnaryCall, RpcType::EmptyCall]).await;
    client
        .wait_all_reached(&[one.name(0), one.name(1), two.name(0), two.name(1)])
        .await;

    // Every RPC stays open: in flight (started, not completed) climbs to
    // each cluster's max_requests and no further; the rest fail at once.
    client
        .configure(
            &[RpcType::UnaryCall, RpcType::EmptyCall],
            &[
                (RpcType::UnaryCall, "rpc-behavior", "keep-open"),
                (RpcType::EmptyCall, "rpc-behavior", "keep-open"),
            ],
            0,
        )
        .await;
    let in_flight = |m: &MethodStats| m.rpcs_started - completed(m);
    let steady =
        |n: i32| move |m: &MethodStats| in_flight(m) == n && count(m, Code::Unavailable) > 0;
    client
        .accumulated_until("10 UnaryCalls in flight", RpcType::UnaryCall, steady(10))
        .await;
    client
        .accumulated_until("20 EmptyCalls in flight", RpcType::EmptyCall, steady(20))
        .await;
    // It stays there.
    let m = window(&client, RpcType::UnaryCall, Duration::from_secs(1)).await;
    assert!(count(&m, Code::Unavailable) > 50, "overflow fails: {m:?}");
    let now = method_stats(&client.accumulated().await, RpcType::UnaryCall);
    assert_eq!(in_flight(&now), 10, "{now:?}");

    // Raising the limit lets more through.
    xds.clusters(vec![breaker("cluster-1", 15), breaker("cluster-2", 20)]);
    client
        .accumulated_until("15 UnaryCalls in flight", RpcType::UnaryCall, steady(15))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout() {
    let backends = Backends::start("timeout", 1).await;
    let xds = Xds::start().await;
    xds.clusters(vec![eds_cluster("cluster-a")]);
    xds.endpoints(vec![cla("cluster-a", &backends.addrs)]);
    let mut limited = to_cluster("cluster-a");
    limited.max_stream_duration = Some(rt::route_action::MaxStreamDuration {
        max_stream_duration: Some(secs(2)),
        ..Default::default()
    });
    xds.routes(vec![
        route(match_path(UNARY), limited),
        route(match_all(), to_cluster("cluster-a")),
    ]);
    let client = Client::start_with(&xds.bootstrap, |c| c.qps = 50).await;
    client.wait_all_reached(&backends.names()).await;

    // app_timeout_exceeded: a 1 s application deadline, 2 s of work.
    client
        .configure(
            &[RpcType::UnaryCall],
            &[(RpcType::UnaryCall, "rpc-behavior", "sleep-2")],
            1,
        )
        .await;
    share_until(
        &client,
        "app_timeout_exceeded",
        RpcType::UnaryCall,
        Code::DeadlineExceeded,
        95.0..=100.0,
        50,
    )
    .await;

    // timeout_not_exceeded: the default deadline, no work.
    client.configure(&[RpcType::UnaryCall], &[], 0).await;
    share_until(
        &client,
        "timeout_not_exceeded",
        RpcType::UnaryCall,
        Code::Ok,
        99.0..=100.0,
        50,
    )
    .await;

    // timeout_different_route: 3 s of work, the default (20 s) deadline:
    // the route's max_stream_duration (2 s) cuts UnaryCall only.
    client
        .configure(
            &[RpcType::UnaryCall, RpcType::EmptyCall],
            &[
                (RpcType::UnaryCall, "rpc-behavior", "sleep-3"),
                (RpcType::EmptyCall, "rpc-behavior", "sleep-3"),
            ],
            0,
        )
        .await;
    share_until(
        &client,
        "UnaryCall cut by max_stream_duration",
        RpcType::UnaryCall,
        Code::DeadlineExceeded,
        95.0..=100.0,
        50,
    )
    .await;
    share_until(
        &client,
        "EmptyCall on a route without limit",
        RpcType::EmptyCall,
        Code::Ok,
        95.0..=100.0,
        50,
    )
    .await;
}

fn percent(p: u32) -> FractionalPercent {
    FractionalPercent {
        numerator: p,
        denominator: fractional_percent::DenominatorType::Hundred as i32,
    }
}

/// The default route with a per-route fault config for the `fault` filter.
fn fault_route(fault: HttpFault) -> rt::Route {
    let mut r = route(match_all(), to_cluster("cluster-a"));
    r.typed_per_filter_config = HashMap::from([("fault".to_owned(), any(&fault))]);
    r
}

fn abort(code: Code, p: u32) -> HttpFault {
    HttpFault {
        abort: Some(FaultAbort {
            percentage: Some(percent(p)),
            error_type: Some(fault_abort::ErrorType::GrpcStatus(code as u32)),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn delay(d: PbDuration, p: u32) -> HttpFault {
    HttpFault {
        delay: Some(FaultDelay {
            percentage: Some(percent(p)),
            fault_delay_secifier: Some(fault_delay::FaultDelaySecifier::FixedDelay(d)),
        }),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_injection() {
    let backends = Backends::start("fault", 1).await;
    let xds = Xds::start().await;
    xds.single("cluster-a", &backends);
    let client = Client::start_with(&xds.bootstrap, |c| {
        c.rpc.timeout = Duration::from_secs(1);
    })
    .await;
    client.wait_all_reached(&backends.names()).await;

    xds.routes(vec![fault_route(abort(Code::Unavailable, 100))]);
    share_until(
        &client,
        "always abort",
        RpcType::UnaryCall,
        Code::Unavailable,
        100.0..=100.0,
        100,
    )
    .await;
    // Aborted RPCs never reach the backend.
    let served = backends.running[0].as_ref().unwrap().served();
    let m = window(&client, RpcType::UnaryCall, Duration::from_secs(1)).await;
    assert_eq!(count(&m, Code::Unavailable), completed(&m), "{m:?}");
    assert_eq!(backends.running[0].as_ref().unwrap().served(), served);

    xds.routes(vec![fault_route(delay(secs(2), 100))]);
    share_until(
        &client,
        "always delay past the deadline",
        RpcType::UnaryCall,
        Code::DeadlineExceeded,
        100.0..=100.0,
        100,
    )
    .await;

    // Half aborted, half delayed by less than the deadline: both apply.
    let mut half = abort(Code::Aborted, 50);
    half.delay = delay(millis(100), 50).delay;
    xds.routes(vec![fault_route(half)]);
    let m = share_until(
        &client,
        "abort 50%",
        RpcType::UnaryCall,
        Code::Aborted,
        40.0..=60.0,
        250,
    )
    .await;
    assert_eq!(
        count(&m, Code::Ok) + count(&m, Code::Aborted),
        completed(&m),
        "{m:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry() {
    let backends = Backends::start("retry", 1).await;
    let xds = Xds::start().await;
    xds.clusters(vec![eds_cluster("cluster-a")]);
    xds.endpoints(vec![cla("cluster-a", &backends.addrs)]);
    let with_retries = |retry_on: &str, n: u32| {
        let mut action = to_cluster("cluster-a");
        action.retry_policy = Some(rt::RetryPolicy {
            retry_on: retry_on.into(),
            num_retries: Some(UInt32Value { value: n }),
            retry_back_off: Some(rt::retry_policy::RetryBackOff {
                base_interval: Some(millis(10)),
                max_interval: Some(millis(50)),
            }),
            ..Default::default()
        });
        vec![route(match_all(), action)]
    };
    xds.routes(with_retries("unavailable", 3));
    let client = Client::start_with(&xds.bootstrap, |c| c.qps = 50).await;
    client.wait_all_reached(&backends.names()).await;
    // The backend fails UNAVAILABLE until the third attempt (2 retries).
    client
        .configure(
            &[RpcType::UnaryCall],
            &[(
                RpcType::UnaryCall,
                "rpc-behavior",
                "succeed-on-retry-attempt-2,error-code-14",
            )],
            0,
        )
        .await;
    share_until(
        &client,
        "3 retries are enough",
        RpcType::UnaryCall,
        Code::Ok,
        100.0..=100.0,
        50,
    )
    .await;

    xds.routes(with_retries("unavailable", 1));
    share_until(
        &client,
        "1 retry is not",
        RpcType::UnaryCall,
        Code::Unavailable,
        100.0..=100.0,
        50,
    )
    .await;

    xds.routes(with_retries("cancelled,deadline-exceeded", 3));
    share_until(
        &client,
        "UNAVAILABLE is not retried",
        RpcType::UnaryCall,
        Code::Unavailable,
        100.0..=100.0,
        50,
    )
    .await;

    xds.routes(with_retries("cancelled,unavailable", 4));
    share_until(
        &client,
        "retried again",
        RpcType::UnaryCall,
        Code::Ok,
        100.0..=100.0,
        50,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outlier_detection() {
    let backends = Backends::start("od", 5).await;
    let xds = Xds::start().await;
    xds.single("cluster-a", &backends);
    let client = Client::start(&xds.bootstrap, &[RpcType::UnaryCall]).await;
    client.wait_all_reached(&backends.names()).await;

    // od-0 fails every RPC: a fifth of the traffic fails.
    let bad = backends.name(0);
    client
        .configure(
            &[RpcType::UnaryCall],
            &[(
                RpcType::UnaryCall,
                "rpc-behavior",
                &format!("hostname={bad} error-code-2"),
            )],
            0,
        )
        .await;
    client
        .stats_until("od-0 failing", 100, |r| (15..=25).contains(&r.num_failures))
        .await;

    // Failure-percentage ejection, 1 s interval, short ejections.
    let mut c = eds_cluster("cluster-a");
    c.outlier_detection = Some(cluster::OutlierDetection {
        interval: Some(secs(1)),
        base_ejection_time: Some(secs(3)),
        max_ejection_time: Some(secs(3)),
        max_ejection_percent: Some(UInt32Value { value: 50 }),
        enforcing_success_rate: Some(UInt32Value { value: 0 }),
        failure_percentage_threshold: Some(UInt32Value { value: 50 }),
        enforcing_failure_percentage: Some(UInt32Value { value: 100 }),
        failure_percentage_minimum_hosts: Some(UInt32Value { value: 3 }),
        failure_percentage_request_volume: Some(UInt32Value { value: 10 }),
        ..Default::default()
    });
    xds.clusters(vec![c]);
    // Ejected: a block with no failure, the other four sharing it.
    let r = client
        .stats_until("od-0 ejected", 100, |r| r.num_failures == 0)
        .await;
    assert_eq!(r.rpcs_by_peer.len(), 4, "{r:?}");
    assert!(!r.rpcs_by_peer.contains_key(&bad), "{r:?}");

    // Healed: once its ejection ends it gets traffic again and stays in.
    client.configure(&[RpcType::UnaryCall], &[], 0).await;
    client.wait_all_reached(&backends.names()).await;
    client
        .stats_until("all five serving", 100, |r| {
            r.num_failures == 0 && r.rpcs_by_peer.len() == 5
        })
        .await;
}
