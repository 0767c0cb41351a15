//! RouteConfiguration (RDS): virtual hosts, routes, matchers and actions,
//! validated as gRPC validates them (A28, A31, A39, A42, A44).
//!
//! This module converts and checks the wire resource, picks a virtual host
//! for an authority and a route for a request. It does not pick endpoints,
//! run retries or apply timeouts: the data plane does, from these types.
//!
//! Like gRPC, it drops the routes gRPC ignores (a `cluster_header`, an inline
//! or optional cluster specifier plugin, or no cluster specifier in the
//! route action) and keeps routes with other actions as
//! [`RouteAction::Unsupported`]. It ignores VHDS, header mutations, CORS,
//! rate limits and the deprecated `max_grpc_timeout`.

mod action;
mod domain;
mod matcher;
mod retry;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use envoy_types::pb::envoy::config::route::v3 as wire;
use envoy_types::pb::google::protobuf::Any;
use http::HeaderMap;

pub use self::action::{
    ClusterTarget, ClusterWeight, DurationCap, ForwardAction, HashPolicy, HashPolicyKind,
    RegexRewrite, RouteAction, WeightedClusters,
};
pub use self::matcher::{PathMatch, RouteMatch};
pub use self::retry::{RetryBackOff, RetryOn, RetryPolicy};

use self::domain::{DomainIndex, classify};
use super::filter::{FilterConfig, parse_filter_override};
use super::{AtField, FieldError, Resource, ResourceType, resource_error};

resource_error!(
    /// A RouteConfiguration that failed validation.
    RouteConfigError,
    "RouteConfiguration"
);

/// A validated RouteConfiguration.
#[derive(Debug, Clone)]
pub struct RouteConfig {
    /// The resource name.
    pub name: String,
    /// Virtual hosts in wire order. Build with [`RouteConfig::new`] (or
    /// `TryFrom`) so the domain index matches them.
    pub virtual_hosts: Vec<VirtualHost>,
    domains: DomainIndex,
}

impl RouteConfig {
    /// A route configuration over already validated virtual hosts; indexes
    /// their domains for [`Self::virtual_host_for`].
    pub fn new(name: impl Into<String>, virtual_hosts: Vec<VirtualHost>) -> Self {
        let domains = DomainIndex::new(&virtual_hosts);
        RouteConfig {
            name: name.into(),
            virtual_hosts,
            domains,
        }
    }

    /// Every cluster name a forwarding route of any virtual host can send
    /// to (single and weighted targets).
    pub fn cluster_names(&self) -> BTreeSet<&str> {
        self.virtual_hosts
            .iter()
            .flat_map(VirtualHost::cluster_names)
            .collect()
    }

    /// The virtual host for `authority` (A28): an exact domain, else the
    /// longest suffix wildcard, else the longest prefix wildcard, else `*`;
    /// ASCII case is ignored. Allocates nothing (servers call it per RPC).
    pub fn virtual_host_for(&self, authority: &str) -> Option<&VirtualHost> {
        self.domains.find(authority).map(|i| &self.virtual_hosts[i])
    }
}

/// A validated virtual host.
#[derive(Debug, Clone)]
pub struct VirtualHost {
    /// Its name.
    pub name: String,
    /// Domain patterns it serves, as configured (non-empty, each valid).
    pub domains: Vec<String>,
    /// Routes in order; the first that matches wins.
    pub routes: Vec<Route>,
    /// The virtual host's retry policy (already applied to every forwarding
    /// route that has none of its own).
    pub retry_policy: Option<RetryPolicy>,
    /// Filter overrides for every route of the host (A39).
    pub typed_per_filter_config: BTreeMap<String, FilterConfig>,
}

impl VirtualHost {
    /// Every cluster name a forwarding route of this virtual host can send
    /// to (single and weighted targets): what a client subscribes to (A74).
    pub fn cluster_names(&self) -> BTreeSet<&str> {
        let mut names = BTreeSet::new();
        for route in &self.routes {
            let RouteAction::Forward(action) = &route.action else {
                continue;
            };
            match &action.cluster {
                ClusterTarget::Cluster(name) => {
                    names.insert(name.as_str());
                }
                ClusterTarget::Weighted(w) => {
                    names.extend(w.clusters().iter().map(|c| c.name.as_str()));
                }
            }
        }
        names
    }

    /// The first route matching the request. `draw` yields uniform numbers
    /// in `0..1_000_000` and is called only for routes with a
    /// `runtime_fraction` whose path and headers matched.
    pub fn route_for(
        &self,
        path: &str,
        headers: &HeaderMap,
        mut draw: impl FnMut() -> u32,
    ) -> Option<&Route> {
        self.routes
            .iter()
            .find(|r| r.matcher.matches(path, headers, &mut draw))
    }

    /// The override for filter `name` (A39): the picked cluster's, else the
    /// route's, else this virtual host's.
    pub fn filter_override<'a>(
        &'a self,
        route: &'a Route,
        cluster: Option<&'a ClusterWeight>,
        name: &str,
    ) -> Option<&'a FilterConfig> {
        cluster
            .and_then(|c| c.typed_per_filter_config.get(name))
            .or_else(|| route.typed_per_filter_config.get(name))
            .or_else(|| self.typed_per_filter_config.get(name))
    }

    fn from_wire(
        v: wire::VirtualHost,
        optional_plugins: &BTreeSet<String>,
    ) -> Result<Self, FieldError> {
        if v.domains.is_empty() {
            return Err(FieldError::new("domains", "no domains"));
        }
        for (i, d) in v.domains.iter().enumerate() {
            if let Err(why) = classify(d) {
                return Err(FieldError::new(
                    format!("domains[{i}]"),
                    format!("invalid domain pattern \"{d}\": {why}"),
                ));
            }
        }
        let typed_per_filter_config = filter_overrides(&v.typed_per_filter_config)?;
        let retry_policy = v
            .retry_policy
            .as_ref()
            .map(RetryPolicy::from_wire)
            .transpose()
            .at_field("retry_policy")?;
        let mut routes = Vec::with_capacity(v.routes.len());
        for (i, r) in v.routes.into_iter().enumerate() {
            let route = Route::from_wire(r, retry_policy.as_ref(), optional_plugins)
                .at_field(format!("routes[{i}]"))?;
            routes.extend(route);
        }
        Ok(VirtualHost {
            name: v.name,
            domains: v.domains,
            routes,
            retry_policy,
            typed_per_filter_config,
        })
    }
}

