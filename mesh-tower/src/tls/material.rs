//! [`CertifiedMaterial`]: one consistent set of identity certificate, key
//! and trusted CAs, as a provider publishes it, and loading it from PEM.
//!
//! Material is immutable: a reload builds a new one and publishes it whole,
//! so a handshake never sees a new certificate with an old key. Verifiers
//! that depend only on the CAs are built here, once per reload, not per
//! handshake.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::ClientCertVerifier;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::crypto;
use super::error::{TlsError, TlsErrorKind};

/// A provider's current certificates: the local identity (chain and key)
/// and/or the CAs that peers are verified against.
pub struct CertifiedMaterial {
    identity: Option<Arc<CertifiedKey>>,
    roots: Option<Arc<RootCertStore>>,
    client_verifier: Option<Arc<dyn ClientCertVerifier>>,
    /// The PEM inputs, to tell a periodic reload that changed nothing.
    source: [Option<Vec<u8>>; 3],
}

impl CertifiedMaterial {
    /// No identity and no CAs (a provider before its first load).
    pub fn empty() -> Self {
        CertifiedMaterial {
            identity: None,
            roots: None,
            client_verifier: None,
            source: [None, None, None],
        }
    }

    /// Builds material from PEM: a certificate chain (leaf first) with its
    /// private key, and/or a CA bundle. `what` names the source in errors
    /// (e.g. the provider instance).
    pub fn from_pem(
        what: &str,
        chain: Option<&[u8]>,
        key: Option<&[u8]>,
        ca: Option<&[u8]>,
    ) -> Result<Self, TlsError> {
        let identity = match (chain, key) {
            (Some(chain), Some(key)) => Some(Arc::new(identity(what, chain, key)?)),
            (None, None) => None,
            _ => {
                return Err(TlsError::new(
                    TlsErrorKind::Load,
                    format!("{what}: a certificate chain needs its private key and vice versa"),
                ));
            }
        };
        let (roots, client_verifier) = match ca {
            Some(ca) => {
                let roots = Arc::new(roots(what, ca)?);
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::clone(&roots), crypto())
                        .build()
                        .map_err(|e| {
                            TlsError::with_source(
                                TlsErrorKind::Load,
                                format!("{what}: unusable CA certificates"),
                                e,
                            )
                        })?;
                (Some(roots), Some(verifier))
            }
            None => (None, None),
        };
        Ok(CertifiedMaterial {
            identity,
            roots,
            client_verifier,
            source: [
                chain.map(<[u8]>::to_vec),
                key.map(<[u8]>::to_vec),
                ca.map(<[u8]>::to_vec),
            ],
        })
    }

    /// Reads the PEM files and builds material; errors name the file.
    pub fn from_files(
        chain: Option<&Path>,
        key: Option<&Path>,
        ca: Option<&Path>,
    ) -> Result<Self, TlsError> {
        let read = |p: Option<&Path>| p.map(read_file).transpose();
        let (chain_pem, key_pem, ca_pem) = (read(chain)?, read(key)?, read(ca)?);
        let name = |p: Option<&Path>| p.map(|p| p.display().to_string());
        let identity = match (chain, key) {
            (Some(c), Some(k)) => Some(identity(
                &format!("{} and {}", c.display(), k.display()),
                chain_pem.as_deref().unwrap_or_default(),
                key_pem.as_deref().unwrap_or_default(),
            )?),
            (None, None) => None,
            _ => {
                return Err(TlsError::new(
                    TlsErrorKind::Load,
                    format!(
                        "certificate file {:?} and private key file {:?} must be set together",
                        name(chain),
                        name(key)
                    ),
                ));
            }
        };
        let what_ca = ca.map(|p| p.display().to_string()).unwrap_or_default();
        let mut m = Self::from_pem(&what_ca, None, None, ca_pem.as_deref())?;
        m.identity = identity.map(Arc::new);
        m.source = [chain_pem, key_pem, ca_pem];
        Ok(m)
    }

    /// The local certificate chain and signing key, if any.
    pub fn identity(&self) -> Option<&Arc<CertifiedKey>> {
        self.identity.as_ref()
    }

    /// The trusted CA certificates, if any.
    pub fn roots(&self) -> Option<&Arc<RootCertStore>> {
        self.roots.as_ref()
    }

    /// A webpki client-certificate verifier over [`roots`](Self::roots),
    /// built once per load.
    pub(crate) fn client_verifier(&self) -> Option<&Arc<dyn ClientCertVerifier>> {
        self.client_verifier.as_ref()
    }

    /// Whether `other` was built from the same PEM inputs.
    pub fn same_source(&self, other: &CertifiedMaterial) -> bool {
        self.source == other.source
    }
}

impl fmt::Debug for CertifiedMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertifiedMaterial")
            .field(
                "identity_chain_len",
                &self.identity.as_ref().map(|i| i.cert.len()),
            )
            .field("roots", &self.roots.as_ref().map(|r| r.len()))
            .finish()
    }
}

fn read_file(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| {
        TlsError::with_source(
            TlsErrorKind::Load,
            format!("cannot read {}", path.display()),
            e,
        )
    })
}

fn load_err(
    what: &str,
    message: &str,
    e: impl std::error::Error + Send + Sync + 'static,
) -> TlsError {
    TlsError::with_source(TlsErrorKind::Load, format!("{what}: {message}"), e)
}

fn certs(what: &str, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| load_err(what, "invalid PEM certificate", e))?;
    if certs.is_empty() {
        return Err(TlsError::new(
            TlsErrorKind::Load,
            format!("{what}: no PEM certificate found"),
        ));
    }
    Ok(certs)
}

fn identity(what: &str, chain: &[u8], key: &[u8]) -> Result<CertifiedKey, TlsError> {
    let chain = certs(what, chain)?;
    let key = PrivateKeyDer::from_pem_slice(key)
        .map_err(|e| load_err(what, "invalid PEM private key", e))?;
    // Also checks that the key belongs to the leaf certificate, which
    // catches a reload that caught the files half-swapped.
    CertifiedKey::from_der(chain, key, &crypto())
        .map_err(|e| load_err(what, "unusable certificate and key", e))
}

fn roots(what: &str, pem: &[u8]) -> Result<RootCertStore, TlsError> {
    let mut store = RootCertStore::empty();
    for (i, cert) in certs(what, pem)?.into_iter().enumerate() {
        store
            .add(cert)
            .map_err(|e| load_err(what, &format!("CA certificate #{} is unusable", i + 1), e))?;
    }
    Ok(store)
}
