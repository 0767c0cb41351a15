//! Loopback gRPC tests of the TestService backend: behaviours, headers,
//! counting, health and server lifecycle.

use std::time::Instant;

use tonic::transport::Channel;
use tower::ServiceExt;

use super::*;
use crate::testing::proto::grpc_testing::EchoStatus;
use crate::testing::proto::grpc_testing::test_service_client::TestServiceClient;
use crate::testing::proto::grpc_testing::xds_update_health_service_client::XdsUpdateHealthServiceClient;

async fn channel(backend: &RunningBackend) -> Channel {
    Channel::from_shared(backend.url())
        .expect("valid url")
        .connect()
        .await
        .expect("connects")
}

/// A UnaryCall request carrying the given request headers.
fn unary(headers: &[(&'static str, &'static str)]) -> Request<SimpleRequest> {
    let mut request = Request::new(SimpleRequest::default());
    for (key, value) in headers {
        request
            .metadata_mut()
            .append(*key, AsciiMetadataValue::from_static(value));
    }
    request
}

#[test]
fn parses_behaviors_in_order_and_filters_by_hostname() {
    let parsed = parse_rpc_behaviors(
        [
            "sleep-2, keep-open,,error-code-14",
            "succeed-on-retry-attempt-3",
            "hostname=me error-code-5,hostname=other error-code-7",
        ],
        "me",
    );
    assert_eq!(
        parsed,
        Ok(vec![
            Behavior::Sleep(2),
            Behavior::KeepOpen,
            Behavior::ErrorCode(14),
            Behavior::SucceedOnRetryAttempt(3),
            Behavior::ErrorCode(5),
        ])
    );
}

#[test]
fn rejects_malformed_behaviors() {
    for bad in [
        "sleep-x",
        "error-code-",
        "succeed-on-retry-attempt--1",
        "hostname=me",
        "explode",
    ] {
        let error = parse_rpc_behaviors([bad], "me").expect_err(bad);
        assert!(error.contains(bad), "{error}");
    }
    // A malformed behaviour meant for another host is skipped unparsed.
    assert_eq!(
        parse_rpc_behaviors(["hostname=x explode"], "me"),
        Ok(vec![])
    );
}

#[tokio::test]
async fn unary_call_returns_identity_payload_and_hostname_header() {
    let backend = TestServiceBackend::new("server-1")
        .hostname("host-1")
        .serve()
        .await
        .unwrap();
    let mut client = TestServiceClient::new(channel(&backend).await);
    let request = SimpleRequest {
        response_size: 10,
        fill_server_id: true,
        ..SimpleRequest::default()
    };
    let response = client.unary_call(request).await.unwrap();
    assert_eq!(response.metadata().get(HOSTNAME_HEADER).unwrap(), "host-1");
    let response = response.into_inner();
    assert_eq!(response.server_id, "server-1");
    assert_eq!(response.hostname, "host-1");
    assert_eq!(response.payload.unwrap().body.len(), 10);

    let empty = client.empty_call(Empty {}).await.unwrap();
    assert_eq!(empty.metadata().get(HOSTNAME_HEADER).unwrap(), "host-1");
    assert_eq!(backend.served(), 2);
}

#[tokio::test]
async fn hostname_defaults_to_server_id() {
    let backend = TestServiceBackend::new("s").serve().await.unwrap();
    let mut client = TestServiceClient::new(channel(&backend).await);
    let response = client.unary_call(unary(&[])).await.unwrap();
    assert_eq!(response.into_inner().hostname, "s");
}

