//! Connectivity states of one endpoint (gRPC's `connectivity-semantics`).

use std::fmt;

/// Where an endpoint's connections stand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ConnectivityState {
    /// No connection and no attempt under way; the next use (or an eager
    /// balancer) starts one.
    Idle = 0,
    /// A connect attempt is under way; requests wait for its outcome.
    Connecting = 1,
    /// At least one HTTP/2 connection is up.
    Ready = 2,
    /// The last attempt failed; requests fail fast until the backoff ends.
    TransientFailure = 3,
}

impl ConnectivityState {
    pub(crate) const fn from_u8(v: u8) -> Self {
        match v {
            0 => ConnectivityState::Idle,
            1 => ConnectivityState::Connecting,
            2 => ConnectivityState::Ready,
            _ => ConnectivityState::TransientFailure,
        }
    }
}

impl fmt::Display for ConnectivityState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ConnectivityState::Idle => "IDLE",
            ConnectivityState::Connecting => "CONNECTING",
            ConnectivityState::Ready => "READY",
            ConnectivityState::TransientFailure => "TRANSIENT_FAILURE",
        })
    }
}
