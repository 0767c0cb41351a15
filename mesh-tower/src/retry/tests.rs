use std::collections::VecDeque;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body::Frame;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use mesh_core::resource::cluster::CircuitBreakers;
use mesh_core::resource::route::{RetryBackOff, RetryOn, RetryPolicy};
use rand::SeedableRng;
use rand::rngs::SmallRng;
use tokio::time::Instant;
use tonic::Code;
use tower::{Layer, Service, ServiceExt};

use super::*;
use crate::BoxError;
use crate::breaker::{Breaker, BreakerLayer, Kind, Overflow};
use crate::error::find_status;

type ResBody = UnsyncBoxBody<Bytes, BoxError>;

/// What the mock answers one attempt with.
enum Reply {
    /// Trailers-Only with this status.
    Status(Code),
    /// Real headers, then the status in the trailers (commits the RPC).
    Committed(Code),
    /// A plain HTTP status.
    Http(u16),
    /// An error from below.
    Error(fn() -> BoxError),
    /// No answer for an hour.
    Hang,
}

#[derive(Debug)]
struct Attempt {
    at: Instant,
    headers: http::HeaderMap,
    /// The RPC deadline reached this attempt's extensions.
    has_deadline: bool,
    body: Bytes,
}

#[derive(Clone, Default)]
struct Mock {
    script: Arc<Mutex<VecDeque<Reply>>>,
    seen: Arc<Mutex<Vec<Attempt>>>,
}

impl Mock {
    fn new(script: impl IntoIterator<Item = Reply>) -> Self {
        Mock {
            script: Arc::new(Mutex::new(script.into_iter().collect())),
            seen: Default::default(),
        }
    }

    fn attempts(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    fn previous_attempts(&self) -> Vec<Option<String>> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .map(|a| {
                a.headers
                    .get(PREVIOUS_RPC_ATTEMPTS)
                    .map(|v| v.to_str().unwrap().to_owned())
            })
            .collect()
    }

    fn service(
        self,
    ) -> impl Service<
        http::Request<tonic::body::Body>,
        Response = http::Response<ResBody>,
        Error = BoxError,
        Future = impl Future<Output = Result<http::Response<ResBody>, BoxError>> + Send,
    > + Clone
    + Send {
        let mock = self;
        tower::service_fn(move |req: http::Request<tonic::body::Body>| {
            let mock = mock.clone();
            async move {
                let at = Instant::now();
                let (parts, body) = req.into_parts();
                let body = body.collect().await.map_err(|e| Box::new(e) as BoxError)?;
                mock.seen.lock().unwrap().push(Attempt {
                    at,
                    has_deadline: parts.extensions.get::<crate::timeout::Deadline>().is_some(),
                    headers: parts.headers,
                    body: body.to_bytes(),
                });
                let reply = mock.script.lock().unwrap().pop_front();
                respond(reply.unwrap_or(Reply::Status(Code::Ok))).await
            }
        })
    }
}

fn empty() -> ResBody {
    Full::new(Bytes::new())
        .map_err(|e| match e {})
        .boxed_unsync()
}

async fn respond(reply: Reply) -> Result<http::Response<ResBody>, BoxError> {
    let grpc = |code: Code| {
        http::Response::builder()
            .header("content-type", "application/grpc")
            .header("grpc-status", (code as i32).to_string())
            .body(empty())
            .unwrap()
    };
    Ok(match reply {
        Reply::Status(code) => grpc(code),
        Reply::Committed(code) => {
            let mut trailers = http::HeaderMap::new();
            trailers.insert("grpc-status", (code as i32).to_string().parse().unwrap());
            let frames = futures::stream::iter([
                Ok::<_, BoxError>(Frame::data(Bytes::from_static(b"\0\0\0\0\0"))),
                Ok(Frame::trailers(trailers)),
            ]);
            http::Response::builder()
                .header("content-type", "application/grpc")
                .body(StreamBody::new(frames).boxed_unsync())
                .unwrap()
        }
        Reply::Http(code) => http::Response::builder()
            .status(code)
            .body(empty())
            .unwrap(),
        Reply::Error(make) => return Err(make()),
        Reply::Hang => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            grpc(Code::Ok)
        }
    })
}

fn policy(retry_on: &str, num_retries: u32) -> RetryPolicy {
    RetryPolicy {
        retry_on: RetryOn::parse(retry_on),
        retriable_status_codes: vec![],
        num_retries,
        back_off: RetryBackOff::default(),
        per_try_timeout: None,
    }
}

