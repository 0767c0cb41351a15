//! Outlier detection over real loopback backends: a backend that keeps
//! failing is ejected (no more traffic), then readmitted once its ejection
//! time is over.

use std::sync::Arc;
use std::time::Duration;

use mesh_core::resource::cluster::{
    CircuitBreakers, ConsecutiveFailures, FailurePercentageEjection, OutlierDetection,
};
use mesh_tower::balance::Balancer;
use mesh_tower::context::RoutePolicy;
use mesh_tower::outlier::OutlierDetector;
use rand::SeedableRng;
use rand::rngs::SmallRng;

use super::retry::{backends, client, eventually, publish, runtime, unary};

fn detection() -> OutlierDetection {
    OutlierDetection {
        interval: Duration::from_millis(50),
        base_ejection_time: Duration::from_millis(500),
        max_ejection_time: Duration::from_secs(300),
        max_ejection_percent: 50,
        consecutive_5xx: None,
        consecutive_gateway_failure: None,
        success_rate: None,
        failure_percentage: None,
    }
}

/// Sends RPCs (failing on host `sick`) until `sick` is ejected; then checks
/// that it gets no traffic, and comes back after the ejection time.
async fn ejected_then_readmitted(name: &str, cfg: OutlierDetection) {
    let bs = backends(&["sick", "well1", "well2"]).await;
    let cluster = runtime(name, CircuitBreakers::default(), Some(cfg.clone()));
    let handles = publish(&cluster, &bs).await;
    let detector = OutlierDetector::spawn_with_rng(
        cfg,
        Arc::downgrade(&cluster.balancer),
        |b: &Balancer| b.endpoints(),
        SmallRng::seed_from_u64(5),
    );
    let mut c = client(&cluster, RoutePolicy::default());
    let fail_sick = Some("hostname=sick error-code-14");
    let mut sent = 0;
    while !handles[0].outlier.is_ejected() {
        let _ = unary(&mut c, fail_sick).await;
        sent += 1;
        assert!(sent < 2000, "sick was never ejected");
        if sent % 20 == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    assert!(!handles[1].outlier.is_ejected() && !handles[2].outlier.is_ejected());
    // While ejected, every RPC reaches a healthy backend and succeeds.
    let sick_served = bs[0].served();
    for _ in 0..10 {
        let host = unary(&mut c, fail_sick).await.expect("only healthy hosts");
        assert_ne!(host, "sick");
    }
    // Readmitted after base_ejection_time (at a sweep).
    eventually("sick readmitted", || !handles[0].outlier.is_ejected()).await;
    let mut hosts = Vec::new();
    for _ in 0..6 {
        hosts.push(unary(&mut c, None).await.expect("everyone healthy"));
    }
    assert!(hosts.iter().any(|h| h == "sick"), "{hosts:?}");
    assert!(bs[0].served() > sick_served);
    drop(detector);
}

#[tokio::test]
async fn consecutive_5xx_ejects_then_readmits() {
    let mut cfg = detection();
    cfg.consecutive_5xx = Some(ConsecutiveFailures {
        threshold: 3,
        enforcement_percentage: 100,
    });
    ejected_then_readmitted("it-outlier-consecutive", cfg).await;
}

#[tokio::test]
async fn failure_percentage_ejects_then_readmits() {
    let mut cfg = detection();
    cfg.failure_percentage = Some(FailurePercentageEjection {
        threshold: 80,
        enforcement_percentage: 100,
        minimum_hosts: 3,
        request_volume: 3,
    });
    ejected_then_readmitted("it-outlier-failure-percentage", cfg).await;
}
