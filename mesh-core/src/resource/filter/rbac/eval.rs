//! RBAC evaluation (A41) over plain request facts: no HTTP or TLS types
//! beyond a `HeaderMap`, so any server can call it per request. Evaluation
//! does not allocate except to join a header sent several times.
//!
//! How request facts map to matchers:
//! - header `:method` is [`RbacRequest::method`], `:path` is
//!   [`RbacRequest::path`], `:authority` and `host` (aliases, as in Envoy) are
//!   [`RbacRequest::authority`], or the `host` header when that is `None`;
//!   other pseudo-headers and `te` count as absent; several values of one
//!   header are joined with `,`; `-bin` headers are matched in their base64
//!   wire form.
//! - `url_path` is the path up to any `?`.
//! - `destination_ip` / `destination_port`: the local address; `source_ip`
//!   and `direct_remote_ip`: the peer address; `remote_ip`:
//!   [`RbacRequest::remote`].
//! - `requested_server_name`: the SNI, or `""` without one (gRPC hard-codes
//!   `""`).
//! - `authenticated`: only TLS peers ([`RbacRequest::authenticated`]); a
//!   `principal_name` matcher is checked against [`RbacRequest::principal`],
//!   or `""` when the peer sent no certificate.

use std::borrow::Cow;
use std::net::{IpAddr, SocketAddr};

use http::HeaderMap;

use super::{Permission, Policy, Principal, Rbac, RbacAction, RbacConfig};
use crate::resource::matcher::{HeaderMatcher, joined_value};

/// What RBAC looks at in one request.
#[derive(Debug, Clone, Copy)]
pub struct RbacRequest<'a> {
    /// Request headers (regular headers; pseudo-headers come from the fields
    /// below).
    pub headers: &'a HeaderMap,
    /// The HTTP method (`POST` for gRPC).
    pub method: &'a str,
    /// The request path (`/package.Service/Method` for gRPC).
    pub path: &'a str,
    /// The request's `:authority`; `None` falls back to the `host` header.
    pub authority: Option<&'a str>,
    /// The connection's local address.
    pub dest: SocketAddr,
    /// The connection's peer address.
    pub source: SocketAddr,
    /// The client's address (the peer's, as long as XFF is not trusted).
    pub remote: IpAddr,
    /// The peer certificate's principal: first URI SAN, else first DNS SAN,
    /// else the subject; `None` without a client certificate.
    pub principal: Option<&'a str>,
    /// The TLS SNI, if any.
    pub sni: Option<&'a str>,
    /// Whether the connection uses TLS.
    pub authenticated: bool,
}

/// The outcome of evaluating one RBAC filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RbacDecision<'a> {
    /// Whether the request may proceed.
    pub allowed: bool,
    /// The first policy (in name order) that matched, if any.
    pub matched_policy: Option<&'a str>,
}

impl RbacRequest<'_> {
    fn header(&self, name: &str) -> Option<Cow<'_, str>> {
        match name {
            ":method" => Some(Cow::Borrowed(self.method)),
            ":path" => Some(Cow::Borrowed(self.path)),
            ":authority" | "host" => match self.authority {
                Some(a) => Some(Cow::Borrowed(a)),
                None => joined_value(self.headers, "host"),
            },
            "te" => None,
            n if n.starts_with(':') => None,
            n => joined_value(self.headers, n),
        }
    }

    fn header_matches(&self, m: &HeaderMatcher) -> bool {
        m.matches_value(self.header(&m.name).as_deref())
    }

    fn path_only(&self) -> &str {
        self.path.split('?').next().unwrap_or(self.path)
    }
}

impl RbacConfig {
    /// Evaluates the config: with no `rules`, everything is allowed.
    pub fn evaluate(&self, req: &RbacRequest<'_>) -> RbacDecision<'_> {
        match &self.rules {
            Some(r) => r.evaluate(req),
            None => RbacDecision {
                allowed: true,
                matched_policy: None,
            },
        }
    }
}

impl Rbac {
    /// ALLOW: allowed iff some policy matches. DENY: denied iff some policy
    /// matches. LOG: always allowed.
    pub fn evaluate(&self, req: &RbacRequest<'_>) -> RbacDecision<'_> {
        let matched_policy = self
            .policies
            .iter()
            .find(|(_, p)| p.matches(req))
            .map(|(name, _)| name.as_str());
        let allowed = match self.action {
            RbacAction::Allow => matched_policy.is_some(),
            RbacAction::Deny => matched_policy.is_none(),
            RbacAction::Log => true,
        };
        RbacDecision {
            allowed,
            matched_policy,
        }
    }
}

impl Policy {
    /// Whether some permission and some principal match.
    pub fn matches(&self, req: &RbacRequest<'_>) -> bool {
        self.permissions.iter().any(|p| p.matches(req))
            && self.principals.iter().any(|p| p.matches(req))
    }
}

impl Permission {
    /// Whether the request matches.
    pub fn matches(&self, req: &RbacRequest<'_>) -> bool {
        match self {
            Permission::Any => true,
            Permission::Header(h) => req.header_matches(h),
            Permission::UrlPath(m) => m.matches(req.path_only()),
            Permission::DestinationIp(c) => c.contains(req.dest.ip()),
            Permission::DestinationPort(p) => req.dest.port() == *p,
            Permission::DestinationPortRange { start, end } => {
                let p = i32::from(req.dest.port());
                *start <= p && p < *end
            }
            Permission::RequestedServerName(m) => m.matches(req.sni.unwrap_or("")),
            Permission::Metadata { invert } => *invert,
            Permission::And(v) => v.iter().all(|p| p.matches(req)),
            Permission::Or(v) => v.iter().any(|p| p.matches(req)),
            Permission::Not(p) => !p.matches(req),
        }
    }
}

impl Principal {
    /// Whether the request's peer matches.
    pub fn matches(&self, req: &RbacRequest<'_>) -> bool {
        match self {
            Principal::Any => true,
            Principal::Authenticated(m) => {
                req.authenticated
                    && m.as_ref()
                        .is_none_or(|m| m.matches(req.principal.unwrap_or("")))
            }
            Principal::SourceIp(c) | Principal::DirectRemoteIp(c) => c.contains(req.source.ip()),
            Principal::RemoteIp(c) => c.contains(req.remote),
            Principal::Header(h) => req.header_matches(h),
            Principal::UrlPath(m) => m.matches(req.path_only()),
            Principal::Metadata { invert } => *invert,
            Principal::And(v) => v.iter().all(|p| p.matches(req)),
            Principal::Or(v) => v.iter().any(|p| p.matches(req)),
            Principal::Not(p) => !p.matches(req),
        }
    }
}
