//! The rate limit service.

use std::task::{Context, Poll};

use tonic::Code;
use tower::Service;

use super::future::ResponseFuture;
use super::{Admission, code_for_http_status, is_grpc};
use crate::BoxError;
use crate::context::RouteDecision;
use crate::route::RandomSource;

/// Checks the route's token bucket once per RPC and fails limited requests
/// (see the [module docs](super)).
#[derive(Clone, Debug)]
pub struct RateLimit<S> {
    inner: S,
    rng: RandomSource,
}

impl<S> RateLimit<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, rng: RandomSource) -> Self {
        RateLimit { inner, rng }
    }
}

impl<S, B> Service<http::Request<B>> for RateLimit<S>
where
    S: Service<http::Request<B>>,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        if let Some(decision) = RouteDecision::of(&req)
            && let Some(bucket) = &decision.route.rate_limit
            && bucket.admit(&self.rng) == Admission::Rejected
        {
            let config = bucket.config();
            let code = if is_grpc(&req) {
                config.grpc_code()
            } else {
                code_for_http_status(config.status).unwrap_or(Code::ResourceExhausted)
            };
            return ResponseFuture::failed(crate::error::status(
                code,
                format!(
                    "local rate limit exceeded on route {} ({})",
                    decision.route.name, config.stat_prefix
                ),
            ));
        }
        ResponseFuture::inner(self.inner.call(req))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use mesh_core::resource::common::Fraction;
    use mesh_core::resource::filter::{LocalRateLimit, TokenBucket as BucketConfig};
    use tower::{Layer, ServiceExt};

    use super::*;
    use crate::context::RoutePolicy;
    use crate::ratelimit::{RateLimitLayer, TokenBucket};
    use crate::route::testing::decision;

    fn limit(exhausted: bool, status: u16) -> Arc<TokenBucket> {
        Arc::new(
            TokenBucket::new(LocalRateLimit {
                stat_prefix: "rl".into(),
                token_bucket: Some(BucketConfig {
                    max_tokens: 1,
                    tokens_per_fill: 1,
                    fill_interval: Duration::from_secs(1),
                }),
                filter_enabled: Fraction::ALWAYS,
                filter_enforced: Fraction::ALWAYS,
                status,
                rate_limited_as_resource_exhausted: exhausted,
            })
            .unwrap(),
        )
    }

    async fn call(bucket: &Arc<TokenBucket>, grpc: bool) -> Result<(), Code> {
        let mut svc = RateLimitLayer::with_rng(RandomSource::seeded(1)).layer(tower::service_fn(
            |_req: http::Request<()>| async { Ok::<_, BoxError>(()) },
        ));
        let mut b = http::Request::builder().uri("/s.S/M");
        if grpc {
            b = b.header("content-type", "application/grpc+proto");
        }
        let mut req = b.body(()).unwrap();
        req.extensions_mut().insert(decision(RoutePolicy {
            name: "r".into(),
            rate_limit: Some(bucket.clone()),
            ..Default::default()
        }));
        match svc.ready().await.unwrap().call(req).await {
            Ok(()) => Ok(()),
            Err(e) => {
                let status = crate::error::find_status(&*e).unwrap();
                assert!(
                    status
                        .message()
                        .contains("local rate limit exceeded on route r")
                );
                Err(status.code())
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn limited_requests_fail_with_the_configured_code() {
        let b = limit(false, 429);
        assert_eq!(call(&b, true).await, Ok(()));
        assert_eq!(
            call(&b, true).await,
            Err(Code::Unavailable),
            "Envoy's default"
        );
        // Plain HTTP: the code the edge turns into 429.
        assert_eq!(call(&b, false).await, Err(Code::ResourceExhausted));
        assert_eq!(
            crate::error::http_status_for(Code::ResourceExhausted),
            http::StatusCode::TOO_MANY_REQUESTS
        );
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(call(&b, true).await, Ok(()), "refilled");

        let b = limit(true, 503);
        assert_eq!(call(&b, true).await, Ok(()));
        assert_eq!(call(&b, true).await, Err(Code::ResourceExhausted));
        assert_eq!(call(&b, false).await, Err(Code::Unavailable), "status 503");
    }
}
