//! PeerAuthentication (which workloads require mTLS) and
//! AuthorizationPolicy (who may call what).
//!
//! Policy conditions mesh cannot enforce are errors, not warnings: dropping
//! a condition would silently widen (ALLOW) or narrow (DENY) a policy.

use std::collections::BTreeMap;

use serde_json::Value;

use super::Meta;
use super::walk::{Findings, Obj};

/// A validated PeerAuthentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerAuthentication {
    /// Name, namespace, labels, origin.
    pub meta: Meta,
    /// `selector.matchLabels`; `None` applies to the whole namespace (or the
    /// whole mesh in the root namespace).
    pub selector: Option<BTreeMap<String, String>>,
    /// `mtls.mode`; `None` (UNSET) inherits from the wider policy.
    pub mode: Option<MtlsMode>,
}

/// `mtls.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MtlsMode {
    /// `STRICT`: mTLS only.
    Strict,
    /// `PERMISSIVE`: mTLS or plaintext.
    Permissive,
    /// `DISABLE`: plaintext.
    Disable,
}

/// A validated AuthorizationPolicy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationPolicy {
    /// Name, namespace, labels, origin.
    pub meta: Meta,
    /// `selector.matchLabels`; `None` applies to the namespace (or mesh).
    pub selector: Option<BTreeMap<String, String>>,
    /// `action`.
    pub action: AuthzAction,
    /// `rules`: a request matching any rule matches the policy. An empty
    /// list matches nothing.
    pub rules: Vec<AuthzRule>,
}

/// `action`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthzAction {
    /// `ALLOW`.
    Allow,
    /// `DENY`.
    Deny,
}

/// One rule: any `from`, any `to`, and every `when` must match. Empty lists
/// match everything.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuthzRule {
    /// `from[].source`.
    pub from: Vec<AuthzSource>,
    /// `to[].operation`.
    pub to: Vec<AuthzOperation>,
    /// `when`.
    pub when: Vec<AuthzCondition>,
}

/// `source`: every non-empty field must match.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuthzSource {
    /// `principals` (`cluster.local/ns/x/sa/y`, `*` wildcards at either end).
    pub principals: Vec<String>,
    /// `notPrincipals`.
    pub not_principals: Vec<String>,
    /// `namespaces`.
    pub namespaces: Vec<String>,
    /// `notNamespaces`.
    pub not_namespaces: Vec<String>,
}

/// `operation`: every non-empty field must match.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuthzOperation {
    /// `paths` (`/exact`, `/prefix*`, `*suffix`, `*`).
    pub paths: Vec<String>,
    /// `notPaths`.
    pub not_paths: Vec<String>,
    /// `methods` (for gRPC always `POST`).
    pub methods: Vec<String>,
    /// `notMethods`.
    pub not_methods: Vec<String>,
    /// `ports`.
    pub ports: Vec<u16>,
    /// `notPorts`.
    pub not_ports: Vec<u16>,
}

/// `when` entry: `key` with `values` (any) and `notValues` (none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthzCondition {
    /// `key` (`request.headers[x-user]`, `source.principal`,
    /// `source.namespace`, `destination.port`).
    pub key: String,
    /// `values`.
    pub values: Vec<String>,
    /// `notValues`.
    pub not_values: Vec<String>,
}

fn selector(s: &Obj<'_>, f: &mut Findings) -> Option<BTreeMap<String, String>> {
    s.obj("selector", &["matchLabels"], f)
        .map(|o| o.str_map("matchLabels", f))
}

pub(super) fn parse_peer_authentication(
    spec: &Value,
    meta: Meta,
    f: &mut Findings,
) -> Option<PeerAuthentication> {
    let s = Obj::new(spec, "spec", &["selector", "mtls", "portLevelMtls"], f)?;
    if s.has("portLevelMtls") {
        f.error(
            &s.path_of("portLevelMtls"),
            "per-port mTLS modes are not supported",
        );
    }
    let mode = s.obj("mtls", &["mode"], f).and_then(|m| {
        match m
            .one_of("mode", &["UNSET", "STRICT", "PERMISSIVE", "DISABLE"], f)?
            .as_str()
        {
            "STRICT" => Some(MtlsMode::Strict),
            "PERMISSIVE" => Some(MtlsMode::Permissive),
            "DISABLE" => Some(MtlsMode::Disable),
            _ => None,
        }
    });
    Some(PeerAuthentication {
        selector: selector(&s, f),
        meta,
        mode,
    })
}

