//! AuthorizationPolicy → the two RBAC filters of an inbound listener:
//! `envoy.filters.http.rbac.DENY` (every DENY policy selecting the
//! workload) and `envoy.filters.http.rbac` (every ALLOW policy; no `rules`
//! at all when there is none, which enforces nothing).
//!
//! Each policy rule becomes one RBAC policy named as istiod names them
//! (`ns[NS]-policy[NAME]-rule[I]`): its permissions are the `to`
//! operations (any of them), its principals the `from` sources (any of
//! them); every field inside one is AND-ed, values inside a field OR-ed.

use envoy_types::pb::envoy::config::rbac::v3 as rbac;
use envoy_types::pb::envoy::extensions::filters::http::rbac::v3 as rbac_filter;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3 as hcm;
use envoy_types::pb::envoy::r#type::matcher::v3 as matcher;
use envoy_types::pb::envoy::r#type::matcher::v3::string_matcher::MatchPattern;

use crate::config::{
    AuthorizationPolicy, AuthzAction, AuthzCondition, AuthzOperation, AuthzRule, AuthzSource,
    ROOT_NAMESPACE, StringMatch,
};

use super::index::{Workload, selects};
use super::route::header_matcher;
use super::wire::{
    RBAC_DENY_NAME, RBAC_NAME, TRUST_DOMAIN, exact, http_filter, regex, string_matcher,
};

use rbac::permission::Rule as P;
use rbac::principal::Identifier as I;

/// Whether `p` applies to workload `w`.
pub(crate) fn applies(p: &AuthorizationPolicy, w: &Workload<'_>) -> bool {
    match &p.selector {
        None => p.meta.namespace == ROOT_NAMESPACE || p.meta.namespace == w.namespace,
        Some(s) => p.meta.namespace == w.namespace && selects(s, &w.labels),
    }
}

/// The DENY and ALLOW filters for workload `w`.
pub(super) fn filters(
    policies: &[AuthorizationPolicy],
    w: &Workload<'_>,
) -> (hcm::HttpFilter, hcm::HttpFilter) {
    let selected: Vec<&AuthorizationPolicy> = policies.iter().filter(|p| applies(p, w)).collect();
    let build = |action: AuthzAction| {
        let mut policies = std::collections::HashMap::new();
        for p in selected.iter().filter(|p| p.action == action) {
            for (i, rule) in p.rules.iter().enumerate() {
                let name = format!("ns[{}]-policy[{}]-rule[{i}]", p.meta.namespace, p.meta.name);
                policies.insert(name, policy(rule));
            }
        }
        policies
    };
    let deny = rbac_filter::Rbac {
        rules: Some(rbac::Rbac {
            action: rbac::rbac::Action::Deny as i32,
            policies: build(AuthzAction::Deny),
            ..Default::default()
        }),
        ..Default::default()
    };
    let has_allow = selected.iter().any(|p| p.action == AuthzAction::Allow);
    // With ALLOW policies, anything they do not match is denied (an ALLOW
    // policy without rules matches nothing); without any, nothing is enforced.
    let allow = rbac_filter::Rbac {
        rules: has_allow.then(|| rbac::Rbac {
            action: rbac::rbac::Action::Allow as i32,
            policies: build(AuthzAction::Allow),
            ..Default::default()
        }),
        ..Default::default()
    };
    (
        http_filter(RBAC_DENY_NAME, &deny),
        http_filter(RBAC_NAME, &allow),
    )
}

fn policy(rule: &AuthzRule) -> rbac::Policy {
    let empty_op = AuthzOperation::default();
    let empty_src = AuthzSource::default();
    let ops: Vec<&AuthzOperation> = if rule.to.is_empty() {
        vec![&empty_op]
    } else {
        rule.to.iter().collect()
    };
    let srcs: Vec<&AuthzSource> = if rule.from.is_empty() {
        vec![&empty_src]
    } else {
        rule.from.iter().collect()
    };
    rbac::Policy {
        permissions: ops
            .into_iter()
            .map(|op| permission(op, &rule.when))
            .collect(),
        principals: srcs
            .into_iter()
            .map(|src| principal(src, &rule.when))
            .collect(),
        ..Default::default()
    }
}

fn perm(rule: P) -> rbac::Permission {
    rbac::Permission { rule: Some(rule) }
}

fn id(identifier: I) -> rbac::Principal {
    rbac::Principal {
        identifier: Some(identifier),
    }
}

fn or_perm(rules: Vec<rbac::Permission>) -> rbac::Permission {
    perm(P::OrRules(rbac::permission::Set { rules }))
}

fn or_id(ids: Vec<rbac::Principal>) -> rbac::Principal {
    id(I::OrIds(rbac::principal::Set { ids }))
}

/// `*`, `prefix*`, `*suffix` or exact, as Istio reads policy values.
fn glob(value: &str, prefix_base: &str) -> matcher::StringMatcher {
    if value == "*" {
        regex(".+")
    } else if let Some(p) = value.strip_suffix('*') {
        string_matcher(MatchPattern::Prefix(format!("{prefix_base}{p}")))
    } else if let Some(s) = value.strip_prefix('*') {
        string_matcher(MatchPattern::Suffix(s.to_owned()))
    } else {
        exact(format!("{prefix_base}{value}"))
    }
}

