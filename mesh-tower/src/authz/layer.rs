//! [`RbacLayer`]: RBAC with a fixed list of filters, for any HTTP service.

use std::sync::Arc;

use mesh_core::resource::filter::{FilterConfig, RbacConfig};
use mesh_core::resource::listener::HttpConnectionManager;
use mesh_core::resource::route::{Route, VirtualHost};
use tower::Layer;

use super::eval::effective_filters;
use super::service::RbacService;

/// Enforces RBAC filters in front of a service (see [`super`]). Cheap to
/// clone: the filters are shared.
#[derive(Debug, Clone)]
pub struct RbacLayer {
    filters: Arc<[(String, RbacConfig)]>,
}

impl RbacLayer {
    /// Evaluates these filters, in order: `(instance name, config)`.
    pub fn new(filters: impl IntoIterator<Item = (impl Into<String>, RbacConfig)>) -> Self {
        RbacLayer {
            filters: filters.into_iter().map(|(n, c)| (n.into(), c)).collect(),
        }
    }

    /// The RBAC filters of an HCM at top level (per-route overrides are not
    /// applied; filters `disabled` at top level are skipped).
    pub fn from_hcm(hcm: &HttpConnectionManager) -> Self {
        Self::new(hcm.active_filters().filter_map(|f| match &f.config {
            FilterConfig::Rbac(c) if !f.disabled => Some((f.name.clone(), c.clone())),
            _ => None,
        }))
    }

    /// The RBAC filters of an HCM as they apply on one route (its and its
    /// virtual host's `RBACPerRoute` overrides applied).
    pub fn for_route(hcm: &HttpConnectionManager, vhost: &VirtualHost, route: &Route) -> Self {
        Self::new(effective_filters(hcm, vhost, route).map(|f| (f.name, f.config.clone())))
    }
}

impl<S> Layer<S> for RbacLayer {
    type Service = RbacService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RbacService::new(inner, Arc::clone(&self.filters))
    }
}
