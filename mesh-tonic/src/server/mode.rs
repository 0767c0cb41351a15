//! Serving mode (A36): whether the server has a Listener it may serve with,
//! derived from the server watch's state and the listening address.
//!
//! This module decides; the accept loop acts (closing connections, draining,
//! calling the callback).

use std::net::SocketAddr;
use std::sync::Arc;

use mesh_core::watch::{ServerConfig, ServerState};

/// The two modes of an xDS-enabled server (A36).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServingMode {
    /// A valid Listener for the listening address is in use: connections are
    /// accepted and served.
    Serving,
    /// No usable Listener (not received yet, does not exist, invalid, or for
    /// another address): connections are accepted and closed at once.
    NotServing,
}

/// The callback told about mode changes: the new mode and, for
/// [`ServingMode::NotServing`], why.
pub type ModeCallback = Arc<dyn Fn(ServingMode, Option<String>) + Send + Sync>;

/// What the server does now.
#[derive(Debug, Clone)]
pub(crate) enum Mode {
    /// Serve with this config.
    Serving(Arc<ServerConfig>),
    /// Refuse connections, for this reason.
    NotServing(String),
}

impl Mode {
    pub(crate) fn kind(&self) -> ServingMode {
        match self {
            Mode::Serving(_) => ServingMode::Serving,
            Mode::NotServing(_) => ServingMode::NotServing,
        }
    }

    /// The mode for the watch's `state`; `None` while nothing has resolved
    /// yet (the server stays not serving, silently).
    pub(crate) fn from_state(
        state: &ServerState,
        listener_name: &str,
        listening: SocketAddr,
    ) -> Option<Mode> {
        let config = match state.as_ref()? {
            Err(e) => return Some(Mode::NotServing(e.reason.clone())),
            Ok(c) => c,
        };
        // A36: a Listener for another address is not an error in the
        // resource (it was ACKed); this server just may not use it.
        let mode = match config.server().address {
            Some(a) if same_address(a, listening) => Mode::Serving(config.clone()),
            Some(a) => Mode::NotServing(format!(
                "Listener \"{listener_name}\" address {a} does not match the listening address {listening}"
            )),
            None => Mode::NotServing(format!(
                "Listener \"{listener_name}\" has no address (the listening address is {listening})"
            )),
        };
        Some(mode)
    }

    /// Whether moving from `self` to `next` is worth a callback: the mode
    /// changed, or the reason for not serving did.
    pub(crate) fn reportable_change(&self, next: &Mode) -> bool {
        match (self, next) {
            (Mode::Serving(_), Mode::Serving(_)) => false,
            (Mode::NotServing(a), Mode::NotServing(b)) => a != b,
            _ => true,
        }
    }
}

/// Addresses compare as IPs and ports; an IPv4-mapped IPv6 address equals
/// its IPv4 form (a dual-stack socket may report either).
fn same_address(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port() && a.ip().to_canonical() == b.ip().to_canonical()
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesh_core::watch::ConfigError;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn addresses_compare_canonically() {
        assert!(same_address(addr("0.0.0.0:80"), addr("0.0.0.0:80")));
        assert!(same_address(
            addr("[::ffff:10.0.0.1]:80"),
            addr("10.0.0.1:80")
        ));
        assert!(!same_address(addr("0.0.0.0:80"), addr("0.0.0.0:81")));
        assert!(!same_address(addr("0.0.0.0:80"), addr("[::]:80")));
        assert!(!same_address(addr("127.0.0.1:80"), addr("0.0.0.0:80")));
    }

    #[test]
    fn unresolved_and_errors() {
        assert!(Mode::from_state(&None, "l", addr("0.0.0.0:1")).is_none());
        let err = Some(Err(ConfigError {
            reason: "Listener \"l\" does not exist".into(),
        }));
        let m = Mode::from_state(&err, "l", addr("0.0.0.0:1")).unwrap();
        assert!(matches!(&m, Mode::NotServing(r) if r.contains("does not exist")));
        let same = Mode::NotServing("x".into());
        assert!(!same.reportable_change(&Mode::NotServing("x".into())));
        assert!(same.reportable_change(&Mode::NotServing("y".into())));
    }
}
