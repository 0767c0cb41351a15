//! The error of building a client ([`Channel`](crate::Channel),
//! [`http::Client`](crate::http::Client)): opaque, with a [`kind`](Error::kind)
//! and the gRPC status an RPC would have failed with.
//!
//! Failures of individual RPCs are not here: a [`Channel`](crate::Channel)
//! fails them with a `tonic::Status`, the HTTP client with an HTTP status.

use std::fmt;

use tonic::{Code, Status};

/// What kind of failure an [`Error`] is. New kinds may be added.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The target is not an `xds:` URI mesh understands, or names an
    /// authority the bootstrap does not list (A47).
    InvalidTarget,
    /// No bootstrap in the environment, or an invalid one.
    Bootstrap,
    /// No usable xDS config: none arrived within the config timeout, or the
    /// control plane says a resource does not exist.
    Unavailable,
}

/// Why a client could not be built. Its [`Display`](fmt::Display) names the
/// target and, for [`ErrorKind::Unavailable`], the resource still missing.
#[derive(Debug, Clone)]
pub struct Error {
    kind: ErrorKind,
    message: String,
}

impl Error {
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
        }
    }

    /// The kind of failure.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The gRPC code an RPC on this target fails with: INVALID_ARGUMENT for
    /// a malformed target, UNAVAILABLE otherwise (config problems are
    /// UNAVAILABLE, A88).
    pub fn code(&self) -> Code {
        match self.kind {
            ErrorKind::InvalidTarget => Code::InvalidArgument,
            ErrorKind::Bootstrap | ErrorKind::Unavailable => Code::Unavailable,
        }
    }

    /// This error as a `tonic::Status` ([`code`](Self::code) and the
    /// message).
    pub fn to_status(&self) -> Status {
        Status::new(self.code(), self.message.clone())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

impl From<Error> for Status {
    fn from(e: Error) -> Status {
        Status::new(e.code(), e.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_follow_the_kind() {
        let e = Error::new(ErrorKind::Unavailable, "Listener \"x\" not received");
        let s = Status::from(e.clone());
        assert_eq!(s.code(), Code::Unavailable);
        assert_eq!(s.message(), "Listener \"x\" not received");
        assert_eq!(e.to_status().code(), Code::Unavailable);
        let e = Error::new(ErrorKind::InvalidTarget, "bad");
        assert_eq!(e.code(), Code::InvalidArgument);
        assert_eq!(e.kind(), ErrorKind::InvalidTarget);
    }
}
