//! The outlier observer layer.

use std::sync::Arc;

use tower::Layer;

use super::{OutlierService, OutlierTarget};
use crate::cluster::EndpointHandle;

/// Records each attempt's result on its endpoint's
/// [`EndpointOutlier`](super::EndpointOutlier): the endpoint the balancer
/// picked ([`PickedEndpoint`](crate::endpoint::PickedEndpoint), placed
/// between balance and endpoint), or one fixed endpoint.
#[derive(Debug)]
pub struct OutlierLayer<E = EndpointHandle> {
    endpoint: Option<Arc<E>>,
}

impl OutlierLayer<EndpointHandle> {
    /// Observes each attempt's picked endpoint (requests without one pass
    /// unobserved).
    pub fn new() -> Self {
        OutlierLayer { endpoint: None }
    }
}

impl Default for OutlierLayer<EndpointHandle> {
    fn default() -> Self {
        Self::new()
    }
}

impl<E> Clone for OutlierLayer<E> {
    fn clone(&self) -> Self {
        OutlierLayer {
            endpoint: self.endpoint.clone(),
        }
    }
}

impl<E: OutlierTarget> OutlierLayer<E> {
    /// Observes every attempt as sent to `endpoint` (one service per
    /// endpoint).
    pub fn for_endpoint(endpoint: Arc<E>) -> Self {
        OutlierLayer {
            endpoint: Some(endpoint),
        }
    }
}

impl<S, E: OutlierTarget> Layer<S> for OutlierLayer<E> {
    type Service = OutlierService<S, E>;

    fn layer(&self, inner: S) -> Self::Service {
        OutlierService::new(inner, self.endpoint.clone())
    }
}
