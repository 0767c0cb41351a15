//! Retry policies (gRPC A44, with Envoy's HTTP conditions kept for
//! non-gRPC callers).
//!
//! Only validation and parsing live here; how many attempts a call gets
//! (`num_retries + 1`, which gRPC caps at 5) and the backoff schedule are the
//! data plane's business.

use std::fmt;
use std::time::Duration;

use envoy_types::pb::envoy::config::route::v3 as wire;

use super::super::FieldError;
use super::super::common::{duration, opt_duration};

/// The `retry_on` conditions, parsed from Envoy's comma-separated string.
///
/// Unknown tokens are ignored, as gRPC ignores them.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct RetryOn(u16);

impl RetryOn {
    /// No condition.
    pub const NONE: RetryOn = RetryOn(0);
    /// gRPC status CANCELLED (`cancelled`).
    pub const CANCELLED: RetryOn = RetryOn(1 << 0);
    /// gRPC status DEADLINE_EXCEEDED (`deadline-exceeded`).
    pub const DEADLINE_EXCEEDED: RetryOn = RetryOn(1 << 1);
    /// gRPC status INTERNAL (`internal`).
    pub const INTERNAL: RetryOn = RetryOn(1 << 2);
    /// gRPC status RESOURCE_EXHAUSTED (`resource-exhausted`).
    pub const RESOURCE_EXHAUSTED: RetryOn = RetryOn(1 << 3);
    /// gRPC status UNAVAILABLE (`unavailable`).
    pub const UNAVAILABLE: RetryOn = RetryOn(1 << 4);
    /// Any HTTP 5xx, resets and connect failures included (`5xx`).
    pub const HTTP_5XX: RetryOn = RetryOn(1 << 5);
    /// HTTP 502, 503 and 504 (`gateway-error`).
    pub const GATEWAY_ERROR: RetryOn = RetryOn(1 << 6);
    /// The upstream reset the stream or the connection (`reset`).
    pub const RESET: RetryOn = RetryOn(1 << 7);
    /// The connection could not be made (`connect-failure`).
    pub const CONNECT_FAILURE: RetryOn = RetryOn(1 << 8);
    /// The server sent REFUSED_STREAM (`refused-stream`).
    pub const REFUSED_STREAM: RetryOn = RetryOn(1 << 9);
    /// An HTTP status in `retriable_status_codes` (`retriable-status-codes`).
    pub const RETRIABLE_STATUS_CODES: RetryOn = RetryOn(1 << 10);
    /// HTTP 409 (`retriable-4xx`).
    pub const RETRIABLE_4XX: RetryOn = RetryOn(1 << 11);

    const TOKENS: [(&'static str, RetryOn); 12] = [
        ("cancelled", Self::CANCELLED),
        ("deadline-exceeded", Self::DEADLINE_EXCEEDED),
        ("internal", Self::INTERNAL),
        ("resource-exhausted", Self::RESOURCE_EXHAUSTED),
        ("unavailable", Self::UNAVAILABLE),
        ("5xx", Self::HTTP_5XX),
        ("gateway-error", Self::GATEWAY_ERROR),
        ("reset", Self::RESET),
        ("connect-failure", Self::CONNECT_FAILURE),
        ("refused-stream", Self::REFUSED_STREAM),
        ("retriable-status-codes", Self::RETRIABLE_STATUS_CODES),
        ("retriable-4xx", Self::RETRIABLE_4XX),
    ];

    /// Parses `retry_on` (`"unavailable,cancelled"`); blanks around tokens
    /// are trimmed and unknown tokens ignored.
    pub fn parse(s: &str) -> RetryOn {
        s.split(',')
            .filter_map(|token| {
                let token = token.trim();
                Self::TOKENS
                    .iter()
                    .find(|(t, _)| *t == token)
                    .map(|(_, bit)| *bit)
            })
            .fold(RetryOn::NONE, RetryOn::union)
    }

    /// Both sets of conditions.
    #[must_use]
    pub const fn union(self, other: RetryOn) -> RetryOn {
        RetryOn(self.0 | other.0)
    }

    /// Whether every condition of `other` is in `self`.
    pub const fn contains(self, other: RetryOn) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether no condition is set (retries are then effectively off).
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Whether a call that failed with this gRPC status should be retried
    /// (only the five codes A44 names count).
    pub const fn retries_code(self, code: tonic::Code) -> bool {
        let bit = match code {
            tonic::Code::Cancelled => Self::CANCELLED,
            tonic::Code::DeadlineExceeded => Self::DEADLINE_EXCEEDED,
            tonic::Code::Internal => Self::INTERNAL,
            tonic::Code::ResourceExhausted => Self::RESOURCE_EXHAUSTED,
            tonic::Code::Unavailable => Self::UNAVAILABLE,
            _ => return false,
        };
        self.contains(bit)
    }
}

impl fmt::Debug for RetryOn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut set = f.debug_set();
        for (token, bit) in Self::TOKENS {
            if self.contains(bit) {
                set.entry(&format_args!("{token}"));
            }
        }
        set.finish()
    }
}