fn request(body: &'static [u8]) -> http::Request<tonic::body::Body> {
    http::Request::new(tonic::body::Body::new(Full::new(Bytes::from_static(body))))
}

fn code_of(res: &http::Response<ResBody>) -> Code {
    let v = res
        .headers()
        .get("grpc-status")
        .expect("a Trailers-Only reply");
    Code::from_i32(v.to_str().unwrap().parse().unwrap())
}

async fn call<S>(
    svc: &mut S,
    req: http::Request<tonic::body::Body>,
) -> Result<S::Response, BoxError>
where
    S: Service<http::Request<tonic::body::Body>, Error = BoxError>,
{
    svc.ready().await?.call(req).await
}

const ALL_CODES: &str = "cancelled,deadline-exceeded,internal,resource-exhausted,unavailable";

#[tokio::test(start_paused = true)]
async fn retries_each_retryable_code() {
    for code in [
        Code::Cancelled,
        Code::DeadlineExceeded,
        Code::Internal,
        Code::ResourceExhausted,
        Code::Unavailable,
    ] {
        let mock = Mock::new([Reply::Status(code)]);
        let mut svc = RetryLayer::new()
            .policy(policy(ALL_CODES, 1))
            .seed(1)
            .layer(mock.clone().service());
        let res = call(&mut svc, request(b"x")).await.unwrap();
        assert_eq!(code_of(&res), Code::Ok, "{code:?}");
        assert_eq!(mock.attempts(), 2, "{code:?}");
        assert_eq!(mock.previous_attempts(), [None, Some("1".into())]);
    }
}

