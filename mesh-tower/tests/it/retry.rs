//! Retries over real loopback backends, through a hand-built per-RPC and
//! per-attempt stack: route decision → retry → breaker → balance (round
//! robin) → outlier → endpoint. Also the shared harness of the breaker and
//! outlier tests.

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::BodyExt;
use http_body_util::combinators::UnsyncBoxBody;
use mesh_core::resource::Cluster;
use mesh_core::resource::cluster::{CircuitBreakers, Discovery, LbPolicy, OutlierDetection};
use mesh_core::resource::endpoint::ClusterLoadAssignment;
use mesh_core::resource::route::{RetryBackOff, RetryOn, RetryPolicy};
use mesh_core::testing::proto::grpc_testing::SimpleRequest;
use mesh_core::testing::proto::grpc_testing::test_service_client::TestServiceClient;
use mesh_core::testing::test_service::{RPC_BEHAVIOR_HEADER, RunningBackend, TestServiceBackend};
use mesh_tower::BoxError;
use mesh_tower::balance::{BalanceLayer, Balancer};
use mesh_tower::breaker::{Breaker, BreakerLayer};
use mesh_tower::cluster::{ClusterRuntime, EndpointHandle};
use mesh_tower::context::{RouteDecision, RoutePolicy};
use mesh_tower::endpoint::EndpointService;
use mesh_tower::outlier::OutlierLayer;
use mesh_tower::retry::RetryLayer;
use tonic::Code;
use tower::ServiceBuilder;
use tower::util::BoxCloneService;

use super::endpoint::{endpoint, fast_settings};

/// The type-erased stack the test clients run over.
pub type Stack =
    BoxCloneService<Request<tonic::body::Body>, Response<UnsyncBoxBody<Bytes, BoxError>>, BoxError>;

/// Inserts one route decision into every request (the route layer's job).
#[derive(Clone)]
pub struct Decide<S> {
    decision: RouteDecision,
    inner: S,
}

impl<S, B> tower::Service<Request<B>> for Decide<S>
where
    S: tower::Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> S::Future {
        req.extensions_mut().insert(self.decision.clone());
        self.inner.call(req)
    }
}

/// A round-robin cluster runtime named `name` with these limits.
pub fn runtime(
    name: &str,
    limits: CircuitBreakers,
    outlier_detection: Option<OutlierDetection>,
) -> Arc<ClusterRuntime> {
    let config = Arc::new(Cluster {
        name: name.to_owned(),
        discovery: Discovery::Static(Arc::new(ClusterLoadAssignment {
            cluster_name: name.to_owned(),
            priorities: Vec::new(),
            overprovisioning_factor: 140,
            drop_overloads: Vec::new(),
        })),
        lb_policy: LbPolicy::RoundRobin,
        circuit_breakers: limits,
        outlier_detection,
        tls: None,
        lrs_server: false,
        override_host_status: Default::default(),
        metadata: Default::default(),
        upstream_http: Default::default(),
    });
    Arc::new(ClusterRuntime {
        name: name.into(),
        breaker: Breaker::shared(name, name, &config.circuit_breakers),
        config,
        balancer: Arc::new(Balancer::new(name).with_seed(7)),
    })
}

/// Backends with these hostnames (`hostname=H ...` behaviours).
pub async fn backends(hostnames: &[&str]) -> Vec<RunningBackend> {
    let mut v = Vec::new();
    for h in hostnames {
        let b = TestServiceBackend::new(format!("id-{h}")).hostname(*h);
        v.push(b.serve().await.unwrap());
    }
    v
}

/// Publishes `backends` as the cluster's endpoints, waiting until every
/// one is connected.
pub async fn publish(
    cluster: &ClusterRuntime,
    backends: &[RunningBackend],
) -> Vec<Arc<EndpointHandle>> {
    let handles: Vec<_> = backends
        .iter()
        .map(|b| endpoint(b.local_addr(), fast_settings()))
        .collect();
    cluster
        .balancer
        .update_flat(LbPolicy::RoundRobin, handles.clone());
    eventually("every endpoint ready", || {
        handles
            .iter()
            .all(|h| h.connection.state() == mesh_tower::endpoint::ConnectivityState::Ready)
    })
    .await;
    handles
}

/// A retry policy on `retry_on` with `num_retries` and short backoff.
pub fn retry_policy(retry_on: &str, num_retries: u32) -> RetryPolicy {
    RetryPolicy {
        retry_on: RetryOn::parse(retry_on),
        retriable_status_codes: Vec::new(),
        num_retries,
        back_off: RetryBackOff {
            base_interval: Duration::from_millis(5),
            max_interval: Duration::from_millis(20),
        },
        per_try_timeout: None,
    }
}

