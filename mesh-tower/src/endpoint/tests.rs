//! The connection state machine under paused time, with scripted
//! connectors (no sockets; real connections are in tests/it/endpoint.rs).

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use super::*;

/// Fails every attempt at once (connection refused), or never completes.
#[derive(Debug, Default)]
struct Scripted {
    attempts: Mutex<Vec<Instant>>,
    hang: bool,
}

impl Connector for Scripted {
    fn connect(&self, _address: SocketAddr) -> ConnectFuture {
        self.attempts.lock().unwrap().push(Instant::now());
        let hang = self.hang;
        Box::pin(async move {
            if hang {
                std::future::pending::<()>().await;
            }
            Err(io::Error::new(
                io::ErrorKind::ConnectionRefused,
                "connection refused",
            ))
        })
    }
}

fn connection(connector: Arc<Scripted>) -> Connection {
    let settings = ConnectionSettings {
        connector,
        seed: Some(5),
        ..ConnectionSettings::default()
    };
    Connection::new(SocketAddr::from(([10, 0, 0, 1], 80)), Arc::new(settings))
}

fn request() -> Request<tonic::body::Body> {
    Request::builder()
        .uri("http://svc.test/grpc.testing.TestService/EmptyCall")
        .body(tonic::body::Body::empty())
        .unwrap()
}

async fn wait_for(c: &Connection, s: ConnectivityState) {
    let mut rx = c.watch();
    rx.wait_for(|x| *x == s).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn attempts_follow_grpc_backoff_with_jitter() {
    let script = Arc::new(Scripted::default());
    let c = connection(script.clone());
    assert_eq!(c.state(), ConnectivityState::Idle);
    c.set_keep_connected(true);
    // Let eight attempts fail.
    tokio::time::sleep(Duration::from_secs(60)).await;
    let times = script.attempts.lock().unwrap().clone();
    assert!(times.len() >= 6, "{} attempts", times.len());
    let gaps: Vec<f64> = times
        .windows(2)
        .map(|w| (w[1] - w[0]).as_secs_f64())
        .collect();
    assert!(
        (gaps[0] - 1.0).abs() < 0.01,
        "first delay is 1 s exactly: {gaps:?}"
    );
    let mut expected = 1.0f64;
    for g in &gaps[1..] {
        expected = (expected * 1.6).min(120.0);
        assert!(
            *g >= expected * 0.8 - 0.01 && *g <= expected * 1.2 + 0.01,
            "gap {g} not within ±20% of {expected}: {gaps:?}"
        );
    }
    assert_eq!(c.state(), ConnectivityState::TransientFailure);
}

#[tokio::test(start_paused = true)]
async fn states_move_idle_connecting_failure_idle_without_eager_reconnect() {
    let script = Arc::new(Scripted::default());
    let c = connection(script.clone());
    let mut rx = c.watch();
    c.connect();
    assert_eq!(c.state(), ConnectivityState::Connecting);
    wait_for(&c, ConnectivityState::TransientFailure).await;
    // Fail fast, naming the endpoint and the error.
    let err = c.call(request()).await.unwrap_err();
    let status = crate::error::find_status(&*err).unwrap();
    assert_eq!(status.code(), tonic::Code::Unavailable);
    assert!(
        status.message().contains("10.0.0.1:80") && status.message().contains("refused"),
        "{status:?}"
    );
    // After the backoff: IDLE, and no new attempt until used.
    wait_for(&c, ConnectivityState::Idle).await;
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(script.attempts.lock().unwrap().len(), 1);
    assert_eq!(c.state(), ConnectivityState::Idle);
    rx.mark_unchanged();
    // A request in IDLE connects, waits for the attempt, and fails with it.
    let err = c.call(request()).await.unwrap_err();
    assert!(err.to_string().contains("refused"), "{err}");
    assert_eq!(script.attempts.lock().unwrap().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_hanging_connect_times_out_after_the_minimum_connect_timeout() {
    let script = Arc::new(Scripted {
        hang: true,
        ..Scripted::default()
    });
    let c = connection(script);
    let started = Instant::now();
    let call = c.call(request());
    assert_eq!(c.state(), ConnectivityState::Connecting, "queued");
    let err = call.await.unwrap_err();
    assert_eq!(started.elapsed(), Duration::from_secs(20));
    assert!(err.to_string().contains("timed out after 20s"), "{err}");
    // The attempt outlasted the 1 s backoff, so (gRPC's algorithm) the
    // next one may start at once: the endpoint is IDLE, not backing off.
    assert_eq!(c.state(), ConnectivityState::Idle);
}

#[test]
fn relative_uris_get_scheme_and_authority() {
    let settings = ConnectionSettings::default();
    let addr = SocketAddr::from(([127, 0, 0, 1], 7070));
    let mut req = Request::builder().uri("/svc/Method").body(()).unwrap();
    absolute_uri(&mut req, addr, &settings);
    assert_eq!(req.uri(), "http://127.0.0.1:7070/svc/Method");
    let mut req = Request::builder()
        .uri("/svc/Method")
        .header("host", "echo.test:80")
        .body(())
        .unwrap();
    absolute_uri(&mut req, addr, &settings);
    assert_eq!(req.uri(), "http://echo.test:80/svc/Method");
}

#[tokio::test(start_paused = true)]
async fn requests_waiting_for_a_connection_take_pending_slots() {
    use mesh_core::resource::cluster::CircuitBreakers;
    let limits = CircuitBreakers {
        max_pending_requests: Some(1),
        ..CircuitBreakers::default()
    };
    let breaker = Arc::new(crate::breaker::Breaker::new("c", "c", &limits));
    let settings = ConnectionSettings {
        connector: Arc::new(Scripted {
            hang: true,
            ..Scripted::default()
        }),
        seed: Some(5),
        breaker: Some(breaker.clone()),
        ..ConnectionSettings::default()
    };
    let c = Connection::new(SocketAddr::from(([10, 0, 0, 1], 80)), Arc::new(settings));
    let first = tokio::spawn(c.call(request()));
    tokio::task::yield_now().await;
    tokio::task::yield_now().await;
    assert_eq!(
        breaker.active(crate::breaker::Kind::Pending),
        1,
        "the first waits"
    );
    let err = c.call(request()).await.unwrap_err();
    assert!(
        err.to_string().contains("max_pending_requests=1"),
        "the second overflows at once: {err}"
    );
    assert!(
        err.downcast_ref::<crate::breaker::Overflow>().is_some(),
        "marked: not retried"
    );
    assert_eq!(breaker.overflows(crate::breaker::Kind::Pending), 1);
    first.abort();
}
