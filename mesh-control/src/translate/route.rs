//! RouteConfigurations `outbound|P||H`: one virtual host answering for the
//! service's names, with the VirtualService's routes or istiod's default
//! route.

use envoy_types::pb::envoy::config::route::v3 as route;
use envoy_types::pb::envoy::extensions::filters::common::fault::v3 as fault_common;
use envoy_types::pb::envoy::extensions::filters::http::fault::v3 as fault;
use envoy_types::pb::envoy::r#type::matcher::v3::string_matcher::MatchPattern;
use envoy_types::pb::envoy::r#type::v3::{FractionalPercent, fractional_percent};
use envoy_types::pb::google::protobuf::UInt32Value;
use mesh_core::resource::ResourceType;

use crate::config::{
    AbortStatus, Fault, HashKey, HttpMatch, HttpRoute, LoadBalancer, Retries, RouteDestination,
    ServicePort, StringMatch, VirtualService, fqdn,
};

use super::Out;
use super::index::{Index, Service};
use super::wire::{FAULT_NAME, any, cluster_name, duration, string_matcher};

/// istiod's retry conditions when a route sets none.
pub(crate) const DEFAULT_RETRY_ON: &str =
    "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes";

/// The route configuration of `svc`'s `port`.
pub(super) fn outbound(ix: &Index<'_>, svc: &Service<'_>, port: &ServicePort, out: &mut Out) {
    let name = cluster_name(port.number, "", &svc.host);
    let domains = svc
        .names()
        .flat_map(|n| [n.to_owned(), format!("{n}:{}", port.number)])
        .collect();
    let mut routes = match ix.virtual_service(&svc.host) {
        Some(vs) => vs_routes(ix, vs, svc, port.number, out),
        None => Vec::new(),
    };
    if routes.is_empty() {
        routes.push(default_route(ix, svc, port.number));
    }
    let rc = route::RouteConfiguration {
        name: name.clone(),
        virtual_hosts: vec![route::VirtualHost {
            name: format!("{}:{}", svc.host, port.number),
            domains,
            routes,
            ..Default::default()
        }],
        ..Default::default()
    };
    out.add(ResourceType::RouteConfiguration, name, any(&rc));
}

/// istiod's route when no VirtualService applies.
fn default_route(ix: &Index<'_>, svc: &Service<'_>, port: u16) -> route::Route {
    let zero = duration(std::time::Duration::ZERO);
    #[allow(deprecated)] // istiod still sends max_grpc_timeout
    let action = route::RouteAction {
        cluster_specifier: Some(route::route_action::ClusterSpecifier::Cluster(
            cluster_name(port, "", &svc.host),
        )),
        retry_policy: Some(default_retry()),
        timeout: Some(zero),
        max_grpc_timeout: Some(zero),
        hash_policy: hash_policy(ix, &svc.host, None).into_iter().collect(),
        ..Default::default()
    };
    route::Route {
        name: "default".into(),
        r#match: Some(prefix_match("/")),
        action: Some(route::route::Action::Route(action)),
        ..Default::default()
    }
}

fn prefix_match(prefix: &str) -> route::RouteMatch {
    route::RouteMatch {
        path_specifier: Some(route::route_match::PathSpecifier::Prefix(prefix.into())),
        ..Default::default()
    }
}

fn default_retry() -> route::RetryPolicy {
    route::RetryPolicy {
        num_retries: Some(UInt32Value { value: 2 }),
        retry_on: DEFAULT_RETRY_ON.into(),
        ..Default::default()
    }
}

fn vs_routes(
    ix: &Index<'_>,
    vs: &VirtualService,
    svc: &Service<'_>,
    port: u16,
    out: &mut Out,
) -> Vec<route::Route> {
    let mut routes = Vec::new();
    for (i, http) in vs.http.iter().enumerate() {
        let what = format!("{} spec.http[{i}]", vs.meta.source);
        let Some(action) = route_action(ix, vs, http, svc, port, &what, out) else {
            continue;
        };
        let typed_per_filter_config: std::collections::HashMap<_, _> = http
            .fault
            .as_ref()
            .map(|f| (FAULT_NAME.to_owned(), any(&fault_config(f))))
            .into_iter()
            .collect();
        let default_match = [HttpMatch::default()];
        let matches = if http.matches.is_empty() {
            &default_match[..]
        } else {
            &http.matches[..]
        };
        for m in matches {
            let name = match (&http.name, &m.name) {
                (Some(r), Some(m)) => format!("{r}.{m}"),
                (Some(r), None) => r.clone(),
                (None, Some(m)) => m.clone(),
                (None, None) => String::new(),
            };
            routes.push(route::Route {
                name,
                r#match: Some(route_match(m)),
                action: Some(route::route::Action::Route(action.clone())),
                typed_per_filter_config: typed_per_filter_config.clone(),
                ..Default::default()
            });
        }
    }
    routes
}

