//! RBAC (`envoy.extensions.filters.http.rbac.v3.RBAC` and `RBACPerRoute`,
//! A41): validated policies, and their evaluation in [`eval`].
//!
//! NACKed, as A41 says: CEL (`condition`, `checked_condition`), header
//! matchers on `grpc-*` headers or `:scheme`, and the new-style `matcher`
//! trees (`RBAC.matcher`, `Permission.matcher`, `Permission.uri_template`,
//! `Principal.custom`), which we cannot evaluate. Ignored: `shadow_rules`,
//! `shadow_matcher`, the stat prefixes, `track_per_rule_stats` and audit
//! logging. Envoy metadata, sourced metadata and filter state do not exist in
//! gRPC, so those matchers never match (their `invert` still applies).

pub mod eval;

use std::collections::BTreeMap;

use envoy_types::pb::envoy::config::rbac::v3 as policy;
use envoy_types::pb::envoy::config::route::v3 as route;
use envoy_types::pb::envoy::extensions::filters::http::rbac::v3 as wire;
use envoy_types::pb::envoy::r#type::matcher::v3 as matcher_wire;

pub use self::eval::{RbacDecision, RbacRequest};
use crate::resource::FieldError;
use crate::resource::listener::CidrRange;
use crate::resource::matcher::{HeaderMatcher, StringMatcher};

/// A validated top-level `RBAC` filter config.
#[derive(Debug, Clone, PartialEq)]
pub struct RbacConfig {
    /// The enforced rules; `None` (unset `rules`) enforces nothing.
    pub rules: Option<Rbac>,
}

/// A validated `RBACPerRoute`.
#[derive(Debug, Clone, PartialEq)]
pub struct RbacPerRoute {
    /// The config replacing the top-level one for this virtual host / route;
    /// `None` (unset `rbac`) disables the filter there.
    pub rbac: Option<RbacConfig>,
}

/// An RBAC policy set (`envoy.config.rbac.v3.RBAC`).
#[derive(Debug, Clone, PartialEq)]
pub struct Rbac {
    /// What a matching policy means.
    pub action: RbacAction,
    /// Policies by name, evaluated in name order.
    pub policies: BTreeMap<String, Policy>,
}

/// `RBAC.action`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RbacAction {
    /// Allowed iff some policy matches.
    Allow,
    /// Denied iff some policy matches.
    Deny,
    /// Always allowed; matches are only reported (A41: as if unconfigured).
    Log,
}

/// A policy: matches when any permission and any principal match.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// What the request does (OR).
    pub permissions: Vec<Permission>,
    /// Who sends it (OR).
    pub principals: Vec<Principal>,
}

/// `envoy.config.rbac.v3.Permission`.
#[derive(Debug, Clone, PartialEq)]
pub enum Permission {
    /// Every request.
    Any,
    /// A request header (`:method`, `:path`, `:authority` included).
    Header(HeaderMatcher),
    /// The path without its query (for gRPC, `/package.Service/Method`).
    UrlPath(StringMatcher),
    /// The connection's local address.
    DestinationIp(CidrRange),
    /// The connection's local port.
    DestinationPort(u16),
    /// The local port in `[start, end)`.
    DestinationPortRange {
        /// Inclusive start.
        start: i32,
        /// Exclusive end.
        end: i32,
    },
    /// The TLS SNI (gRPC: always the empty string).
    RequestedServerName(StringMatcher),
    /// Envoy metadata, which is always empty here: matches only if `invert`.
    Metadata {
        /// The matcher's `invert`.
        invert: bool,
    },
    /// All of these.
    And(Vec<Permission>),
    /// Any of these.
    Or(Vec<Permission>),
    /// Not this.
    Not(Box<Permission>),
}

/// `envoy.config.rbac.v3.Principal`.
#[derive(Debug, Clone, PartialEq)]
pub enum Principal {
    /// Every peer.
    Any,
    /// A TLS peer; with a matcher, one whose principal name matches (A41:
    /// URI SAN, else DNS SAN, else subject, else `""`).
    Authenticated(Option<StringMatcher>),
    /// The peer's address (deprecated `source_ip`; same as direct here).
    SourceIp(CidrRange),
    /// The peer's address.
    DirectRemoteIp(CidrRange),
    /// The client's address as headers tell it (without XFF support, the
    /// peer's address).
    RemoteIp(CidrRange),
    /// A request header, as in [`Permission::Header`].
    Header(HeaderMatcher),
    /// The path, as in [`Permission::UrlPath`].
    UrlPath(StringMatcher),
    /// Envoy metadata or filter state, which do not exist here: matches only
    /// if `invert`.
    Metadata {
        /// The matcher's `invert`.
        invert: bool,
    },
    /// All of these.
    And(Vec<Principal>),
    /// Any of these.
    Or(Vec<Principal>),
    /// Not this.
    Not(Box<Principal>),
}

