//! Outlier detection (gRPC A50, Envoy's `OutlierDetection`): ejection of
//! endpoints that fail more than their peers.
//!
//! Each algorithm is present only when its enforcement percentage is
//! non-zero: success rate is enforced at 100% when `enforcing_success_rate`
//! is unset (A50), failure percentage only when `enforcing_failure_percentage`
//! is set above 0; consecutive 5xx defaults to enforced and consecutive
//! gateway failure to not, as in Envoy (gRPC ignores both). Every percentage
//! above 100 is NACKed. `max_ejection_time` below `base_ejection_time` is
//! allowed: A50 uses the larger of the two
//! ([`OutlierDetection::effective_max_ejection_time`]).

use std::time::Duration;

use envoy_types::pb::envoy::config::cluster::v3 as wire;
use envoy_types::pb::google::protobuf::UInt32Value;

use crate::resource::FieldError;
use crate::resource::common::opt_duration;

/// A validated `OutlierDetection`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutlierDetection {
    /// Time between ejection sweeps (default 10 s).
    pub interval: Duration,
    /// Ejection time, multiplied by the times an endpoint was ejected
    /// (default 30 s).
    pub base_ejection_time: Duration,
    /// Cap on the ejection time (default 300 s).
    pub max_ejection_time: Duration,
    /// Most endpoints ejected at once, in percent (default 10); at least one
    /// may always be ejected.
    pub max_ejection_percent: u32,
    /// Eject after consecutive 5xx (server) errors (Envoy; gRPC ignores it).
    pub consecutive_5xx: Option<ConsecutiveFailures>,
    /// Eject after consecutive gateway errors (502, 503, 504; Envoy only).
    pub consecutive_gateway_failure: Option<ConsecutiveFailures>,
    /// Eject endpoints whose success rate is a statistical outlier.
    pub success_rate: Option<SuccessRateEjection>,
    /// Eject endpoints whose failure percentage passes a threshold.
    pub failure_percentage: Option<FailurePercentageEjection>,
}

/// A consecutive-failure criterion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConsecutiveFailures {
    /// Failures in a row that eject (default 5).
    pub threshold: u32,
    /// Chance of enforcing a detected ejection, in percent (1 to 100).
    pub enforcement_percentage: u32,
}

/// Success-rate ejection (A50 `success_rate_ejection`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SuccessRateEjection {
    /// Ejection below `mean - stdev * stdev_factor / 1000` (default 1900).
    pub stdev_factor: u32,
    /// Chance of enforcing a detected ejection, in percent (1 to 100,
    /// default 100).
    pub enforcement_percentage: u32,
    /// Endpoints with enough volume needed to run at all (default 5).
    pub minimum_hosts: u32,
    /// Requests per interval an endpoint needs to count (default 100).
    pub request_volume: u32,
}

/// Failure-percentage ejection (A50 `failure_percentage_ejection`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FailurePercentageEjection {
    /// Failure percentage at or above which an endpoint is ejected
    /// (0 to 100, default 85).
    pub threshold: u32,
    /// Chance of enforcing a detected ejection, in percent (1 to 100).
    pub enforcement_percentage: u32,
    /// Endpoints needed to run at all (default 5).
    pub minimum_hosts: u32,
    /// Requests per interval an endpoint needs to count (default 50).
    pub request_volume: u32,
}

impl OutlierDetection {
    /// How long an ejection can last: the larger of `max_ejection_time` and
    /// `base_ejection_time` (A50).
    pub fn effective_max_ejection_time(&self) -> Duration {
        self.max_ejection_time.max(self.base_ejection_time)
    }

