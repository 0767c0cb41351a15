//! The one place that orders the layers (issue #4, as gRPC orders them):
//!
//! ```text
//! route → timeout → fault → ratelimit → retry ─┬→ breaker → balance → outlier → endpoint
//!   (once per RPC)                              └─ (once per attempt)
//! ```
//!
//! - route picks the route and cluster once per RPC and records the
//!   [`RouteDecision`](crate::context::RouteDecision) every layer below
//!   reads;
//! - timeout fixes the deadline before anything else can delay the RPC, so
//!   an injected delay never outlasts it (A31);
//! - fault and ratelimit act once per RPC, above retry, so an injected
//!   abort or a rate-limit rejection is never retried;
//! - retry replays attempts through breaker (each attempt counts, A32),
//!   balance (each attempt picks an endpoint again) and outlier (each
//!   attempt's result is recorded on the endpoint it went to).
//!
//! [`ClientStack`] composes them over a discovery handle; the resulting
//! [`ClientService`] is what mesh-tonic's channel wraps. Config swaps are
//! atomic snapshot swaps (route table, endpoint sets): a request in flight
//! keeps the snapshot it started with and never waits for a swap.

use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use hyper::body::Incoming;
use tower::{Layer, Service};

use crate::BoxError;
use crate::balance::{Balance, BalanceLayer};
use crate::breaker::{BreakerLayer, BreakerService, GuardedBody};
use crate::cluster::EndpointHandle;
use crate::discovery::Discovery;
use crate::endpoint::EndpointService;
use crate::fault::{Fault, FaultLayer};
use crate::outlier::{ObservedBody, OutlierLayer, OutlierService};
use crate::ratelimit::{RateLimit, RateLimitLayer};
use crate::retry::{RetryLayer, RetryService};
use crate::route::{RandomSource, Route, RouteLayer, Routes};
use crate::timeout::{DeadlineBody, TimeoutLayer, TimeoutService};

/// The layers above `S`, the per-endpoint service (the endpoint connection
/// in production, an in-process service in tests and benches).
pub type Stack<S> = Route<
    TimeoutService<
        Fault<RateLimit<RetryService<BreakerService<Balance<OutlierService<S, EndpointHandle>>>>>>,
    >,
>;

/// The response body of [`ClientService`]: the endpoint's body, observed
/// for outlier detection, holding the breaker slot, bounded by the
/// deadline.
pub type ResponseBody = DeadlineBody<GuardedBody<ObservedBody<Incoming, EndpointHandle>>>;

/// Builds [`ClientStack`]s.
#[derive(Debug, Clone, Default)]
pub struct ClientStackBuilder {
    per_request_host: bool,
    seed: Option<u64>,
    channel_id: Option<u64>,
}

impl ClientStackBuilder {
    /// Chooses the virtual host per request from `:authority`/`Host` (the
    /// plain-HTTP path, A36) instead of once per channel (A28).
    pub fn per_request_host(mut self) -> Self {
        self.per_request_host = true;
        self
    }

    /// Seeds every layer's randomness (route fractions, weighted picks,
    /// fault and rate-limit percentages, retry jitter): deterministic
    /// tests.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Sets the channel id hashed by `io.grpc.channel_id` hash policies.
    pub fn channel_id(mut self, id: u64) -> Self {
        self.channel_id = Some(id);
        self
    }

    /// A stack whose routes are published by hand
    /// ([`ClientStack::routes`]); no task, no discovery.
    pub fn build_manual(self) -> ClientStack {
        let rng = |offset: u64| match self.seed {
            Some(seed) => RandomSource::seeded(seed.wrapping_add(offset)),
            None => RandomSource::Thread,
        };
        let mut route = if self.per_request_host {
            RouteLayer::per_request_host()
        } else {
            RouteLayer::client()
        }
        .with_rng(rng(1));
        if let Some(id) = self.channel_id {
            route = route.with_channel_id(id);
        }
        let mut retry = RetryLayer::new();
        if let Some(seed) = self.seed {
            retry = retry.seed(seed.wrapping_add(4));
        }
        ClientStack {
            route,
            fault: FaultLayer::new().with_rng(rng(2)),
            rate_limit: RateLimitLayer::with_rng(rng(3)),
            retry,
            follower: None,
        }
    }

    /// A stack routing by `discovery`'s runtime, recompiled on each of its
    /// publishes by a task that lives as long as the stack or a service
    /// made from it. Needs a Tokio runtime.
    pub fn build(self, discovery: Discovery) -> ClientStack {
        let mut stack = self.build_manual();
        let task = stack.route.routes().follow_discovery(discovery);
        stack.follower = Some(Arc::new(AbortOnDrop(task.abort_handle())));
        stack
    }
}

#[derive(Debug)]
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The client data plane of one channel: every layer, in order, over a
/// discovery runtime.
#[derive(Debug, Clone)]
pub struct ClientStack {
    route: RouteLayer,
    fault: FaultLayer,
    rate_limit: RateLimitLayer,
    retry: RetryLayer,
    follower: Option<Arc<AbortOnDrop>>,
}

impl ClientStack {
    /// The default stack over `discovery` (see [`ClientStackBuilder::build`]).
    pub fn new(discovery: Discovery) -> Self {
        Self::builder().build(discovery)
    }

