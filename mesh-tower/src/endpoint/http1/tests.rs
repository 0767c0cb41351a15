//! The HTTP/1.1 pool against an in-memory HTTP/1.1 server (a duplex pipe
//! per connection, a hand-written responder: no sockets, paused time).

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::time::Duration;

use http_body_util::BodyExt;
use mesh_core::resource::cluster::{CircuitBreakers, UpstreamHttpOptions, UpstreamProtocol};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::sync::Semaphore;

use super::*;
use crate::breaker::{Breaker, Kind};
use crate::endpoint::{BoxIo, ConnectFuture, Connection, ConnectionSettings, Connector};

/// Opens in-memory connections to a tiny HTTP/1.1 server that answers
/// `200` with the connection's number as the body, each answer taking a
/// permit from `gate`.
#[derive(Debug)]
struct Server {
    connections: AtomicUsize,
    requests: Arc<AtomicUsize>,
    refuse: AtomicBool,
    /// Answers `connection: close` (and closes) after each response.
    close: bool,
    gate: Arc<Semaphore>,
}

impl Server {
    fn new(close: bool, permits: usize) -> Arc<Self> {
        Arc::new(Server {
            connections: AtomicUsize::new(0),
            requests: Arc::new(AtomicUsize::new(0)),
            refuse: AtomicBool::new(false),
            close,
            gate: Arc::new(Semaphore::new(permits)),
        })
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

impl Connector for Server {
    fn connect(&self, _address: SocketAddr) -> ConnectFuture {
        if self.refuse.load(Ordering::SeqCst) {
            return Box::pin(async { Err(io::Error::from(io::ErrorKind::ConnectionRefused)) });
        }
        let n = self.connections.fetch_add(1, Ordering::SeqCst) + 1;
        let (client, server) = tokio::io::duplex(1 << 16);
        tokio::spawn(serve(
            server,
            n,
            self.close,
            Arc::clone(&self.gate),
            Arc::clone(&self.requests),
        ));
        Box::pin(async move { Ok(Box::new(client) as BoxIo) })
    }
}

async fn serve(
    mut io: DuplexStream,
    n: usize,
    close: bool,
    gate: Arc<Semaphore>,
    served: Arc<AtomicUsize>,
) {
    let mut buf = Vec::new();
    loop {
        // One request head (these requests have no body).
        let end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let mut chunk = [0u8; 1024];
            match io.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(k) => buf.extend_from_slice(&chunk[..k]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
        buf.drain(..end);
        assert!(head.starts_with("get /p http/1.1\r\n"), "{head}");
        assert!(head.contains("host: svc.test"), "{head}");
        let Ok(permit) = gate.acquire().await else {
            return;
        };
        permit.forget();
        served.fetch_add(1, Ordering::SeqCst);
        let body = n.to_string();
        let header = if close { "connection: close\r\n" } else { "" };
        let resp = format!(
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n{header}\r\n{body}",
            body.len()
        );
        if io.write_all(resp.as_bytes()).await.is_err() || close {
            return;
        }
    }
}

fn settings(server: &Arc<Server>) -> ConnectionSettings {
    ConnectionSettings {
        connector: Arc::clone(server) as Arc<dyn Connector>,
        seed: Some(3),
        http: UpstreamHttpOptions {
            protocol: UpstreamProtocol::Http1,
            max_requests_per_connection: None,
        },
        ..ConnectionSettings::default()
    }
}

fn connection(settings: ConnectionSettings) -> Connection {
    Connection::new(SocketAddr::from(([10, 0, 0, 1], 80)), Arc::new(settings))
}

fn request() -> Request<Body> {
    Request::get("http://svc.test/p")
        .body(Body::empty())
        .unwrap()
}

/// Sends one request and reads the body (the connection's number).
async fn get(c: &Connection) -> Result<String, BoxError> {
    let resp = c.call(request()).await?;
    assert_eq!(resp.status(), 200);
    let body = resp.into_body().collect().await?.to_bytes();
    Ok(String::from_utf8(body.to_vec()).unwrap())
}

/// Polls (in paused time) until `f` holds.
async fn until(mut f: impl FnMut() -> bool) {
    for _ in 0..1000 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    panic!("condition never held");
}

#[test]
fn requests_go_out_in_origin_form_with_a_host() {
    let req = Request::get("http://echo.test:8080/a/b?c=d")
        .version(Version::HTTP_2)
        .body(Body::empty())
        .unwrap();
    let req = origin_form(req);
    assert_eq!(req.uri(), "/a/b?c=d");
    assert_eq!(req.headers()[HOST], "echo.test:8080");
    assert_eq!(req.version(), Version::HTTP_11);
    let req = Request::get("http://ip:1/")
        .header(HOST, "named.test")
        .body(Body::empty())
        .unwrap();
    assert_eq!(origin_form(req).headers()[HOST], "named.test");
}

#[tokio::test(start_paused = true)]
async fn a_connection_is_reused_once_its_response_is_read() {
    let server = Server::new(false, usize::MAX >> 4);
    let c = connection(settings(&server));
    for _ in 0..5 {
        assert_eq!(get(&c).await.unwrap(), "1");
        until(|| c.shared.h1.idle() == 1).await;
    }
    assert_eq!(server.connections(), 1);
    assert_eq!(server.requests(), 5);
    assert_eq!(c.state(), ConnectivityState::Ready);
    assert_eq!(c.connection_count(), 1);
    assert_eq!(c.load().in_flight(), 0);
}

#[tokio::test(start_paused = true)]
async fn concurrency_is_bounded_per_endpoint_and_waiters_take_pending_slots() {
    let server = Server::new(false, 0);
    let breaker = Arc::new(Breaker::new("c", "c", &CircuitBreakers::default()));
    let c = Arc::new(connection(ConnectionSettings {
        max_http1_connections: 2,
        breaker: Some(Arc::clone(&breaker)),
        ..settings(&server)
    }));
    let calls: Vec<_> = (0..5)
        .map(|_| {
            let c = Arc::clone(&c);
            tokio::spawn(async move { get(&c).await.unwrap() })
        })
        .collect();
    until(|| breaker.active(Kind::Pending) == 3).await;
    assert_eq!(server.connections(), 2, "two open, three wait");
    assert_eq!(breaker.active(Kind::Connections), 2);
    assert_eq!(c.load().in_flight(), 5);
    server.gate.add_permits(5);
    let mut bodies = Vec::new();
    for call in calls {
        bodies.push(call.await.unwrap());
    }
    bodies.sort();
    assert_eq!(server.connections(), 2, "waiters reuse the two: {bodies:?}");
    assert_eq!(server.requests(), 5);
    assert_eq!(breaker.active(Kind::Pending), 0);
    until(|| c.shared.h1.idle() == 2).await;
    assert_eq!(c.load().in_flight(), 0);
}

#[tokio::test(start_paused = true)]
async fn waiting_past_max_pending_requests_overflows() {
    let server = Server::new(false, 0);
    let limits = CircuitBreakers {
        max_pending_requests: Some(1),
        ..CircuitBreakers::default()
    };
    let breaker = Arc::new(Breaker::new("c", "c", &limits));
    let c = Arc::new(connection(ConnectionSettings {
        max_http1_connections: 1,
        breaker: Some(Arc::clone(&breaker)),
        ..settings(&server)
    }));
    let first = tokio::spawn({
        let c = Arc::clone(&c);
        async move { get(&c).await.unwrap() }
    });
    until(|| server.connections() == 1).await;
    let second = tokio::spawn({
        let c = Arc::clone(&c);
        async move { get(&c).await.unwrap() }
    });
    until(|| breaker.active(Kind::Pending) == 1).await;
    let err = get(&c).await.unwrap_err();
    assert!(
        err.downcast_ref::<crate::breaker::Overflow>().is_some(),
        "{err}"
    );
    server.gate.add_permits(2);
    assert_eq!(first.await.unwrap(), "1");
    assert_eq!(second.await.unwrap(), "1");
}

#[tokio::test(start_paused = true)]
async fn closed_connections_are_replaced() {
    // The server closes after every response.
    let server = Server::new(true, usize::MAX >> 4);
    let c = connection(settings(&server));
    assert_eq!(get(&c).await.unwrap(), "1");
    until(|| c.connection_count() == 0).await;
    assert_eq!(c.state(), ConnectivityState::Idle, "the last close is IDLE");
    assert_eq!(get(&c).await.unwrap(), "2");
    assert_eq!(server.connections(), 2);
}

#[tokio::test(start_paused = true)]
async fn max_requests_per_connection_closes_after_the_limit() {
    let server = Server::new(false, usize::MAX >> 4);
    let c = connection(ConnectionSettings {
        http: UpstreamHttpOptions {
            protocol: UpstreamProtocol::Http1,
            max_requests_per_connection: Some(2),
        },
        ..settings(&server)
    });
    let mut bodies = Vec::new();
    for _ in 0..4 {
        bodies.push(get(&c).await.unwrap());
        until(|| c.shared.h1.idle() == 1 || c.shared.h1.open() == 0).await;
    }
    assert_eq!(bodies, ["1", "1", "2", "2"]);
}

#[tokio::test(start_paused = true)]
async fn connect_failures_back_off_then_reconnect() {
    let server = Server::new(false, usize::MAX >> 4);
    server.refuse.store(true, Ordering::SeqCst);
    let c = connection(settings(&server));
    let err = get(&c).await.unwrap_err();
    let status = crate::error::find_status(&*err).unwrap();
    assert_eq!(status.code(), tonic::Code::Unavailable);
    assert!(status.message().contains("10.0.0.1:80"), "{status:?}");
    assert_eq!(c.state(), ConnectivityState::TransientFailure);
    let class = crate::retry::classify_error(&*err);
    assert!(class.connect_failure, "{class:?}");
    // Fails fast while backing off, without an attempt.
    assert!(get(&c).await.is_err());
    server.refuse.store(false, Ordering::SeqCst);
    let mut rx = c.watch();
    rx.wait_for(|s| *s == ConnectivityState::Idle)
        .await
        .unwrap();
    assert_eq!(get(&c).await.unwrap(), "1");
    assert_eq!(c.state(), ConnectivityState::Ready);
}

#[tokio::test(start_paused = true)]
async fn eager_connect_opens_one_idle_connection() {
    let server = Server::new(false, usize::MAX >> 4);
    let c = connection(settings(&server));
    c.set_keep_connected(true);
    let mut rx = c.watch();
    rx.wait_for(|s| *s == ConnectivityState::Ready)
        .await
        .unwrap();
    until(|| c.shared.h1.idle() == 1).await;
    assert_eq!(get(&c).await.unwrap(), "1");
    assert_eq!(server.connections(), 1);
}
