//! DestinationRule: subsets of a host's endpoints and the traffic policy
//! (load balancing, circuit breaking, outlier detection, TLS) clients use
//! towards them.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use super::Meta;
use super::walk::{Findings, Obj};

/// A validated DestinationRule.
#[derive(Debug, Clone, PartialEq)]
pub struct DestinationRule {
    /// Name, namespace, labels, origin.
    pub meta: Meta,
    /// `host`, as written.
    pub host: String,
    /// `trafficPolicy`.
    pub traffic_policy: TrafficPolicy,
    /// `subsets`.
    pub subsets: Vec<Subset>,
}

/// One subset.
#[derive(Debug, Clone, PartialEq)]
pub struct Subset {
    /// `name`.
    pub name: String,
    /// `labels` an endpoint must carry.
    pub labels: BTreeMap<String, String>,
    /// `trafficPolicy`: each part set here replaces the rule's.
    pub traffic_policy: TrafficPolicy,
}

/// `trafficPolicy`; every part optional.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TrafficPolicy {
    /// `loadBalancer`.
    pub load_balancer: Option<LoadBalancer>,
    /// `connectionPool`.
    pub connection_pool: Option<ConnectionPool>,
    /// `outlierDetection`.
    pub outlier_detection: Option<OutlierDetection>,
    /// `tls.mode`.
    pub tls: Option<TlsMode>,
}

impl TrafficPolicy {
    /// This policy with every part `over` sets replacing ours (subset
    /// policies override the rule's, part by part, as in Istio).
    pub fn merged_with(&self, over: &TrafficPolicy) -> TrafficPolicy {
        TrafficPolicy {
            load_balancer: over
                .load_balancer
                .clone()
                .or_else(|| self.load_balancer.clone()),
            connection_pool: over.connection_pool.or(self.connection_pool),
            outlier_detection: over.outlier_detection.or(self.outlier_detection),
            tls: over.tls.or(self.tls),
        }
    }
}

/// `loadBalancer`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadBalancer {
    /// `simple`.
    Simple(SimpleLb),
    /// `consistentHash`.
    ConsistentHash {
        /// What is hashed.
        key: HashKey,
        /// The hash table kind and size.
        ring: RingKind,
    },
}

/// `loadBalancer.simple`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimpleLb {
    /// `ROUND_ROBIN` (and `UNSPECIFIED`).
    RoundRobin,
    /// `LEAST_REQUEST` (and the deprecated `LEAST_CONN`).
    LeastRequest,
    /// `RANDOM`.
    Random,
    /// `PASSTHROUGH`.
    Passthrough,
}

/// What a consistent hash is computed over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashKey {
    /// `httpHeaderName`.
    Header(String),
    /// A key gRPC cannot hash on (`httpCookie`, `useSourceIp`,
    /// `httpQueryParameterName`): the field name.
    Unsupported(&'static str),
}

/// The consistent-hash table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RingKind {
    /// `ringHash.minimumRingSize` (or the deprecated `minimumRingSize`).
    RingHash {
        /// The minimum ring size, if set.
        minimum_ring_size: Option<u64>,
    },
    /// `maglev.tableSize`.
    Maglev {
        /// The table size, if set.
        table_size: Option<u64>,
    },
}

/// `connectionPool.http` limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ConnectionPool {
    /// `http.http2MaxRequests`.
    pub http2_max_requests: Option<u32>,
    /// `http.http1MaxPendingRequests`.
    pub http1_max_pending_requests: Option<u32>,
    /// `http.maxRetries`.
    pub max_retries: Option<u32>,
}

/// `outlierDetection`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OutlierDetection {
    /// `consecutive5xxErrors` (or the deprecated `consecutiveErrors`).
    pub consecutive_5xx: Option<u32>,
    /// `consecutiveGatewayErrors`.
    pub consecutive_gateway: Option<u32>,
    /// `interval`.
    pub interval: Option<Duration>,
    /// `baseEjectionTime`.
    pub base_ejection_time: Option<Duration>,
    /// `maxEjectionPercent`.
    pub max_ejection_percent: Option<u32>,
}

/// `tls.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// `DISABLE`.
    Disable,
    /// `ISTIO_MUTUAL`.
    IstioMutual,
}

