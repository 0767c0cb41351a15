use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body::Frame;
use http_body_util::{BodyExt, Full, StreamBody};
use mesh_core::resource::cluster::{
    ConsecutiveFailures, FailurePercentageEjection, OutlierDetection, SuccessRateEjection,
};
use rand::SeedableRng;
use rand::rngs::SmallRng;
use tokio::time::Instant;
use tonic::Code;
use tower::{Layer, Service, ServiceExt};

use super::*;

fn s(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn counts(pairs: &[(u64, u64)]) -> Vec<Counts> {
    pairs
        .iter()
        .map(|&(successes, failures)| Counts {
            successes,
            failures,
        })
        .collect()
}

fn sr(stdev_factor: u32, minimum_hosts: u32, request_volume: u32) -> SuccessRateEjection {
    SuccessRateEjection {
        stdev_factor,
        enforcement_percentage: 100,
        minimum_hosts,
        request_volume,
    }
}

fn fp(threshold: u32, minimum_hosts: u32, request_volume: u32) -> FailurePercentageEjection {
    FailurePercentageEjection {
        threshold,
        enforcement_percentage: 100,
        minimum_hosts,
        request_volume,
    }
}

/// Name, (successes, failures) per host, config, the outliers expected.
type Case<C> = (&'static str, Vec<(u64, u64)>, C, Vec<usize>);

#[test]
fn success_rate_table() {
    #[rustfmt::skip]
    let cases: Vec<Case<SuccessRateEjection>> = vec![
        // rates 1,1,1,1,0.5: mean 0.9, stdev 0.2 → threshold 0.9-0.38 = 0.52.
        ("one outlier", vec![(100, 0), (100, 0), (100, 0), (100, 0), (50, 50)], sr(1900, 5, 100), vec![4]),
        // Same rates with factor 2.5: threshold 0.4, 0.5 is above.
        ("factor too wide", vec![(100, 0), (100, 0), (100, 0), (100, 0), (50, 50)], sr(2500, 5, 100), vec![]),
        ("too few hosts", vec![(100, 0), (100, 0), (100, 0), (50, 50)], sr(1900, 5, 100), vec![]),
        // The low-volume host neither counts nor is judged.
        ("volume", vec![(100, 0), (100, 0), (100, 0), (100, 0), (50, 50), (0, 10)], sr(1900, 5, 100), vec![4]),
        ("volume hides hosts", vec![(100, 0), (100, 0), (100, 0), (100, 0), (5, 5)], sr(1900, 5, 100), vec![]),
        ("all equal", vec![(90, 10); 5], sr(1900, 5, 100), vec![]),
        // stdev 0 after all fail equally: nobody is below the mean.
        ("all failing", vec![(0, 100); 5], sr(1900, 5, 100), vec![]),
        ("factor zero ejects below mean", vec![(100, 0), (100, 0), (99, 1), (100, 0), (100, 0)], sr(0, 5, 100), vec![2]),
    ];
    for (name, c, cfg, want) in cases {
        assert_eq!(success_rate_outliers(&counts(&c), &cfg), want, "{name}");
    }
}

#[test]
fn failure_percentage_table() {
    #[rustfmt::skip]
    let cases: Vec<Case<FailurePercentageEjection>> = vec![
        ("at threshold", vec![(15, 85), (100, 0), (100, 0), (100, 0), (100, 0)], fp(85, 5, 50), vec![0]),
        ("below", vec![(16, 84), (100, 0), (100, 0), (100, 0), (100, 0)], fp(85, 5, 50), vec![]),
        ("several", vec![(0, 60), (10, 90), (100, 0), (100, 0), (100, 0)], fp(85, 5, 50), vec![0, 1]),
        ("low volume", vec![(0, 49), (100, 0), (100, 0), (100, 0), (100, 0)], fp(85, 5, 50), vec![]),
        // minimum_hosts counts every host, whatever its volume.
        ("few hosts", vec![(0, 60), (0, 0), (0, 0), (0, 0)], fp(85, 5, 50), vec![]),
        ("idle hosts count", vec![(0, 60), (0, 0), (0, 0), (0, 0), (0, 0)], fp(85, 5, 50), vec![0]),
        ("threshold 0 ejects any volume", vec![(60, 0); 5], fp(0, 5, 50), vec![0, 1, 2, 3, 4]),
    ];
    for (name, c, cfg, want) in cases {
        assert_eq!(
            failure_percentage_outliers(&counts(&c), &cfg),
            want,
            "{name}"
        );
    }
}

fn config() -> OutlierDetection {
    OutlierDetection {
        interval: s(10),
        base_ejection_time: s(30),
        max_ejection_time: s(300),
        max_ejection_percent: 100,
        consecutive_5xx: None,
        consecutive_gateway_failure: None,
        success_rate: None,
        failure_percentage: None,
    }
}

fn endpoints(n: usize) -> Arc<[Arc<EndpointOutlier>]> {
    (0..n).map(|_| Arc::new(EndpointOutlier::new())).collect()
}

fn fail(e: &EndpointOutlier, n: u32, gateway: bool) {
    for _ in 0..n {
        e.record(false, gateway);
    }
}

fn succeed(e: &EndpointOutlier, n: u32) {
    for _ in 0..n {
        e.record(true, false);
    }
}

fn attach(list: &[Arc<EndpointOutlier>], cfg: &OutlierDetection) -> Arc<tokio::sync::Notify> {
    let wake = Arc::new(tokio::sync::Notify::new());
    for e in list {
        e.attach(
            &wake,
            cfg.consecutive_5xx.map_or(0, |c| c.threshold),
            cfg.consecutive_gateway_failure.map_or(0, |c| c.threshold),
        );
    }
    wake
}

#[tokio::test(start_paused = true)]
async fn consecutive_5xx_ejects_at_the_threshold_only_in_a_row() {
    let mut cfg = config();
    cfg.consecutive_5xx = Some(ConsecutiveFailures {
        threshold: 3,
        enforcement_percentage: 100,
    });
    let list = endpoints(3);
    let _wake = attach(&list, &cfg);
    let mut sweeper = Sweeper::new(SmallRng::seed_from_u64(1));
    let now = Instant::now();
    // Interrupted by a success: no ejection.
    fail(&list[0], 2, false);
    succeed(&list[0], 1);
    fail(&list[0], 2, false);
    sweeper.consecutive(&cfg, now, &list);
    assert!(!list[0].is_ejected());
    fail(&list[0], 1, false);
    sweeper.consecutive(&cfg, now, &list);
    assert!(list[0].is_ejected());
    assert_eq!(list[0].ejections(), 1);
    assert_eq!(sweeper.multiplier(&list[0]), Some(1));
    assert!(!list[1].is_ejected());
}

#[tokio::test(start_paused = true)]
async fn consecutive_gateway_counts_only_gateway_errors() {
    let mut cfg = config();
    cfg.consecutive_gateway_failure = Some(ConsecutiveFailures {
        threshold: 2,
        enforcement_percentage: 100,
    });
    let list = endpoints(2);
    let _wake = attach(&list, &cfg);
    let mut sweeper = Sweeper::new(SmallRng::seed_from_u64(1));
    fail(&list[0], 1, true);
    fail(&list[0], 1, false);
    fail(&list[0], 1, true);
    sweeper.consecutive(&cfg, Instant::now(), &list);
    assert!(!list[0].is_ejected(), "a non-gateway failure broke the run");
    fail(&list[0], 1, true);
    sweeper.consecutive(&cfg, Instant::now(), &list);
    assert!(list[0].is_ejected());
}

#[tokio::test(start_paused = true)]
async fn max_ejection_percent_is_never_exceeded_but_one_may_go() {
    for (hosts, max_percent, want) in [(10, 20, 2), (10, 25, 2), (10, 0, 1), (4, 10, 1), (4, 50, 2)]
    {
        let mut cfg = config();
        cfg.max_ejection_percent = max_percent;
        cfg.failure_percentage = Some(fp(50, 1, 10));
        let list = endpoints(hosts);
        let mut sweeper = Sweeper::new(SmallRng::seed_from_u64(1));
        for e in list.iter() {
            fail(e, 10, false);
        }
        sweeper.sweep(&cfg, Instant::now(), &list);
        let ejected = list.iter().filter(|e| e.is_ejected()).count();
        assert_eq!(ejected, want, "{hosts} hosts at {max_percent}%");
    }
}

#[tokio::test(start_paused = true)]
async fn enforcement_percentage_draws_from_the_rng() {
    let mut cfg = config();
    cfg.failure_percentage = Some(FailurePercentageEjection {
        enforcement_percentage: 30,
        ..fp(50, 1, 10)
    });
    let mut sweeper = Sweeper::new(SmallRng::seed_from_u64(9));
    let mut ejected = 0;
    for _ in 0..1000 {
        let list = endpoints(1);
        fail(&list[0], 10, false);
        sweeper.sweep(&cfg, Instant::now(), &list);
        ejected += usize::from(list[0].is_ejected());
    }
    // 30% of 1000 (binomial stdev ≈ 14.5; ±4 stdev).
    assert!((240..=360).contains(&ejected), "{ejected}");
}

#[tokio::test(start_paused = true)]
async fn ejection_time_grows_with_the_multiplier_and_decays() {
    let mut cfg = config();
    cfg.failure_percentage = Some(fp(50, 1, 10));
    cfg.base_ejection_time = s(30);
    cfg.max_ejection_time = s(75);
    assert_eq!(ejection_time(&cfg, 1), s(30));
    assert_eq!(ejection_time(&cfg, 2), s(60));
    assert_eq!(ejection_time(&cfg, 3), s(75), "capped by max");
    let list = endpoints(1);
    let e = &list[0];
    let mut sweeper = Sweeper::new(SmallRng::seed_from_u64(1));
    let t0 = Instant::now();
    let sweep_at = |sweeper: &mut Sweeper<EndpointOutlier>, secs: u64| {
        sweeper.sweep(&cfg, t0 + s(secs), &list);
    };
    fail(e, 10, false);
    sweep_at(&mut sweeper, 0);
    assert!(e.is_ejected());
    sweep_at(&mut sweeper, 20);
    assert!(e.is_ejected(), "30 s not over");
    sweep_at(&mut sweeper, 30);
    assert!(!e.is_ejected(), "back after base × 1");
    assert_eq!(
        sweeper.multiplier(e),
        Some(1),
        "not lowered on the sweep that un-ejects"
    );
    // Fails again at once: ejected for base × 2.
    fail(e, 10, false);
    sweep_at(&mut sweeper, 40);
    assert!(e.is_ejected());
    assert_eq!(sweeper.multiplier(e), Some(2));
    sweep_at(&mut sweeper, 99);
    assert!(e.is_ejected(), "60 s not over");
    sweep_at(&mut sweeper, 100);
    assert!(!e.is_ejected());
    // Healthy intervals lower the multiplier one by one.
    sweep_at(&mut sweeper, 110);
    assert_eq!(sweeper.multiplier(e), Some(1));
    sweep_at(&mut sweeper, 120);
    assert_eq!(sweeper.multiplier(e), Some(0));
    sweep_at(&mut sweeper, 130);
    assert_eq!(sweeper.multiplier(e), Some(0));
    fail(e, 10, false);
    sweep_at(&mut sweeper, 140);
    assert_eq!(sweeper.multiplier(e), Some(1));
    sweep_at(&mut sweeper, 170);
    assert!(!e.is_ejected(), "base × 1 again");
}

#[tokio::test(start_paused = true)]
async fn success_rate_sweep_ejects_the_outlier() {
    let mut cfg = config();
    cfg.success_rate = Some(sr(1900, 5, 100));
    let list = endpoints(5);
    for e in &list[..4] {
        succeed(e, 100);
    }
    succeed(&list[4], 50);
    fail(&list[4], 50, false);
    let mut sweeper = Sweeper::new(SmallRng::seed_from_u64(1));
    sweeper.sweep(&cfg, Instant::now(), &list);
    let ejected: Vec<bool> = list.iter().map(|e| e.is_ejected()).collect();
    assert_eq!(ejected, [false, false, false, false, true]);
    // Counts were taken: the next sweep sees an empty interval.
    sweeper.sweep(&cfg, Instant::now(), &list);
    assert!(list[..4].iter().all(|e| !e.is_ejected()));
}

struct Owner {
    list: Arc<[Arc<EndpointOutlier>]>,
}

#[tokio::test(start_paused = true)]
async fn detector_task_ejects_at_once_readmits_and_stops_with_its_owner() {
    let mut cfg = config();
    cfg.consecutive_5xx = Some(ConsecutiveFailures {
        threshold: 5,
        enforcement_percentage: 100,
    });
    cfg.max_ejection_percent = 50;
    let owner = Arc::new(Owner { list: endpoints(2) });
    let list = owner.list.clone();
    let detector = OutlierDetector::spawn_with_rng(
        cfg,
        Arc::downgrade(&owner),
        |o: &Owner| o.list.clone(),
        SmallRng::seed_from_u64(1),
    );
    tokio::time::sleep(Duration::from_millis(1)).await;
    let start = Instant::now();
    fail(&list[0], 5, false);
    // Ejected without waiting for the 10 s sweep.
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert!(list[0].is_ejected());
    // The sweep at 30 s or later readmits it (base 30 s, sweeps every 10 s).
    while list[0].is_ejected() {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let out = start.elapsed();
    assert!(out >= s(29) && out <= s(41), "{out:?}");
    drop(owner);
    tokio::time::sleep(s(11)).await;
    // The task ended: thresholds detached, so failures no longer eject.
    fail(&list[1], 5, false);
    tokio::time::sleep(s(11)).await;
    assert!(!list[1].is_ejected());
    drop(detector);
}

#[tokio::test]
async fn observer_records_trailers_only_trailers_and_http() {
    let e = Arc::new(EndpointOutlier::new());
    let grpc = |code: Code| {
        http::Response::builder()
            .header("content-type", "application/grpc")
            .header("grpc-status", (code as i32).to_string())
            .body(Full::new(Bytes::new()))
            .unwrap()
    };
    let svc = tower::service_fn(move |req: http::Request<&'static str>| async move {
        Ok::<_, Infallible>(match *req.body() {
            "ok" => grpc(Code::Ok),
            "unavailable" => grpc(Code::Unavailable),
            "not-found" => grpc(Code::NotFound),
            "404" => http::Response::builder()
                .status(404)
                .body(Full::new(Bytes::new()))
                .unwrap(),
            "503" => http::Response::builder()
                .status(503)
                .body(Full::new(Bytes::new()))
                .unwrap(),
            _ => http::Response::builder()
                .header("content-type", "application/grpc")
                .body(Full::new(Bytes::from_static(b"streamed")))
                .unwrap(),
        })
    });
    let mut svc = OutlierLayer::for_endpoint(e.clone()).layer(svc);
    for (body, successes, failures) in [
        ("ok", 1, 0),
        ("unavailable", 1, 1),
        ("not-found", 1, 2),
        ("404", 2, 2),
        ("503", 2, 3),
    ] {
        let res = svc
            .ready()
            .await
            .unwrap()
            .call(http::Request::new(body))
            .await
            .unwrap();
        drop(res);
        assert_eq!(e.take_counts(), (successes, failures), "{body}");
        // Put them back: the counts are cumulative in this test.
        succeed(&e, successes as u32);
        fail(&e, failures as u32, false);
    }
    // A streamed gRPC body that ends without trailers: a failure, at the end.
    let _ = e.take_counts();
    let res = svc
        .ready()
        .await
        .unwrap()
        .call(http::Request::new("stream"))
        .await
        .unwrap();
    assert_eq!(e.take_counts(), (0, 0), "not known before the end");
    let _ = res.into_body().collect().await.unwrap();
    assert_eq!(e.take_counts(), (0, 1));
}

#[tokio::test]
async fn observer_reads_the_status_in_the_trailers() {
    let e = Arc::new(EndpointOutlier::new());
    let svc = tower::service_fn(|code: http::Request<i32>| async move {
        let mut trailers = http::HeaderMap::new();
        trailers.insert("grpc-status", code.body().to_string().parse().unwrap());
        let frames = futures::stream::iter([
            Ok::<_, Infallible>(Frame::data(Bytes::from_static(b"x"))),
            Ok(Frame::trailers(trailers)),
        ]);
        Ok::<_, Infallible>(
            http::Response::builder()
                .header("content-type", "application/grpc")
                .body(StreamBody::new(frames))
                .unwrap(),
        )
    });
    let mut svc = OutlierLayer::for_endpoint(e.clone()).layer(svc);
    for code in [0, 14, 0] {
        let res = svc
            .ready()
            .await
            .unwrap()
            .call(http::Request::new(code))
            .await
            .unwrap();
        let _ = res.into_body().collect().await.unwrap();
    }
    assert_eq!(e.take_counts(), (2, 1));
    // Dropped before the end (cancelled): nothing recorded.
    let res = svc
        .ready()
        .await
        .unwrap()
        .call(http::Request::new(14))
        .await
        .unwrap();
    drop(res);
    assert_eq!(e.take_counts(), (0, 0));
}
