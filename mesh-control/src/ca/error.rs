//! The CA's error: an opaque type with a [`CaErrorKind`] to branch on.

use std::fmt;

/// What went wrong, coarsely; new kinds may be added.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CaErrorKind {
    /// A malformed SPIFFE identity, namespace or service account.
    InvalidIdentity,
    /// A CSR that does not parse, or whose signature does not verify.
    InvalidCsr,
    /// A CSR asking for an identity other than the caller's.
    IdentityMismatch,
    /// A root certificate or key that cannot be loaded.
    InvalidRoot,
    /// Certificate generation or signing failed.
    Signing,
    /// Reading or writing files failed.
    Io,
    /// The CA server could not start (bind, TLS setup).
    Server,
}

/// An error from the certificate authority.
#[derive(Debug)]
pub struct CaError {
    kind: CaErrorKind,
    message: String,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl CaError {
    pub(crate) fn new(kind: CaErrorKind, message: impl Into<String>) -> Self {
        CaError {
            kind,
            message: message.into(),
            source: None,
        }
    }

    pub(crate) fn with_source(
        kind: CaErrorKind,
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        CaError {
            kind,
            message: message.into(),
            source: Some(Box::new(source)),
        }
    }

    /// The kind of failure.
    pub fn kind(&self) -> CaErrorKind {
        self.kind
    }
}

impl fmt::Display for CaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(s) = &self.source {
            write!(f, ": {s}")?;
        }
        Ok(())
    }
}

impl std::error::Error for CaError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}