impl RbacConfig {
    /// Validates a wire `RBAC` filter config found at `field`.
    pub fn from_wire(r: &wire::Rbac, field: &str) -> Result<Self, FieldError> {
        if r.matcher.is_some() {
            return Err(FieldError::new(
                format!("{field}.matcher"),
                "matcher trees are not supported: use rules",
            ));
        }
        let rules = r
            .rules
            .as_ref()
            .map(|p| Rbac::from_wire(p, &format!("{field}.rules")))
            .transpose()?;
        Ok(RbacConfig { rules })
    }
}

impl RbacPerRoute {
    /// Validates a wire `RBACPerRoute` found at `field`.
    pub fn from_wire(r: &wire::RbacPerRoute, field: &str) -> Result<Self, FieldError> {
        let rbac = r
            .rbac
            .as_ref()
            .map(|c| RbacConfig::from_wire(c, &format!("{field}.rbac")))
            .transpose()?;
        Ok(RbacPerRoute { rbac })
    }
}

impl Rbac {
    /// Validates a wire `envoy.config.rbac.v3.RBAC` found at `field`.
    pub fn from_wire(r: &policy::Rbac, field: &str) -> Result<Self, FieldError> {
        use policy::rbac::Action;
        let action = match Action::try_from(r.action) {
            Ok(Action::Allow) => RbacAction::Allow,
            Ok(Action::Deny) => RbacAction::Deny,
            Ok(Action::Log) => RbacAction::Log,
            Err(_) => {
                return Err(FieldError::new(
                    format!("{field}.action"),
                    format!("unknown action {}", r.action),
                ));
            }
        };
        let mut policies = BTreeMap::new();
        for (name, p) in &r.policies {
            let f = format!("{field}.policies[\"{name}\"]");
            policies.insert(name.clone(), Policy::from_wire(p, &f)?);
        }
        Ok(Rbac { action, policies })
    }
}

impl Policy {
    fn from_wire(p: &policy::Policy, field: &str) -> Result<Self, FieldError> {
        if p.condition.is_some() {
            return Err(FieldError::new(
                format!("{field}.condition"),
                "CEL conditions are not supported",
            ));
        }
        if p.checked_condition.is_some() {
            return Err(FieldError::new(
                format!("{field}.checked_condition"),
                "CEL conditions are not supported",
            ));
        }
        if p.permissions.is_empty() {
            return Err(FieldError::new(
                format!("{field}.permissions"),
                "a policy needs at least one permission",
            ));
        }
        if p.principals.is_empty() {
            return Err(FieldError::new(
                format!("{field}.principals"),
                "a policy needs at least one principal",
            ));
        }
        let permissions = p
            .permissions
            .iter()
            .enumerate()
            .map(|(i, x)| Permission::from_wire(x, &format!("{field}.permissions[{i}]")))
            .collect::<Result<_, _>>()?;
        let principals = p
            .principals
            .iter()
            .enumerate()
            .map(|(i, x)| Principal::from_wire(x, &format!("{field}.principals[{i}]")))
            .collect::<Result<_, _>>()?;
        Ok(Policy {
            permissions,
            principals,
        })
    }
}

/// A header matcher allowed in RBAC (A41: not `grpc-*`, not `:scheme`).
fn rbac_header(h: &route::HeaderMatcher, field: &str) -> Result<HeaderMatcher, FieldError> {
    let m = HeaderMatcher::from_wire(h, field)?;
    if m.name.starts_with("grpc-") || m.name == ":scheme" {
        return Err(FieldError::new(
            format!("{field}.name"),
            format!(
                "RBAC cannot match header \"{}\" (grpc-* and :scheme are not allowed)",
                m.name
            ),
        ));
    }
    Ok(m)
}

fn path_matcher(p: &matcher_wire::PathMatcher, field: &str) -> Result<StringMatcher, FieldError> {
    match &p.rule {
        Some(matcher_wire::path_matcher::Rule::Path(s)) => {
            StringMatcher::from_wire(s, &format!("{field}.path"))
        }
        None => Err(FieldError::new(field, "no path matcher set")),
    }
}