/// Exponential backoff between attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryBackOff {
    /// The first delay (positive; 25 ms when `retry_back_off` is unset).
    pub base_interval: Duration,
    /// The longest delay (at least `base_interval`; 10 × base by default).
    pub max_interval: Duration,
}

impl Default for RetryBackOff {
    fn default() -> Self {
        RetryBackOff {
            base_interval: Duration::from_millis(25),
            max_interval: Duration::from_millis(250),
        }
    }
}

/// A validated route or virtual host retry policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The conditions that trigger a retry.
    pub retry_on: RetryOn,
    /// HTTP statuses retried under `retriable-status-codes`.
    pub retriable_status_codes: Vec<u32>,
    /// Retries after the first attempt, as configured (at least 1; 1 when
    /// unset). The data plane caps attempts (gRPC: 5 in total).
    pub num_retries: u32,
    /// Backoff between attempts.
    pub back_off: RetryBackOff,
    /// Deadline of each attempt; `None` when unset or zero.
    pub per_try_timeout: Option<Duration>,
}

impl RetryPolicy {
    /// Validates a wire retry policy; error paths are relative to it.
    /// Retry host predicates, priorities and rate-limited backoff are
    /// ignored.
    pub fn from_wire(p: &wire::RetryPolicy) -> Result<Self, FieldError> {
        let num_retries = p.num_retries.map_or(1, |n| n.value);
        if num_retries == 0 {
            return Err(FieldError::new("num_retries", "must be at least 1"));
        }
        let back_off = match &p.retry_back_off {
            None => RetryBackOff::default(),
            Some(b) => {
                let field = "retry_back_off.base_interval";
                let base = b.base_interval.as_ref().ok_or_else(|| {
                    FieldError::new(field, "missing (required when retry_back_off is set)")
                })?;
                let base_interval = duration(base, field)?;
                if base_interval.is_zero() {
                    return Err(FieldError::new(field, "must be positive"));
                }
                let field = "retry_back_off.max_interval";
                let max_interval = opt_duration(b.max_interval.as_ref(), field)?
                    .unwrap_or_else(|| base_interval.saturating_mul(10));
                if max_interval < base_interval {
                    return Err(FieldError::new(
                        field,
                        format!("{max_interval:?} is shorter than base_interval {base_interval:?}"),
                    ));
                }
                RetryBackOff {
                    base_interval,
                    max_interval,
                }
            }
        };
        let per_try_timeout =
            opt_duration(p.per_try_timeout.as_ref(), "per_try_timeout")?.filter(|d| !d.is_zero());
        Ok(RetryPolicy {
            retry_on: RetryOn::parse(&p.retry_on),
            retriable_status_codes: p.retriable_status_codes.clone(),
            num_retries,
            back_off,
            per_try_timeout,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::google::protobuf::{Duration as PbDuration, UInt32Value};
    use wire::retry_policy::RetryBackOff as WireBackOff;

    fn ms(ms: i64) -> Option<PbDuration> {
        Some(PbDuration {
            seconds: ms / 1000,
            nanos: ((ms % 1000) * 1_000_000) as i32,
        })
    }

    #[test]
    fn retry_on_parses_grpc_and_http_tokens() {
        let r = RetryOn::parse(
            "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes",
        );
        assert!(r.contains(RetryOn::CONNECT_FAILURE.union(RetryOn::REFUSED_STREAM)));
        assert!(r.contains(RetryOn::RETRIABLE_STATUS_CODES));
        assert!(r.retries_code(tonic::Code::Unavailable));
        assert!(r.retries_code(tonic::Code::Cancelled));
        assert!(!r.retries_code(tonic::Code::Internal));
        assert!(!r.retries_code(tonic::Code::Ok));
        let all = RetryOn::parse(
            "cancelled, deadline-exceeded,internal,resource-exhausted,unavailable,5xx,\
             gateway-error,reset,retriable-4xx,bogus,,envoy-ratelimited",
        );
        for code in [
            tonic::Code::Cancelled,
            tonic::Code::DeadlineExceeded,
            tonic::Code::Internal,
            tonic::Code::ResourceExhausted,
            tonic::Code::Unavailable,
        ] {
            assert!(all.retries_code(code), "{code:?}");
        }
        assert!(all.contains(RetryOn::HTTP_5XX.union(RetryOn::RETRIABLE_4XX)));
        assert!(!all.contains(RetryOn::CONNECT_FAILURE));
        assert!(RetryOn::parse("bogus").is_empty());
        assert_eq!(format!("{:?}", RetryOn::parse("reset,5xx")), "{5xx, reset}");
    }

    #[test]
    fn defaults() {
        let p = RetryPolicy::from_wire(&wire::RetryPolicy::default()).unwrap();
        assert_eq!(p.num_retries, 1);
        assert_eq!(p.back_off, RetryBackOff::default());
        assert_eq!(p.per_try_timeout, None);
        let p = RetryPolicy::from_wire(&wire::RetryPolicy {
            retry_back_off: Some(WireBackOff {
                base_interval: ms(100),
                max_interval: None,
            }),
            per_try_timeout: ms(0),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(p.back_off.max_interval, Duration::from_secs(1), "10 × base");
        assert_eq!(p.per_try_timeout, None, "zero means none");
    }

    #[test]
    fn zero_num_retries_rejected() {
        let e = RetryPolicy::from_wire(&wire::RetryPolicy {
            num_retries: Some(UInt32Value { value: 0 }),
            ..Default::default()
        })
        .unwrap_err();
        assert_eq!(e.field, "num_retries");
    }

    #[test]
    fn back_off_without_base_rejected() {
        let e = RetryPolicy::from_wire(&wire::RetryPolicy {
            retry_back_off: Some(WireBackOff {
                base_interval: None,
                max_interval: ms(10),
            }),
            ..Default::default()
        })
        .unwrap_err();
        assert_eq!(e.field, "retry_back_off.base_interval");
    }

    #[test]
    fn zero_base_interval_rejected() {
        let e = RetryPolicy::from_wire(&wire::RetryPolicy {
            retry_back_off: Some(WireBackOff {
                base_interval: ms(0),
                max_interval: None,
            }),
            ..Default::default()
        })
        .unwrap_err();
        assert_eq!(e.field, "retry_back_off.base_interval");
        assert!(e.reason.contains("positive"));
    }

    #[test]
    fn max_below_base_rejected() {
        let e = RetryPolicy::from_wire(&wire::RetryPolicy {
            retry_back_off: Some(WireBackOff {
                base_interval: ms(100),
                max_interval: ms(50),
            }),
            ..Default::default()
        })
        .unwrap_err();
        assert_eq!(e.field, "retry_back_off.max_interval");
    }

    #[test]
    fn negative_per_try_timeout_rejected() {
        let e = RetryPolicy::from_wire(&wire::RetryPolicy {
            per_try_timeout: Some(PbDuration {
                seconds: -1,
                nanos: 0,
            }),
            ..Default::default()
        })
        .unwrap_err();
        assert_eq!(e.field, "per_try_timeout");
    }
}