fn route_match(m: &HttpMatch) -> route::RouteMatch {
    use route::route_match::PathSpecifier as P;
    let path_specifier = Some(match &m.uri {
        None => P::Prefix("/".into()),
        Some(StringMatch::Exact(s)) => P::Path(s.clone()),
        Some(StringMatch::Prefix(s)) => P::Prefix(s.clone()),
        Some(StringMatch::Regex(s)) => {
            P::SafeRegex(envoy_types::pb::envoy::r#type::matcher::v3::RegexMatcher {
                regex: s.clone(),
                ..Default::default()
            })
        }
    });
    let mut headers: Vec<route::HeaderMatcher> = m
        .headers
        .iter()
        .map(|(name, sm)| header_matcher(name, sm))
        .collect();
    if let Some(method) = &m.method {
        headers.push(header_matcher(":method", method));
    }
    route::RouteMatch {
        path_specifier,
        headers,
        ..Default::default()
    }
}

/// A header matcher in the `string_match` form istiod sends.
pub(crate) fn header_matcher(name: &str, m: &StringMatch) -> route::HeaderMatcher {
    let pattern = match m {
        StringMatch::Exact(s) => MatchPattern::Exact(s.clone()),
        StringMatch::Prefix(s) => MatchPattern::Prefix(s.clone()),
        StringMatch::Regex(s) => {
            MatchPattern::SafeRegex(envoy_types::pb::envoy::r#type::matcher::v3::RegexMatcher {
                regex: s.clone(),
                ..Default::default()
            })
        }
    };
    route::HeaderMatcher {
        name: name.to_owned(),
        header_match_specifier: Some(route::header_matcher::HeaderMatchSpecifier::StringMatch(
            string_matcher(pattern),
        )),
        ..Default::default()
    }
}

