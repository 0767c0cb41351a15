//! Authorization on the server: the RBAC HTTP filter (gRPC A41).
//!
//! An HCM may carry several `envoy.filters.http.rbac*` filters; every one
//! that applies is evaluated in filter order and the first denial wins
//! (istiod sends a DENY filter, then an ALLOW one, so DENY policies are
//! checked first). A route's or virtual host's `RBACPerRoute` replaces a
//! filter's config there, or switches it off ([`effective_filters`]).
//!
//! What a policy sees of a request ([`Inbound`]): the `:method`, `:path`
//! and `:authority` pseudo-headers and the other headers; `url_path`; the
//! connection's local address and port; its peer address
//! (`direct_remote_ip`, and `remote_ip`, since no XFF hop is trusted); the
//! TLS SNI; and the peer's verified certificate ([`PeerIdentity`]).
//! `authenticated` principals match only on TLS connections, their
//! `principal_name` against the certificate's URI SANs, else DNS SANs,
//! else subject (and `""` when the client sent no certificate), as A41
//! says.
//!
//! A denied request gets PERMISSION_DENIED (a gRPC Trailers-Only response;
//! HTTP 403 for plain HTTP) with [`DENIED_MESSAGE`], which names no
//! policy: the caller learns nothing of the rules. The server logs which
//! filter and policy decided (`tracing::info`).
//!
//! Two ways in: [`evaluate`] borrows everything and allocates nothing (the
//! xDS-enabled server calls it per request with the matched route), and
//! [`RbacLayer`] wraps any HTTP service with a fixed list of filters, for
//! servers built by hand; it reads [`ConnectionFacts`] (else tonic's
//! `TcpConnectInfo`) and [`PeerIdentity`] from the request's extensions.
//!
//! Not here: validating RBAC configs (mesh-core NACKs CEL, `grpc-*` and
//! `:scheme` header matchers, `xff_num_trusted_hops`), and terminating TLS.

mod eval;
pub mod future;
mod layer;
mod service;

pub use self::eval::{ConnectionFacts, Denial, Inbound, RbacFilter, effective_filters, evaluate};
pub use self::layer::RbacLayer;
pub use self::service::RbacService;

#[cfg(doc)]
use crate::tls::PeerIdentity;

/// The message of every RBAC denial (Envoy's text): it must not reveal
/// which policy denied.
pub const DENIED_MESSAGE: &str = "RBAC: access denied";