#[tokio::test]
async fn error_code_fails_trailers_only_without_hostname() {
    let backend = TestServiceBackend::new("s1").serve().await.unwrap();
    let channel = channel(&backend).await;
    let mut client = TestServiceClient::new(channel.clone());
    let status = client
        .unary_call(unary(&[(RPC_BEHAVIOR_HEADER, "error-code-14")]))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    assert!(status.metadata().get(HOSTNAME_HEADER).is_none());

    // On the wire: grpc-status in the response headers (Trailers-Only)
    // and no hostname header.
    let request = http::Request::builder()
        .method("POST")
        .uri(format!(
            "{}/grpc.testing.TestService/EmptyCall",
            backend.url()
        ))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header(RPC_BEHAVIOR_HEADER, "error-code-14")
        .body(tonic::body::Body::new(String::from("\0\0\0\0\0")))
        .unwrap();
    let response = channel.oneshot(request).await.unwrap();
    assert_eq!(response.status(), http::StatusCode::OK);
    assert_eq!(response.headers().get("grpc-status").unwrap(), "14");
    assert!(response.headers().get(HOSTNAME_HEADER).is_none());
    assert_eq!(backend.served(), 2);
}

#[tokio::test]
async fn hostname_prefix_applies_only_to_that_host() {
    let backend = TestServiceBackend::new("s1")
        .hostname("h1")
        .serve()
        .await
        .unwrap();
    let mut client = TestServiceClient::new(channel(&backend).await);
    let other = unary(&[(RPC_BEHAVIOR_HEADER, "hostname=other error-code-14")]);
    assert!(client.unary_call(other).await.is_ok());
    let mine = unary(&[(RPC_BEHAVIOR_HEADER, "hostname=h1 error-code-14")]);
    let status = client.unary_call(mine).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
}

#[tokio::test]
async fn succeed_on_retry_attempt_overrides_later_error() {
    let backend = TestServiceBackend::new("s1").serve().await.unwrap();
    let mut client = TestServiceClient::new(channel(&backend).await);
    let behavior = (
        RPC_BEHAVIOR_HEADER,
        "succeed-on-retry-attempt-1,error-code-14",
    );
    let first = client.unary_call(unary(&[behavior])).await.unwrap_err();
    assert_eq!(first.code(), Code::Unavailable);
    let retry = unary(&[behavior, (PREVIOUS_RPC_ATTEMPTS_HEADER, "1")]);
    let response = client.unary_call(retry).await.unwrap();
    assert_eq!(response.metadata().get(HOSTNAME_HEADER).unwrap(), "s1");
    let later = unary(&[behavior, (PREVIOUS_RPC_ATTEMPTS_HEADER, "2")]);
    let status = client.unary_call(later).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    let bad = unary(&[behavior, (PREVIOUS_RPC_ATTEMPTS_HEADER, "x")]);
    let status = client.unary_call(bad).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn malformed_behavior_is_invalid_argument() {
    let backend = TestServiceBackend::new("s1").serve().await.unwrap();
    let mut client = TestServiceClient::new(channel(&backend).await);
    let status = client
        .unary_call(unary(&[(RPC_BEHAVIOR_HEADER, "sleep-forever")]))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("sleep-forever"), "{status:?}");
}

#[tokio::test]
async fn sleep_delays_and_outlives_a_short_deadline() {
    let backend = TestServiceBackend::new("s1").serve().await.unwrap();
    let mut client = TestServiceClient::new(channel(&backend).await);

    let start = Instant::now();
    let mut request = unary(&[(RPC_BEHAVIOR_HEADER, "sleep-1")]);
    request.set_timeout(Duration::from_millis(200));
    let status = client.unary_call(request).await.unwrap_err();
    // tonic reports its own expired grpc-timeout as CANCELLED ("Timeout
    // expired"); gRPC proper says DEADLINE_EXCEEDED.
    assert!(
        matches!(status.code(), Code::DeadlineExceeded | Code::Cancelled),
        "{status:?}"
    );
    assert!(start.elapsed() < Duration::from_millis(900));

    let start = Instant::now();
    let request = unary(&[(RPC_BEHAVIOR_HEADER, "sleep-1")]);
    client.unary_call(request).await.unwrap();
    assert!(start.elapsed() >= Duration::from_secs(1));
}

#[tokio::test]
async fn keep_open_never_answers() {
    let backend = TestServiceBackend::new("s1").serve().await.unwrap();
    let mut client = TestServiceClient::new(channel(&backend).await);
    let call = client.empty_call(unary(&[(RPC_BEHAVIOR_HEADER, "keep-open")]).map(|_| Empty {}));
    let outcome = tokio::time::timeout(Duration::from_millis(300), call).await;
    assert!(outcome.is_err(), "keep-open answered: {outcome:?}");
}