pub(super) fn parse(spec: &Value, meta: Meta, f: &mut Findings) -> Option<DestinationRule> {
    let s = Obj::new(
        spec,
        "spec",
        &[
            "host",
            "trafficPolicy",
            "subsets",
            "exportTo",
            "workloadSelector",
        ],
        f,
    )?;
    s.ignore("exportTo", "every object is visible everywhere", f);
    s.ignore("workloadSelector", "rules apply to every client", f);
    let host = s.req_str("host", f);
    let traffic_policy = policy(&s, f);
    let subsets = s
        .list("subsets", f)
        .into_iter()
        .filter_map(|(path, v)| {
            let o = Obj::new(v, &path, &["name", "labels", "trafficPolicy"], f)?;
            Some(Subset {
                name: o.req_str("name", f)?,
                labels: o.str_map("labels", f),
                traffic_policy: policy(&o, f),
            })
        })
        .collect::<Vec<_>>();
    let mut names = std::collections::BTreeSet::new();
    for (i, sub) in subsets.iter().enumerate() {
        if !names.insert(&sub.name) {
            f.error(
                &format!("spec.subsets[{i}].name"),
                format!("duplicate subset \"{}\"", sub.name),
            );
        }
    }
    Some(DestinationRule {
        meta,
        host: host?,
        traffic_policy,
        subsets,
    })
}

fn policy(parent: &Obj<'_>, f: &mut Findings) -> TrafficPolicy {
    let Some(o) = parent.obj(
        "trafficPolicy",
        &[
            "loadBalancer",
            "connectionPool",
            "outlierDetection",
            "tls",
            "portLevelSettings",
            "tunnel",
            "proxyProtocol",
            "retryBudget",
        ],
        f,
    ) else {
        return TrafficPolicy::default();
    };
    o.ignore(
        "portLevelSettings",
        "per-port policies are not supported",
        f,
    );
    o.ignore("tunnel", "not supported by gRPC", f);
    o.ignore("proxyProtocol", "not supported by gRPC", f);
    o.ignore("retryBudget", "not supported by gRPC", f);
    TrafficPolicy {
        load_balancer: load_balancer(&o, f),
        connection_pool: connection_pool(&o, f),
        outlier_detection: outlier(&o, f),
        tls: tls(&o, f),
    }
}

fn load_balancer(o: &Obj<'_>, f: &mut Findings) -> Option<LoadBalancer> {
    let lb = o.obj(
        "loadBalancer",
        &[
            "simple",
            "consistentHash",
            "localityLbSetting",
            "warmupDurationSecs",
            "warmup",
        ],
        f,
    )?;
    lb.ignore(
        "localityLbSetting",
        "locality settings are not supported",
        f,
    );
    lb.ignore(
        "warmupDurationSecs",
        "slow start is not supported by gRPC",
        f,
    );
    lb.ignore("warmup", "slow start is not supported by gRPC", f);
    match (lb.has("simple"), lb.has("consistentHash")) {
        (true, true) => {
            f.error(
                lb.path(),
                "simple and consistentHash are mutually exclusive",
            );
            None
        }
        (true, false) => {
            let s = lb.one_of(
                "simple",
                &[
                    "UNSPECIFIED",
                    "ROUND_ROBIN",
                    "LEAST_REQUEST",
                    "LEAST_CONN",
                    "RANDOM",
                    "PASSTHROUGH",
                ],
                f,
            )?;
            Some(LoadBalancer::Simple(match s.as_str() {
                "LEAST_REQUEST" | "LEAST_CONN" => SimpleLb::LeastRequest,
                "RANDOM" => SimpleLb::Random,
                "PASSTHROUGH" => SimpleLb::Passthrough,
                _ => SimpleLb::RoundRobin,
            }))
        }
        (false, true) => consistent_hash(&lb, f),
        (false, false) => None,
    }
}

fn consistent_hash(lb: &Obj<'_>, f: &mut Findings) -> Option<LoadBalancer> {
    let ch = lb.obj(
        "consistentHash",
        &[
            "httpHeaderName",
            "httpCookie",
            "useSourceIp",
            "httpQueryParameterName",
            "ringHash",
            "maglev",
            "minimumRingSize",
        ],
        f,
    )?;
    let keys: Vec<&str> = [
        "httpHeaderName",
        "httpCookie",
        "useSourceIp",
        "httpQueryParameterName",
    ]
    .into_iter()
    .filter(|k| ch.has(k))
    .collect();
    let key = match keys.as_slice() {
        ["httpHeaderName"] => HashKey::Header(ch.req_str("httpHeaderName", f)?),
        [k] => HashKey::Unsupported(match *k {
            "httpCookie" => "httpCookie",
            "useSourceIp" => "useSourceIp",
            _ => "httpQueryParameterName",
        }),
        _ => {
            f.error(
                ch.path(),
                "exactly one of httpHeaderName, httpCookie, useSourceIp or \
                 httpQueryParameterName must be set",
            );
            return None;
        }
    };
    const MAX_RING: u64 = 8 * 1024 * 1024;
    let ring = if let Some(m) = ch.obj("maglev", &["tableSize"], f) {
        RingKind::Maglev {
            table_size: m.uint("tableSize", u64::from(u32::MAX), f),
        }
    } else if let Some(r) = ch.obj("ringHash", &["minimumRingSize"], f) {
        RingKind::RingHash {
            minimum_ring_size: r.uint("minimumRingSize", MAX_RING, f),
        }
    } else {
        RingKind::RingHash {
            minimum_ring_size: ch.uint("minimumRingSize", MAX_RING, f),
        }
    };
    Some(LoadBalancer::ConsistentHash { key, ring })
}

