//! Deciding, per request, which faults to inject, and counting them
//! against `max_active_faults`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use http::HeaderMap;
use mesh_core::resource::common::Fraction;
use mesh_core::resource::filter::fault::grpc_code_for_http_status;
use mesh_core::resource::filter::{FaultAbortKind, FaultConfig, FaultDelayKind};
use tonic::Code;

use super::{
    ABORT_GRPC_HEADER, ABORT_HEADER, ABORT_PERCENTAGE_HEADER, DELAY_HEADER, DELAY_PERCENTAGE_HEADER,
};
use crate::ratelimit::code_for_http_status;
use crate::route::RandomSource;

/// The faults chosen for one request.
#[derive(Debug)]
pub struct Injection {
    /// Wait this long before forwarding (or aborting).
    pub delay: Option<Duration>,
    /// Then fail with this code instead of forwarding.
    pub abort: Option<Code>,
    /// Holds one slot of the process-wide active fault count.
    pub guard: FaultGuard,
}

/// One active fault; dropping it releases its slot.
#[derive(Debug)]
pub struct FaultGuard {
    active: &'static AtomicU64,
}

impl Drop for FaultGuard {
    fn drop(&mut self) {
        self.active.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Takes a slot unless `max` are taken.
fn acquire(active: &'static AtomicU64, max: Option<u32>) -> Option<FaultGuard> {
    let max = max.map_or(u64::MAX, u64::from);
    active
        .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |n| {
            (n < max).then_some(n + 1)
        })
        .ok()
        .map(|_| FaultGuard { active })
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name)?.to_str().ok().map(str::trim)
}

/// The configured fraction, capped by a percentage header when present.
fn capped(configured: Fraction, headers: &HeaderMap, name: &str) -> Fraction {
    match header(headers, name).and_then(|v| v.parse::<u32>().ok()) {
        Some(percent) => configured.min(Fraction::from_ratio(percent, 100)),
        None => configured,
    }
}

/// Which faults `config` injects into a request with `headers`, counted
/// against `active` (the process-wide [`ACTIVE_FAULTS`](super::ACTIVE_FAULTS)
/// outside tests); `grpc` says whether the request is gRPC (plain HTTP
/// aborts keep their HTTP status where a code maps to it). `None`: forward
/// the request untouched.
pub fn decide(
    config: &FaultConfig,
    headers: &HeaderMap,
    grpc: bool,
    rng: &RandomSource,
    active: &'static AtomicU64,
) -> Option<Injection> {
    if !config.headers.iter().all(|m| m.matches(headers)) {
        return None;
    }
    // Abort first, then delay: gRPC rolls the dice in this order.
    let abort = config.abort.as_ref().and_then(|a| {
        let (code, fraction) = match a.kind {
            FaultAbortKind::Http { status, grpc_code } => (
                if grpc {
                    grpc_code
                } else {
                    code_for_http_status(status).unwrap_or(grpc_code)
                },
                a.percentage,
            ),
            FaultAbortKind::Grpc(code) => (code, a.percentage),
            FaultAbortKind::Header => (
                header_abort(headers, grpc)?,
                capped(a.percentage, headers, ABORT_PERCENTAGE_HEADER),
            ),
        };
        (code != Code::Ok && rng.hit(fraction)).then_some(code)
    });
    let delay = config.delay.as_ref().and_then(|d| {
        let (delay, fraction) = match d.kind {
            FaultDelayKind::Fixed(delay) => (delay, d.percentage),
            FaultDelayKind::Header => (
                Duration::from_millis(header(headers, DELAY_HEADER)?.parse().ok()?),
                capped(d.percentage, headers, DELAY_PERCENTAGE_HEADER),
            ),
        };
        (!delay.is_zero() && rng.hit(fraction)).then_some(delay)
    });
    if abort.is_none() && delay.is_none() {
        return None;
    }
    let guard = acquire(active, config.max_active_faults)?;
    Some(Injection {
        delay,
        abort,
        guard,
    })
}

/// The code a `header_abort` fault fails with: the gRPC header wins over
/// the HTTP one.
fn header_abort(headers: &HeaderMap, grpc: bool) -> Option<Code> {
    if let Some(code) = header(headers, ABORT_GRPC_HEADER).and_then(|v| v.parse::<i32>().ok()) {
        return Some(Code::from_i32(code));
    }
    let status: u16 = header(headers, ABORT_HEADER)?.parse().ok()?;
    if !(200..600).contains(&status) {
        return None;
    }
    Some(if grpc {
        grpc_code_for_http_status(status)
    } else {
        code_for_http_status(status).unwrap_or_else(|| grpc_code_for_http_status(status))
    })
}