impl Permission {
    /// Validates a wire permission found at `field`.
    pub fn from_wire(p: &policy::Permission, field: &str) -> Result<Self, FieldError> {
        use policy::permission::Rule as R;
        let list = |rules: &[policy::Permission], name: &str| {
            rules
                .iter()
                .enumerate()
                .map(|(i, r)| Permission::from_wire(r, &format!("{field}.{name}.rules[{i}]")))
                .collect::<Result<Vec<_>, _>>()
        };
        let unsupported = |name: &str| {
            Err(FieldError::new(
                format!("{field}.{name}"),
                format!("{name} permissions are not supported"),
            ))
        };
        Ok(match &p.rule {
            None => return Err(FieldError::new(field, "no permission rule set")),
            Some(R::Any(_)) => Permission::Any,
            Some(R::AndRules(s)) => Permission::And(list(&s.rules, "and_rules")?),
            Some(R::OrRules(s)) => Permission::Or(list(&s.rules, "or_rules")?),
            Some(R::NotRule(r)) => Permission::Not(Box::new(Permission::from_wire(
                r,
                &format!("{field}.not_rule"),
            )?)),
            Some(R::Header(h)) => Permission::Header(rbac_header(h, &format!("{field}.header"))?),
            Some(R::UrlPath(m)) => {
                Permission::UrlPath(path_matcher(m, &format!("{field}.url_path"))?)
            }
            Some(R::DestinationIp(c)) => Permission::DestinationIp(CidrRange::from_wire(
                c,
                &format!("{field}.destination_ip"),
            )?),
            Some(R::DestinationPort(p)) => {
                Permission::DestinationPort(u16::try_from(*p).map_err(|_| {
                    FieldError::new(
                        format!("{field}.destination_port"),
                        format!("port {p} is above 65535"),
                    )
                })?)
            }
            Some(R::DestinationPortRange(r)) => {
                if r.start > r.end {
                    return Err(FieldError::new(
                        format!("{field}.destination_port_range"),
                        format!("start {} is greater than end {}", r.start, r.end),
                    ));
                }
                Permission::DestinationPortRange {
                    start: r.start,
                    end: r.end,
                }
            }
            Some(R::RequestedServerName(m)) => Permission::RequestedServerName(
                StringMatcher::from_wire(m, &format!("{field}.requested_server_name"))?,
            ),
            Some(R::Metadata(m)) => Permission::Metadata { invert: m.invert },
            Some(R::SourcedMetadata(m)) => Permission::Metadata {
                invert: m.metadata_matcher.as_ref().is_some_and(|m| m.invert),
            },
            Some(R::Matcher(_)) => return unsupported("matcher"),
            Some(R::UriTemplate(_)) => return unsupported("uri_template"),
        })
    }
}

impl Principal {
    /// Validates a wire principal found at `field`.
    pub fn from_wire(p: &policy::Principal, field: &str) -> Result<Self, FieldError> {
        use policy::principal::Identifier as I;
        let list = |ids: &[policy::Principal], name: &str| {
            ids.iter()
                .enumerate()
                .map(|(i, r)| Principal::from_wire(r, &format!("{field}.{name}.ids[{i}]")))
                .collect::<Result<Vec<_>, _>>()
        };
        let cidr = |c, name: &str| CidrRange::from_wire(c, &format!("{field}.{name}"));
        Ok(match &p.identifier {
            None => return Err(FieldError::new(field, "no principal identifier set")),
            Some(I::Any(_)) => Principal::Any,
            Some(I::AndIds(s)) => Principal::And(list(&s.ids, "and_ids")?),
            Some(I::OrIds(s)) => Principal::Or(list(&s.ids, "or_ids")?),
            Some(I::NotId(r)) => Principal::Not(Box::new(Principal::from_wire(
                r,
                &format!("{field}.not_id"),
            )?)),
            Some(I::Authenticated(a)) => Principal::Authenticated(
                a.principal_name
                    .as_ref()
                    .map(|m| {
                        StringMatcher::from_wire(
                            m,
                            &format!("{field}.authenticated.principal_name"),
                        )
                    })
                    .transpose()?,
            ),
            Some(I::SourceIp(c)) => Principal::SourceIp(cidr(c, "source_ip")?),
            Some(I::DirectRemoteIp(c)) => Principal::DirectRemoteIp(cidr(c, "direct_remote_ip")?),
            Some(I::RemoteIp(c)) => Principal::RemoteIp(cidr(c, "remote_ip")?),
            Some(I::Header(h)) => Principal::Header(rbac_header(h, &format!("{field}.header"))?),
            Some(I::UrlPath(m)) => {
                Principal::UrlPath(path_matcher(m, &format!("{field}.url_path"))?)
            }
            Some(I::Metadata(m)) => Principal::Metadata { invert: m.invert },
            Some(I::SourcedMetadata(m)) => Principal::Metadata {
                invert: m.metadata_matcher.as_ref().is_some_and(|m| m.invert),
            },
            Some(I::FilterState(_)) => Principal::Metadata { invert: false },
            Some(I::Custom(_)) => {
                return Err(FieldError::new(
                    format!("{field}.custom"),
                    "custom principals are not supported",
                ));
            }
        })
    }
}

#[cfg(test)]
mod tests;
