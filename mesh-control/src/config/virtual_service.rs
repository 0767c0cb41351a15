//! VirtualService: the HTTP routing rules of a set of hosts.
//!
//! Supported: `hosts`, and per `http` rule `match` (uri, headers, method),
//! `route` destinations (host, subset, port, weight), `timeout`, `retries`
//! and `fault`. Fields gRPC cannot honour (`rewrite`, `mirror`, ...) are
//! recognized and reported as ignored.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use super::Meta;
use super::walk::{Findings, Obj};

/// A validated VirtualService.
#[derive(Debug, Clone, PartialEq)]
pub struct VirtualService {
    /// Name, namespace, labels, origin.
    pub meta: Meta,
    /// `hosts`, as written (short names are expanded at translation).
    pub hosts: Vec<String>,
    /// The `http` rules in order.
    pub http: Vec<HttpRoute>,
}

/// One `http` rule.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpRoute {
    /// `name`.
    pub name: Option<String>,
    /// `match`: any of them selects the rule; empty matches everything.
    pub matches: Vec<HttpMatch>,
    /// `route`: where matching requests go.
    pub route: Vec<RouteDestination>,
    /// `timeout`.
    pub timeout: Option<Duration>,
    /// `retries`.
    pub retries: Option<Retries>,
    /// `fault`.
    pub fault: Option<Fault>,
}

/// One `match` entry: every condition must hold.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HttpMatch {
    /// `name`.
    pub name: Option<String>,
    /// `uri`.
    pub uri: Option<StringMatch>,
    /// `headers` by lower-case name.
    pub headers: BTreeMap<String, StringMatch>,
    /// `method`.
    pub method: Option<StringMatch>,
}

/// Istio's StringMatch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StringMatch {
    /// `exact`.
    Exact(String),
    /// `prefix`.
    Prefix(String),
    /// `regex` (RE2 syntax).
    Regex(String),
}

/// One weighted destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteDestination {
    /// `destination.host`, as written.
    pub host: String,
    /// `destination.subset`.
    pub subset: Option<String>,
    /// `destination.port.number`.
    pub port: Option<u16>,
    /// `weight` (0..=100); 100 when the only destination leaves it unset.
    pub weight: u32,
}

/// `retries`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retries {
    /// `attempts` (0 disables retries).
    pub attempts: u32,
    /// `perTryTimeout`.
    pub per_try_timeout: Option<Duration>,
    /// `retryOn`, as written.
    pub retry_on: Option<String>,
}

/// `fault`.
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    /// `delay`.
    pub delay: Option<FaultDelay>,
    /// `abort`.
    pub abort: Option<FaultAbort>,
}

/// `fault.delay`.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultDelay {
    /// `fixedDelay`.
    pub fixed_delay: Duration,
    /// `percentage.value` (0..=100); 100 when unset.
    pub percent: f64,
}

/// `fault.abort`.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultAbort {
    /// The status to fail with.
    pub status: AbortStatus,
    /// `percentage.value` (0..=100); 100 when unset.
    pub percent: f64,
}

/// What an injected abort returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AbortStatus {
    /// `httpStatus` (200..=599).
    Http(u32),
    /// `grpcStatus`, as a gRPC code number.
    Grpc(u32),
}

