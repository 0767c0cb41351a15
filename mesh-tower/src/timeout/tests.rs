use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body::Frame;
use http_body_util::{BodyExt, Full, StreamBody};
use mesh_core::resource::cluster::Cluster;
use mesh_core::resource::route::DurationCap;
use tower::{Layer, Service, ServiceExt};

use super::*;
use crate::cluster::ClusterRuntime;
use crate::context::{RouteDecision, RoutePolicy};
use crate::error::find_status;

fn s(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn decision(policy: RoutePolicy) -> RouteDecision {
    let config = Cluster::try_from(mesh_core::testing::resources::eds_cluster("c", "")).unwrap();
    RouteDecision {
        route: Arc::new(policy),
        cluster: Arc::new(ClusterRuntime {
            name: "c".into(),
            config: Arc::new(config),
            breaker: Default::default(),
            balancer: Default::default(),
        }),
        hash: None,
    }
}

#[test]
fn grpc_timeout_parses_every_unit() {
    let cases: [(&str, Option<Duration>); 12] = [
        ("2H", Some(s(7200))),
        ("3M", Some(s(180))),
        ("4S", Some(s(4))),
        ("5m", Some(Duration::from_millis(5))),
        ("6u", Some(Duration::from_micros(6))),
        ("7n", Some(Duration::from_nanos(7))),
        ("99999999S", Some(s(99_999_999))),
        ("123456789S", None),
        ("S", None),
        ("10x", None),
        ("-1S", None),
        ("", None),
    ];
    for (text, want) in cases {
        assert_eq!(parse_grpc_timeout(text.as_bytes()), want, "{text:?}");
    }
}

#[test]
fn grpc_timeout_encodes_in_the_finest_unit_that_fits() {
    let cases = [
        (Duration::from_nanos(5), "5n"),
        (Duration::from_millis(1500), "1500000u"),
        (s(5), "5000000u"),
        (s(1000), "1000000m"),
        (s(200_000), "200000S"),
        (Duration::from_nanos(1_500_000_001), "1500001u"),
    ];
    for (d, want) in cases {
        let v = encode_grpc_timeout(d);
        assert_eq!(v, want, "{d:?}");
        let back = parse_grpc_timeout(v.as_bytes()).unwrap();
        assert!(
            back >= d && back - d < Duration::from_micros(1),
            "{d:?} → {back:?}"
        );
    }
}

#[test]
fn precedence_table() {
    use Limit::*;
    let policy =
        |msd: Option<u64>, header_max: Option<DurationCap>, timeout: Option<u64>| RoutePolicy {
            max_stream_duration: msd.map(s),
            grpc_timeout_header_max: header_max,
            timeout: timeout.map(s),
            ..Default::default()
        };
    let max = |n| Some(DurationCap::Max(s(n)));
    let unlimited = Some(DurationCap::Unlimited);
    #[rustfmt::skip]
    type Case = (Option<u64>, RoutePolicy, Option<(u64, Limit)>);
    let cases: Vec<Case> = vec![
        // caller, route, want
        (None, policy(None, None, None), None),
        (Some(5), policy(None, None, None), Some((5, GrpcTimeout))),
        (
            None,
            policy(Some(3), None, None),
            Some((3, MaxStreamDuration)),
        ),
        (
            Some(5),
            policy(Some(3), None, None),
            Some((3, MaxStreamDuration)),
        ),
        (Some(2), policy(Some(3), None, None), Some((2, GrpcTimeout))),
        // grpc_timeout_header_max replaces max_stream_duration (A31).
        (
            Some(5),
            policy(Some(3), max(4), None),
            Some((4, GrpcTimeoutHeaderMax)),
        ),
        (
            Some(5),
            policy(Some(3), unlimited, None),
            Some((5, GrpcTimeout)),
        ),
        (None, policy(Some(3), unlimited, None), None),
        (Some(1), policy(None, max(4), None), Some((1, GrpcTimeout))),
        // Envoy's timeout when set.
        (
            Some(5),
            policy(None, None, Some(2)),
            Some((2, RouteTimeout)),
        ),
        (
            Some(1),
            policy(Some(3), None, Some(2)),
            Some((1, GrpcTimeout)),
        ),
        (
            None,
            policy(Some(3), max(4), Some(6)),
            Some((4, GrpcTimeoutHeaderMax)),
        ),
        // Zero is no limit.
        (
            Some(5),
            policy(Some(0), None, Some(0)),
            Some((5, GrpcTimeout)),
        ),
    ];
    for (i, (caller, route, want)) in cases.into_iter().enumerate() {
        let got = effective_deadline(caller.map(s), Some(&route));
        assert_eq!(got, want.map(|(n, l)| (s(n), l)), "case {i}");
    }
    assert_eq!(
        effective_deadline(Some(s(1)), None),
        Some((s(1), GrpcTimeout))
    );
}

type Seen = Arc<Mutex<Vec<http::HeaderMap>>>;

/// A service that sleeps `delay` before answering, recording headers.
fn slow(
    delay: Duration,
    seen: Seen,
) -> impl Service<http::Request<()>, Response = http::Response<Full<Bytes>>, Error = Infallible> + Clone
{
    tower::service_fn(move |req: http::Request<()>| {
        seen.lock().unwrap().push(req.headers().clone());
        async move {
            tokio::time::sleep(delay).await;
            Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from_static(b"ok"))))
        }
    })
}

