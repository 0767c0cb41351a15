//! The server's opaque public error.

use std::fmt;

/// Why an xDS-enabled server could not start or stopped.
///
/// Opaque: match on [`Error::kind`]; new kinds may appear.
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

/// The kind of an [`Error`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// No usable bootstrap, or one without
    /// `server_listener_resource_name_template` (A36 servers need it).
    Bootstrap,
    /// Binding or reading the listening socket failed.
    Io,
}

impl Error {
    pub(crate) fn new(
        kind: ErrorKind,
        message: impl Into<String>,
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Error {
            kind,
            message: message.into(),
            source,
        }
    }

    pub(crate) fn io(message: impl Into<String>, e: std::io::Error) -> Self {
        let message = format!("{}: {e}", message.into());
        Self::new(ErrorKind::Io, message, Some(Box::new(e)))
    }

    /// What went wrong.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The message already quotes the cause; `source()` exposes it too.
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}
