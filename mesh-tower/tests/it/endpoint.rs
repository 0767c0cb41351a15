//! Endpoint connections over loopback: reuse, several connections when
//! one saturates, reconnect with backoff after a backend restarts.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use mesh_core::resource::endpoint::{Endpoint, HealthStatus};
use mesh_core::testing::proto::grpc_testing::test_service_client::TestServiceClient;
use mesh_core::testing::proto::grpc_testing::{Empty, SimpleRequest};
use mesh_core::testing::test_service::{RPC_BEHAVIOR_HEADER, TestServiceBackend};
use mesh_tower::cluster::EndpointHandle;
use mesh_tower::endpoint::{ConnectBackoff, ConnectionSettings, ConnectivityState};
use tonic::Code;

/// Settings with a fast backoff so real-time tests stay short.
pub fn fast_settings() -> Arc<ConnectionSettings> {
    Arc::new(ConnectionSettings {
        backoff: ConnectBackoff {
            initial: Duration::from_millis(50),
            max: Duration::from_millis(200),
            min_connect_timeout: Duration::from_secs(2),
            ..ConnectBackoff::default()
        },
        seed: Some(1),
        ..ConnectionSettings::default()
    })
}

pub fn endpoint(address: SocketAddr, settings: Arc<ConnectionSettings>) -> Arc<EndpointHandle> {
    Arc::new(EndpointHandle::new(
        Endpoint {
            address,
            additional_addresses: Vec::new(),
            health: HealthStatus::Healthy,
            weight: 1,
            hostname: String::new(),
            metadata: Default::default(),
        },
        settings,
    ))
}

/// Sends every request straight to one endpoint.
#[derive(Clone)]
struct Direct(Arc<EndpointHandle>);

impl tower::Service<http::Request<tonic::body::Body>> for Direct {
    type Response = http::Response<hyper::body::Incoming>;
    type Error = mesh_tower::BoxError;
    type Future = mesh_tower::endpoint::ResponseFuture;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<tonic::body::Body>) -> Self::Future {
        self.0.connection.call(req)
    }
}

fn client(ep: &Arc<EndpointHandle>) -> TestServiceClient<Direct> {
    TestServiceClient::with_origin(
        Direct(Arc::clone(ep)),
        "http://echo.test:7070".parse().unwrap(),
    )
}

async fn eventually<F: FnMut() -> bool>(what: &str, mut f: F) {
    for _ in 0..500 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn reuses_one_connection_and_opens_more_when_saturated() {
    let backend = TestServiceBackend::new("a").serve().await.unwrap();
    let settings = Arc::new(ConnectionSettings {
        max_streams_per_connection: 2,
        ..(*fast_settings()).clone()
    });
    let ep = endpoint(backend.local_addr(), settings);
    let mut c = client(&ep);
    for _ in 0..10 {
        c.empty_call(Empty {}).await.unwrap();
    }
    assert_eq!(ep.connection.state(), ConnectivityState::Ready);
    assert_eq!(ep.connection.connection_count(), 1, "one connection reused");

    // Six calls that never end: two streams per connection means more
    // connections open.
    let mut held = Vec::new();
    for _ in 0..6 {
        let mut c = c.clone();
        held.push(tokio::spawn(async move {
            let mut req = tonic::Request::new(Empty {});
            req.metadata_mut()
                .insert(RPC_BEHAVIOR_HEADER, "keep-open".parse().unwrap());
            let _ = c.empty_call(req).await;
        }));
    }
    eventually("a second connection", || {
        ep.connection.connection_count() >= 2
    })
    .await;
    for h in held {
        h.abort();
    }
    assert_eq!(backend.served(), 16);
}

#[tokio::test]
async fn absolute_form_requests_are_sent_as_they_are() {
    let backend = TestServiceBackend::new("a").serve().await.unwrap();
    let ep = endpoint(backend.local_addr(), fast_settings());
    let req = http::Request::builder()
        .method("POST")
        .uri("http://custom.authority:1234/grpc.testing.TestService/EmptyCall")
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(tonic::body::Body::new(http_body_util::Full::new(
            bytes::Bytes::from_static(&[0, 0, 0, 0, 0]),
        )))
        .unwrap();
    let resp = ep.connection.call(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(backend.served(), 1);
}

#[tokio::test]
async fn backend_restarted_on_the_same_port_is_reconnected_with_backoff() {
    let backend = TestServiceBackend::new("a").serve().await.unwrap();
    let addr = backend.local_addr();
    let ep = endpoint(addr, fast_settings());
    let mut c = client(&ep);
    let r = c.unary_call(SimpleRequest::default()).await.unwrap();
    assert_eq!(r.into_inner().hostname, "a");

    // The backend dies: its connections close, the endpoint goes IDLE.
    drop(backend);
    eventually("IDLE after the close", || {
        ep.connection.state() == ConnectivityState::Idle
    })
    .await;

    // The next call connects, is refused, and fails UNAVAILABLE naming the
    // endpoint; calls in the backoff fail fast.
    let err = c.unary_call(SimpleRequest::default()).await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert!(err.message().contains(&addr.to_string()), "{err:?}");
    assert_eq!(ep.connection.state(), ConnectivityState::TransientFailure);
    let err = c.unary_call(SimpleRequest::default()).await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);
    assert!(err.message().contains("TRANSIENT_FAILURE"), "{err:?}");

    // Back on the same port: after the backoff a call gets through.
    let backend = TestServiceBackend::new("a2").serve_on(addr).await.unwrap();
    let mut ok = None;
    for _ in 0..200 {
        match c.unary_call(SimpleRequest::default()).await {
            Ok(r) => {
                ok = Some(r.into_inner().hostname);
                break;
            }
            Err(e) => assert_eq!(e.code(), Code::Unavailable, "{e:?}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(ok.as_deref(), Some("a2"));
    assert_eq!(ep.connection.state(), ConnectivityState::Ready);
    assert!(backend.served() >= 1);
}

#[tokio::test]
async fn dropping_the_endpoint_closes_its_connections() {
    let backend = TestServiceBackend::new("a").serve().await.unwrap();
    let ep = endpoint(backend.local_addr(), fast_settings());
    let mut c = client(&ep);
    c.empty_call(Empty {}).await.unwrap();
    let mut rx = ep.connection.watch();
    drop(c);
    drop(ep);
    // The state sender went away with the endpoint.
    tokio::time::timeout(Duration::from_secs(5), async {
        while rx.changed().await.is_ok() {}
    })
    .await
    .expect("the endpoint's state channel closes");
}
