use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use mesh_core::resource::cluster::CircuitBreakers;
use tower::{Layer, Service, ServiceExt};

use super::*;
use crate::error::find_status;

fn limits(max_requests: u32) -> CircuitBreakers {
    CircuitBreakers {
        max_requests,
        ..Default::default()
    }
}

fn ok_service()
-> impl Service<http::Request<()>, Response = http::Response<Full<Bytes>>, Error = Infallible> + Clone
{
    tower::service_fn(|_req: http::Request<()>| async {
        Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from_static(b"hi"))))
    })
}

#[tokio::test]
async fn overflow_fails_at_once_is_counted_and_says_why() {
    let breaker = Arc::new(Breaker::new("outbound|7070||echo", "echo", &limits(2)));
    let mut svc = BreakerLayer::fixed(breaker.clone()).layer(ok_service());
    let a = svc
        .ready()
        .await
        .unwrap()
        .call(http::Request::new(()))
        .await
        .unwrap();
    let b = svc
        .ready()
        .await
        .unwrap()
        .call(http::Request::new(()))
        .await
        .unwrap();
    assert_eq!(breaker.active(Kind::Requests), 2);
    let err = svc
        .ready()
        .await
        .unwrap()
        .call(http::Request::new(()))
        .await
        .unwrap_err();
    let overflow = err.downcast_ref::<Overflow>().expect("an Overflow");
    assert_eq!(overflow.kind(), Kind::Requests);
    let status = find_status(err.as_ref()).expect("a status in the chain");
    assert_eq!(status.code(), tonic::Code::Unavailable);
    assert_eq!(
        status.message(),
        "circuit breaker max_requests=2 reached for cluster outbound|7070||echo"
    );
    assert_eq!(breaker.overflows(Kind::Requests), 1);
    assert_eq!(breaker.active(Kind::Requests), 2, "the loser took no slot");
    drop((a, b));
    assert_eq!(breaker.active(Kind::Requests), 0);
}

#[tokio::test]
async fn slot_released_when_body_ends() {
    let breaker = Arc::new(Breaker::new("c", "c", &limits(1)));
    let mut svc = BreakerLayer::fixed(breaker.clone()).layer(ok_service());
    let res = svc
        .ready()
        .await
        .unwrap()
        .call(http::Request::new(()))
        .await
        .unwrap();
    assert_eq!(breaker.active(Kind::Requests), 1);
    let mut body = res.into_body();
    let frame = body.frame().await.unwrap().unwrap();
    assert_eq!(frame.into_data().unwrap(), "hi");
    assert!(body.frame().await.is_none());
    // The body still exists, but its stream ended: the slot is free.
    assert_eq!(breaker.active(Kind::Requests), 0);
    svc.ready()
        .await
        .unwrap()
        .call(http::Request::new(()))
        .await
        .unwrap();
}

#[tokio::test]
async fn slot_released_when_future_or_body_dropped() {
    let breaker = Arc::new(Breaker::new("c", "c", &limits(1)));
    let mut svc = BreakerLayer::fixed(breaker.clone()).layer(ok_service());
    let fut = svc.ready().await.unwrap().call(http::Request::new(()));
    assert_eq!(breaker.active(Kind::Requests), 1);
    drop(fut);
    assert_eq!(breaker.active(Kind::Requests), 0);
    let res = svc
        .ready()
        .await
        .unwrap()
        .call(http::Request::new(()))
        .await
        .unwrap();
    drop(res);
    assert_eq!(breaker.active(Kind::Requests), 0);
}

#[tokio::test]
async fn inner_error_releases_the_slot() {
    let breaker = Arc::new(Breaker::new("c", "c", &limits(1)));
    let failing = tower::service_fn(|_req: http::Request<()>| async {
        Err::<http::Response<Full<Bytes>>, _>(crate::error::unavailable("down"))
    });
    let mut svc = BreakerLayer::fixed(breaker.clone()).layer(failing);
    let err = svc
        .ready()
        .await
        .unwrap()
        .call(http::Request::new(()))
        .await
        .unwrap_err();
    assert!(err.downcast_ref::<Overflow>().is_none());
    assert_eq!(breaker.active(Kind::Requests), 0);
}

