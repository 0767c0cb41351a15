//! [`CaClientError`]: why a certificate request failed.

use std::fmt;

/// What kind of failure, for callers that branch on it (e.g. retry on
/// [`Unavailable`](CaClientErrorKind::Unavailable), report
/// [`Rejected`](CaClientErrorKind::Rejected) loudly).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CaClientErrorKind {
    /// The client's own settings are unusable (a bad URI or token).
    Config,
    /// The CA could not be reached, or did not answer in time (including a
    /// failed TLS handshake).
    Unavailable,
    /// The CA answered with an error status (see [`CaClientError::code`]).
    Rejected,
    /// The CA answered, but not with a certificate chain.
    InvalidResponse,
}

/// A failed `CreateCertificate` request.
#[derive(Debug)]
pub struct CaClientError {
    kind: CaClientErrorKind,
    code: Option<tonic::Code>,
    message: String,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl CaClientError {
    pub(super) fn new(kind: CaClientErrorKind, message: impl Into<String>) -> Self {
        CaClientError {
            kind,
            code: None,
            message: message.into(),
            source: None,
        }
    }

    pub(super) fn with_source(
        kind: CaClientErrorKind,
        message: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        CaClientError {
            source: Some(source.into()),
            ..Self::new(kind, message)
        }
    }

    /// A gRPC status from the CA (or from the transport under it).
    pub(super) fn from_status(uri: &str, s: tonic::Status) -> Self {
        // tonic reports transport failures as UNAVAILABLE/UNKNOWN statuses
        // with a source; the CA's own answers carry a message and no source.
        let kind = if s.code() == tonic::Code::Unavailable {
            CaClientErrorKind::Unavailable
        } else {
            CaClientErrorKind::Rejected
        };
        let mut e = Self::new(
            kind,
            format!("CA {uri} answered {:?}: {}", s.code(), s.message()),
        );
        e.code = Some(s.code());
        e
    }

    /// What kind of failure.
    pub fn kind(&self) -> CaClientErrorKind {
        self.kind
    }

    /// The gRPC status code, when the CA (or the transport) answered with
    /// one.
    pub fn code(&self) -> Option<tonic::Code> {
        self.code
    }
}

impl fmt::Display for CaClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        // Walk the chain: tonic's transport errors hide the useful part
        // (connection refused, a certificate problem) a few levels down.
        let mut source = self.source.as_deref().map(|e| e as &dyn std::error::Error);
        while let Some(e) = source {
            write!(f, ": {e}")?;
            source = e.source();
        }
        Ok(())
    }
}

impl std::error::Error for CaClientError {}
