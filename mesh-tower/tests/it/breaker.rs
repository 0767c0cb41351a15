//! The circuit breaker over real loopback backends: concurrent `sleep-1`
//! RPCs overflow `max_requests`, fail at once with UNAVAILABLE naming the
//! limit and cluster, are counted, and are not retried.

use std::time::Duration;

use mesh_core::resource::cluster::CircuitBreakers;
use mesh_tower::breaker::Kind;
use mesh_tower::context::RoutePolicy;
use tonic::Code;

use super::retry::{backends, client, eventually, publish, retry_policy, runtime, served, unary};

#[tokio::test]
async fn breaker_overflows_under_concurrent_slow_rpcs() {
    let bs = backends(&["c0", "c1"]).await;
    let name = "outbound|7070||it-breaker.default.svc.cluster.local";
    let limits = CircuitBreakers {
        max_requests: 2,
        ..Default::default()
    };
    let cluster = runtime(name, limits, None);
    publish(&cluster, &bs).await;
    // A retry policy on UNAVAILABLE: the overflow must still not be retried.
    let route = RoutePolicy {
        retry: Some(retry_policy("unavailable", 4)),
        ..Default::default()
    };
    let breaker = cluster.breaker.clone();

    // Two slow RPCs hold both slots while three more try to start. (One
    // task: tonic's client futures over a boxed stack are not `Send`-provable
    // for `tokio::spawn`.)
    let mut c1 = client(&cluster, clone_route(&route));
    let mut c2 = client(&cluster, clone_route(&route));
    let mut c = client(&cluster, clone_route(&route));
    let slow = futures::future::join(
        unary(&mut c1, Some("sleep-1")),
        unary(&mut c2, Some("sleep-1")),
    );
    let overflowing = async {
        eventually("two RPCs in flight", || breaker.active(Kind::Requests) == 2).await;
        for _ in 0..3 {
            let err = unary(&mut c, Some("sleep-1")).await.unwrap_err();
            assert_eq!(err.code(), Code::Unavailable);
            assert_eq!(
                err.message(),
                format!("circuit breaker max_requests=2 reached for cluster {name}")
            );
        }
        assert_eq!(
            breaker.overflows(Kind::Requests),
            3,
            "counted once each: not retried"
        );
    };
    let ((a, b), ()) = tokio::join!(slow, overflowing);
    a.expect("the first two complete");
    b.expect("the first two complete");
    assert_eq!(served(&bs), 2, "overflowing RPCs never reached a backend");
    // Slots come back when the responses end.
    eventually("slots released", || breaker.active(Kind::Requests) == 0).await;
    tokio::time::timeout(Duration::from_secs(5), unary(&mut c, None))
        .await
        .unwrap()
        .expect("room again");
}

fn clone_route(r: &RoutePolicy) -> RoutePolicy {
    RoutePolicy {
        retry: r.retry.clone(),
        ..Default::default()
    }
}
