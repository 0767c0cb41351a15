//! The certificate authority (Citadel's role in Istio).
//!
//! - [`Authority`] generates an ECDSA P-256 root or loads one from a
//!   directory (Istio's `cacerts` layout), and issues SPIFFE workload
//!   certificates (`spiffe://<trust-domain>/ns/<ns>/sa/<sa>` as a URI SAN;
//!   digitalSignature + keyEncipherment; serverAuth + clientAuth; 24 h by
//!   default) with a fresh key or for a CSR.
//! - [`CaServer`] serves Istio's CA API,
//!   `istio.v1.auth.IstioCertificateService/CreateCertificate`, over TLS.
//!   Callers authenticate with their current CA-issued client certificate
//!   or a bootstrap token; they always get their own identity.
//! - [`issue_for_config`] writes a certificate per workload identity in
//!   mesh-control's config, laid out as istio-agent does, and
//!   [`WorkloadCertPaths::bootstrap_certificate_providers`] gives the
//!   matching `file_watcher` bootstrap entry.
//!
//! This module does not rotate roots, publish CRLs, or emit TLS contexts
//! into xDS (the translator does that), and holds no client side.
//!
//! # What a `mesh_ca` certificate provider calls
//!
//! A client-side provider keeping a workload's certificate fresh:
//!
//! 1. Generate a key pair (ECDSA P-256) and a PKCS#10 CSR, PEM. The CSR may
//!    carry no SAN, or exactly the workload's URI SAN
//!    `spiffe://<td>/ns/<ns>/sa/<sa>`; any other SAN is refused with
//!    `PERMISSION_DENIED`. Subject and other extensions are ignored.
//! 2. Connect over TLS to the CA ([`CaServer::uri`], default
//!    [`server::DEFAULT_LISTEN`]), verifying the server against the CA root
//!    (`root-cert.pem`) with server name [`server::SERVER_NAME`]
//!    (`istiod.istio-system.svc`).
//!    - First fetch: no client certificate; send metadata
//!      `authorization: Bearer <token>` (a token configured on the server).
//!    - Renewal: present the current certificate and key as the TLS client
//!      identity; no token needed. An expired certificate fails the
//!      handshake's verification, so renew well before `not_after` (e.g. at
//!      half the lifetime, with jitter) and fall back to the token.
//! 3. Call `CreateCertificate(IstioCertificateRequest { csr,
//!    validity_duration: seconds (0 = CA default), metadata: None })`
//!    (client: [`proto::istio_certificate_service_client`]).
//! 4. The response's `cert_chain` is `[leaf, …, root]` PEM strings. The
//!    identity chain is all of them concatenated (istio-agent's
//!    `cert-chain.pem`), the last one is the trust anchor (`root-cert.pem`).
//!
//! Errors: `UNAUTHENTICATED` (no or unknown credentials), `PERMISSION_DENIED`
//! (CSR for another identity), `INVALID_ARGUMENT` (unparsable CSR, bad
//! signature, negative validity). Validity above the CA's maximum (90 days
//! by default) is capped, not refused.

mod authority;
pub mod cli;
mod error;
mod files;
mod identity;
pub mod server;
mod workloads;
mod x509;

/// Istio's CA API (`istio.v1.auth`), generated from
/// `proto/istio/security/v1alpha1/ca.proto`.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod proto {
    tonic::include_proto!("istio.v1.auth");
}

pub use self::authority::{
    Authority, CA_CERT_FILE, CA_KEY_FILE, CERT_CHAIN_FILE, DEFAULT_MAX_VALIDITY, DEFAULT_VALIDITY,
    IssuedCert, ROOT_CERT_FILE, ROOT_VALIDITY,
};
pub use self::error::{CaError, CaErrorKind};
pub use self::files::{CERT_CHAIN_PEM, KEY_PEM, ROOT_CERT_PEM, WorkloadCertPaths};
pub use self::identity::{DEFAULT_TRUST_DOMAIN, SpiffeId};
pub use self::server::{CaServer, CaServerBuilder, CaService, Tokens};
pub use self::workloads::{
    AGENT_REFRESH_INTERVAL, DEFAULT_PROVIDER_INSTANCE, issue_for_config, workload_identities,
};

#[cfg(test)]
mod tests;
