//! The compiled route table: a snapshot's virtual host(s) with every route
//! bound to its [`RoutePolicy`]s and `Arc<ClusterRuntime>`s, so a request
//! costs a route match and a weighted draw, never a lookup by name.
//!
//! Compiled once per config snapshot; read per request through
//! [`Routes`](super::Routes).

use std::borrow::Cow;
use std::sync::Arc;

use http::HeaderMap;
use mesh_core::resource::route::{ClusterTarget, RouteAction, WeightedClusters};
use mesh_core::watch::ClientConfig;

use super::RandomSource;
use super::hash::request_hash;
use super::policy::{Buckets, PolicyBuilder, RouteAt};
use crate::cluster::ClusterRuntime;
use crate::context::{RouteDecision, RoutePolicy};

/// Finds the runtime of a cluster by name, at compile time only.
pub trait ClusterLookup {
    /// The cluster's runtime, or why it has none (the RPCs routed to it
    /// fail UNAVAILABLE with that text).
    fn cluster(&self, name: &str) -> Result<Arc<ClusterRuntime>, String>;
}

impl<F> ClusterLookup for F
where
    F: Fn(&str) -> Result<Arc<ClusterRuntime>, String>,
{
    fn cluster(&self, name: &str) -> Result<Arc<ClusterRuntime>, String> {
        self(name)
    }
}

/// How the virtual host is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostSelection {
    /// Once per channel, from the target (A28): the snapshot already chose
    /// it (`ClientConfig::virtual_host`).
    PerChannel,
    /// Per request, from `:authority` or `Host` (A36: xDS-enabled servers
    /// and plain-HTTP callers).
    PerRequest,
}

/// What the table decided for one request.
#[derive(Debug)]
pub enum Selected {
    /// Forward to a cluster under these policies.
    Forward(RouteDecision),
    /// A non-forwarding route matched on a per-request table (a server's
    /// own handlers serve it): pass the request on undecided.
    Local,
}

/// A compiled snapshot of routes: per virtual host, its routes bound to
/// cluster runtimes, matched in order.
#[derive(Debug)]
pub struct RouteTable {
    config: Arc<ClientConfig>,
    /// `Some`: the only host, chosen per channel.
    fixed: Option<usize>,
    /// Per virtual host of the route configuration (per-request tables),
    /// or the chosen one alone.
    hosts: Vec<CompiledHost>,
    buckets: Buckets,
}

#[derive(Debug)]
struct CompiledHost {
    vhost_index: usize,
    /// Parallel to the virtual host's routes.
    routes: Vec<CompiledRoute>,
}

#[derive(Debug)]
enum CompiledRoute {
    Forward(Targets),
    Local,
    Fail(Box<str>),
}

#[derive(Debug)]
enum Targets {
    One(Target),
    Weighted {
        split: WeightedClusters,
        /// Parallel to `split.clusters()`.
        targets: Box<[Target]>,
    },
}

#[derive(Debug)]
struct Target {
    cluster: Result<Arc<ClusterRuntime>, Box<str>>,
    policy: Arc<RoutePolicy>,
}

/// The index of `item` in `slice`, which holds it (a reference into the
/// slice, as `route_for`, `virtual_host_for` and `pick` return).
fn index_of<T>(slice: &[T], item: &T) -> usize {
    let size = std::mem::size_of::<T>().max(1);
    let i = (item as *const T as usize - slice.as_ptr() as usize) / size;
    debug_assert!(std::ptr::eq(&slice[i], item));
    i
}