pub(super) fn parse_authorization_policy(
    spec: &Value,
    meta: Meta,
    f: &mut Findings,
) -> Option<AuthorizationPolicy> {
    let s = Obj::new(
        spec,
        "spec",
        &[
            "selector",
            "targetRef",
            "targetRefs",
            "rules",
            "action",
            "provider",
        ],
        f,
    )?;
    for key in ["targetRef", "targetRefs", "provider"] {
        if s.has(key) {
            f.error(&s.path_of(key), "is not supported");
        }
    }
    let action = match s
        .one_of("action", &["ALLOW", "DENY", "AUDIT", "CUSTOM"], f)
        .as_deref()
    {
        None | Some("ALLOW") => AuthzAction::Allow,
        Some("DENY") => AuthzAction::Deny,
        Some("AUDIT") => {
            f.ignored.push((
                "spec.action".into(),
                "AUDIT policies have no effect on proxyless servers: policy skipped".into(),
            ));
            return None;
        }
        Some(_) => {
            f.error(
                "spec.action",
                "CUSTOM (external authorization) is not supported",
            );
            return None;
        }
    };
    let rules = s
        .list("rules", f)
        .into_iter()
        .filter_map(|(path, v)| parse_rule(v, &path, f))
        .collect();
    Some(AuthorizationPolicy {
        selector: selector(&s, f),
        meta,
        action,
        rules,
    })
}

fn parse_rule(v: &Value, path: &str, f: &mut Findings) -> Option<AuthzRule> {
    let r = Obj::new(v, path, &["from", "to", "when"], f)?;
    let from = r
        .list("from", f)
        .into_iter()
        .filter_map(|(p, v)| {
            let o = Obj::new(v, &p, &["source"], f)?;
            let s = o.obj(
                "source",
                &[
                    "principals",
                    "notPrincipals",
                    "namespaces",
                    "notNamespaces",
                    "requestPrincipals",
                    "notRequestPrincipals",
                    "ipBlocks",
                    "notIpBlocks",
                    "remoteIpBlocks",
                    "notRemoteIpBlocks",
                    "serviceAccounts",
                    "notServiceAccounts",
                ],
                f,
            )?;
            unsupported(
                &s,
                &[
                    "requestPrincipals",
                    "notRequestPrincipals",
                    "ipBlocks",
                    "notIpBlocks",
                    "remoteIpBlocks",
                    "notRemoteIpBlocks",
                    "serviceAccounts",
                    "notServiceAccounts",
                ],
                f,
            );
            Some(AuthzSource {
                principals: s.str_list("principals", f),
                not_principals: s.str_list("notPrincipals", f),
                namespaces: s.str_list("namespaces", f),
                not_namespaces: s.str_list("notNamespaces", f),
            })
        })
        .collect();
    let to = r
        .list("to", f)
        .into_iter()
        .filter_map(|(p, v)| {
            let o = Obj::new(v, &p, &["operation"], f)?;
            let op = o.obj(
                "operation",
                &[
                    "hosts",
                    "notHosts",
                    "ports",
                    "notPorts",
                    "methods",
                    "notMethods",
                    "paths",
                    "notPaths",
                ],
                f,
            )?;
            unsupported(&op, &["hosts", "notHosts"], f);
            Some(AuthzOperation {
                paths: op.str_list("paths", f),
                not_paths: op.str_list("notPaths", f),
                methods: op.str_list("methods", f),
                not_methods: op.str_list("notMethods", f),
                ports: ports(&op, "ports", f),
                not_ports: ports(&op, "notPorts", f),
            })
        })
        .collect();
    let when = r
        .list("when", f)
        .into_iter()
        .filter_map(|(p, v)| {
            let o = Obj::new(v, &p, &["key", "values", "notValues"], f)?;
            let key = o.req_str("key", f)?;
            let known = key.starts_with("request.headers[") && key.ends_with(']')
                || matches!(
                    key.as_str(),
                    "source.principal" | "source.namespace" | "destination.port"
                );
            if !known {
                f.error(
                    &o.path_of("key"),
                    format!(
                        "\"{key}\" is not supported (use request.headers[NAME], \
                         source.principal, source.namespace or destination.port)"
                    ),
                );
                return None;
            }
            Some(AuthzCondition {
                key,
                values: o.str_list("values", f),
                not_values: o.str_list("notValues", f),
            })
        })
        .collect();
    Some(AuthzRule { from, to, when })
}

fn unsupported(o: &Obj<'_>, keys: &[&str], f: &mut Findings) {
    for key in keys {
        if o.has(key) {
            f.error(
                &o.path_of(key),
                "is not supported by mesh (the policy cannot be enforced as written)",
            );
        }
    }
}

fn ports(o: &Obj<'_>, key: &str, f: &mut Findings) -> Vec<u16> {
    o.str_list(key, f)
        .into_iter()
        .enumerate()
        .filter_map(|(i, p)| match p.parse::<u16>() {
            Ok(n) if n > 0 => Some(n),
            _ => {
                f.error(
                    &format!("{}[{i}]", o.path_of(key)),
                    format!("\"{p}\" is not a port number"),
                );
                None
            }
        })
        .collect()
}
