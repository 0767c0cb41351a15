//! The route service.

use std::task::{Context, Poll};

use tower::Service;

use super::future::ResponseFuture;
use super::{HostSelection, RandomSource, RouteState, Routes, Selected};
use crate::BoxError;

/// Routes each RPC once: picks the route and the weighted cluster, and
/// inserts the [`RouteDecision`](crate::context::RouteDecision) into the
/// request's extensions (see the [module docs](super)).
#[derive(Clone, Debug)]
pub struct Route<S> {
    pub(super) inner: S,
    pub(super) routes: Routes,
    pub(super) rng: RandomSource,
    pub(super) channel_id: u64,
}

impl<S, B> Service<http::Request<B>> for Route<S>
where
    S: Service<http::Request<B>>,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future>;

    /// Waits for the first config, then for the inner service.
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        std::task::ready!(self.routes.poll_config(cx));
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        let state = self.routes.load();
        let table = match &**state {
            RouteState::Ready(table) => table,
            RouteState::Failed(reason) => {
                return ResponseFuture::failed(crate::error::unavailable(reason.to_string()));
            }
            RouteState::Pending => {
                return ResponseFuture::failed(crate::error::unavailable(
                    "no xDS config received yet (call poll_ready first)",
                ));
            }
        };
        let authority = match self.routes.selection() {
            HostSelection::PerChannel => None,
            HostSelection::PerRequest => req.uri().authority().map(|a| a.as_str()).or_else(|| {
                req.headers()
                    .get(http::header::HOST)
                    .and_then(|h| h.to_str().ok())
            }),
        };
        let selected = table.select(
            authority,
            req.uri().path(),
            req.headers(),
            &self.rng,
            self.channel_id,
        );
        match selected {
            Ok(Selected::Forward(decision)) => {
                req.extensions_mut().insert(decision);
            }
            Ok(Selected::Local) => {}
            Err(message) => {
                return ResponseFuture::failed(crate::error::unavailable(message.into_owned()));
            }
        }
        drop(state);
        ResponseFuture::inner(self.inner.call(req))
    }
}