#[test]
fn shared_per_cluster_and_eds_name_and_updated_in_place() {
    let a = Breaker::shared("reg-test-a", "svc", &limits(5));
    let b = Breaker::shared("reg-test-a", "svc", &limits(7));
    assert!(Arc::ptr_eq(&a, &b));
    assert_eq!(a.limit(Kind::Requests), 7, "the newest snapshot's limits");
    let other = Breaker::shared("reg-test-a", "other-svc", &limits(5));
    assert!(!Arc::ptr_eq(&a, &other));
    let held = a.try_request().unwrap();
    assert_eq!(b.active(Kind::Requests), 1, "counters shared");
    drop((held, a, b));
    let fresh = Breaker::shared("reg-test-a", "svc", &limits(5));
    assert_eq!(
        fresh.active(Kind::Requests),
        0,
        "recreated once all were gone"
    );
}

#[test]
fn defaults_and_every_kind() {
    let b = Arc::new(Breaker::new("c", "c", &CircuitBreakers::default()));
    assert_eq!(b.limit(Kind::Requests), 1024);
    assert_eq!(b.limit(Kind::Pending), 1024);
    assert_eq!(b.limit(Kind::Connections), 1024);
    let cb = CircuitBreakers {
        max_requests: 1,
        max_pending_requests: Some(1),
        max_retries: Some(1),
        max_connections: Some(1),
    };
    b.update(&cb);
    let held = [
        b.try_request().unwrap(),
        b.try_pending().unwrap(),
        b.try_retry().unwrap(),
        b.try_connection().unwrap(),
    ];
    for kind in [
        Kind::Requests,
        Kind::Pending,
        Kind::Retries,
        Kind::Connections,
    ] {
        let err = b.try_acquire(kind).unwrap_err();
        assert_eq!(err.kind(), kind);
        assert!(
            err.to_string()
                .starts_with(&format!("circuit breaker {}=1", kind.field()))
        );
        assert_eq!(b.overflows(kind), 1);
    }
    drop(held);
    for kind in [
        Kind::Requests,
        Kind::Pending,
        Kind::Retries,
        Kind::Connections,
    ] {
        assert_eq!(b.active(kind), 0);
    }
}

#[test]
fn retry_budget_is_a_share_of_active_requests_with_a_minimum() {
    let b = Arc::new(Breaker::new("c", "c", &CircuitBreakers::default()));
    // max_retries unset: the budget (20%, at least 3) applies.
    assert_eq!(b.limit(Kind::Retries), 3);
    let requests: Vec<_> = (0..50).map(|_| b.try_request().unwrap()).collect();
    assert_eq!(b.limit(Kind::Retries), 10);
    let retries: Vec<_> = (0..10).map(|_| b.try_retry().unwrap()).collect();
    assert!(b.try_retry().is_err());
    assert_eq!(b.overflows(Kind::Retries), 1);
    drop(retries);
    drop(requests);
    b.set_retry_budget(Some(RetryBudget {
        percent: 50.0,
        min_concurrency: 1,
    }));
    assert_eq!(b.limit(Kind::Retries), 1);
    // An explicit max_retries replaces the budget, as in Envoy.
    b.update(&CircuitBreakers {
        max_retries: Some(2),
        ..Default::default()
    });
    let _held: Vec<_> = (0..2).map(|_| b.try_retry().unwrap()).collect();
    assert!(b.try_retry().is_err());
}

fn decision_with(breaker: Arc<Breaker>) -> crate::context::RouteDecision {
    use mesh_core::resource::cluster::Cluster;
    let config = Cluster::try_from(mesh_core::testing::resources::eds_cluster("c", "")).unwrap();
    crate::context::RouteDecision {
        route: Default::default(),
        cluster: Arc::new(crate::cluster::ClusterRuntime {
            name: "c".into(),
            config: Arc::new(config),
            breaker,
            balancer: Default::default(),
        }),
        hash: None,
    }
}

#[tokio::test]
async fn route_decision_breaker_is_used_without_a_fixed_one() {
    let breaker = Arc::new(Breaker::new("from-decision", "e", &limits(1)));
    let mut svc = BreakerLayer::new().layer(ok_service());
    let req = || {
        let mut r = http::Request::new(());
        r.extensions_mut().insert(decision_with(breaker.clone()));
        r
    };
    let held = svc.ready().await.unwrap().call(req()).await.unwrap();
    let err = svc.ready().await.unwrap().call(req()).await.unwrap_err();
    assert!(err.to_string().contains("cluster from-decision"), "{err}");
    drop(held);
    // Without a fixed breaker or a decision, requests pass uncounted.
    let before = breaker.overflows(Kind::Requests);
    for _ in 0..3 {
        let res = svc
            .ready()
            .await
            .unwrap()
            .call(http::Request::new(()))
            .await;
        assert!(res.is_ok());
    }
    assert_eq!(breaker.overflows(Kind::Requests), before);
    assert_eq!(breaker.active(Kind::Requests), 0);
}
