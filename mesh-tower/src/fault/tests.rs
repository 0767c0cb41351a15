//! Fault layer tests: percentages across denominators with a seeded RNG,
//! abort codes, header-driven faults, header matchers, delays in paused
//! time and the `max_active_faults` cap.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use http::Request;
use mesh_core::resource::common::Fraction;
use mesh_core::resource::filter::{
    FaultAbort, FaultAbortKind, FaultConfig, FaultDelay, FaultDelayKind,
};
use mesh_core::resource::matcher::{HeaderMatch, HeaderMatcher, StringMatcher};
use tonic::Code;
use tower::{Layer, Service, ServiceExt};

use super::*;
use crate::context::RoutePolicy;
use crate::route::RandomSource;
use crate::route::testing::decision;

/// An always-ready inner service counting the requests it gets.
#[derive(Clone, Default)]
struct Counting {
    calls: Arc<AtomicUsize>,
}

impl Service<Request<()>> for Counting {
    type Response = http::Response<()>;
    type Error = crate::BoxError;
    type Future = std::future::Ready<Result<http::Response<()>, crate::BoxError>>;
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }
    fn call(&mut self, _req: Request<()>) -> Self::Future {
        self.calls.fetch_add(1, Ordering::SeqCst);
        std::future::ready(Ok(http::Response::new(())))
    }
}

fn counter() -> &'static AtomicU64 {
    Box::leak(Box::new(AtomicU64::new(0)))
}

fn service(seed: u64, active: &'static AtomicU64) -> (Fault<Counting>, Arc<AtomicUsize>) {
    let inner = Counting::default();
    let calls = inner.calls.clone();
    let layer = FaultLayer::new()
        .with_rng(RandomSource::seeded(seed))
        .with_active_counter(active);
    (layer.layer(inner), calls)
}

fn abort(kind: FaultAbortKind, percentage: Fraction) -> FaultConfig {
    FaultConfig {
        delay: None,
        abort: Some(FaultAbort { kind, percentage }),
        max_active_faults: None,
        headers: Vec::new(),
    }
}

fn delay(kind: FaultDelayKind, percentage: Fraction) -> FaultConfig {
    FaultConfig {
        delay: Some(FaultDelay { kind, percentage }),
        abort: None,
        max_active_faults: None,
        headers: Vec::new(),
    }
}