fn header_glob(
    name: &str,
    value: &str,
) -> envoy_types::pb::envoy::config::route::v3::HeaderMatcher {
    let m = if value == "*" {
        StringMatch::Regex(".+".into())
    } else if let Some(p) = value.strip_suffix('*') {
        StringMatch::Prefix(p.to_owned())
    } else if let Some(s) = value.strip_prefix('*') {
        StringMatch::Regex(format!(".*{}", regex_escape(s)))
    } else {
        StringMatch::Exact(value.to_owned())
    };
    header_matcher(name, &m)
}

fn regex_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn path(value: &str) -> rbac::Permission {
    perm(P::UrlPath(matcher::PathMatcher {
        rule: Some(matcher::path_matcher::Rule::Path(glob(value, ""))),
    }))
}

fn method(value: &str) -> rbac::Permission {
    perm(P::Header(header_glob(":method", value)))
}

fn port(p: u16) -> rbac::Permission {
    perm(P::DestinationPort(u32::from(p)))
}

fn principal_name(value: &str) -> rbac::Principal {
    let m = glob(value, "spiffe://");
    id(I::Authenticated(rbac::principal::Authenticated {
        principal_name: Some(m),
    }))
}

fn namespace(ns: &str) -> rbac::Principal {
    let m = if ns == "*" {
        regex(format!("spiffe://{}/ns/.+", regex_escape(TRUST_DOMAIN)))
    } else {
        regex(format!(".*/ns/{}/.*", regex_escape(ns)))
    };
    id(I::Authenticated(rbac::principal::Authenticated {
        principal_name: Some(m),
    }))
}

/// One `to` operation AND-ed with the destination-side `when` conditions.
fn permission(op: &AuthzOperation, when: &[AuthzCondition]) -> rbac::Permission {
    let mut and: Vec<rbac::Permission> = Vec::new();
    let mut field = |values: Vec<rbac::Permission>, negate: bool| {
        if values.is_empty() {
            return;
        }
        let any = or_perm(values);
        and.push(if negate {
            perm(P::NotRule(Box::new(any)))
        } else {
            any
        });
    };
    field(op.paths.iter().map(|p| path(p)).collect(), false);
    field(op.not_paths.iter().map(|p| path(p)).collect(), true);
    field(op.methods.iter().map(|m| method(m)).collect(), false);
    field(op.not_methods.iter().map(|m| method(m)).collect(), true);
    field(op.ports.iter().map(|p| port(*p)).collect(), false);
    field(op.not_ports.iter().map(|p| port(*p)).collect(), true);
    for c in when.iter().filter(|c| c.key == "destination.port") {
        let ports = |vals: &[String]| {
            vals.iter()
                .filter_map(|v| v.parse::<u16>().ok())
                .map(port)
                .collect::<Vec<_>>()
        };
        field(ports(&c.values), false);
        field(ports(&c.not_values), true);
    }
    if and.is_empty() {
        perm(P::Any(true))
    } else {
        perm(P::AndRules(rbac::permission::Set { rules: and }))
    }
}

/// One `from` source AND-ed with the source-side `when` conditions.
fn principal(src: &AuthzSource, when: &[AuthzCondition]) -> rbac::Principal {
    let mut and: Vec<rbac::Principal> = Vec::new();
    let mut field = |values: Vec<rbac::Principal>, negate: bool| {
        if values.is_empty() {
            return;
        }
        let any = or_id(values);
        and.push(if negate {
            id(I::NotId(Box::new(any)))
        } else {
            any
        });
    };
    field(
        src.principals.iter().map(|p| principal_name(p)).collect(),
        false,
    );
    field(
        src.not_principals
            .iter()
            .map(|p| principal_name(p))
            .collect(),
        true,
    );
    field(src.namespaces.iter().map(|n| namespace(n)).collect(), false);
    field(
        src.not_namespaces.iter().map(|n| namespace(n)).collect(),
        true,
    );
    for c in when {
        let build: Box<dyn Fn(&str) -> rbac::Principal> = if let Some(h) = c
            .key
            .strip_prefix("request.headers[")
            .and_then(|k| k.strip_suffix(']'))
        {
            let h = h.to_ascii_lowercase();
            Box::new(move |v| id(I::Header(header_glob(&h, v))))
        } else if c.key == "source.principal" {
            Box::new(principal_name)
        } else if c.key == "source.namespace" {
            Box::new(namespace)
        } else {
            continue; // destination-side keys go to the permission
        };
        field(c.values.iter().map(|v| build(v)).collect(), false);
        field(c.not_values.iter().map(|v| build(v)).collect(), true);
    }
    if and.is_empty() {
        id(I::Any(true))
    } else {
        id(I::AndIds(rbac::principal::Set { ids: and }))
    }
}
