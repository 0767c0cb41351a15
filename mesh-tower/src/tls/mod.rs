//! TLS for clusters and servers (gRPC A29), with rustls and the
//! bootstrap's certificate providers.
//!
//! - [`provider`]: named sources of certificates ([`FileWatcherProvider`]
//!   for `file_watcher`, started by a [`ProviderRegistry`]), reloaded on
//!   change and published whole as [`CertifiedMaterial`].
//! - [`client`]: a `ClientConfig` from an `UpstreamTlsContext` and
//!   [`TlsConnector`], the endpoint connector a TLS cluster uses.
//! - [`server`]: a `ServerConfig` from a `DownstreamTlsContext`,
//!   [`TlsAcceptor`] and [`accept`], which yields the client's
//!   [`PeerIdentity`].
//! - [`san`]: `match_subject_alt_names` checks.
//!
//! Certificates, keys and CAs are read per handshake from the providers,
//! so a rotation reaches new handshakes and leaves established connections
//! alone. A cluster or filter chain without a TLS context is plaintext
//! (no TLS is layered at all); that choice is the caller's. Not here:
//! authorization (the RBAC layer reads [`PeerIdentity`]). The `mesh_ca`
//! plugin ([`MeshCaProvider`]) fetches certificates through
//! `mesh_core::ca_client`.
//!
//! The crypto is *ring*'s, via rustls's `ring` provider; no process-wide
//! default provider is installed or needed.

pub mod client;
mod error;
mod identity;
mod material;
pub mod provider;
mod resolve;
pub mod san;
pub mod server;
mod verify;

use std::sync::{Arc, OnceLock};

use rustls::crypto::CryptoProvider;

pub use self::client::TlsConnector;
pub use self::error::{TlsError, TlsErrorKind};
pub use self::identity::PeerIdentity;
pub use self::material::CertifiedMaterial;
pub use self::provider::{
    CertificateProvider, FileWatcherProvider, MeshCaProvider, ProviderRegistry, ProviderStatus,
};
pub use self::server::{TlsAcceptor, accept};

/// The crypto provider every config here uses (ring), built once.
pub(crate) fn crypto() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    Arc::clone(PROVIDER.get_or_init(|| Arc::new(rustls::crypto::ring::default_provider())))
}

fn require_identity(p: &CertificateProvider) -> Result<(), TlsError> {
    // A provider that fetches its certificate (mesh_ca) may not have one
    // yet: the config is built anyway, and handshakes fail naming the
    // provider until the certificate arrives.
    if p.current().identity().is_none() && p.status().is_none() {
        return Err(TlsError::new(
            TlsErrorKind::MissingMaterial,
            format!(
                "certificate provider instance {:?} has no identity certificate \
                 (certificate_file and private_key_file are not set)",
                p.name()
            ),
        ));
    }
    Ok(())
}

fn require_ca(p: &CertificateProvider) -> Result<(), TlsError> {
    if p.current().roots().is_none() {
        return Err(TlsError::new(
            TlsErrorKind::MissingMaterial,
            format!(
                "certificate provider instance {:?} has no CA certificates \
                 (ca_certificate_file is not set)",
                p.name()
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod testing;
