//! The TLS layer's one public error: opaque, with a [`TlsErrorKind`] to
//! branch on and a message that names the provider instance, file or peer.

use std::fmt;

/// What went wrong, for callers that branch on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TlsErrorKind {
    /// A TLS context names a certificate provider instance the bootstrap
    /// does not define.
    UnknownProvider,
    /// The bootstrap defines the instance with a plugin mesh cannot run.
    UnsupportedPlugin,
    /// A provider lacks what a context needs (no identity certificate, no
    /// CA certificates).
    MissingMaterial,
    /// A certificate, key or CA file could not be read or parsed.
    Load,
    /// A TLS context could not be turned into a rustls config (e.g. an SNI
    /// that is not a DNS name).
    Config,
    /// A TLS handshake failed.
    Handshake,
}

/// A TLS setup or handshake failure.
#[derive(Debug)]
pub struct TlsError {
    kind: TlsErrorKind,
    message: String,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl TlsError {
    pub(crate) fn new(kind: TlsErrorKind, message: impl Into<String>) -> Self {
        TlsError {
            kind,
            message: message.into(),
            source: None,
        }
    }

    pub(crate) fn with_source(
        kind: TlsErrorKind,
        message: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        TlsError {
            kind,
            message: message.into(),
            source: Some(source.into()),
        }
    }

    /// What went wrong.
    pub fn kind(&self) -> TlsErrorKind {
        self.kind
    }
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(source) = &self.source {
            write!(f, ": {source}")?;
        }
        Ok(())
    }
}

impl std::error::Error for TlsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

impl From<TlsError> for std::io::Error {
    fn from(e: TlsError) -> Self {
        std::io::Error::other(e)
    }
}

/// The text of a tokio-rustls handshake failure: rustls's own message,
/// except that a failure raised by mesh's verifiers (a SAN mismatch) shows
/// its message, which rustls would print in debug form.
pub(crate) fn handshake_message(e: &std::io::Error) -> String {
    use rustls::{CertificateError, OtherError};
    match e.get_ref().and_then(|r| r.downcast_ref::<rustls::Error>()) {
        Some(rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(inner)))) => {
            format!("invalid peer certificate: {inner}")
        }
        _ => e.to_string(),
    }
}
