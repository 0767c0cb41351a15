//! Compiling a route's policies ([`RoutePolicy`]) per (route, cluster
//! weight): the effective filter configs after overrides (ClusterWeight >
//! Route > VirtualHost, A39), timeouts, retries and the hash policy.
//!
//! Rate-limit buckets belong to the config object they come from (the
//! HCM's filter, a virtual host's, a route's or a cluster weight's
//! override), as in Envoy: routes sharing a config share its tokens. A
//! bucket whose config object and value are unchanged since the previous
//! compile is kept, so an EDS-only update does not refill every bucket.

use std::sync::Arc;

use mesh_core::resource::filter::{FilterConfig, HttpFilter, LocalRateLimit};
use mesh_core::resource::listener::HttpConnectionManager;
use mesh_core::resource::route::{ClusterWeight, ForwardAction, Route, VirtualHost};

use crate::context::RoutePolicy;
use crate::ratelimit::TokenBucket;

/// Buckets keyed by the address of the config they enforce (valid while
/// the table holding them keeps its snapshot alive).
pub(super) type Buckets = Vec<(usize, Arc<TokenBucket>)>;

/// Builds [`RoutePolicy`]s for one compile.
pub(super) struct PolicyBuilder<'a> {
    hcm: &'a HttpConnectionManager,
    previous: &'a [(usize, Arc<TokenBucket>)],
    pub(super) buckets: Buckets,
}

/// A route's position, for messages.
pub(super) struct RouteAt<'a> {
    pub vhost: &'a VirtualHost,
    pub route: &'a Route,
    pub index: usize,
}

impl<'a> RouteAt<'a> {
    /// The route's name, or `<virtual host>/routes[i]` when it has none.
    pub(super) fn name(&self) -> String {
        if self.route.name.is_empty() {
            format!("{}/routes[{}]", self.vhost.name, self.index)
        } else {
            self.route.name.clone()
        }
    }
}

impl<'a> PolicyBuilder<'a> {
    pub(super) fn new(
        hcm: &'a HttpConnectionManager,
        previous: &'a [(usize, Arc<TokenBucket>)],
    ) -> Self {
        PolicyBuilder {
            hcm,
            previous,
            buckets: Vec::new(),
        }
    }

    /// The policies of `at` when it sends to `weight` (`None` for a single
    /// cluster target).
    pub(super) fn build(
        &mut self,
        at: &RouteAt<'a>,
        action: &ForwardAction,
        weight: Option<&'a ClusterWeight>,
    ) -> RoutePolicy {
        let mut fault = None;
        let mut rate_limit = None;
        for filter in self.hcm.active_filters() {
            match (&filter.config, effective(filter, at, weight)) {
                // A config injecting nothing (istiod's default) costs nothing.
                (FilterConfig::Fault(_), Some(FilterConfig::Fault(f)))
                    if fault.is_none() && (f.delay.is_some() || f.abort.is_some()) =>
                {
                    fault = Some(Arc::new(f.clone()));
                }
                (FilterConfig::LocalRateLimit(_), Some(FilterConfig::LocalRateLimit(l)))
                    if rate_limit.is_none() =>
                {
                    rate_limit = self.bucket(l);
                }
                _ => {}
            }
        }
        let max_stream_duration = match action.max_stream_duration {
            Some(cap) => cap.limit(),
            None => self.hcm.max_stream_duration.filter(|d| !d.is_zero()),
        };
        RoutePolicy {
            name: at.name(),
            max_stream_duration,
            grpc_timeout_header_max: action.grpc_timeout_header_max,
            timeout: action.timeout,
            retry: action.retry_policy.clone(),
            fault,
            rate_limit,
            hash_policy: action.hash_policy.clone(),
        }
    }

    fn bucket(&mut self, config: &LocalRateLimit) -> Option<Arc<TokenBucket>> {
        let key = config as *const LocalRateLimit as usize;
        if let Some((_, b)) = self.buckets.iter().find(|(k, _)| *k == key) {
            return Some(b.clone());
        }
        let bucket = match self
            .previous
            .iter()
            .find(|(k, b)| *k == key && b.config() == config)
        {
            Some((_, b)) => b.clone(),
            None => Arc::new(TokenBucket::new(config.clone())?),
        };
        self.buckets.push((key, bucket.clone()));
        Some(bucket)
    }
}

/// The config `filter` runs with for this route and weight: the most
/// specific override, else the filter's own unless it is `disabled`; `None`
/// when it does not run.
fn effective<'a>(
    filter: &'a HttpFilter,
    at: &RouteAt<'a>,
    weight: Option<&'a ClusterWeight>,
) -> Option<&'a FilterConfig> {
    match at.vhost.filter_override(at.route, weight, &filter.name) {
        Some(FilterConfig::Disabled) => None,
        Some(config) => Some(config),
        None if filter.disabled => None,
        None => Some(&filter.config),
    }
}
