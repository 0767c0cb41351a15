//! Local rate limit
//! (`envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit`).
//!
//! One token bucket per filter instance (or per route, for per-route
//! configs), `filter_enabled` / `filter_enforced` fractions and the reply
//! status. Not supported, and ignored: `descriptors` and `rate_limits` (only
//! the default bucket applies), header additions, `stage`,
//! `local_rate_limit_per_downstream_connection`, `local_cluster_rate_limit`
//! and the `x-ratelimit-*` headers. Counting tokens is the data plane's job.

use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::RuntimeFractionalPercent;
use envoy_types::pb::envoy::extensions::filters::http::local_ratelimit::v3 as wire;
use envoy_types::pb::envoy::r#type::v3 as types;

use crate::resource::FieldError;
use crate::resource::common::{Fraction, duration};

/// A validated `LocalRateLimit`.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalRateLimit {
    /// `stat_prefix` (required by Envoy).
    pub stat_prefix: String,
    /// The bucket; `None` only at top level, where per-route configs then
    /// supply the buckets.
    pub token_bucket: Option<TokenBucket>,
    /// The share of requests the limit is checked for (unset = 0%, Envoy's
    /// "for safety" default).
    pub filter_enabled: Fraction,
    /// Of the checked requests, the share actually rejected when limited
    /// (unset = 0%).
    pub filter_enforced: Fraction,
    /// The HTTP status of a limited request (default 429; values below 400
    /// become 429, as Envoy does).
    pub status: u16,
    /// Limited gRPC requests fail `RESOURCE_EXHAUSTED` instead of
    /// `UNAVAILABLE`.
    pub rate_limited_as_resource_exhausted: bool,
}

impl LocalRateLimit {
    /// The gRPC code a limited gRPC request fails with.
    pub fn grpc_code(&self) -> tonic::Code {
        if self.rate_limited_as_resource_exhausted {
            tonic::Code::ResourceExhausted
        } else {
            tonic::Code::Unavailable
        }
    }
}

/// A token bucket: starts full with `max_tokens`, gains `tokens_per_fill`
/// every `fill_interval`, never above `max_tokens`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenBucket {
    /// Capacity and initial content. 0 means every request is limited
    /// (Envoy's current documented meaning).
    pub max_tokens: u32,
    /// Tokens added per interval (default 1, never 0).
    pub tokens_per_fill: u32,
    /// The refill interval (positive).
    pub fill_interval: Duration,
}

impl TokenBucket {
    fn from_wire(b: &types::TokenBucket, field: &str) -> Result<Self, FieldError> {
        let tokens_per_fill = b.tokens_per_fill.map_or(1, |v| v.value);
        if tokens_per_fill == 0 {
            return Err(FieldError::new(
                format!("{field}.tokens_per_fill"),
                "tokens_per_fill must be positive",
            ));
        }
        let fill_interval = match &b.fill_interval {
            Some(d) => duration(d, &format!("{field}.fill_interval"))?,
            None => Duration::ZERO,
        };
        if fill_interval.is_zero() {
            return Err(FieldError::new(
                format!("{field}.fill_interval"),
                "fill_interval must be positive",
            ));
        }
        Ok(TokenBucket {
            max_tokens: b.max_tokens,
            tokens_per_fill,
            fill_interval,
        })
    }
}

fn runtime_fraction(
    p: Option<&RuntimeFractionalPercent>,
    field: &str,
) -> Result<Fraction, FieldError> {
    match p.and_then(|p| p.default_value.as_ref()) {
        Some(v) => Fraction::from_fractional_percent(v, &format!("{field}.default_value")),
        None => Ok(Fraction::NEVER),
    }
}

