//! [`PeerIdentity`]: who the peer of a TLS connection proved to be.
//!
//! Built from the peer's certificate chain after rustls verified it, so
//! nothing here is trusted that the handshake did not check. The server
//! inserts it into every request's extensions (one per connection, shared:
//! cloning is a reference count), where handlers, RBAC and telemetry read
//! it:
//!
//! ```ignore
//! let peer = request.extensions().get::<mesh_tower::tls::PeerIdentity>();
//! let who = peer.map(|p| p.principal());
//! ```
//!
//! A plaintext connection, or a TLS client that sent no certificate where
//! one was optional, has no `PeerIdentity`.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use mesh_core::resource::matcher::StringMatcher;
use rustls_pki_types::CertificateDer;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::error::{TlsError, TlsErrorKind};
use super::san::Sans;

/// The verified identity of a TLS peer (the leaf certificate's names and
/// the chain it sent).
#[derive(Clone)]
pub struct PeerIdentity {
    inner: Arc<Inner>,
}

struct Inner {
    spiffe_id: Option<String>,
    sans: Sans,
    subject: String,
    not_after: SystemTime,
    chain_der: Vec<CertificateDer<'static>>,
}

impl PeerIdentity {
    /// Reads the identity from a verified chain (leaf first).
    pub fn from_chain(chain: &[CertificateDer<'_>]) -> Result<Self, TlsError> {
        let leaf = chain.first().ok_or_else(|| {
            TlsError::new(TlsErrorKind::Handshake, "the peer sent no certificate")
        })?;
        let (_, cert) = X509Certificate::from_der(leaf).map_err(|e| {
            TlsError::with_source(
                TlsErrorKind::Handshake,
                "cannot parse the peer certificate",
                e,
            )
        })?;
        let sans = Sans::of(&cert);
        let spiffe_id = sans
            .uri
            .iter()
            .find(|u| u.starts_with("spiffe://"))
            .cloned();
        let not_after = cert.validity().not_after.timestamp();
        let not_after = if not_after >= 0 {
            SystemTime::UNIX_EPOCH + Duration::from_secs(not_after.unsigned_abs())
        } else {
            SystemTime::UNIX_EPOCH - Duration::from_secs(not_after.unsigned_abs())
        };
        Ok(PeerIdentity {
            inner: Arc::new(Inner {
                spiffe_id,
                subject: cert.subject().to_string(),
                sans,
                not_after,
                chain_der: chain.iter().map(|c| c.clone().into_owned()).collect(),
            }),
        })
    }

    /// The SPIFFE ID: the first URI SAN with the `spiffe://` scheme.
    pub fn spiffe_id(&self) -> Option<&str> {
        self.inner.spiffe_id.as_deref()
    }

    /// All URI SANs, in certificate order.
    pub fn uri_sans(&self) -> &[String] {
        &self.inner.sans.uri
    }

    /// All DNS SANs, in certificate order.
    pub fn dns_sans(&self) -> &[String] {
        &self.inner.sans.dns
    }

    /// All IP address SANs, in certificate order.
    pub fn ip_sans(&self) -> &[IpAddr] {
        &self.inner.sans.ip
    }

    /// The subject distinguished name (`CN=..., O=...`).
    pub fn subject(&self) -> &str {
        &self.inner.subject
    }

    /// When the leaf certificate expires.
    pub fn not_after(&self) -> SystemTime {
        self.inner.not_after
    }

    /// The chain the peer sent (leaf first), DER.
    pub fn chain_der(&self) -> &[CertificateDer<'static>] {
        &self.inner.chain_der
    }

    /// The one name to show for the peer (logs, telemetry's
    /// `source_principal`): the SPIFFE ID, else the first URI SAN, else the
    /// subject.
    pub fn principal(&self) -> &str {
        self.spiffe_id()
            .or_else(|| self.uri_sans().first().map(String::as_str))
            .unwrap_or(self.subject())
    }

    /// RBAC's `authenticated.principal_name` (gRPC A41): true when any URI
    /// SAN matches, else any DNS SAN, else the subject.
    pub fn matches_principal(&self, m: &StringMatcher) -> bool {
        self.uri_sans().iter().any(|s| m.matches(s))
            || self.dns_sans().iter().any(|s| m.matches(s))
            || m.matches(self.subject())
    }
}

impl fmt::Debug for PeerIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PeerIdentity")
            .field("spiffe_id", &self.inner.spiffe_id)
            .field("uri_sans", &self.inner.sans.uri)
            .field("dns_sans", &self.inner.sans.dns)
            .field("ip_sans", &self.inner.sans.ip)
            .field("subject", &self.inner.subject)
            .field("not_after", &self.inner.not_after)
            .field("chain_len", &self.inner.chain_der.len())
            .finish()
    }
}
