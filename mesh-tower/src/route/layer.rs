//! The route layer.

use tower::Layer;

use super::{HostSelection, RandomSource, Route, Routes};

/// Routes each RPC ([`Route`]). Holds the [`Routes`] its services read;
/// whoever follows the config publishes into [`RouteLayer::routes`].
#[derive(Clone, Debug)]
pub struct RouteLayer {
    routes: Routes,
    rng: RandomSource,
    channel_id: u64,
}

impl RouteLayer {
    /// A client channel's routing: the virtual host was chosen once from
    /// the target (A28). The channel id (ring hash on
    /// `io.grpc.channel_id`) is a random `u64` per layer, so per channel.
    pub fn client() -> Self {
        Self::new(Routes::new(HostSelection::PerChannel))
    }

    /// Routing that chooses the virtual host per request from
    /// `:authority` or `Host` (A36: xDS-enabled servers, plain HTTP).
    pub fn per_request_host() -> Self {
        Self::new(Routes::new(HostSelection::PerRequest))
    }

    /// Routing over existing `routes`.
    pub fn new(routes: Routes) -> Self {
        let rng = RandomSource::Thread;
        RouteLayer {
            channel_id: rng.next_u64(),
            routes,
            rng,
        }
    }

    /// Draws route fractions and weighted clusters from `rng`.
    pub fn with_rng(mut self, rng: RandomSource) -> Self {
        self.rng = rng;
        self
    }

    /// Sets the channel id hashed by `io.grpc.channel_id` hash policies.
    pub fn with_channel_id(mut self, channel_id: u64) -> Self {
        self.channel_id = channel_id;
        self
    }

    /// The routes the services read: publish snapshots here.
    pub fn routes(&self) -> &Routes {
        &self.routes
    }

    /// The channel id.
    pub fn channel_id(&self) -> u64 {
        self.channel_id
    }
}

impl<S> Layer<S> for RouteLayer {
    type Service = Route<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Route {
            inner,
            routes: self.routes.clone(),
            rng: self.rng.clone(),
            channel_id: self.channel_id,
        }
    }
}
