//! What an attempt's error says about retrying it: a gRPC code, and the
//! transport conditions Envoy's `retry_on` names, found in the error chain.

use std::error::Error;
use std::fmt;

use tonic::Code;

use crate::breaker::Overflow;

/// An attempt ran past `per_try_timeout`: DEADLINE_EXCEEDED, retried like
/// a 504 (`5xx`, `gateway-error`) or under `deadline-exceeded`.
#[derive(Debug)]
pub struct PerTryTimeout {
    status: tonic::Status,
}

impl PerTryTimeout {
    pub(super) fn new(limit: std::time::Duration) -> Self {
        PerTryTimeout {
            status: tonic::Status::deadline_exceeded(format!("per_try_timeout {limit:?} elapsed")),
        }
    }
}

impl fmt::Display for PerTryTimeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.status.message())
    }
}

impl Error for PerTryTimeout {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(&self.status)
    }
}

/// What an attempt's error chain holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorClass {
    /// The gRPC code the caller would see.
    pub code: Code,
    /// A circuit breaker refused the attempt (never retried).
    pub overflow: bool,
    /// The server never processed the stream (REFUSED_STREAM, GOAWAY, a
    /// request the connection never sent): safe to retry transparently.
    pub unprocessed: bool,
    /// The server sent REFUSED_STREAM.
    pub refused_stream: bool,
    /// The stream or connection was reset.
    pub reset: bool,
    /// The connection could not be made.
    pub connect_failure: bool,
    /// The attempt ran past `per_try_timeout`.
    pub per_try_timeout: bool,
}

/// Classifies an attempt's error by walking its source chain.
pub fn classify_error(err: &(dyn Error + 'static)) -> ErrorClass {
    let mut class = ErrorClass {
        code: Code::Unknown,
        overflow: false,
        unprocessed: false,
        refused_stream: false,
        reset: false,
        connect_failure: false,
        per_try_timeout: false,
    };
    let mut status = None;
    let mut cur = Some(err);
    while let Some(e) = cur {
        if e.is::<Overflow>() {
            class.overflow = true;
        } else if e.is::<PerTryTimeout>() {
            class.per_try_timeout = true;
        } else if let Some(s) = e.downcast_ref::<tonic::Status>() {
            status.get_or_insert(s.code());
        } else if let Some(h2) = e.downcast_ref::<h2::Error>() {
            classify_h2(h2, &mut class);
        } else if let Some(h) = e.downcast_ref::<hyper::Error>() {
            // A request the dispatcher dropped before sending it.
            if h.is_canceled() {
                class.unprocessed = true;
            } else if h.is_incomplete_message() || h.is_closed() {
                class.reset = true;
            }
        } else if let Some(h) = e.downcast_ref::<hyper_util::client::legacy::Error>() {
            if h.is_connect() {
                class.connect_failure = true;
            }
        } else if let Some(io) = e.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind as K;
            match io.kind() {
                K::ConnectionRefused
                | K::AddrNotAvailable
                | K::HostUnreachable
                | K::NetworkUnreachable => class.connect_failure = true,
                K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe | K::UnexpectedEof => {
                    class.reset = true
                }
                _ => {}
            }
        }
        cur = e.source();
    }
    class.code = match status {
        Some(code) => code,
        None if class.per_try_timeout => Code::DeadlineExceeded,
        None if class.unprocessed
            || class.refused_stream
            || class.reset
            || class.connect_failure =>
        {
            Code::Unavailable
        }
        None => Code::Unknown,
    };
    class
}

fn classify_h2(e: &h2::Error, class: &mut ErrorClass) {
    if e.reason() == Some(h2::Reason::REFUSED_STREAM) {
        class.refused_stream = true;
        class.unprocessed = true;
    } else if e.is_go_away() && e.is_remote() && e.reason() == Some(h2::Reason::NO_ERROR) {
        // A graceful GOAWAY fails only the streams it did not process.
        class.unprocessed = true;
    } else if e.is_reset() || e.is_go_away() || e.is_io() {
        class.reset = true;
    }
}
