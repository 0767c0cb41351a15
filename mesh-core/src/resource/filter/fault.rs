//! Fault injection (`envoy.extensions.filters.http.fault.v3.HTTPFault`, A33).
//!
//! Validates delays and aborts and maps HTTP abort statuses to gRPC codes
//! (gRPC's HTTP→gRPC status mapping). `upstream_cluster`,
//! `downstream_nodes`, `response_rate_limit` and the `*_runtime` keys are
//! ignored, as gRPC ignores them. Injecting the faults (and the process-wide
//! `max_active_faults` count) is the data plane's job.

use std::time::Duration;

use envoy_types::pb::envoy::extensions::filters::common::fault::v3 as common;
use envoy_types::pb::envoy::extensions::filters::http::fault::v3 as wire;

use crate::resource::common::{Fraction, duration};
use crate::resource::matcher::HeaderMatcher;
use crate::resource::{AtField, FieldError};

/// A validated `HTTPFault`.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultConfig {
    /// Delay to inject, if any.
    pub delay: Option<FaultDelay>,
    /// Abort to inject, if any.
    pub abort: Option<FaultAbort>,
    /// At most this many faults active at once, process-wide (`None` = no
    /// limit).
    pub max_active_faults: Option<u32>,
    /// Faults apply only to requests matching every one of these.
    pub headers: Vec<HeaderMatcher>,
}

/// A delay fault.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultDelay {
    /// How long.
    pub kind: FaultDelayKind,
    /// The share of requests delayed (unset on the wire = never).
    pub percentage: Fraction,
}

/// Where a delay's duration comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultDelayKind {
    /// A fixed duration.
    Fixed(Duration),
    /// The request's `x-envoy-fault-delay-request` header (milliseconds).
    Header,
}

/// An abort fault.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultAbort {
    /// The status to fail with.
    pub kind: FaultAbortKind,
    /// The share of requests aborted (unset on the wire = never).
    pub percentage: Fraction,
}

/// What an abort fails the request with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultAbortKind {
    /// `http_status` (in `200..600`), with the gRPC code it maps to.
    Http {
        /// The HTTP status, for plain HTTP requests.
        status: u16,
        /// The gRPC code for gRPC requests ([`grpc_code_for_http_status`]).
        grpc_code: tonic::Code,
    },
    /// `grpc_status` (values above 16 become `UNKNOWN`).
    Grpc(tonic::Code),
    /// The request's `x-envoy-fault-abort-grpc-request` or
    /// `x-envoy-fault-abort-request` header.
    Header,
}

/// gRPC's mapping of an HTTP status to a gRPC code (doc/http-grpc-status-mapping.md):
/// 400 INTERNAL, 401 UNAUTHENTICATED, 403 PERMISSION_DENIED, 404
/// UNIMPLEMENTED, 429/502/503/504 UNAVAILABLE, anything else UNKNOWN.
pub fn grpc_code_for_http_status(status: u16) -> tonic::Code {
    match status {
        400 => tonic::Code::Internal,
        401 => tonic::Code::Unauthenticated,
        403 => tonic::Code::PermissionDenied,
        404 => tonic::Code::Unimplemented,
        429 | 502 | 503 | 504 => tonic::Code::Unavailable,
        _ => tonic::Code::Unknown,
    }
}

fn percentage(
    p: Option<&envoy_types::pb::envoy::r#type::v3::FractionalPercent>,
    field: &str,
) -> Result<Fraction, FieldError> {
    match p {
        Some(p) => Fraction::from_fractional_percent(p, &format!("{field}.percentage")),
        None => Ok(Fraction::NEVER),
    }
}

