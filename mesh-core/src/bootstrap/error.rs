//! The bootstrap's error: where the bootstrap came from, which key failed and
//! why.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::resource::FieldError;

/// A bootstrap that could not be loaded or failed validation.
///
/// Its Display names the source (file path or environment variable), the key
/// path and what is wrong:
/// `bootstrap /etc/istio/proxy/grpc-bootstrap.json: xds_servers[0].server_uri: missing`.
#[derive(Debug)]
pub struct BootstrapError {
    inner: Box<ErrorImpl>,
}

#[derive(Debug)]
struct ErrorImpl {
    origin: Origin,
    kind: Kind,
}

/// Where the bootstrap text came from.
#[derive(Debug, Clone)]
pub(super) enum Origin {
    /// `from_json`, `from_value` or the builder.
    Inline,
    /// A file (from `from_file` or `GRPC_XDS_BOOTSTRAP`).
    File(PathBuf),
    /// The `GRPC_XDS_BOOTSTRAP_CONFIG` variable.
    EnvConfig,
}

#[derive(Debug, thiserror::Error)]
enum Kind {
    #[error("neither {} nor {} is set", super::ENV_PATH, super::ENV_CONFIG)]
    NotConfigured,
    #[error("cannot read file: {0}")]
    Io(#[source] std::io::Error),
    #[error("invalid JSON: {0}")]
    Json(#[source] serde_json::Error),
    #[error("{}", display_field(.0))]
    Invalid(FieldError),
}

fn display_field(e: &FieldError) -> String {
    if e.field.is_empty() {
        e.reason.clone()
    } else {
        e.to_string()
    }
}

/// What kind of failure a [`BootstrapError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BootstrapErrorKind {
    /// Neither `GRPC_XDS_BOOTSTRAP` nor `GRPC_XDS_BOOTSTRAP_CONFIG` is set.
    NotConfigured,
    /// The bootstrap file could not be read.
    Io,
    /// The text is not JSON.
    Json,
    /// The JSON is not a valid bootstrap; see [`BootstrapError::field`].
    Invalid,
}

impl BootstrapError {
    pub(super) fn not_configured() -> Self {
        Self::new(Origin::Inline, Kind::NotConfigured)
    }

    pub(super) fn io(origin: Origin, e: std::io::Error) -> Self {
        Self::new(origin, Kind::Io(e))
    }

    pub(super) fn json(origin: Origin, e: serde_json::Error) -> Self {
        Self::new(origin, Kind::Json(e))
    }

    pub(super) fn invalid(origin: Origin, e: FieldError) -> Self {
        Self::new(origin, Kind::Invalid(e))
    }

    fn new(origin: Origin, kind: Kind) -> Self {
        BootstrapError {
            inner: Box::new(ErrorImpl { origin, kind }),
        }
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> BootstrapErrorKind {
        match self.inner.kind {
            Kind::NotConfigured => BootstrapErrorKind::NotConfigured,
            Kind::Io(_) => BootstrapErrorKind::Io,
            Kind::Json(_) => BootstrapErrorKind::Json,
            Kind::Invalid(_) => BootstrapErrorKind::Invalid,
        }
    }

    /// The key path that failed validation (`xds_servers[0].channel_creds`),
    /// for [`BootstrapErrorKind::Invalid`] errors; empty for the top level.
    pub fn field(&self) -> Option<&str> {
        match &self.inner.kind {
            Kind::Invalid(e) => Some(&e.field),
            _ => None,
        }
    }

    /// Why validation failed, for [`BootstrapErrorKind::Invalid`] errors.
    pub fn reason(&self) -> Option<&str> {
        match &self.inner.kind {
            Kind::Invalid(e) => Some(&e.reason),
            _ => None,
        }
    }

    /// The bootstrap file, when the bootstrap came from one.
    pub fn path(&self) -> Option<&Path> {
        match &self.inner.origin {
            Origin::File(p) => Some(p),
            _ => None,
        }
    }
}

impl fmt::Display for BootstrapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.inner.origin {
            Origin::Inline => write!(f, "bootstrap: {}", self.inner.kind),
            Origin::File(p) => write!(f, "bootstrap {}: {}", p.display(), self.inner.kind),
            Origin::EnvConfig => write!(f, "bootstrap {}: {}", super::ENV_CONFIG, self.inner.kind),
        }
    }
}

impl std::error::Error for BootstrapError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.inner.kind {
            Kind::Io(e) => Some(e),
            Kind::Json(e) => Some(e),
            Kind::Invalid(e) => Some(e),
            Kind::NotConfigured => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_source_key_and_reason() {
        let e = BootstrapError::invalid(
            Origin::File("/etc/istio/proxy/grpc-bootstrap.json".into()),
            FieldError::new("server_uri", "missing").at("xds_servers[0]"),
        );
        assert_eq!(
            e.to_string(),
            "bootstrap /etc/istio/proxy/grpc-bootstrap.json: xds_servers[0].server_uri: missing"
        );
        assert_eq!(e.kind(), BootstrapErrorKind::Invalid);
        assert_eq!(e.field(), Some("xds_servers[0].server_uri"));
        assert_eq!(e.reason(), Some("missing"));
        assert!(e.path().is_some());

        let e = BootstrapError::invalid(Origin::EnvConfig, FieldError::new("", "not an object"));
        assert_eq!(
            e.to_string(),
            "bootstrap GRPC_XDS_BOOTSTRAP_CONFIG: not an object"
        );
        assert!(e.path().is_none());

        let e = BootstrapError::not_configured();
        assert_eq!(e.kind(), BootstrapErrorKind::NotConfigured);
        assert_eq!(
            e.to_string(),
            "bootstrap: neither GRPC_XDS_BOOTSTRAP nor GRPC_XDS_BOOTSTRAP_CONFIG is set"
        );
    }
}