    /// Validates a wire `OutlierDetection`; paths relative to it.
    pub fn from_wire(o: &wire::OutlierDetection) -> Result<Self, FieldError> {
        let get = |v: &Option<UInt32Value>, default: u32| v.as_ref().map_or(default, |v| v.value);
        // Every percentage, including those of algorithms mesh ignores.
        for (field, v) in [
            ("max_ejection_percent", &o.max_ejection_percent),
            ("enforcing_consecutive_5xx", &o.enforcing_consecutive_5xx),
            ("enforcing_success_rate", &o.enforcing_success_rate),
            (
                "enforcing_consecutive_gateway_failure",
                &o.enforcing_consecutive_gateway_failure,
            ),
            (
                "enforcing_consecutive_local_origin_failure",
                &o.enforcing_consecutive_local_origin_failure,
            ),
            (
                "enforcing_local_origin_success_rate",
                &o.enforcing_local_origin_success_rate,
            ),
            (
                "failure_percentage_threshold",
                &o.failure_percentage_threshold,
            ),
            (
                "enforcing_failure_percentage",
                &o.enforcing_failure_percentage,
            ),
            (
                "enforcing_failure_percentage_local_origin",
                &o.enforcing_failure_percentage_local_origin,
            ),
        ] {
            if let Some(v) = v
                && v.value > 100
            {
                return Err(FieldError::new(
                    field,
                    format!("{} is a percentage above 100", v.value),
                ));
            }
        }
        let duration = |d, field, default| opt_duration(d, field).map(|d| d.unwrap_or(default));
        let consecutive = |threshold: &Option<UInt32Value>, enforcing, default_enforcing| {
            let enforcement_percentage = get(enforcing, default_enforcing);
            (enforcement_percentage > 0).then(|| ConsecutiveFailures {
                threshold: get(threshold, 5),
                enforcement_percentage,
            })
        };
        let sr_enforcement = get(&o.enforcing_success_rate, 100);
        let fp_enforcement = get(&o.enforcing_failure_percentage, 0);
        Ok(OutlierDetection {
            interval: duration(o.interval.as_ref(), "interval", Duration::from_secs(10))?,
            base_ejection_time: duration(
                o.base_ejection_time.as_ref(),
                "base_ejection_time",
                Duration::from_secs(30),
            )?,
            max_ejection_time: duration(
                o.max_ejection_time.as_ref(),
                "max_ejection_time",
                Duration::from_secs(300),
            )?,
            max_ejection_percent: get(&o.max_ejection_percent, 10),
            consecutive_5xx: consecutive(&o.consecutive_5xx, &o.enforcing_consecutive_5xx, 100),
            consecutive_gateway_failure: consecutive(
                &o.consecutive_gateway_failure,
                &o.enforcing_consecutive_gateway_failure,
                0,
            ),
            success_rate: (sr_enforcement > 0).then(|| SuccessRateEjection {
                stdev_factor: get(&o.success_rate_stdev_factor, 1900),
                enforcement_percentage: sr_enforcement,
                minimum_hosts: get(&o.success_rate_minimum_hosts, 5),
                request_volume: get(&o.success_rate_request_volume, 100),
            }),
            failure_percentage: (fp_enforcement > 0).then(|| FailurePercentageEjection {
                threshold: get(&o.failure_percentage_threshold, 85),
                enforcement_percentage: fp_enforcement,
                minimum_hosts: get(&o.failure_percentage_minimum_hosts, 5),
                request_volume: get(&o.failure_percentage_request_volume, 50),
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::google::protobuf;

    fn pct(v: u32) -> Option<UInt32Value> {
        Some(UInt32Value { value: v })
    }

    #[test]
    fn defaults_follow_a50_and_envoy() {
        let o = OutlierDetection::from_wire(&Default::default()).unwrap();
        assert_eq!(o.interval, Duration::from_secs(10));
        assert_eq!(o.base_ejection_time, Duration::from_secs(30));
        assert_eq!(o.max_ejection_time, Duration::from_secs(300));
        assert_eq!(o.max_ejection_percent, 10);
        assert_eq!(
            o.success_rate,
            Some(SuccessRateEjection {
                stdev_factor: 1900,
                enforcement_percentage: 100,
                minimum_hosts: 5,
                request_volume: 100
            })
        );
        assert_eq!(o.failure_percentage, None);
        assert_eq!(
            o.consecutive_5xx,
            Some(ConsecutiveFailures {
                threshold: 5,
                enforcement_percentage: 100
            })
        );
        assert_eq!(o.consecutive_gateway_failure, None);
    }

    #[test]
    fn enforcement_zero_disables_and_nonzero_enables() {
        let o = OutlierDetection::from_wire(&wire::OutlierDetection {
            enforcing_success_rate: pct(0),
            enforcing_consecutive_5xx: pct(0),
            enforcing_failure_percentage: pct(50),
            failure_percentage_threshold: pct(60),
            enforcing_consecutive_gateway_failure: pct(100),
            consecutive_gateway_failure: pct(3),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(o.success_rate, None);
        assert_eq!(o.consecutive_5xx, None);
        assert_eq!(
            o.failure_percentage,
            Some(FailurePercentageEjection {
                threshold: 60,
                enforcement_percentage: 50,
                minimum_hosts: 5,
                request_volume: 50
            })
        );
        assert_eq!(o.consecutive_gateway_failure.unwrap().threshold, 3);
    }

    #[test]
    fn percentages_above_100_are_rejected() {
        type Edit = fn(&mut wire::OutlierDetection);
        let cases: [(&str, Edit); 9] = [
            ("max_ejection_percent", |o| {
                o.max_ejection_percent = pct(101)
            }),
            ("enforcing_consecutive_5xx", |o| {
                o.enforcing_consecutive_5xx = pct(101)
            }),
            ("enforcing_success_rate", |o| {
                o.enforcing_success_rate = pct(101)
            }),
            ("enforcing_consecutive_gateway_failure", |o| {
                o.enforcing_consecutive_gateway_failure = pct(101)
            }),
            ("enforcing_consecutive_local_origin_failure", |o| {
                o.enforcing_consecutive_local_origin_failure = pct(101)
            }),
            ("enforcing_local_origin_success_rate", |o| {
                o.enforcing_local_origin_success_rate = pct(101)
            }),
            ("failure_percentage_threshold", |o| {
                o.failure_percentage_threshold = pct(101)
            }),
            ("enforcing_failure_percentage", |o| {
                o.enforcing_failure_percentage = pct(101)
            }),
            ("enforcing_failure_percentage_local_origin", |o| {
                o.enforcing_failure_percentage_local_origin = pct(101)
            }),
        ];
        for (field, edit) in cases {
            let mut w = wire::OutlierDetection::default();
            edit(&mut w);
            assert_eq!(OutlierDetection::from_wire(&w).unwrap_err().field, field);
        }
        // 100 itself is fine.
        OutlierDetection::from_wire(&wire::OutlierDetection {
            max_ejection_percent: pct(100),
            enforcing_failure_percentage: pct(100),
            failure_percentage_threshold: pct(100),
            ..Default::default()
        })
        .unwrap();
    }

    #[test]
    fn durations_are_validated() {
        let neg = Some(protobuf::Duration {
            seconds: -1,
            nanos: 0,
        });
        for field in ["interval", "base_ejection_time", "max_ejection_time"] {
            let mut w = wire::OutlierDetection::default();
            match field {
                "interval" => w.interval = neg,
                "base_ejection_time" => w.base_ejection_time = neg,
                _ => w.max_ejection_time = neg,
            }
            assert_eq!(OutlierDetection::from_wire(&w).unwrap_err().field, field);
        }
    }

    #[test]
    fn max_ejection_time_below_base_uses_base() {
        let o = OutlierDetection::from_wire(&wire::OutlierDetection {
            base_ejection_time: Some(protobuf::Duration {
                seconds: 600,
                nanos: 0,
            }),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(o.effective_max_ejection_time(), Duration::from_secs(600));
    }
}