    /// A builder.
    pub fn builder() -> ClientStackBuilder {
        ClientStackBuilder::default()
    }

    /// The routes the stack reads (publish into them for a manual stack).
    pub fn routes(&self) -> &Routes {
        self.route.routes()
    }

    /// The service sending RPCs to endpoints. Clone it freely: a clone
    /// copies a few `Arc`s.
    pub fn service(&self) -> ClientService {
        ClientService {
            inner: self.layer_over(EndpointService),
            _follower: self.follower.clone(),
        }
    }

    /// Every layer over `endpoint`, the per-endpoint service (which finds
    /// the balancer's pick in the request's
    /// [`PickedEndpoint`](crate::endpoint::PickedEndpoint) extension).
    pub fn layer_over<S>(&self, endpoint: S) -> Stack<S> {
        let attempt =
            BreakerLayer::new().layer(BalanceLayer.layer(OutlierLayer::new().layer(endpoint)));
        let rpc = self
            .fault
            .layer(self.rate_limit.layer(self.retry.layer(attempt)));
        self.route.layer(TimeoutLayer::new().layer(rpc))
    }
}

/// The composed client service (see [`ClientStack::service`]).
#[derive(Debug, Clone)]
pub struct ClientService {
    inner: Stack<EndpointService>,
    _follower: Option<Arc<AbortOnDrop>>,
}

impl Service<Request<tonic::body::Body>> for ClientService {
    type Response = Response<ResponseBody>;
    type Error = BoxError;
    type Future = <Stack<EndpointService> as Service<Request<tonic::body::Body>>>::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<tonic::body::Body>) -> Self::Future {
        self.inner.call(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_service<T>()
    where
        T: Service<Request<tonic::body::Body>> + Clone + Send + Sync + 'static,
        T::Future: Send + 'static,
        T::Response: Send + 'static,
    {
    }

    #[test]
    fn client_service_is_a_sendable_clonable_service() {
        assert_service::<ClientService>();
    }

    /// An always-ready endpoint stand-in.
    #[derive(Clone, Copy)]
    struct Ready;

    impl Service<Request<tonic::body::Body>> for Ready {
        type Response = Response<http_body_util::Empty<bytes::Bytes>>;
        type Error = BoxError;
        type Future = std::future::Ready<Result<Self::Response, BoxError>>;
        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
            Poll::Ready(Ok(()))
        }
        fn call(&mut self, _: Request<tonic::body::Body>) -> Self::Future {
            std::future::ready(Ok(Response::new(http_body_util::Empty::new())))
        }
    }

    /// The order matters: timeout sits above fault, so the deadline is set
    /// before an injected delay starts and cuts it short (A31).
    #[tokio::test(start_paused = true)]
    async fn the_deadline_bounds_an_injected_delay() {
        use std::time::Duration;

        use mesh_core::resource::common::Fraction;
        use mesh_core::resource::filter::{FaultConfig, FaultDelay, FaultDelayKind, FilterConfig};
        use mesh_core::resource::route::{DurationCap, RouteAction, RouteMatch};
        use tower::ServiceExt;

        use crate::route::testing::{config_with, filter, forward, lookup, route, vhost};

        let run = async |delay_ms: u64| {
            let mut action = forward("c");
            action.max_stream_duration = Some(DurationCap::Max(Duration::from_secs(1)));
            let fault = FilterConfig::Fault(FaultConfig {
                delay: Some(FaultDelay {
                    kind: FaultDelayKind::Fixed(Duration::from_millis(delay_ms)),
                    percentage: Fraction::ALWAYS,
                }),
                abort: None,
                max_active_faults: None,
                headers: Vec::new(),
            });
            let config = config_with(
                vec![vhost(
                    "vh",
                    &["*"],
                    vec![route(
                        "r",
                        RouteMatch::prefix("/"),
                        RouteAction::Forward(action),
                    )],
                )],
                0,
                vec![filter("fault", fault)],
                None,
            );
            let stack = ClientStack::builder().seed(1).build_manual();
            stack.routes().update(&config, &lookup(&["c"]));
            let mut svc = stack.layer_over(Ready);
            let req = Request::builder()
                .uri("/s.S/M")
                .header("content-type", "application/grpc")
                .body(tonic::body::Body::empty())
                .unwrap();
            let start = tokio::time::Instant::now();
            let err = svc.ready().await.unwrap().call(req).await.unwrap_err();
            let code = crate::error::find_status(&*err).map(|s| s.code());
            (code, start.elapsed())
        };
        // A 10 s delay under a 1 s deadline: DEADLINE_EXCEEDED at 1 s.
        let (code, took) = run(10_000).await;
        assert_eq!(code, Some(tonic::Code::DeadlineExceeded));
        assert_eq!(took, Duration::from_secs(1));
        // A 100 ms delay: the RPC goes on after it (to a cluster with no
        // endpoints here, hence UNAVAILABLE from the balancer).
        let (code, took) = run(100).await;
        assert_eq!(code, Some(tonic::Code::Unavailable));
        assert_eq!(took, Duration::from_millis(100));
    }
}