fn request(config: &FaultConfig, grpc: bool, headers: &[(&'static str, &str)]) -> Request<()> {
    let mut b = Request::builder().uri("/s.S/M");
    if grpc {
        b = b.header("content-type", "application/grpc");
    }
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let mut req = b.body(()).unwrap();
    req.extensions_mut().insert(decision(RoutePolicy {
        name: "r".into(),
        fault: Some(Arc::new(config.clone())),
        ..Default::default()
    }));
    req
}

/// The code the call failed with; `None` when it was forwarded.
async fn outcome(svc: &mut Fault<Counting>, req: Request<()>) -> Option<Code> {
    match svc.ready().await.unwrap().call(req).await {
        Ok(_) => None,
        Err(e) => Some(crate::error::find_status(&*e).expect("a status").code()),
    }
}

#[tokio::test]
async fn abort_percentages_hold_for_every_denominator() {
    // (numerator, denominator, expected share): HUNDRED, TEN_THOUSAND,
    // MILLION, plus never and always.
    let cases = [
        (25, 100, 0.25),
        (1_250, 10_000, 0.125),
        (333_333, 1_000_000, 0.333_333),
        (5, 1_000_000, 0.000_005),
        (0, 100, 0.0),
        (100, 100, 1.0),
    ];
    let n = 20_000;
    for (seed, (num, den, expected)) in cases.into_iter().enumerate() {
        let config = abort(
            FaultAbortKind::Grpc(Code::Aborted),
            Fraction::from_ratio(num, den),
        );
        let (mut svc, calls) = service(seed as u64, counter());
        let mut aborted = 0;
        for _ in 0..n {
            if let Some(code) = outcome(&mut svc, request(&config, true, &[])).await {
                assert_eq!(code, Code::Aborted);
                aborted += 1;
            }
        }
        assert_eq!(
            calls.load(Ordering::SeqCst),
            n - aborted,
            "the rest forwarded"
        );
        // Tolerance: 4.5 standard deviations of a binomial share (at least
        // 3 requests' worth, for the tiny fractions).
        let share = aborted as f64 / n as f64;
        let sd = (expected * (1.0 - expected) / n as f64).sqrt();
        let tolerance = (4.5 * sd).max(3.0 / n as f64);
        assert!(
            (share - expected).abs() <= tolerance,
            "{num}/{den}: {aborted} of {n} aborted"
        );
    }
}

#[tokio::test]
async fn abort_codes_for_grpc_and_plain_http() {
    let http = |status| {
        abort(
            FaultAbortKind::Http {
                status,
                grpc_code: mesh_core::resource::filter::fault::grpc_code_for_http_status(status),
            },
            Fraction::ALWAYS,
        )
    };
    let (mut svc, calls) = service(1, counter());
    let mut check = async |config: FaultConfig, grpc: bool| {
        outcome(&mut svc, request(&config, grpc, &[])).await
    };
    // gRPC requests: gRPC's HTTP → gRPC mapping.
    assert_eq!(check(http(503), true).await, Some(Code::Unavailable));
    assert_eq!(check(http(404), true).await, Some(Code::Unimplemented));
    assert_eq!(check(http(400), true).await, Some(Code::Internal));
    assert_eq!(check(http(418), true).await, Some(Code::Unknown));
    // Plain HTTP: a code the edge maps back to the configured status.
    assert_eq!(check(http(429), false).await, Some(Code::ResourceExhausted));
    assert_eq!(check(http(404), false).await, Some(Code::NotFound));
    assert_eq!(check(http(503), false).await, Some(Code::Unavailable));
    let grpc = abort(
        FaultAbortKind::Grpc(Code::PermissionDenied),
        Fraction::ALWAYS,
    );
    assert_eq!(check(grpc, true).await, Some(Code::PermissionDenied));
    // grpc_status OK injects nothing.
    let ok = abort(FaultAbortKind::Grpc(Code::Ok), Fraction::ALWAYS);
    assert_eq!(check(ok, true).await, None);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn header_driven_aborts() {
    let config = abort(FaultAbortKind::Header, Fraction::ALWAYS);
    let (mut svc, _) = service(1, counter());
    let mut check = async |headers: &[(&'static str, &str)]| {
        outcome(&mut svc, request(&config, true, headers)).await
    };
    assert_eq!(check(&[]).await, None, "no header, no abort");
    assert_eq!(
        check(&[(ABORT_GRPC_HEADER, "5")]).await,
        Some(Code::NotFound)
    );
    assert_eq!(
        check(&[(ABORT_HEADER, "503")]).await,
        Some(Code::Unavailable)
    );
    assert_eq!(
        check(&[(ABORT_HEADER, "503"), (ABORT_GRPC_HEADER, "8")]).await,
        Some(Code::ResourceExhausted),
        "the gRPC header wins"
    );
    assert_eq!(check(&[(ABORT_HEADER, "garbage")]).await, None);
    assert_eq!(
        check(&[(ABORT_HEADER, "700")]).await,
        None,
        "outside [200, 600)"
    );
    assert_eq!(
        check(&[(ABORT_GRPC_HEADER, "14"), (ABORT_PERCENTAGE_HEADER, "0")]).await,
        None,
        "the percentage header caps the share"
    );
}

#[tokio::test]
async fn abort_percentage_header_is_capped_by_the_config() {
    // Configured 50%; the header asks for 100% and 10%.
    let config = abort(FaultAbortKind::Header, Fraction::from_ratio(50, 100));
    let (mut svc, _) = service(9, counter());
    let n = 10_000;
    let mut count = async |pct: &str| {
        let mut aborted = 0;
        for _ in 0..n {
            let headers = [(ABORT_GRPC_HEADER, "14"), (ABORT_PERCENTAGE_HEADER, pct)];
            if outcome(&mut svc, request(&config, true, &headers))
                .await
                .is_some()
            {
                aborted += 1;
            }
        }
        aborted
    };
    // ±3 points is over 6 standard deviations at n = 10,000.
    let capped = count("100").await;
    assert!(
        (4_700..=5_300).contains(&capped),
        "{capped} of {n} at 100% (cap 50%)"
    );
    let lowered = count("10").await;
    assert!((700..=1_300).contains(&lowered), "{lowered} of {n} at 10%");
}

#[tokio::test]
async fn header_matchers_gate_faults() {
    let mut config = abort(FaultAbortKind::Grpc(Code::Unavailable), Fraction::ALWAYS);
    config.headers = vec![HeaderMatcher {
        name: "x-chaos".into(),
        matcher: HeaderMatch::String(StringMatcher::exact("on")),
        invert: false,
        treat_missing_as_empty: false,
    }];
    let (mut svc, _) = service(1, counter());
    assert_eq!(outcome(&mut svc, request(&config, true, &[])).await, None);
    assert_eq!(
        outcome(&mut svc, request(&config, true, &[("x-chaos", "on")])).await,
        Some(Code::Unavailable)
    );
}

#[tokio::test]
async fn no_decision_or_no_fault_passes_through() {
    let (mut svc, calls) = service(1, counter());
    let req = Request::builder().uri("/s.S/M").body(()).unwrap();
    svc.ready().await.unwrap().call(req).await.unwrap();
    let mut req = Request::builder().uri("/s.S/M").body(()).unwrap();
    req.extensions_mut()
        .insert(decision(RoutePolicy::default()));
    svc.ready().await.unwrap().call(req).await.unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn delays_happen_before_forwarding() {
    let config = delay(
        FaultDelayKind::Fixed(Duration::from_secs(1)),
        Fraction::ALWAYS,
    );
    let active = counter();
    let (mut svc, calls) = service(1, active);
    let fut = svc.ready().await.unwrap().call(request(&config, true, &[]));
    let task = tokio::spawn(fut);
    tokio::time::sleep(Duration::from_millis(999)).await;
    assert_eq!(calls.load(Ordering::SeqCst), 0, "still delayed");
    assert_eq!(active.load(Ordering::SeqCst), 1, "an active fault");
    tokio::time::sleep(Duration::from_millis(2)).await;
    task.await.unwrap().unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(active.load(Ordering::SeqCst), 0, "released when done");
}

#[tokio::test(start_paused = true)]
async fn header_delay_and_delay_then_abort() {
    let config = delay(FaultDelayKind::Header, Fraction::ALWAYS);
    let (mut svc, calls) = service(1, counter());
    let start = tokio::time::Instant::now();
    let req = request(&config, true, &[(DELAY_HEADER, "250")]);
    assert_eq!(outcome(&mut svc, req).await, None);
    assert_eq!(start.elapsed(), Duration::from_millis(250));
    // Without the header there is no delay.
    let start = tokio::time::Instant::now();
    assert_eq!(outcome(&mut svc, request(&config, true, &[])).await, None);
    assert_eq!(start.elapsed(), Duration::ZERO);
    // Percentage header 0: no delay.
    let req = request(
        &config,
        true,
        &[(DELAY_HEADER, "250"), (DELAY_PERCENTAGE_HEADER, "0")],
    );
    let start = tokio::time::Instant::now();
    assert_eq!(outcome(&mut svc, req).await, None);
    assert_eq!(start.elapsed(), Duration::ZERO);
    assert_eq!(calls.load(Ordering::SeqCst), 3);

    // Delay and abort together: the abort comes after the delay.
    let mut both = delay(
        FaultDelayKind::Fixed(Duration::from_millis(100)),
        Fraction::ALWAYS,
    );
    both.abort = abort(FaultAbortKind::Grpc(Code::Aborted), Fraction::ALWAYS).abort;
    let start = tokio::time::Instant::now();
    assert_eq!(
        outcome(&mut svc, request(&both, true, &[])).await,
        Some(Code::Aborted)
    );
    assert_eq!(start.elapsed(), Duration::from_millis(100));
    assert_eq!(calls.load(Ordering::SeqCst), 3, "aborted, not forwarded");
}

#[tokio::test(start_paused = true)]
async fn max_active_faults_caps_the_process_wide_count() {
    let mut config = delay(
        FaultDelayKind::Fixed(Duration::from_secs(10)),
        Fraction::ALWAYS,
    );
    config.max_active_faults = Some(2);
    let active = counter();
    let (mut svc, calls) = service(1, active);
    let mut delayed = Vec::new();
    for _ in 0..2 {
        delayed.push(tokio::spawn(svc.ready().await.unwrap().call(request(
            &config,
            true,
            &[],
        ))));
    }
    assert_eq!(active.load(Ordering::SeqCst), 2);
    // Over the cap: forwarded at once, without a fault.
    let start = tokio::time::Instant::now();
    assert_eq!(outcome(&mut svc, request(&config, true, &[])).await, None);
    assert_eq!(start.elapsed(), Duration::ZERO);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    // A fault from another config counts against the same process-wide cap.
    let mut other = abort(FaultAbortKind::Grpc(Code::Aborted), Fraction::ALWAYS);
    other.max_active_faults = Some(2);
    assert_eq!(outcome(&mut svc, request(&other, true, &[])).await, None);
    other.max_active_faults = Some(3);
    assert_eq!(
        outcome(&mut svc, request(&other, true, &[])).await,
        Some(Code::Aborted)
    );
    for t in delayed {
        t.await.unwrap().unwrap();
    }
    assert_eq!(active.load(Ordering::SeqCst), 0);
    assert_eq!(calls.load(Ordering::SeqCst), 4);
}

#[test]
fn the_default_counter_is_process_wide() {
    let layer = FaultLayer::new();
    let svc: Fault<Counting> = layer.layer(Counting::default());
    assert!(std::ptr::eq(svc.active, &ACTIVE_FAULTS));
    let _ = active_faults();
}