#[tokio::test]
async fn response_status_is_echoed() {
    let backend = TestServiceBackend::new("s1").serve().await.unwrap();
    let mut client = TestServiceClient::new(channel(&backend).await);
    let request = SimpleRequest {
        response_status: Some(EchoStatus {
            code: 2,
            message: "test status message".into(),
        }),
        ..SimpleRequest::default()
    };
    let status = client.unary_call(request).await.unwrap_err();
    assert_eq!(status.code(), Code::Unknown);
    assert_eq!(status.message(), "test status message");
}

#[tokio::test]
async fn counts_rpcs_per_backend() {
    let a = TestServiceBackend::new("a").serve().await.unwrap();
    let b = TestServiceBackend::new("b").serve().await.unwrap();
    let mut client_a = TestServiceClient::new(channel(&a).await);
    let mut client_b = TestServiceClient::new(channel(&b).await);
    for _ in 0..3 {
        client_a.empty_call(Empty {}).await.unwrap();
    }
    client_b.unary_call(unary(&[])).await.unwrap();
    assert_eq!((a.served(), b.served()), (3, 1));
    assert_eq!(a.backend().take_served(), 3);
    assert_eq!(a.served(), 0);
}

#[tokio::test]
async fn health_follows_xds_update_health_service() {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_check_response::ServingStatus as Wire;
    use tonic_health::pb::health_client::HealthClient;

    let backend = TestServiceBackend::new("s1").serve().await.unwrap();
    let channel = channel(&backend).await;
    let mut health = HealthClient::new(channel.clone());
    let check = |service: &str| HealthCheckRequest {
        service: service.to_string(),
    };
    for service in ["", TEST_SERVICE_NAME] {
        let status = health.check(check(service)).await.unwrap().into_inner();
        assert_eq!(status.status(), Wire::Serving);
    }
    let mut update = XdsUpdateHealthServiceClient::new(channel);
    update.set_not_serving(Empty {}).await.unwrap();
    for service in ["", TEST_SERVICE_NAME] {
        let status = health.check(check(service)).await.unwrap().into_inner();
        assert_eq!(status.status(), Wire::NotServing);
    }
    update.set_serving(Empty {}).await.unwrap();
    let status = health.check(check("")).await.unwrap().into_inner();
    assert_eq!(status.status(), Wire::Serving);
    backend.set_serving(false).await;
    let status = health.check(check("")).await.unwrap().into_inner();
    assert_eq!(status.status(), Wire::NotServing);
}

#[tokio::test]
async fn drop_closes_open_connections() {
    let backend = TestServiceBackend::new("s1").serve().await.unwrap();
    let addr = backend.local_addr();
    let mut client = TestServiceClient::new(channel(&backend).await);
    client.empty_call(Empty {}).await.unwrap();
    drop(backend);
    // The first call may race the closing connection (tonic then says
    // UNKNOWN "transport error"); later ones find nobody to connect to.
    assert!(client.empty_call(Empty {}).await.is_err());
    let status = client.empty_call(Empty {}).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn shutdown_is_graceful_and_frees_the_port() {
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let backend = TestServiceBackend::new("s1")
        .serve_on(std_listener)
        .await
        .unwrap();
    let addr = backend.local_addr();
    let mut client = TestServiceClient::new(channel(&backend).await);
    let slow = tokio::spawn(async move {
        client
            .unary_call(unary(&[(RPC_BEHAVIOR_HEADER, "sleep-1")]))
            .await
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    backend.shutdown().await;
    assert!(slow.await.unwrap().is_ok(), "in-flight RPC was cut");
    assert!(TcpStream::connect(addr).await.is_err());
    // The port can be served again (backends_restart).
    let again = TestServiceBackend::new("s1").serve_on(addr).await.unwrap();
    let mut client = TestServiceClient::new(channel(&again).await);
    client.empty_call(Empty {}).await.unwrap();
}