impl FaultConfig {
    /// Validates a wire `HTTPFault` found at `field`.
    pub fn from_wire(f: &wire::HttpFault, field: &str) -> Result<Self, FieldError> {
        let delay = f
            .delay
            .as_ref()
            .map(|d| FaultDelay::from_wire(d, "delay"))
            .transpose()
            .at_field(field)?;
        let abort = f
            .abort
            .as_ref()
            .map(|a| FaultAbort::from_wire(a, "abort"))
            .transpose()
            .at_field(field)?;
        let headers = f
            .headers
            .iter()
            .enumerate()
            .map(|(i, h)| HeaderMatcher::from_wire(h, &format!("{field}.headers[{i}]")))
            .collect::<Result<_, _>>()?;
        Ok(FaultConfig {
            delay,
            abort,
            max_active_faults: f.max_active_faults.map(|v| v.value),
            headers,
        })
    }
}

impl FaultDelay {
    fn from_wire(d: &common::FaultDelay, field: &str) -> Result<Self, FieldError> {
        use common::fault_delay::FaultDelaySecifier as S;
        let kind = match &d.fault_delay_secifier {
            Some(S::FixedDelay(fd)) => {
                FaultDelayKind::Fixed(duration(fd, &format!("{field}.fixed_delay"))?)
            }
            Some(S::HeaderDelay(_)) => FaultDelayKind::Header,
            None => {
                return Err(FieldError::new(
                    field,
                    "neither fixed_delay nor header_delay is set",
                ));
            }
        };
        Ok(FaultDelay {
            kind,
            percentage: percentage(d.percentage.as_ref(), field)?,
        })
    }
}

