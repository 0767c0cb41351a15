//! Outlier detection: gRFC A50's success-rate and failure-percentage
//! ejection, plus Envoy's consecutive 5xx and consecutive gateway failure.
//!
//! - [`EndpointOutlier`] sits in every endpoint (lock-free counters and the
//!   `ejected` flag the picker reads); [`EndpointOutlier::record`] counts one
//!   attempt's result.
//! - [`OutlierLayer`] observes each attempt below balance and records its
//!   result: gRPC OK is a success and any other status a failure (A50); on
//!   plain HTTP only 5xx fails (Envoy). Gateway errors: HTTP 502/503/504,
//!   UNAVAILABLE, DEADLINE_EXCEEDED and transport failures.
//! - [`OutlierDetector`] is one task per cluster: every `interval` it runs
//!   A50's sweep ([`Sweeper`]), and it ejects at once when an endpoint
//!   reaches a consecutive-failure threshold (as Envoy does). Ejection lasts
//!   `base_ejection_time × times ejected`, capped by
//!   `max(base_ejection_time, max_ejection_time)`; the multiplier drops by one
//!   each interval an endpoint stays in. `max_ejection_percent` is never
//!   exceeded, though one endpoint may always be ejected (A50, Envoy).
//!   The task ends when the cluster's owner goes away or the detector is
//!   dropped.
//!
//! Not here: skipping ejected endpoints (the balancer reads
//! [`EndpointOutlier::is_ejected`]).

mod body;
mod detector;
mod endpoint;
mod future;
mod layer;
mod service;
mod sweep;

pub use self::body::ObservedBody;
pub use self::detector::OutlierDetector;
pub use self::endpoint::EndpointOutlier;
pub use self::future::ResponseFuture;
pub use self::layer::OutlierLayer;
pub use self::service::{
    Outcome, OutlierService, OutlierTarget, error_outcome, response_outcome, status_outcome,
};
pub use self::sweep::{
    Counts, Sweeper, ejection_time, failure_percentage_outliers, success_rate_outliers,
};

impl AsRef<EndpointOutlier> for crate::cluster::EndpointHandle {
    fn as_ref(&self) -> &EndpointOutlier {
        &self.outlier
    }
}

#[cfg(test)]
mod tests;