impl RouteTable {
    /// Compiles `config`'s routes. `previous` (the table being replaced)
    /// lends its rate-limit buckets where the config is unchanged.
    pub fn compile(
        config: &Arc<ClientConfig>,
        selection: HostSelection,
        clusters: &impl ClusterLookup,
        previous: Option<&RouteTable>,
    ) -> RouteTable {
        let hcm = config.http_connection_manager();
        let previous = previous.map_or(&[][..], |p| &p.buckets[..]);
        let mut builder = PolicyBuilder::new(hcm, previous);
        let vhosts = &config.route_config.virtual_hosts;
        let indices: Vec<usize> = match selection {
            HostSelection::PerChannel => vec![config.virtual_host_index],
            HostSelection::PerRequest => (0..vhosts.len()).collect(),
        };
        let resolve = |name: &str| -> Result<Arc<ClusterRuntime>, Box<str>> {
            let failed = match config.cluster(name) {
                Some(Err(e)) => e.clone(),
                _ => match clusters.cluster(name) {
                    Ok(c) => return Ok(c),
                    Err(e) => e,
                },
            };
            Err(if failed.contains(name) {
                failed.into()
            } else {
                format!("cluster {name}: {failed}").into()
            })
        };
        let mut hosts = Vec::with_capacity(indices.len());
        for vhost_index in indices {
            let vhost = &vhosts[vhost_index];
            let mut routes = Vec::with_capacity(vhost.routes.len());
            for (index, route) in vhost.routes.iter().enumerate() {
                let at = RouteAt {
                    vhost,
                    route,
                    index,
                };
                routes.push(match &route.action {
                    RouteAction::Forward(action) => CompiledRoute::Forward(match &action.cluster {
                        ClusterTarget::Cluster(name) => Targets::One(Target {
                            cluster: resolve(name),
                            policy: Arc::new(builder.build(&at, action, None)),
                        }),
                        ClusterTarget::Weighted(split) => Targets::Weighted {
                            split: split.clone(),
                            targets: split
                                .clusters()
                                .iter()
                                .map(|w| Target {
                                    cluster: resolve(&w.name),
                                    policy: Arc::new(builder.build(&at, action, Some(w))),
                                })
                                .collect(),
                        },
                    }),
                    RouteAction::NonForwarding => match selection {
                        HostSelection::PerRequest => CompiledRoute::Local,
                        HostSelection::PerChannel => CompiledRoute::Fail(
                            format!(
                                "route {} is non-forwarding, which only an xDS-enabled server serves",
                                at.name()
                            )
                            .into(),
                        ),
                    },
                    RouteAction::Unsupported(what) => CompiledRoute::Fail(
                        format!("route {} has an unsupported action: {what}", at.name()).into(),
                    ),
                });
            }
            hosts.push(CompiledHost {
                vhost_index,
                routes,
            });
        }
        RouteTable {
            config: config.clone(),
            fixed: (selection == HostSelection::PerChannel).then_some(0),
            hosts,
            buckets: builder.buckets,
        }
    }

    /// The snapshot this table was compiled from.
    pub fn config(&self) -> &Arc<ClientConfig> {
        &self.config
    }

    /// How this table chooses the virtual host.
    pub fn selection(&self) -> HostSelection {
        if self.fixed.is_some() {
            HostSelection::PerChannel
        } else {
            HostSelection::PerRequest
        }
    }

    /// Routes one request: the virtual host (per-request tables use
    /// `authority`), the first matching route, the weighted cluster (one
    /// draw) and the request hash. The error is the UNAVAILABLE message.
    pub fn select(
        &self,
        authority: Option<&str>,
        path: &str,
        headers: &HeaderMap,
        rng: &RandomSource,
        channel_id: u64,
    ) -> Result<Selected, Cow<'_, str>> {
        let vhosts = &self.config.route_config.virtual_hosts;
        let host = match self.fixed {
            Some(i) => &self.hosts[i],
            None => {
                let authority = authority.ok_or("the request has no :authority or Host header")?;
                let vhost = self
                    .config
                    .route_config
                    .virtual_host_for(authority)
                    .ok_or_else(|| {
                        format!(
                            "no virtual host in route configuration {} matches authority {authority}",
                            self.config.route_config.name
                        )
                    })?;
                &self.hosts[index_of(vhosts, vhost)]
            }
        };
        let vhost = &vhosts[host.vhost_index];
        let route = vhost
            .route_for(path, headers, || rng.per_million())
            .ok_or_else(|| {
                format!(
                    "no route matched path {path} in virtual host {}",
                    vhost.name
                )
            })?;
        let target = match &host.routes[index_of(&vhost.routes, route)] {
            CompiledRoute::Forward(Targets::One(target)) => target,
            CompiledRoute::Forward(Targets::Weighted { split, targets }) => {
                let picked = split.pick(rng.below(split.total()));
                &targets[index_of(split.clusters(), picked)]
            }
            CompiledRoute::Local => return Ok(Selected::Local),
            CompiledRoute::Fail(message) => return Err(Cow::Borrowed(message)),
        };
        let cluster = target.cluster.as_ref().map_err(|e| Cow::Borrowed(&**e))?;
        let hash = if target.policy.hash_policy.is_empty() {
            None
        } else {
            request_hash(&target.policy.hash_policy, headers, channel_id)
        };
        Ok(Selected::Forward(RouteDecision {
            route: target.policy.clone(),
            cluster: cluster.clone(),
            hash,
        }))
    }
}
