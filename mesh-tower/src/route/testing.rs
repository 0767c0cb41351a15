//! Builders shared by the route, fault and rate limit unit tests: validated
//! configs made directly (no wire round trip) and cluster runtimes.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use mesh_core::resource::cluster::Cluster;
use mesh_core::resource::filter::{FilterConfig, HttpFilter};
use mesh_core::resource::listener::{HttpConnectionManager, Listener, ListenerKind, RouteSource};
use mesh_core::resource::route::{
    ClusterTarget, ClusterWeight, ForwardAction, Route, RouteAction, RouteConfig, RouteMatch,
    VirtualHost, WeightedClusters,
};
use mesh_core::watch::ClientConfig;

use crate::cluster::ClusterRuntime;
use crate::context::{RouteDecision, RoutePolicy};

/// A cluster runtime named `name` (nothing behind it).
pub(crate) fn cluster(name: &str) -> Arc<ClusterRuntime> {
    let config: Cluster =
        Cluster::try_from(mesh_core::testing::resources::eds_cluster(name, "")).unwrap();
    Arc::new(ClusterRuntime {
        name: name.into(),
        config: Arc::new(config),
        breaker: Default::default(),
        balancer: Default::default(),
    })
}

/// A lookup resolving every name to a fresh runtime, the same one per name.
pub(crate) fn lookup(names: &[&str]) -> impl Fn(&str) -> Result<Arc<ClusterRuntime>, String> {
    let runtimes: BTreeMap<String, Arc<ClusterRuntime>> = names
        .iter()
        .map(|n| ((*n).to_owned(), cluster(n)))
        .collect();
    move |name: &str| {
        runtimes
            .get(name)
            .cloned()
            .ok_or_else(|| format!("cluster {name} is not resolved"))
    }
}

/// A decision for `policy` on a throwaway cluster.
pub(crate) fn decision(policy: RoutePolicy) -> RouteDecision {
    RouteDecision {
        route: Arc::new(policy),
        cluster: cluster("c"),
        hash: None,
    }
}

/// A forwarding action to `name`.
pub(crate) fn forward(name: &str) -> ForwardAction {
    ForwardAction {
        cluster: ClusterTarget::Cluster(name.into()),
        hash_policy: Vec::new(),
        retry_policy: None,
        max_stream_duration: None,
        grpc_timeout_header_max: None,
        timeout: None,
    }
}

/// A weighted action over `(cluster, weight, overrides)`.
pub(crate) fn weighted(
    clusters: Vec<(&str, u32, BTreeMap<String, FilterConfig>)>,
) -> ForwardAction {
    let split = WeightedClusters::new(
        clusters
            .into_iter()
            .map(|(name, weight, typed_per_filter_config)| ClusterWeight {
                name: name.into(),
                weight,
                typed_per_filter_config,
            })
            .collect(),
    )
    .unwrap();
    ForwardAction {
        cluster: ClusterTarget::Weighted(split),
        ..forward("unused")
    }
}

/// A route.
pub(crate) fn route(name: &str, matcher: RouteMatch, action: RouteAction) -> Route {
    Route {
        name: name.into(),
        matcher,
        action,
        typed_per_filter_config: BTreeMap::new(),
    }
}

/// A virtual host.
pub(crate) fn vhost(name: &str, domains: &[&str], routes: Vec<Route>) -> VirtualHost {
    VirtualHost {
        name: name.into(),
        domains: domains.iter().map(|d| (*d).into()).collect(),
        routes,
        retry_policy: None,
        typed_per_filter_config: BTreeMap::new(),
    }
}

/// A filter entry.
pub(crate) fn filter(name: &str, config: FilterConfig) -> HttpFilter {
    HttpFilter {
        name: name.into(),
        config,
        disabled: false,
    }
}

/// A client snapshot over `vhosts` (host `chosen` picked), with `filters`
/// before the router and `hcm_max_stream_duration`.
pub(crate) fn config_with(
    vhosts: Vec<VirtualHost>,
    chosen: usize,
    mut filters: Vec<HttpFilter>,
    hcm_max_stream_duration: Option<Duration>,
) -> Arc<ClientConfig> {
    filters.push(filter("router", FilterConfig::Router));
    let route_config = Arc::new(RouteConfig::new("routes", vhosts));
    let hcm = HttpConnectionManager {
        route: RouteSource::Inline(route_config.clone()),
        http_filters: filters,
        max_stream_duration: hcm_max_stream_duration,
    };
    Arc::new(ClientConfig {
        target: "echo:7070".into(),
        listener: Arc::new(Listener {
            name: "echo:7070".into(),
            kind: ListenerKind::Client(hcm),
        }),
        route_config,
        virtual_host_index: chosen,
        clusters: BTreeMap::new(),
    })
}

/// A client snapshot with one virtual host of `routes` and no filters.
pub(crate) fn config(routes: Vec<Route>) -> Arc<ClientConfig> {
    config_with(vec![vhost("vh", &["*"], routes)], 0, Vec::new(), None)
}