fn request(grpc_timeout: Option<&str>, policy: Option<RoutePolicy>) -> http::Request<()> {
    let mut req = http::Request::new(());
    if let Some(t) = grpc_timeout {
        req.headers_mut().insert(GRPC_TIMEOUT, t.parse().unwrap());
    }
    if let Some(p) = policy {
        req.extensions_mut().insert(decision(p));
    }
    req
}

#[tokio::test(start_paused = true)]
async fn deadline_exceeded_names_the_limit() {
    let seen = Seen::default();
    let mut svc = TimeoutLayer::new().layer(slow(s(10), seen.clone()));
    let policy = RoutePolicy {
        name: "r1".into(),
        max_stream_duration: Some(s(2)),
        ..Default::default()
    };
    let start = tokio::time::Instant::now();
    let err = svc
        .ready()
        .await
        .unwrap()
        .call(request(Some("5S"), Some(policy)))
        .await
        .unwrap_err();
    assert_eq!(start.elapsed(), s(2));
    let status = find_status(err.as_ref()).unwrap();
    assert_eq!(status.code(), tonic::Code::DeadlineExceeded);
    assert_eq!(
        status.message(),
        "deadline exceeded: max_stream_duration 2s of route r1 elapsed"
    );
    // The outgoing header carries the effective deadline.
    assert_eq!(seen.lock().unwrap()[0][GRPC_TIMEOUT], "2000000u");

    let err = svc
        .ready()
        .await
        .unwrap()
        .call(request(Some("1500m"), None))
        .await
        .unwrap_err();
    let status = find_status(err.as_ref()).unwrap();
    assert_eq!(
        status.message(),
        "deadline exceeded: grpc-timeout 1.5s elapsed"
    );
}

#[tokio::test(start_paused = true)]
async fn no_limit_passes_through() {
    let seen = Seen::default();
    let mut svc = TimeoutLayer::new().layer(slow(s(3600), seen.clone()));
    let res = svc
        .ready()
        .await
        .unwrap()
        .call(request(None, Some(RoutePolicy::default())))
        .await
        .unwrap();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "ok");
    assert!(seen.lock().unwrap()[0].get(GRPC_TIMEOUT).is_none());
}

#[tokio::test(start_paused = true)]
async fn deadline_covers_the_response_stream() {
    // Headers at once, then one frame a second, forever.
    let streaming = tower::service_fn(|_req: http::Request<()>| async {
        let frames = futures::stream::unfold(0u32, |n| async move {
            tokio::time::sleep(s(1)).await;
            Some((
                Ok::<_, Infallible>(Frame::data(Bytes::from(n.to_string()))),
                n + 1,
            ))
        });
        Ok::<_, Infallible>(http::Response::new(StreamBody::new(frames)))
    });
    let mut svc = TimeoutLayer::new().layer(streaming);
    let start = tokio::time::Instant::now();
    let res = svc
        .ready()
        .await
        .unwrap()
        .call(request(Some("3500m"), None))
        .await
        .unwrap();
    let mut body = Box::pin(res.into_body());
    let mut frames = 0;
    let err = loop {
        match body.frame().await {
            Some(Ok(_)) => frames += 1,
            Some(Err(e)) => break e,
            None => panic!("the stream cannot end by itself"),
        }
    };
    assert_eq!(frames, 3);
    assert_eq!(start.elapsed(), Duration::from_millis(3500));
    let status = find_status(err.as_ref()).unwrap();
    assert_eq!(status.code(), tonic::Code::DeadlineExceeded);
    assert!(body.frame().await.is_none(), "ended after the error");
}

#[tokio::test(start_paused = true)]
async fn fast_call_succeeds_and_deadline_in_extensions() {
    let got = Arc::new(Mutex::new(None));
    let g = got.clone();
    let svc = tower::service_fn(move |req: http::Request<()>| {
        *g.lock().unwrap() = req.extensions().get::<Deadline>().copied();
        async { Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::new()))) }
    });
    let mut svc = TimeoutLayer::new().layer(svc);
    svc.ready()
        .await
        .unwrap()
        .call(request(Some("7S"), None))
        .await
        .unwrap();
    let d = got.lock().unwrap().expect("a deadline");
    assert_eq!(d.budget, s(7));
    assert_eq!(d.limit, Limit::GrpcTimeout);
}