impl LocalRateLimit {
    /// Validates a wire config found at `field`; a per-route config must
    /// carry a token bucket.
    pub fn from_wire(
        l: &wire::LocalRateLimit,
        field: &str,
        per_route: bool,
    ) -> Result<Self, FieldError> {
        if l.stat_prefix.is_empty() {
            return Err(FieldError::new(
                format!("{field}.stat_prefix"),
                "stat_prefix must not be empty",
            ));
        }
        let token_bucket = l
            .token_bucket
            .as_ref()
            .map(|b| TokenBucket::from_wire(b, &format!("{field}.token_bucket")))
            .transpose()?;
        if per_route && token_bucket.is_none() {
            return Err(FieldError::new(
                format!("{field}.token_bucket"),
                "a per-route local rate limit needs a token_bucket",
            ));
        }
        let status = match l.status.as_ref().map(|s| s.code) {
            Some(code) if (400..600).contains(&code) => code as u16,
            _ => 429,
        };
        Ok(LocalRateLimit {
            stat_prefix: l.stat_prefix.clone(),
            token_bucket,
            filter_enabled: runtime_fraction(
                l.filter_enabled.as_ref(),
                &format!("{field}.filter_enabled"),
            )?,
            filter_enforced: runtime_fraction(
                l.filter_enforced.as_ref(),
                &format!("{field}.filter_enforced"),
            )?,
            status,
            rate_limited_as_resource_exhausted: l.rate_limited_as_resource_exhausted,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::google::protobuf;

    fn full() -> wire::LocalRateLimit {
        let pct = |n| RuntimeFractionalPercent {
            default_value: Some(types::FractionalPercent {
                numerator: n,
                denominator: 0,
            }),
            runtime_key: "k".into(),
        };
        wire::LocalRateLimit {
            stat_prefix: "http_local_rate_limiter".into(),
            token_bucket: Some(types::TokenBucket {
                max_tokens: 10,
                tokens_per_fill: Some(protobuf::UInt32Value { value: 5 }),
                fill_interval: Some(protobuf::Duration {
                    seconds: 1,
                    nanos: 0,
                }),
            }),
            filter_enabled: Some(pct(100)),
            filter_enforced: Some(pct(50)),
            ..Default::default()
        }
    }

    #[test]
    fn full_config() {
        let l = LocalRateLimit::from_wire(&full(), "c", false).unwrap();
        assert_eq!(
            l.token_bucket,
            Some(TokenBucket {
                max_tokens: 10,
                tokens_per_fill: 5,
                fill_interval: Duration::from_secs(1)
            })
        );
        assert_eq!(l.filter_enabled, Fraction::ALWAYS);
        assert_eq!(l.filter_enforced.as_per_million(), 500_000);
        assert_eq!(l.status, 429);
        assert_eq!(l.grpc_code(), tonic::Code::Unavailable);
    }

    #[test]
    fn defaults_disabled_and_status() {
        let mut w = full();
        w.filter_enabled = None;
        w.filter_enforced = None;
        w.status = Some(types::HttpStatus { code: 503 });
        w.rate_limited_as_resource_exhausted = true;
        w.token_bucket.as_mut().unwrap().tokens_per_fill = None;
        let l = LocalRateLimit::from_wire(&w, "c", false).unwrap();
        assert_eq!(l.filter_enabled, Fraction::NEVER, "unset enabled = 0%");
        assert_eq!(l.filter_enforced, Fraction::NEVER);
        assert_eq!(l.status, 503);
        assert_eq!(l.token_bucket.unwrap().tokens_per_fill, 1);
        assert_eq!(l.grpc_code(), tonic::Code::ResourceExhausted);
        w.status = Some(types::HttpStatus { code: 200 });
        assert_eq!(
            LocalRateLimit::from_wire(&w, "c", false).unwrap().status,
            429
        );
    }

    #[test]
    fn bucket_absent_only_at_top_level() {
        let mut w = full();
        w.token_bucket = None;
        assert!(
            LocalRateLimit::from_wire(&w, "c", false)
                .unwrap()
                .token_bucket
                .is_none()
        );
        assert_eq!(
            LocalRateLimit::from_wire(&w, "c", true).unwrap_err().field,
            "c.token_bucket"
        );
    }

    #[test]
    fn fill_interval_must_be_positive() {
        let mut w = full();
        w.token_bucket.as_mut().unwrap().fill_interval = Some(protobuf::Duration::default());
        assert_eq!(
            LocalRateLimit::from_wire(&w, "c", false).unwrap_err().field,
            "c.token_bucket.fill_interval"
        );
        w.token_bucket.as_mut().unwrap().fill_interval = None;
        assert_eq!(
            LocalRateLimit::from_wire(&w, "c", false).unwrap_err().field,
            "c.token_bucket.fill_interval"
        );
    }

    #[test]
    fn tokens_per_fill_zero_rejected() {
        let mut w = full();
        w.token_bucket.as_mut().unwrap().tokens_per_fill = Some(protobuf::UInt32Value { value: 0 });
        assert_eq!(
            LocalRateLimit::from_wire(&w, "c", false).unwrap_err().field,
            "c.token_bucket.tokens_per_fill"
        );
    }

    #[test]
    fn max_tokens_zero_limits_everything_but_is_valid() {
        let mut w = full();
        w.token_bucket.as_mut().unwrap().max_tokens = 0;
        let l = LocalRateLimit::from_wire(&w, "c", false).unwrap();
        assert_eq!(l.token_bucket.unwrap().max_tokens, 0);
    }

    #[test]
    fn empty_stat_prefix_rejected() {
        let mut w = full();
        w.stat_prefix.clear();
        assert_eq!(
            LocalRateLimit::from_wire(&w, "c", false).unwrap_err().field,
            "c.stat_prefix"
        );
    }

    #[test]
    fn bad_fraction_names_field() {
        let mut w = full();
        w.filter_enabled
            .as_mut()
            .unwrap()
            .default_value
            .as_mut()
            .unwrap()
            .denominator = 7;
        assert_eq!(
            LocalRateLimit::from_wire(&w, "c", false).unwrap_err().field,
            "c.filter_enabled.default_value.denominator"
        );
    }
}