const GRPC_CODES: &[&str] = &[
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

pub(super) fn parse(spec: &Value, meta: Meta, f: &mut Findings) -> Option<VirtualService> {
    let s = Obj::new(
        spec,
        "spec",
        &["hosts", "gateways", "http", "tls", "tcp", "exportTo"],
        f,
    )?;
    s.ignore("gateways", "gateways do not apply to proxyless clients", f);
    s.ignore("exportTo", "every object is visible everywhere", f);
    s.ignore("tls", "only HTTP routes are translated", f);
    s.ignore("tcp", "only HTTP routes are translated", f);
    let hosts = s.str_list("hosts", f);
    if hosts.is_empty() && !s.has("hosts") {
        f.error("spec.hosts", "is required");
    }
    let http = s
        .list("http", f)
        .into_iter()
        .filter_map(|(path, v)| parse_http(v, &path, f))
        .collect();
    Some(VirtualService { meta, hosts, http })
}

fn parse_http(v: &Value, path: &str, f: &mut Findings) -> Option<HttpRoute> {
    let o = Obj::new(
        v,
        path,
        &[
            "name",
            "match",
            "route",
            "timeout",
            "retries",
            "fault",
            "redirect",
            "directResponse",
            "delegate",
            "rewrite",
            "mirror",
            "mirrors",
            "mirrorPercentage",
            "mirror_percent",
            "mirrorPercent",
            "corsPolicy",
            "headers",
        ],
        f,
    )?;
    for key in ["redirect", "directResponse", "delegate", "rewrite"] {
        if o.has(key) {
            f.error(
                &o.path_of(key),
                "is not supported by proxyless gRPC (use route)",
            );
        }
    }
    for key in [
        "mirror",
        "mirrors",
        "mirrorPercentage",
        "mirror_percent",
        "mirrorPercent",
        "corsPolicy",
        "headers",
    ] {
        o.ignore(key, "proxyless gRPC does not support it", f);
    }
    let matches = o
        .list("match", f)
        .into_iter()
        .filter_map(|(p, v)| parse_match(v, &p, f))
        .collect();
    let route_path = o.path_of("route");
    let items = o.list("route", f);
    if items.is_empty() {
        f.error(&route_path, "at least one destination is required");
    }
    let single = items.len() == 1;
    let route: Vec<RouteDestination> = items
        .into_iter()
        .filter_map(|(p, v)| parse_destination(v, &p, single, f))
        .collect();
    if !single && !route.is_empty() && route.iter().all(|d| d.weight == 0) {
        f.error(&route_path, "the destination weights sum to 0");
    }
    let retries = o
        .obj(
            "retries",
            &[
                "attempts",
                "perTryTimeout",
                "retryOn",
                "retryRemoteLocalities",
                "backoff",
            ],
            f,
        )
        .map(|r| {
            r.ignore("retryRemoteLocalities", "not supported by gRPC", f);
            r.ignore("backoff", "gRPC uses its own retry backoff", f);
            Retries {
                attempts: r.uint("attempts", u64::from(u32::MAX), f).unwrap_or(0) as u32,
                per_try_timeout: r.duration("perTryTimeout", f),
                retry_on: r.str("retryOn", f).filter(|s| !s.is_empty()),
            }
        });
    let fault = o
        .obj("fault", &["delay", "abort"], f)
        .map(|fo| parse_fault(&fo, f));
    Some(HttpRoute {
        name: o.str("name", f),
        matches,
        route,
        timeout: o.duration("timeout", f),
        retries,
        fault,
    })
}

fn parse_match(v: &Value, path: &str, f: &mut Findings) -> Option<HttpMatch> {
    let o = Obj::new(
        v,
        path,
        &[
            "name",
            "uri",
            "scheme",
            "method",
            "authority",
            "headers",
            "port",
            "sourceLabels",
            "gateways",
            "queryParams",
            "ignoreUriCase",
            "withoutHeaders",
            "sourceNamespace",
            "statPrefix",
        ],
        f,
    )?;
    for key in [
        "scheme",
        "authority",
        "port",
        "sourceLabels",
        "gateways",
        "queryParams",
        "ignoreUriCase",
        "withoutHeaders",
        "sourceNamespace",
    ] {
        if o.has(key) {
            f.error(
                &o.path_of(key),
                "this match condition is not supported by proxyless gRPC \
                 (dropping it would widen the match)",
            );
        }
    }
    o.ignore("statPrefix", "no per-route stats", f);
    let uri = o
        .get("uri")
        .and_then(|v| string_match(v, &o.path_of("uri"), f));
    let method = o
        .get("method")
        .and_then(|v| string_match(v, &o.path_of("method"), f));
    let headers = o
        .entries("headers", f)
        .into_iter()
        .filter_map(|(name, p, v)| Some((name.to_ascii_lowercase(), string_match(v, &p, f)?)))
        .collect();
    Some(HttpMatch {
        name: o.str("name", f),
        uri,
        headers,
        method,
    })
}

fn string_match(v: &Value, path: &str, f: &mut Findings) -> Option<StringMatch> {
    let o = Obj::new(v, path, &["exact", "prefix", "regex"], f)?;
    let set: Vec<&str> = ["exact", "prefix", "regex"]
        .into_iter()
        .filter(|k| o.has(k))
        .collect();
    if set.len() != 1 {
        f.error(path, "exactly one of exact, prefix or regex must be set");
        return None;
    }
    let s = o.str(set[0], f)?;
    Some(match set[0] {
        "exact" => StringMatch::Exact(s),
        "prefix" => StringMatch::Prefix(s),
        _ => {
            // The same engine the data plane compiles it with.
            if let Err(e) = mesh_core::resource::matcher::FullRegex::new(&s) {
                f.error(&o.path_of("regex"), format!("invalid regex: {e}"));
                return None;
            }
            StringMatch::Regex(s)
        }
    })
}

fn parse_destination(
    v: &Value,
    path: &str,
    single: bool,
    f: &mut Findings,
) -> Option<RouteDestination> {
    let o = Obj::new(v, path, &["destination", "weight", "headers"], f)?;
    o.ignore("headers", "header manipulation is not supported by gRPC", f);
    let weight = match o.get("weight") {
        None if single => 100,
        None => 0,
        Some(_) => match o.uint("weight", u64::MAX, f) {
            Some(w) if w <= 100 => w as u32,
            Some(_) => {
                // Replace the generic range error with Istio's wording.
                f.error(&o.path_of("weight"), "must be between 0 and 100");
                return None;
            }
            None => return None,
        },
    };
    let Some(d) = o.obj("destination", &["host", "subset", "port"], f) else {
        if !o.has("destination") {
            f.error(&o.path_of("destination"), "is required");
        }
        return None;
    };
    let host = d.req_str("host", f)?;
    let port = d
        .obj("port", &["number"], f)
        .and_then(|p| p.uint("number", 65535, f))
        .map(|p| p as u16);
    Some(RouteDestination {
        host,
        subset: d.str("subset", f).filter(|s| !s.is_empty()),
        port,
        weight,
    })
}

fn parse_fault(o: &Obj<'_>, f: &mut Findings) -> Fault {
    let delay = o
        .obj(
            "delay",
            &["fixedDelay", "percentage", "percent", "exponentialDelay"],
            f,
        )
        .and_then(|d| {
            if d.has("exponentialDelay") {
                f.error(&d.path_of("exponentialDelay"), "is not supported");
            }
            let percent = percentage(&d, f);
            let Some(fixed_delay) = d.duration("fixedDelay", f) else {
                if !d.has("fixedDelay") {
                    f.error(&d.path_of("fixedDelay"), "is required");
                }
                return None;
            };
            Some(FaultDelay {
                fixed_delay,
                percent,
            })
        });
    let abort = o
        .obj(
            "abort",
            &["httpStatus", "grpcStatus", "http2Error", "percentage"],
            f,
        )
        .and_then(|a| {
            if a.has("http2Error") {
                f.error(&a.path_of("http2Error"), "is not supported by gRPC");
            }
            let percent = percentage(&a, f);
            let status = match (a.has("httpStatus"), a.has("grpcStatus")) {
                (true, false) => match a.uint("httpStatus", 599, f) {
                    Some(s) if s >= 200 => AbortStatus::Http(s as u32),
                    Some(_) => {
                        f.error(&a.path_of("httpStatus"), "must be between 200 and 599");
                        return None;
                    }
                    None => return None,
                },
                (false, true) => AbortStatus::Grpc(grpc_code(&a, f)?),
                _ => {
                    f.error(
                        a.path(),
                        "exactly one of httpStatus or grpcStatus must be set",
                    );
                    return None;
                }
            };
            Some(FaultAbort { status, percent })
        });
    Fault { delay, abort }
}

fn grpc_code(a: &Obj<'_>, f: &mut Findings) -> Option<u32> {
    let s = a.str("grpcStatus", f)?;
    if let Some(i) = GRPC_CODES.iter().position(|c| *c == s) {
        return Some(i as u32);
    }
    match s.parse::<u32>() {
        Ok(n) if n <= 16 => Some(n),
        _ => {
            f.error(
                &a.path_of("grpcStatus"),
                format!("\"{s}\" is not a gRPC status code (e.g. UNAVAILABLE or 14)"),
            );
            None
        }
    }
}

/// `percentage.value`, or the deprecated integer `percent`; 100 when unset.
fn percentage(o: &Obj<'_>, f: &mut Findings) -> f64 {
    let value = if let Some(p) = o.obj("percentage", &["value"], f) {
        p.float("value", f).map(|v| (v, p.path_of("value")))
    } else {
        o.float("percent", f).map(|v| (v, o.path_of("percent")))
    };
    match value {
        Some((v, _)) if (0.0..=100.0).contains(&v) => v,
        Some((_, path)) => {
            f.error(&path, "must be between 0 and 100");
            100.0
        }
        None => 100.0,
    }
}