/// A TestService client over decision → retry → breaker → balance →
/// outlier → endpoint.
pub fn client(cluster: &Arc<ClusterRuntime>, route: RoutePolicy) -> TestServiceClient<Stack> {
    let decision = RouteDecision {
        route: Arc::new(route),
        cluster: cluster.clone(),
        hash: None,
    };
    let svc = ServiceBuilder::new()
        .map_response(erase)
        .layer_fn(move |inner| Decide {
            decision: decision.clone(),
            inner,
        })
        .layer(RetryLayer::new().seed(11))
        .layer(BreakerLayer::new())
        .layer(BalanceLayer)
        .layer(OutlierLayer::new())
        .service(EndpointService);
    TestServiceClient::with_origin(
        BoxCloneService::new(svc),
        "http://echo.test:7070".parse().unwrap(),
    )
}

fn erase<B>(r: Response<B>) -> Response<UnsyncBoxBody<Bytes, BoxError>>
where
    B: http_body::Body<Data = Bytes, Error = hyper::Error> + Send + 'static,
{
    r.map(|b| b.map_err(|e| -> BoxError { Box::new(e) }).boxed_unsync())
}

/// One UnaryCall with an `rpc-behavior` header; the hostname that served
/// it on success.
pub async fn unary(
    c: &mut TestServiceClient<Stack>,
    behavior: Option<&str>,
) -> Result<String, tonic::Status> {
    let mut req = tonic::Request::new(SimpleRequest::default());
    if let Some(b) = behavior {
        req.metadata_mut()
            .insert(RPC_BEHAVIOR_HEADER, b.parse().unwrap());
    }
    c.unary_call(req).await.map(|r| r.into_inner().hostname)
}

/// Polls `f` until it holds (up to 10 s).
pub async fn eventually<F: FnMut() -> bool>(what: &str, mut f: F) {
    for _ in 0..1000 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

/// Total RPCs the backends served.
pub fn served(bs: &[RunningBackend]) -> u64 {
    bs.iter().map(RunningBackend::served).sum()
}

#[tokio::test]
async fn retries_turn_transient_unavailable_into_success() {
    let bs = backends(&["r0", "r1"]).await;
    let cluster = runtime("it-retry-transient", CircuitBreakers::default(), None);
    publish(&cluster, &bs).await;
    // Fails on attempts 0 and 1, succeeds on attempt 2.
    let behavior = Some("succeed-on-retry-attempt-2,error-code-14");

    let mut c = client(
        &cluster,
        RoutePolicy {
            retry: Some(retry_policy("unavailable", 3)),
            ..Default::default()
        },
    );
    for _ in 0..5 {
        unary(&mut c, behavior).await.expect("retried into success");
    }
    assert_eq!(served(&bs), 15, "three attempts per RPC");

    // Two attempts are not enough.
    let before = served(&bs);
    let mut c = client(
        &cluster,
        RoutePolicy {
            retry: Some(retry_policy("unavailable", 1)),
            ..Default::default()
        },
    );
    let err = unary(&mut c, behavior).await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);
    assert_eq!(served(&bs) - before, 2);

    // No policy, or a policy on other codes: one attempt.
    for route in [
        RoutePolicy::default(),
        RoutePolicy {
            retry: Some(retry_policy("cancelled,internal", 4)),
            ..Default::default()
        },
    ] {
        let before = served(&bs);
        let mut c = client(&cluster, route);
        let err = unary(&mut c, behavior).await.unwrap_err();
        assert_eq!(err.code(), Code::Unavailable);
        assert_eq!(served(&bs) - before, 1);
    }
}

#[tokio::test]
async fn each_attempt_picks_an_endpoint_again() {
    let bs = backends(&["bad", "good"]).await;
    let cluster = runtime("it-retry-repick", CircuitBreakers::default(), None);
    publish(&cluster, &bs).await;
    let mut c = client(
        &cluster,
        RoutePolicy {
            retry: Some(retry_policy("unavailable", 1)),
            ..Default::default()
        },
    );
    for _ in 0..20 {
        let host = unary(&mut c, Some("hostname=bad error-code-14"))
            .await
            .unwrap();
        assert_eq!(host, "good");
    }
    // Round robin sent about half the first attempts to the failing one.
    assert!(bs[0].served() >= 5, "bad served {}", bs[0].served());
    assert_eq!(bs[1].served(), 20);
}