fn route_action(
    ix: &Index<'_>,
    vs: &VirtualService,
    http: &HttpRoute,
    svc: &Service<'_>,
    port: u16,
    what: &str,
    out: &mut Out,
) -> Option<route::RouteAction> {
    let mut clusters: Vec<(String, u32)> = Vec::new();
    for (j, d) in http.route.iter().enumerate() {
        let Some(name) =
            destination_cluster(ix, vs, d, svc, port, &format!("{what}.route[{j}]"), out)
        else {
            continue;
        };
        clusters.push((name, d.weight));
    }
    if clusters.len() > 1 {
        // istiod leaves zero-weight destinations out.
        clusters.retain(|(_, w)| *w > 0);
    }
    let cluster_specifier = match clusters.as_slice() {
        [] => {
            out.warn(format!("{what}: no usable destination: rule skipped"));
            return None;
        }
        [(name, _)] => route::route_action::ClusterSpecifier::Cluster(name.clone()),
        many => route::route_action::ClusterSpecifier::WeightedClusters(route::WeightedCluster {
            clusters: many
                .iter()
                .map(|(name, w)| route::weighted_cluster::ClusterWeight {
                    name: name.clone(),
                    weight: Some(UInt32Value { value: *w }),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }),
    };
    let first = http.route.first();
    let hash = first
        .and_then(|d| hash_policy(ix, &fqdn(&d.host, &vs.meta.namespace), d.subset.as_deref()));
    Some(route::RouteAction {
        cluster_specifier: Some(cluster_specifier),
        max_stream_duration: Some(route::route_action::MaxStreamDuration {
            max_stream_duration: Some(duration(http.timeout.unwrap_or_default())),
            ..Default::default()
        }),
        retry_policy: retry_policy(http.retries.as_ref()),
        hash_policy: hash.into_iter().collect(),
        ..Default::default()
    })
}

/// The cluster a destination names; `None` (with a warning) if its port
/// cannot be determined.
fn destination_cluster(
    ix: &Index<'_>,
    vs: &VirtualService,
    d: &RouteDestination,
    svc: &Service<'_>,
    port: u16,
    what: &str,
    out: &mut Out,
) -> Option<String> {
    let host = fqdn(&d.host, &vs.meta.namespace);
    let target = ix.service(&host);
    if target.is_none() {
        out.warn(format!(
            "{what}: destination host {host} has no ServiceEntry: its cluster will not exist"
        ));
    }
    let dest_port = match (d.port, target) {
        (Some(p), _) => p,
        (None, _) if host == svc.host => port,
        (None, Some(t)) => match t.only_port() {
            Some(p) => p,
            None => {
                out.warn(format!(
                    "{what}: destination host {host} has several ports: set destination.port"
                ));
                return None;
            }
        },
        (None, None) => port,
    };
    if let Some(subset) = &d.subset {
        let defined = ix
            .destination_rule(&host)
            .is_some_and(|dr| dr.subsets.iter().any(|s| &s.name == subset));
        if !defined {
            out.warn(format!(
                "{what}: subset \"{subset}\" of {host} is defined by no DestinationRule"
            ));
        }
    }
    Some(cluster_name(
        dest_port,
        d.subset.as_deref().unwrap_or(""),
        &host,
    ))
}

/// The consistent-hash policy the DestinationRule of `host` (and `subset`)
/// asks for.
fn hash_policy(
    ix: &Index<'_>,
    host: &str,
    subset: Option<&str>,
) -> Option<route::route_action::HashPolicy> {
    let dr = ix.destination_rule(host)?;
    let mut policy = dr.traffic_policy.clone();
    if let Some(s) = subset.and_then(|s| dr.subsets.iter().find(|x| x.name == s)) {
        policy = policy.merged_with(&s.traffic_policy);
    }
    match policy.load_balancer? {
        LoadBalancer::ConsistentHash {
            key: HashKey::Header(h),
            ..
        } => Some(route::route_action::HashPolicy {
            policy_specifier: Some(route::route_action::hash_policy::PolicySpecifier::Header(
                route::route_action::hash_policy::Header {
                    header_name: h,
                    ..Default::default()
                },
            )),
            ..Default::default()
        }),
        _ => None,
    }
}

/// A VirtualService retry policy as istiod converts it: none when
/// `attempts` is 0, istiod's default when unset.
fn retry_policy(r: Option<&Retries>) -> Option<route::RetryPolicy> {
    let Some(r) = r else {
        return Some(default_retry());
    };
    if r.attempts == 0 {
        return None;
    }
    let mut codes = Vec::new();
    let retry_on = match &r.retry_on {
        None => DEFAULT_RETRY_ON.to_owned(),
        Some(on) => {
            // Numeric conditions are HTTP status codes, as istiod reads them.
            let mut conds: Vec<&str> = Vec::new();
            for c in on.split(',').map(str::trim).filter(|c| !c.is_empty()) {
                match c.parse::<u32>() {
                    Ok(code) => codes.push(code),
                    Err(_) => conds.push(c),
                }
            }
            if !codes.is_empty() && !conds.contains(&"retriable-status-codes") {
                conds.push("retriable-status-codes");
            }
            conds.join(",")
        }
    };
    Some(route::RetryPolicy {
        num_retries: Some(UInt32Value { value: r.attempts }),
        retry_on,
        retriable_status_codes: codes,
        per_try_timeout: r.per_try_timeout.map(duration),
        ..Default::default()
    })
}

fn percent(p: f64) -> FractionalPercent {
    FractionalPercent {
        numerator: (p * 10_000.0).round() as u32,
        denominator: fractional_percent::DenominatorType::Million as i32,
    }
}

fn fault_config(f: &Fault) -> fault::HttpFault {
    fault::HttpFault {
        delay: f.delay.as_ref().map(|d| fault_common::FaultDelay {
            percentage: Some(percent(d.percent)),
            fault_delay_secifier: Some(fault_common::fault_delay::FaultDelaySecifier::FixedDelay(
                duration(d.fixed_delay),
            )),
        }),
        abort: f.abort.as_ref().map(|a| fault::FaultAbort {
            percentage: Some(percent(a.percent)),
            error_type: Some(match a.status {
                AbortStatus::Http(s) => fault::fault_abort::ErrorType::HttpStatus(s),
                AbortStatus::Grpc(s) => fault::fault_abort::ErrorType::GrpcStatus(s),
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}