fn u32_field(o: &Obj<'_>, key: &str, f: &mut Findings) -> Option<u32> {
    o.uint(key, u64::from(u32::MAX), f).map(|v| v as u32)
}

fn connection_pool(o: &Obj<'_>, f: &mut Findings) -> Option<ConnectionPool> {
    let cp = o.obj("connectionPool", &["tcp", "http"], f)?;
    cp.ignore("tcp", "gRPC manages its own connections", f);
    let http = cp.obj(
        "http",
        &[
            "http1MaxPendingRequests",
            "http2MaxRequests",
            "maxRequestsPerConnection",
            "maxRetries",
            "idleTimeout",
            "h2UpgradePolicy",
            "useClientProtocol",
            "maxConcurrentStreams",
        ],
        f,
    )?;
    for key in [
        "maxRequestsPerConnection",
        "idleTimeout",
        "h2UpgradePolicy",
        "useClientProtocol",
        "maxConcurrentStreams",
    ] {
        http.ignore(key, "not supported by gRPC", f);
    }
    Some(ConnectionPool {
        http2_max_requests: u32_field(&http, "http2MaxRequests", f),
        http1_max_pending_requests: u32_field(&http, "http1MaxPendingRequests", f),
        max_retries: u32_field(&http, "maxRetries", f),
    })
}

fn outlier(o: &Obj<'_>, f: &mut Findings) -> Option<OutlierDetection> {
    let od = o.obj(
        "outlierDetection",
        &[
            "consecutiveErrors",
            "consecutive5xxErrors",
            "consecutiveGatewayErrors",
            "consecutiveLocalOriginFailures",
            "splitExternalLocalOriginErrors",
            "interval",
            "baseEjectionTime",
            "maxEjectionPercent",
            "minHealthPercent",
        ],
        f,
    )?;
    for key in [
        "consecutiveLocalOriginFailures",
        "splitExternalLocalOriginErrors",
        "minHealthPercent",
    ] {
        od.ignore(key, "not supported by gRPC", f);
    }
    let max_ejection_percent = od.uint("maxEjectionPercent", 100, f).map(|v| v as u32);
    Some(OutlierDetection {
        consecutive_5xx: u32_field(&od, "consecutive5xxErrors", f)
            .or_else(|| u32_field(&od, "consecutiveErrors", f)),
        consecutive_gateway: u32_field(&od, "consecutiveGatewayErrors", f),
        interval: od.duration("interval", f),
        base_ejection_time: od.duration("baseEjectionTime", f),
        max_ejection_percent,
    })
}

fn tls(o: &Obj<'_>, f: &mut Findings) -> Option<TlsMode> {
    let t = o.obj(
        "tls",
        &[
            "mode",
            "clientCertificate",
            "privateKey",
            "caCertificates",
            "caCrl",
            "credentialName",
            "subjectAltNames",
            "sni",
            "insecureSkipVerify",
        ],
        f,
    )?;
    let mode = t.one_of("mode", &["DISABLE", "SIMPLE", "MUTUAL", "ISTIO_MUTUAL"], f)?;
    match mode.as_str() {
        "DISABLE" => Some(TlsMode::Disable),
        "ISTIO_MUTUAL" => {
            for key in [
                "clientCertificate",
                "privateKey",
                "caCertificates",
                "caCrl",
                "credentialName",
                "sni",
                "insecureSkipVerify",
            ] {
                t.ignore(key, "ISTIO_MUTUAL uses the mesh certificates", f);
            }
            t.ignore(
                "subjectAltNames",
                "SANs come from the endpoints' service accounts",
                f,
            );
            Some(TlsMode::IstioMutual)
        }
        _ => {
            f.error(
                &t.path_of("mode"),
                format!(
                    "{mode} is not supported (proxyless clients take certificates \
                     from the bootstrap's providers: use ISTIO_MUTUAL or DISABLE)"
                ),
            );
            None
        }
    }
}