#[tokio::test(start_paused = true)]
async fn does_not_retry_other_codes_or_unlisted_ones() {
    let cases = [
        (ALL_CODES, Code::NotFound),
        (ALL_CODES, Code::Unknown),
        (ALL_CODES, Code::PermissionDenied),
        ("unavailable", Code::Internal),
        ("cancelled", Code::Unavailable),
    ];
    for (retry_on, code) in cases {
        let mock = Mock::new([Reply::Status(code)]);
        let mut svc = RetryLayer::new()
            .policy(policy(retry_on, 3))
            .layer(mock.clone().service());
        let res = call(&mut svc, request(b"x")).await.unwrap();
        assert_eq!(code_of(&res), code, "{retry_on} {code:?}");
        assert_eq!(mock.attempts(), 1, "{retry_on} {code:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn attempts_capped_at_five() {
    let mock = Mock::new((0..10).map(|_| Reply::Status(Code::Unavailable)));
    let mut svc = RetryLayer::new()
        .policy(policy("unavailable", 10))
        .layer(mock.clone().service());
    let res = call(&mut svc, request(b"x")).await.unwrap();
    assert_eq!(
        code_of(&res),
        Code::Unavailable,
        "the last result is returned"
    );
    assert_eq!(mock.attempts(), 5);
    let expected: Vec<Option<String>> = [None, Some("1"), Some("2"), Some("3"), Some("4")]
        .into_iter()
        .map(|s| s.map(String::from))
        .collect();
    assert_eq!(mock.previous_attempts(), expected);
    assert_eq!(max_attempts(Some(&policy("", 2)), MAX_ATTEMPTS), 3);
    assert_eq!(max_attempts(None, MAX_ATTEMPTS), 1);
}

#[tokio::test(start_paused = true)]
async fn real_headers_commit_the_rpc() {
    let mock = Mock::new([Reply::Committed(Code::Unavailable)]);
    let mut svc = RetryLayer::new()
        .policy(policy("unavailable", 3))
        .layer(mock.clone().service());
    let res = call(&mut svc, request(b"x")).await.unwrap();
    assert!(res.headers().get("grpc-status").is_none());
    let trailers = res.into_body().collect().await.unwrap().trailers().cloned();
    assert_eq!(trailers.unwrap()["grpc-status"], "14");
    assert_eq!(mock.attempts(), 1, "committed: no retry");
}

#[tokio::test(start_paused = true)]
async fn trailers_only_does_not_commit_and_body_is_replayed() {
    let mock = Mock::new([
        Reply::Status(Code::Unavailable),
        Reply::Status(Code::Unavailable),
    ]);
    let mut svc = RetryLayer::new()
        .policy(policy("unavailable", 4))
        .layer(mock.clone().service());
    let frames = futures::stream::iter([
        Ok::<_, tonic::Status>(Frame::data(Bytes::from_static(b"hello "))),
        Ok(Frame::data(Bytes::from_static(b"world"))),
    ]);
    let req = http::Request::new(tonic::body::Body::new(StreamBody::new(frames)));
    let res = call(&mut svc, req).await.unwrap();
    assert_eq!(code_of(&res), Code::Ok);
    let seen = mock.seen.lock().unwrap();
    assert_eq!(seen.len(), 3);
    for a in seen.iter() {
        assert_eq!(a.body, "hello world");
    }
}

#[tokio::test(start_paused = true)]
async fn body_over_the_cap_streams_but_is_not_retried() {
    let mock = Mock::new([Reply::Status(Code::Unavailable)]);
    let mut svc = RetryLayer::new()
        .policy(policy("unavailable", 4))
        .max_buffered_bytes(4)
        .layer(mock.clone().service());
    let res = call(&mut svc, request(b"0123456789")).await.unwrap();
    assert_eq!(code_of(&res), Code::Unavailable);
    assert_eq!(mock.attempts(), 1);
    assert_eq!(mock.seen.lock().unwrap()[0].body, "0123456789");
    // At the cap exactly, it is retried.
    let mock = Mock::new([Reply::Status(Code::Unavailable)]);
    let mut svc = RetryLayer::new()
        .policy(policy("unavailable", 4))
        .max_buffered_bytes(10)
        .layer(mock.clone().service());
    call(&mut svc, request(b"0123456789")).await.unwrap();
    assert_eq!(mock.attempts(), 2);
}

#[tokio::test(start_paused = true)]
async fn breaker_overflow_is_not_retried() {
    let mock = Mock::new([]);
    let breaker = Arc::new(Breaker::new(
        "c",
        "c",
        &CircuitBreakers {
            max_requests: 0,
            ..Default::default()
        },
    ));
    let inner = BreakerLayer::fixed(breaker.clone()).layer(mock.clone().service());
    let mut svc = RetryLayer::new()
        .policy(policy("unavailable,5xx,gateway-error", 4))
        .breaker(breaker.clone())
        .layer(inner);
    let err = call(&mut svc, request(b"x")).await.unwrap_err();
    assert!(err.is::<Overflow>());
    assert_eq!(find_status(err.as_ref()).unwrap().code(), Code::Unavailable);
    assert_eq!(mock.attempts(), 0);
    assert_eq!(
        breaker.overflows(Kind::Requests),
        1,
        "one attempt, not five"
    );
}

#[tokio::test(start_paused = true)]
async fn retries_limited_by_the_breaker() {
    let mock = Mock::new((0..5).map(|_| Reply::Status(Code::Unavailable)));
    let breaker = Arc::new(Breaker::new(
        "c",
        "c",
        &CircuitBreakers {
            max_retries: Some(0),
            ..Default::default()
        },
    ));
    let mut svc = RetryLayer::new()
        .policy(policy("unavailable", 4))
        .breaker(breaker.clone())
        .layer(mock.clone().service());
    let res = call(&mut svc, request(b"x")).await.unwrap();
    assert_eq!(code_of(&res), Code::Unavailable);
    assert_eq!(mock.attempts(), 1);
    assert_eq!(breaker.overflows(Kind::Retries), 1);
    assert_eq!(breaker.active(Kind::Retries), 0);
}

#[tokio::test(start_paused = true)]
async fn retry_budget_caps_concurrent_retries() {
    // The budget's floor is 3 retries at once: of 5 concurrent failing
    // RPCs, 3 retry while the others' retries are refused.
    let breaker = Arc::new(Breaker::new("c", "c", &CircuitBreakers::default()));
    let mock = Mock::new(
        (0..5)
            .map(|_| Reply::Status(Code::Unavailable))
            .chain((0..3).map(|_| Reply::Hang)),
    );
    let svc = RetryLayer::new()
        .policy(policy("unavailable", 1))
        .breaker(breaker.clone())
        .layer(mock.clone().service());
    let calls: Vec<_> = (0..5)
        .map(|_| {
            let mut svc = svc.clone();
            tokio::spawn(async move { call(&mut svc, request(b"x")).await })
        })
        .collect();
    // Let every first attempt fail and the retries start (and hang).
    while mock.attempts() < 8 && breaker.overflows(Kind::Retries) < 2 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(mock.attempts(), 8, "5 first attempts and 3 retries");
    assert_eq!(breaker.active(Kind::Retries), 3);
    assert_eq!(breaker.overflows(Kind::Retries), 2);
    for c in calls {
        c.abort();
    }
}

#[tokio::test(start_paused = true)]
async fn per_try_timeout_retries() {
    let mock = Mock::new([Reply::Hang]);
    let mut p = policy("deadline-exceeded", 2);
    p.per_try_timeout = Some(Duration::from_secs(2));
    let mut svc = RetryLayer::new().policy(p).layer(mock.clone().service());
    let start = Instant::now();
    let res = call(&mut svc, request(b"x")).await.unwrap();
    assert_eq!(code_of(&res), Code::Ok);
    assert_eq!(mock.attempts(), 2);
    assert!(start.elapsed() >= Duration::from_secs(2));
    assert_eq!(
        mock.seen.lock().unwrap()[0].headers["grpc-timeout"],
        "2000000u"
    );

    // Without the condition, the per-try DEADLINE_EXCEEDED is returned.
    let mock = Mock::new([Reply::Hang]);
    let mut p = policy("unavailable", 2);
    p.per_try_timeout = Some(Duration::from_secs(2));
    let mut svc = RetryLayer::new().policy(p).layer(mock.clone().service());
    let err = call(&mut svc, request(b"x")).await.unwrap_err();
    let status = find_status(err.as_ref()).unwrap();
    assert_eq!(status.code(), Code::DeadlineExceeded);
    assert_eq!(status.message(), "per_try_timeout 2s elapsed");
}

fn refused() -> BoxError {
    Box::new(h2::Error::from(h2::Reason::REFUSED_STREAM))
}

#[tokio::test(start_paused = true)]
async fn refused_streams_are_retried_once_transparently() {
    // No policy at all: still retried once, and not counted as an attempt.
    let mock = Mock::new([Reply::Error(refused)]);
    let mut svc = RetryLayer::new().layer(mock.clone().service());
    let res = call(&mut svc, request(b"abc")).await.unwrap();
    assert_eq!(code_of(&res), Code::Ok);
    assert_eq!(mock.attempts(), 2);
    assert_eq!(mock.previous_attempts(), [None, None]);
    assert_eq!(mock.seen.lock().unwrap()[1].body, "abc");

    let mock = Mock::new([Reply::Error(refused), Reply::Error(refused)]);
    let mut svc = RetryLayer::new().layer(mock.clone().service());
    let err = call(&mut svc, request(b"abc")).await.unwrap_err();
    assert!(err.is::<h2::Error>());
    assert_eq!(mock.attempts(), 2, "once only");

    // With a policy, a second refusal counts as a retryable failure.
    let mock = Mock::new([Reply::Error(refused), Reply::Error(refused)]);
    let mut svc = RetryLayer::new()
        .policy(policy("refused-stream", 1))
        .layer(mock.clone().service());
    call(&mut svc, request(b"abc")).await.unwrap();
    assert_eq!(mock.attempts(), 3);
    assert_eq!(mock.previous_attempts(), [None, None, Some("1".into())]);
}

#[tokio::test(start_paused = true)]
async fn http_conditions() {
    let cases: [(&str, Vec<u32>, u16, bool); 9] = [
        ("5xx", vec![], 500, true),
        ("5xx", vec![], 503, true),
        ("gateway-error", vec![], 502, true),
        ("gateway-error", vec![], 500, false),
        ("retriable-4xx", vec![], 409, true),
        ("retriable-4xx", vec![], 404, false),
        ("retriable-status-codes", vec![418], 418, true),
        ("retriable-status-codes", vec![418], 419, false),
        // Without grpc-status, 503 maps to UNAVAILABLE (gRPC's mapping).
        ("unavailable", vec![], 503, true),
    ];
    for (on, codes, status, retried) in cases {
        let mock = Mock::new([Reply::Http(status)]);
        let mut p = policy(on, 1);
        p.retriable_status_codes = codes;
        let mut svc = RetryLayer::new().policy(p).layer(mock.clone().service());
        call(&mut svc, request(b"x")).await.unwrap();
        assert_eq!(
            mock.attempts(),
            if retried { 2 } else { 1 },
            "{on} {status}"
        );
    }
    let class = |e: BoxError| classify_error(e.as_ref());
    let reset = class(Box::new(std::io::Error::from(
        std::io::ErrorKind::ConnectionReset,
    )));
    assert!(reset.reset);
    assert_eq!(
        verdict(&reset, Some(&policy("reset", 1)), false),
        Verdict::Retry
    );
    assert_eq!(
        verdict(&reset, Some(&policy("5xx", 1)), false),
        Verdict::Retry
    );
    assert_eq!(
        verdict(&reset, Some(&policy("connect-failure", 1)), false),
        Verdict::Return
    );
    let refused = class(Box::new(std::io::Error::from(
        std::io::ErrorKind::ConnectionRefused,
    )));
    assert!(refused.connect_failure);
    assert_eq!(
        verdict(&refused, Some(&policy("connect-failure", 1)), false),
        Verdict::Retry
    );
    assert_eq!(
        verdict(&refused, Some(&policy("unavailable", 1)), false),
        Verdict::Retry
    );
}

#[test]
fn backoff_is_full_jitter_under_the_exponential_ceiling() {
    let b = RetryBackOff {
        base_interval: Duration::from_millis(25),
        max_interval: Duration::from_millis(250),
    };
    let mut rng = SmallRng::seed_from_u64(7);
    for retry in 1..=8u32 {
        let ceiling = (b.base_interval * 2u32.pow(retry - 1)).min(b.max_interval);
        let samples: Vec<Duration> = (0..2000).map(|_| backoff(&b, retry, &mut rng)).collect();
        assert!(samples.iter().all(|d| *d <= ceiling), "retry {retry}");
        let mean = samples.iter().sum::<Duration>() / samples.len() as u32;
        let ratio = mean.as_secs_f64() / ceiling.as_secs_f64();
        // Uniform on [0, ceiling]: mean ceiling/2 (±5% for 2000 samples).
        assert!((0.45..0.55).contains(&ratio), "retry {retry}: {ratio}");
        let max = samples.iter().max().unwrap();
        assert!(
            *max > ceiling.mul_f64(0.95),
            "retry {retry}: spans the range"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn backoff_between_attempts_stays_under_the_ceiling() {
    let mock = Mock::new((0..4).map(|_| Reply::Status(Code::Unavailable)));
    let mut p = policy("unavailable", 4);
    p.back_off = RetryBackOff {
        base_interval: Duration::from_millis(100),
        max_interval: Duration::from_millis(300),
    };
    let mut svc = RetryLayer::new()
        .policy(p)
        .seed(42)
        .layer(mock.clone().service());
    call(&mut svc, request(b"x")).await.unwrap();
    let seen = mock.seen.lock().unwrap();
    assert_eq!(seen.len(), 5);
    let ceilings = [100, 200, 300, 300];
    let mut total = Duration::ZERO;
    for (w, ceiling) in seen.windows(2).zip(ceilings) {
        let gap = w[1].at - w[0].at;
        assert!(
            gap <= Duration::from_millis(ceiling),
            "{gap:?} > {ceiling}ms"
        );
        total += gap;
    }
    assert!(total > Duration::ZERO, "some backoff happened");
}

#[tokio::test(start_paused = true)]
async fn remaining_deadline_resent_with_each_attempt() {
    let mock = Mock::new([Reply::Status(Code::Unavailable)]);
    let mut p = policy("unavailable", 1);
    p.back_off = RetryBackOff {
        base_interval: Duration::from_secs(1),
        max_interval: Duration::from_secs(1),
    };
    let mut svc = crate::timeout::TimeoutLayer::new().layer(
        RetryLayer::new()
            .policy(p)
            .seed(3)
            .layer(mock.clone().service()),
    );
    let mut req = request(b"x");
    req.headers_mut()
        .insert("grpc-timeout", "10S".parse().unwrap());
    svc.ready().await.unwrap().call(req).await.unwrap();
    let seen = mock.seen.lock().unwrap();
    assert_eq!(seen[0].headers["grpc-timeout"], "10000000u");
    let gap = seen[1].at - seen[0].at;
    let second = crate::timeout::parse_grpc_timeout(seen[1].headers["grpc-timeout"].as_bytes());
    assert_eq!(second, Some(Duration::from_secs(10) - gap));
    assert!(
        seen.iter().all(|a| a.has_deadline),
        "every attempt carries the deadline to the layers below"
    );
}