/// A validated route.
#[derive(Debug, Clone)]
pub struct Route {
    /// Its name (may be empty).
    pub name: String,
    /// Which requests it takes.
    pub matcher: RouteMatch,
    /// What it does with them.
    pub action: RouteAction,
    /// Filter overrides for this route (A39).
    pub typed_per_filter_config: BTreeMap<String, FilterConfig>,
}

impl Route {
    /// `Ok(None)`: a route gRPC ignores. Paths are relative to the route.
    fn from_wire(
        r: wire::Route,
        vhost_retry: Option<&RetryPolicy>,
        optional_plugins: &BTreeSet<String>,
    ) -> Result<Option<Self>, FieldError> {
        use wire::route::Action as A;
        let matcher = r
            .r#match
            .as_ref()
            .ok_or_else(|| FieldError::new("match", "missing"))
            .and_then(|m| RouteMatch::from_wire(m).at_field("match"))?;
        let action = match r.action {
            Some(A::Route(ra)) => {
                match ForwardAction::from_wire(ra, optional_plugins).at_field("route")? {
                    Some(mut forward) => {
                        if forward.retry_policy.is_none() {
                            forward.retry_policy = vhost_retry.cloned();
                        }
                        RouteAction::Forward(forward)
                    }
                    None => return Ok(None),
                }
            }
            Some(A::NonForwardingAction(_)) => RouteAction::NonForwarding,
            Some(A::Redirect(_)) => RouteAction::Unsupported("redirect action".into()),
            Some(A::DirectResponse(_)) => RouteAction::Unsupported("direct_response action".into()),
            Some(A::FilterAction(_)) => RouteAction::Unsupported("filter_action".into()),
            None => RouteAction::Unsupported("no action".into()),
        };
        let typed_per_filter_config = filter_overrides(&r.typed_per_filter_config)?;
        Ok(Some(Route {
            name: r.name,
            matcher,
            action,
            typed_per_filter_config,
        }))
    }
}

/// Validates a `typed_per_filter_config` map (in key order, so the error
/// reported is stable); paths are `typed_per_filter_config[<filter>]...`.
fn filter_overrides(
    map: &HashMap<String, Any>,
) -> Result<BTreeMap<String, FilterConfig>, FieldError> {
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort_unstable();
    let mut out = BTreeMap::new();
    for key in keys {
        let field = format!("typed_per_filter_config[{key}]");
        if key.is_empty() {
            return Err(FieldError::new(field, "empty filter name"));
        }
        if let Some(config) = parse_filter_override(&map[key], &field)? {
            out.insert(key.clone(), config);
        }
    }
    Ok(out)
}

/// The names of the configuration's cluster specifier plugins. mesh supports
/// no plugin type: an optional one is recorded (routes using it are
/// ignored), any other is an error, as in gRPC.
fn optional_plugins(
    plugins: &[wire::ClusterSpecifierPlugin],
) -> Result<BTreeSet<String>, FieldError> {
    let mut seen = BTreeSet::new();
    let mut optional = BTreeSet::new();
    for (i, p) in plugins.iter().enumerate() {
        let at = format!("cluster_specifier_plugins[{i}].extension");
        let ext = p
            .extension
            .as_ref()
            .ok_or_else(|| FieldError::new(&at, "missing"))?;
        if !seen.insert(ext.name.as_str()) {
            return Err(FieldError::new(
                format!("{at}.name"),
                format!("duplicate plugin name \"{}\"", ext.name),
            ));
        }
        if !p.is_optional {
            let type_url = ext
                .typed_config
                .as_ref()
                .map_or("", |a| a.type_url.as_str());
            return Err(FieldError::new(
                format!("{at}.typed_config"),
                format!("unsupported cluster specifier plugin type \"{type_url}\" (not optional)"),
            ));
        }
        optional.insert(ext.name.clone());
    }
    Ok(optional)
}

impl Resource for RouteConfig {
    const TYPE: ResourceType = ResourceType::RouteConfiguration;
    type Wire = wire::RouteConfiguration;
    fn wire_name(wire: &Self::Wire) -> &str {
        &wire.name
    }
    fn validate(wire: Self::Wire) -> Result<Self, FieldError> {
        RouteConfig::try_from(wire).map_err(|e| e.error)
    }
}

impl TryFrom<wire::RouteConfiguration> for RouteConfig {
    type Error = RouteConfigError;
    fn try_from(r: wire::RouteConfiguration) -> Result<Self, Self::Error> {
        let name = r.name;
        let result = optional_plugins(&r.cluster_specifier_plugins).and_then(|plugins| {
            r.virtual_hosts
                .into_iter()
                .enumerate()
                .map(|(i, v)| {
                    VirtualHost::from_wire(v, &plugins).at_field(format!("virtual_hosts[{i}]"))
                })
                .collect::<Result<Vec<_>, _>>()
        });
        match result {
            Ok(virtual_hosts) => Ok(RouteConfig::new(name, virtual_hosts)),
            Err(error) => Err(RouteConfigError::new(name, error)),
        }
    }
}