impl FaultAbort {
    fn from_wire(a: &wire::FaultAbort, field: &str) -> Result<Self, FieldError> {
        use wire::fault_abort::ErrorType as E;
        let kind = match &a.error_type {
            Some(E::HttpStatus(s)) => {
                if !(200..600).contains(s) {
                    return Err(FieldError::new(
                        format!("{field}.http_status"),
                        format!("HTTP status {s} is outside [200, 600)"),
                    ));
                }
                let status = *s as u16;
                FaultAbortKind::Http {
                    status,
                    grpc_code: grpc_code_for_http_status(status),
                }
            }
            Some(E::GrpcStatus(c)) => {
                FaultAbortKind::Grpc(tonic::Code::from_i32(i32::try_from(*c).unwrap_or(-1)))
            }
            Some(E::HeaderAbort(_)) => FaultAbortKind::Header,
            None => {
                return Err(FieldError::new(
                    field,
                    "none of http_status, grpc_status or header_abort is set",
                ));
            }
        };
        Ok(FaultAbort {
            kind,
            percentage: percentage(a.percentage.as_ref(), field)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::config::route::v3 as route;
    use envoy_types::pb::envoy::r#type::v3::FractionalPercent;
    use envoy_types::pb::google::protobuf;

    fn abort(e: wire::fault_abort::ErrorType) -> wire::HttpFault {
        wire::HttpFault {
            abort: Some(wire::FaultAbort {
                percentage: Some(FractionalPercent {
                    numerator: 50,
                    denominator: 0,
                }),
                error_type: Some(e),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn http_status_mapping_table() {
        use tonic::Code;
        for (http, code) in [
            (400, Code::Internal),
            (401, Code::Unauthenticated),
            (403, Code::PermissionDenied),
            (404, Code::Unimplemented),
            (429, Code::Unavailable),
            (502, Code::Unavailable),
            (503, Code::Unavailable),
            (504, Code::Unavailable),
            (200, Code::Unknown),
            (500, Code::Unknown),
            (418, Code::Unknown),
        ] {
            assert_eq!(grpc_code_for_http_status(http), code, "HTTP {http}");
            let f = FaultConfig::from_wire(
                &abort(wire::fault_abort::ErrorType::HttpStatus(http.into())),
                "f",
            )
            .unwrap();
            let a = f.abort.unwrap();
            assert_eq!(
                a.kind,
                FaultAbortKind::Http {
                    status: http,
                    grpc_code: code
                }
            );
            assert_eq!(a.percentage.as_per_million(), 500_000);
        }
    }

    #[test]
    fn http_status_outside_range_rejected() {
        for s in [0, 199, 600, 1000] {
            let e = FaultConfig::from_wire(
                &abort(wire::fault_abort::ErrorType::HttpStatus(s)),
                "http_filters[0].typed_config",
            )
            .unwrap_err();
            assert_eq!(e.field, "http_filters[0].typed_config.abort.http_status");
        }
    }

    #[test]
    fn grpc_status_and_header_abort() {
        let f = FaultConfig::from_wire(&abort(wire::fault_abort::ErrorType::GrpcStatus(14)), "f")
            .unwrap();
        assert_eq!(
            f.abort.unwrap().kind,
            FaultAbortKind::Grpc(tonic::Code::Unavailable)
        );
        let f = FaultConfig::from_wire(&abort(wire::fault_abort::ErrorType::GrpcStatus(99)), "f")
            .unwrap();
        assert_eq!(
            f.abort.unwrap().kind,
            FaultAbortKind::Grpc(tonic::Code::Unknown)
        );
        let f = FaultConfig::from_wire(
            &abort(wire::fault_abort::ErrorType::HeaderAbort(Default::default())),
            "f",
        )
        .unwrap();
        assert_eq!(f.abort.unwrap().kind, FaultAbortKind::Header);
    }

    #[test]
    fn abort_without_error_type_rejected() {
        let mut f = abort(wire::fault_abort::ErrorType::GrpcStatus(1));
        f.abort.as_mut().unwrap().error_type = None;
        assert_eq!(
            FaultConfig::from_wire(&f, "c").unwrap_err().field,
            "c.abort"
        );
    }

    #[test]
    fn delays_fixed_header_and_missing() {
        use common::fault_delay::FaultDelaySecifier as S;
        let delay = |s: Option<S>| wire::HttpFault {
            delay: Some(common::FaultDelay {
                percentage: None,
                fault_delay_secifier: s,
            }),
            max_active_faults: Some(protobuf::UInt32Value { value: 3 }),
            ..Default::default()
        };
        let f = FaultConfig::from_wire(
            &delay(Some(S::FixedDelay(protobuf::Duration {
                seconds: 2,
                nanos: 0,
            }))),
            "c",
        )
        .unwrap();
        let d = f.delay.unwrap();
        assert_eq!(d.kind, FaultDelayKind::Fixed(Duration::from_secs(2)));
        assert_eq!(d.percentage, Fraction::NEVER, "unset percentage = never");
        assert_eq!(f.max_active_faults, Some(3));
        let f =
            FaultConfig::from_wire(&delay(Some(S::HeaderDelay(Default::default()))), "c").unwrap();
        assert_eq!(f.delay.unwrap().kind, FaultDelayKind::Header);
        assert_eq!(
            FaultConfig::from_wire(&delay(None), "c").unwrap_err().field,
            "c.delay"
        );
        let neg = delay(Some(S::FixedDelay(protobuf::Duration {
            seconds: -1,
            nanos: 0,
        })));
        assert_eq!(
            FaultConfig::from_wire(&neg, "c").unwrap_err().field,
            "c.delay.fixed_delay"
        );
    }

    #[test]
    fn bad_percentage_and_header_matchers_name_their_field() {
        let mut f = abort(wire::fault_abort::ErrorType::GrpcStatus(1));
        f.abort.as_mut().unwrap().percentage = Some(FractionalPercent {
            numerator: 1,
            denominator: 9,
        });
        assert_eq!(
            FaultConfig::from_wire(&f, "c").unwrap_err().field,
            "c.abort.percentage.denominator"
        );
        let f = wire::HttpFault {
            headers: vec![route::HeaderMatcher::default()],
            ..Default::default()
        };
        assert_eq!(
            FaultConfig::from_wire(&f, "c").unwrap_err().field,
            "c.headers[0].name"
        );
    }
}
