//! RBAC evaluation over one request: which filters apply on a route, and
//! the decision of each, first denial wins. Borrows the config and the
//! request; allocates nothing (except to join a header sent several
//! times, as mesh-core's matchers do).

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use http::{HeaderMap, Method, Uri};
use mesh_core::resource::filter::{
    FilterConfig, Policy, Principal, Rbac, RbacAction, RbacConfig, RbacRequest,
};
use mesh_core::resource::listener::HttpConnectionManager;
use mesh_core::resource::route::{Route, VirtualHost};

use crate::tls::PeerIdentity;

/// What RBAC needs to know of the connection a request came on. A server
/// inserts it into every request's extensions (next to the
/// [`PeerIdentity`], when the client presented a certificate).
#[derive(Debug, Clone)]
pub struct ConnectionFacts {
    /// The connection's local address (`destination_ip`,
    /// `destination_port`).
    pub local_addr: SocketAddr,
    /// The peer's address (`direct_remote_ip`, `remote_ip`).
    pub peer_addr: SocketAddr,
    /// Whether the connection is TLS (`authenticated` principals need it).
    pub tls: bool,
    /// The SNI the client sent (`requested_server_name`), if any.
    pub sni: Option<Arc<str>>,
}

/// One request as RBAC sees it.
#[derive(Debug, Clone, Copy)]
pub struct Inbound<'a> {
    method: &'a Method,
    uri: &'a Uri,
    headers: &'a HeaderMap,
    connection: &'a ConnectionFacts,
    peer: Option<&'a PeerIdentity>,
}

impl<'a> Inbound<'a> {
    /// A request with this method, URI and headers, on `connection`, from
    /// `peer` (the verified client certificate, if any).
    pub fn new(
        method: &'a Method,
        uri: &'a Uri,
        headers: &'a HeaderMap,
        connection: &'a ConnectionFacts,
        peer: Option<&'a PeerIdentity>,
    ) -> Self {
        Inbound {
            method,
            uri,
            headers,
            connection,
            peer,
        }
    }

    /// The same request from an `http::request::Parts`.
    pub fn from_parts(
        parts: &'a http::request::Parts,
        connection: &'a ConnectionFacts,
        peer: Option<&'a PeerIdentity>,
    ) -> Self {
        Self::new(&parts.method, &parts.uri, &parts.headers, connection, peer)
    }

    fn rbac_request(&self) -> RbacRequest<'a> {
        let c = self.connection;
        RbacRequest {
            headers: self.headers,
            method: self.method.as_str(),
            path: self
                .uri
                .path_and_query()
                .map_or(self.uri.path(), |p| p.as_str()),
            authority: self.uri.authority().map(|a| a.as_str()),
            dest: c.local_addr,
            source: c.peer_addr,
            remote: c.peer_addr.ip(),
            principal: self.peer.map(PeerIdentity::principal),
            sni: c.sni.as_deref(),
            authenticated: c.tls,
        }
    }
}

/// One RBAC filter as it applies to a request: its instance name and the
/// effective config.
#[derive(Debug, Clone, Copy)]
pub struct RbacFilter<'a> {
    /// The filter's instance name (`envoy.filters.http.rbac.DENY`).
    pub name: &'a str,
    /// Its config, after the route's override.
    pub config: &'a RbacConfig,
}

/// The RBAC filters that apply on `route` of `vhost`, in the HCM's order:
/// each `RBAC` filter with the most specific `RBACPerRoute` override (the
/// route's, else the virtual host's) in place of its config; an override
/// without `rbac`, or a `disabled` one, drops the filter; a filter
/// `disabled` at top level applies only where an override enables it.
pub fn effective_filters<'a>(
    hcm: &'a HttpConnectionManager,
    vhost: &'a VirtualHost,
    route: &'a Route,
) -> impl Iterator<Item = RbacFilter<'a>> + 'a {
    hcm.active_filters().filter_map(move |f| {
        let FilterConfig::Rbac(top) = &f.config else {
            return None;
        };
        let config = match vhost.filter_override(route, None, &f.name) {
            Some(FilterConfig::RbacPerRoute(o)) => o.rbac.as_ref()?,
            Some(FilterConfig::Disabled) => return None,
            _ if f.disabled => return None,
            _ => top,
        };
        Some(RbacFilter {
            name: &f.name,
            config,
        })
    })
}

/// Why a request was denied: for the server's log, never for the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Denial<'a> {
    /// The filter that denied.
    pub filter: &'a str,
    /// The DENY policy that matched; `None` when an ALLOW filter had no
    /// matching policy.
    pub policy: Option<&'a str>,
}

impl fmt::Display for Denial<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.policy {
            Some(p) => write!(f, "filter {:?}: DENY policy {p:?} matched", self.filter),
            None => write!(f, "filter {:?}: no ALLOW policy matched", self.filter),
        }
    }
}

/// Evaluates `filters` in order; the first that denies decides.
pub fn evaluate<'a>(
    filters: impl IntoIterator<Item = RbacFilter<'a>>,
    request: &Inbound<'_>,
) -> Result<(), Denial<'a>> {
    let req = request.rbac_request();
    for filter in filters {
        let Some(rules) = &filter.config.rules else {
            continue;
        };
        if let Some(policy) = denies(rules, &req, request) {
            return Err(Denial {
                filter: filter.name,
                policy,
            });
        }
    }
    Ok(())
}

/// `Some(matched DENY policy)` when `rules` deny the request.
fn denies<'a>(
    rules: &'a Rbac,
    req: &RbacRequest<'_>,
    inbound: &Inbound<'_>,
) -> Option<Option<&'a str>> {
    let matched = rules
        .policies
        .iter()
        .find(|(_, p)| policy_matches(p, req, inbound))
        .map(|(name, _)| name.as_str());
    match rules.action {
        RbacAction::Allow if matched.is_none() => Some(None),
        RbacAction::Deny if matched.is_some() => Some(matched),
        _ => None,
    }
}

fn policy_matches(p: &Policy, req: &RbacRequest<'_>, inbound: &Inbound<'_>) -> bool {
    p.permissions.iter().any(|x| x.matches(req))
        && p.principals
            .iter()
            .any(|x| principal_matches(x, req, inbound))
}

/// mesh-core's principal matching, except `authenticated`, which looks at
/// every SAN of the certificate ([`PeerIdentity::matches_principal`]).
fn principal_matches(p: &Principal, req: &RbacRequest<'_>, inbound: &Inbound<'_>) -> bool {
    match p {
        Principal::Authenticated(m) => {
            inbound.connection.tls
                && m.as_ref().is_none_or(|m| match inbound.peer {
                    Some(peer) => peer.matches_principal(m),
                    None => m.matches(""),
                })
        }
        Principal::And(v) => v.iter().all(|x| principal_matches(x, req, inbound)),
        Principal::Or(v) => v.iter().any(|x| principal_matches(x, req, inbound)),
        Principal::Not(x) => !principal_matches(x, req, inbound),
        other => other.matches(req),
    }
}
