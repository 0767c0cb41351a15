//! Which limits make an RPC's deadline (A31).

use std::fmt;
use std::time::Duration;

use tokio::time::Instant;

use crate::context::RoutePolicy;

/// The limit that set a deadline, for the DEADLINE_EXCEEDED message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// The caller's `grpc-timeout` header.
    GrpcTimeout,
    /// The route's `grpc_timeout_header_max`, capping the caller's header.
    GrpcTimeoutHeaderMax,
    /// The route's (or the HCM's) `max_stream_duration`.
    MaxStreamDuration,
    /// Envoy's route `timeout`.
    RouteTimeout,
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Limit::GrpcTimeout => "grpc-timeout",
            Limit::GrpcTimeoutHeaderMax => "grpc_timeout_header_max",
            Limit::MaxStreamDuration => "max_stream_duration",
            Limit::RouteTimeout => "route timeout",
        })
    }
}

/// An RPC's deadline, in request extensions for the layers below.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadline {
    /// When the RPC must be over.
    pub at: Instant,
    /// The time allowed from the start.
    pub budget: Duration,
    /// The limit that set it.
    pub limit: Limit,
}

impl Deadline {
    /// The time left at `now`.
    pub fn remaining(&self, now: Instant) -> Duration {
        self.at.saturating_duration_since(now)
    }

    /// The DEADLINE_EXCEEDED status for this deadline.
    pub fn exceeded(&self, route: Option<&str>) -> tonic::Status {
        let of = match route {
            Some(r) if !r.is_empty() && self.limit != Limit::GrpcTimeout => {
                format!(" of route {r}")
            }
            _ => String::new(),
        };
        tonic::Status::deadline_exceeded(format!(
            "deadline exceeded: {} {:?}{of} elapsed",
            self.limit, self.budget
        ))
    }
}

/// The time an RPC may take and the limit that sets it, from the caller's
/// `grpc-timeout` and the route's policy; `None` when unlimited.
pub fn effective_deadline(
    caller: Option<Duration>,
    route: Option<&RoutePolicy>,
) -> Option<(Duration, Limit)> {
    let mut best: Option<(Duration, Limit)> = caller.map(|d| (d, Limit::GrpcTimeout));
    let mut take = |d: Option<Duration>, limit: Limit| {
        if let Some(d) = d
            && best.is_none_or(|(b, _)| d < b)
        {
            best = Some((d, limit));
        }
    };
    if let Some(route) = route {
        // A31: grpc_timeout_header_max, when present, replaces
        // max_stream_duration as the cap; either at zero means no cap.
        match route.grpc_timeout_header_max {
            Some(cap) => take(cap.limit(), Limit::GrpcTimeoutHeaderMax),
            None => take(
                route.max_stream_duration.filter(|d| !d.is_zero()),
                Limit::MaxStreamDuration,
            ),
        }
        take(route.timeout.filter(|d| !d.is_zero()), Limit::RouteTimeout);
    }
    best
}
