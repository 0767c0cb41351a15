//! Whole-resource tests: istiod's shapes and behaviours (`shapes`), and one
//! test per validation rule (`rules`), each asserting the field path an
//! operator would read in the NACK. This module holds the wire builders.

mod rules;
mod shapes;

use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::TypedExtensionConfig;
use envoy_types::pb::envoy::config::route::v3 as wire;
use envoy_types::pb::envoy::r#type::matcher::v3::{
    RegexMatchAndSubstitute, RegexMatcher, StringMatcher, string_matcher::MatchPattern,
};
use envoy_types::pb::google::protobuf::{Any, BoolValue, Duration as PbDuration, UInt32Value};
use http::HeaderMap;

use super::super::{ResourceType, decode, to_any};
use super::*;
use wire::header_matcher::HeaderMatchSpecifier as H;
use wire::route_action::ClusterSpecifier as C;
use wire::route_match::PathSpecifier as P;

const ECHO: &str = "outbound|7070||echo.default.svc.cluster.local";

fn secs(s: i64) -> Option<PbDuration> {
    Some(PbDuration {
        seconds: s,
        nanos: 0,
    })
}

fn prefix(p: &str) -> Option<wire::RouteMatch> {
    Some(wire::RouteMatch {
        path_specifier: Some(P::Prefix(p.into())),
        ..Default::default()
    })
}

fn action(c: C) -> wire::RouteAction {
    wire::RouteAction {
        cluster_specifier: Some(c),
        ..Default::default()
    }
}

fn route(m: Option<wire::RouteMatch>, a: wire::RouteAction) -> wire::Route {
    wire::Route {
        r#match: m,
        action: Some(wire::route::Action::Route(a)),
        ..Default::default()
    }
}

fn to_cluster(name: &str) -> wire::Route {
    route(prefix("/"), action(C::Cluster(name.into())))
}

fn vhost(domains: &[&str], routes: Vec<wire::Route>) -> wire::VirtualHost {
    wire::VirtualHost {
        name: "vh".into(),
        domains: domains.iter().map(|d| d.to_string()).collect(),
        routes,
        ..Default::default()
    }
}

fn config(vhosts: Vec<wire::VirtualHost>) -> wire::RouteConfiguration {
    wire::RouteConfiguration {
        name: ECHO.into(),
        virtual_hosts: vhosts,
        ..Default::default()
    }
}

/// The error path of a configuration with one virtual host holding `routes`.
fn route_error(routes: Vec<wire::Route>) -> FieldError {
    let e = RouteConfig::try_from(config(vec![vhost(&["*"], routes)])).unwrap_err();
    assert_eq!(e.name, ECHO);
    e.error
}

fn weighted(weights: &[(&str, Option<u32>)]) -> wire::Route {
    let clusters = weights
        .iter()
        .map(|(name, w)| wire::weighted_cluster::ClusterWeight {
            name: name.to_string(),
            weight: w.map(|value| UInt32Value { value }),
            ..Default::default()
        })
        .collect();
    route(
        prefix("/"),
        action(C::WeightedClusters(wire::WeightedCluster {
            clusters,
            ..Default::default()
        })),
    )
}

fn forward(r: &Route) -> &ForwardAction {
    match &r.action {
        RouteAction::Forward(f) => f,
        other => panic!("not a forward action: {other:?}"),
    }
}

fn with_action(edit: impl FnOnce(&mut wire::RouteAction)) -> wire::Route {
    let mut r = to_cluster("c");
    let Some(wire::route::Action::Route(a)) = &mut r.action else {
        unreachable!()
    };
    edit(a);
    r
}

fn hash_policy(
    spec: wire::route_action::hash_policy::PolicySpecifier,
    terminal: bool,
) -> wire::route_action::HashPolicy {
    wire::route_action::HashPolicy {
        terminal,
        policy_specifier: Some(spec),
    }
}

fn plugin(name: &str, is_optional: bool) -> wire::ClusterSpecifierPlugin {
    wire::ClusterSpecifierPlugin {
        extension: Some(TypedExtensionConfig {
            name: name.into(),
            typed_config: None,
        }),
        is_optional,
    }
}

fn unknown_override(optional: bool) -> Any {
    let inner = Any {
        type_url: "type.googleapis.com/example.Unknown".into(),
        value: vec![],
    };
    if !optional {
        return inner;
    }
    to_any(
        "type.googleapis.com/envoy.config.route.v3.FilterConfig",
        &wire::FilterConfig {
            config: Some(inner),
            is_optional: true,
            disabled: false,
        },
    )
}
