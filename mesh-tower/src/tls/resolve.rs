//! Certificate resolvers that hand rustls the provider's *current*
//! identity at every handshake, so a rotated certificate is presented from
//! the next handshake on.

use std::sync::Arc;

use rustls::SignatureScheme;
use rustls::client::ResolvesClientCert;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use super::provider::CertificateProvider;

/// Presents the provider's identity, as a client or as a server.
#[derive(Debug)]
pub(crate) struct IdentityResolver(pub(crate) CertificateProvider);

impl IdentityResolver {
    fn current(&self) -> Option<Arc<CertifiedKey>> {
        self.0.current().identity().cloned()
    }
}

impl ResolvesClientCert for IdentityResolver {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        self.current()
    }

    fn has_certs(&self) -> bool {
        true
    }
}

impl ResolvesServerCert for IdentityResolver {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current()
    }
}
