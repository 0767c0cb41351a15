//! A cluster's load-balancing policy: from `load_balancing_policy` (gRPC
//! A52) when set, else from the legacy `lb_policy` enum and its
//! `*_lb_config`.
//!
//! A52: the first entry of `policies[]` whose type mesh knows wins; unknown
//! types and custom `TypedStruct` policies are skipped, `wrr_locality` is
//! unwrapped to its `endpoint_picking_policy` (recursively, at most 16
//! deep), and a list with nothing mesh knows is NACKed. A known policy with
//! an invalid config is NACKed, not skipped.

use envoy_types::pb::envoy::config::cluster::v3 as wire;
use envoy_types::pb::envoy::extensions::load_balancing_policies as ext;
use envoy_types::pb::google::protobuf::{Any, UInt32Value, UInt64Value};
use prost::Message;

use crate::resource::FieldError;

/// How a cluster picks an endpoint inside a locality.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum LbPolicy {
    /// Round robin (the default).
    #[default]
    RoundRobin,
    /// Power of `choice_count` choices, least outstanding requests (A48).
    LeastRequest {
        /// Endpoints sampled per pick: 2 to 10 (larger values are capped).
        choice_count: u32,
    },
    /// Consistent hashing on a ring (A42), keyed by the route's hash policy.
    RingHash {
        /// Smallest ring size (1 to 8M, default 1024).
        min_ring_size: u64,
        /// Largest ring size (min to 8M, default 8M).
        max_ring_size: u64,
    },
    /// A uniformly random endpoint (Envoy's RANDOM; gRPC lacks it).
    Random,
    /// The first endpoint that connects.
    PickFirst {
        /// Shuffle the endpoint list before connecting.
        shuffle_address_list: bool,
    },
}

impl LbPolicy {
    /// `choice_count` when unset.
    pub const DEFAULT_CHOICE_COUNT: u32 = 2;
    /// Larger `choice_count`s are capped to this (A48).
    pub const MAX_CHOICE_COUNT: u32 = 10;
    /// `minimum_ring_size` when unset.
    pub const DEFAULT_MIN_RING_SIZE: u64 = 1024;
    /// `maximum_ring_size` when unset, and the largest ring size allowed.
    pub const MAX_RING_SIZE: u64 = 8 * 1024 * 1024;
}

/// Nesting limit for `wrr_locality` inside `wrr_locality` (A52).
const MAX_DEPTH: usize = 16;

const ROUND_ROBIN: &str = "envoy.extensions.load_balancing_policies.round_robin.v3.RoundRobin";
const LEAST_REQUEST: &str =
    "envoy.extensions.load_balancing_policies.least_request.v3.LeastRequest";
const RING_HASH: &str = "envoy.extensions.load_balancing_policies.ring_hash.v3.RingHash";
const RANDOM: &str = "envoy.extensions.load_balancing_policies.random.v3.Random";
const PICK_FIRST: &str = "envoy.extensions.load_balancing_policies.pick_first.v3.PickFirst";
const WRR_LOCALITY: &str = "envoy.extensions.load_balancing_policies.wrr_locality.v3.WrrLocality";
const TYPED_STRUCTS: [&str; 2] = ["xds.type.v3.TypedStruct", "udpa.type.v1.TypedStruct"];

/// The policy of a wire cluster; paths relative to the cluster.
pub(super) fn from_cluster(c: &wire::Cluster) -> Result<LbPolicy, FieldError> {
    if let Some(p) = &c.load_balancing_policy {
        return from_policies(p, 0).map_err(|e| e.at("load_balancing_policy"));
    }
    legacy(c)
}

fn legacy(c: &wire::Cluster) -> Result<LbPolicy, FieldError> {
    use wire::cluster::{LbConfig, LbPolicy as W, ring_hash_lb_config::HashFunction};
    let policy = W::try_from(c.lb_policy)
        .map_err(|_| FieldError::new("lb_policy", format!("unknown lb_policy {}", c.lb_policy)))?;
    Ok(match policy {
        W::RoundRobin => LbPolicy::RoundRobin,
        W::Random => LbPolicy::Random,
        W::LeastRequest => {
            let count = match &c.lb_config {
                Some(LbConfig::LeastRequestLbConfig(l)) => l.choice_count.as_ref(),
                _ => None,
            };
            choice_count(count).map_err(|e| e.at("least_request_lb_config"))?
        }
        W::RingHash => match &c.lb_config {
            Some(LbConfig::RingHashLbConfig(r)) => {
                if r.hash_function != HashFunction::XxHash as i32 {
                    return Err(FieldError::new(
                        "ring_hash_lb_config.hash_function",
                        "only XX_HASH is supported",
                    ));
                }
                ring_hash(r.minimum_ring_size.as_ref(), r.maximum_ring_size.as_ref())
                    .map_err(|e| e.at("ring_hash_lb_config"))?
            }
            _ => ring_hash(None, None)?,
        },
        W::Maglev | W::ClusterProvided => {
            return Err(FieldError::new(
                "lb_policy",
                format!("{} is not supported", policy.as_str_name()),
            ));
        }
        W::LoadBalancingPolicyConfig => {
            return Err(FieldError::new(
                "lb_policy",
                "LOAD_BALANCING_POLICY_CONFIG needs load_balancing_policy",
            ));
        }
    })
}

fn from_policies(p: &wire::LoadBalancingPolicy, depth: usize) -> Result<LbPolicy, FieldError> {
    if depth > MAX_DEPTH {
        return Err(FieldError::new(
            "policies",
            format!("wrr_locality nested more than {MAX_DEPTH} deep"),
        ));
    }
    for (i, policy) in p.policies.iter().enumerate() {
        let any = policy
            .typed_extension_config
            .as_ref()
            .and_then(|t| t.typed_config.as_ref())
            .ok_or_else(|| {
                FieldError::new(
                    format!("policies[{i}].typed_extension_config.typed_config"),
                    "missing",
                )
            })?;
        let converted = convert(any, depth).map_err(|e| {
            e.at(format_args!(
                "policies[{i}].typed_extension_config.typed_config"
            ))
        })?;
        if let Some(policy) = converted {
            return Ok(policy);
        }
    }
    Err(FieldError::new(
        "policies",
        "no supported policy in the list (mesh knows round_robin, least_request, ring_hash, \
         random, pick_first and wrr_locality)",
    ))
}

/// One policy's typed config; `None` for a type to skip.
fn convert(any: &Any, depth: usize) -> Result<Option<LbPolicy>, FieldError> {
    let name = any.type_url.rsplit('/').next().unwrap_or_default();
    Ok(Some(match name {
        ROUND_ROBIN => {
            decode::<ext::round_robin::v3::RoundRobin>(any, name)?;
            LbPolicy::RoundRobin
        }
        RANDOM => {
            decode::<ext::random::v3::Random>(any, name)?;
            LbPolicy::Random
        }
        LEAST_REQUEST => {
            let l = decode::<ext::least_request::v3::LeastRequest>(any, name)?;
            choice_count(l.choice_count.as_ref())?
        }
        RING_HASH => {
            use ext::ring_hash::v3::ring_hash::HashFunction;
            let r = decode::<ext::ring_hash::v3::RingHash>(any, name)?;
            if r.hash_function != HashFunction::DefaultHash as i32
                && r.hash_function != HashFunction::XxHash as i32
            {
                return Err(FieldError::new(
                    "hash_function",
                    "only XX_HASH is supported",
                ));
            }
            ring_hash(r.minimum_ring_size.as_ref(), r.maximum_ring_size.as_ref())?
        }
        PICK_FIRST => {
            let p = decode::<ext::pick_first::v3::PickFirst>(any, name)?;
            LbPolicy::PickFirst {
                shuffle_address_list: p.shuffle_address_list,
            }
        }
        WRR_LOCALITY => {
            let w = decode::<ext::wrr_locality::v3::WrrLocality>(any, name)?;
            let inner = w
                .endpoint_picking_policy
                .as_ref()
                .ok_or_else(|| FieldError::new("endpoint_picking_policy", "missing"))?;
            from_policies(inner, depth + 1).map_err(|e| e.at("endpoint_picking_policy"))?
        }
        // Custom policies: mesh has no registry of them, so skip to the next.
        n if TYPED_STRUCTS.contains(&n) => return Ok(None),
        _ => return Ok(None),
    }))
}

fn decode<M: Message + Default>(any: &Any, name: &str) -> Result<M, FieldError> {
    M::decode(any.value.as_slice())
        .map_err(|e| FieldError::new("", format!("cannot decode {name}: {e}")))
}

fn choice_count(v: Option<&UInt32Value>) -> Result<LbPolicy, FieldError> {
    let n = v.map_or(LbPolicy::DEFAULT_CHOICE_COUNT, |v| v.value);
    if n < 2 {
        return Err(FieldError::new(
            "choice_count",
            format!("must be at least 2, got {n}"),
        ));
    }
    Ok(LbPolicy::LeastRequest {
        choice_count: n.min(LbPolicy::MAX_CHOICE_COUNT),
    })
}

fn ring_hash(min: Option<&UInt64Value>, max: Option<&UInt64Value>) -> Result<LbPolicy, FieldError> {
    let min_ring_size = min.map_or(LbPolicy::DEFAULT_MIN_RING_SIZE, |v| v.value);
    let max_ring_size = max.map_or(LbPolicy::MAX_RING_SIZE, |v| v.value);
    for (field, v) in [
        ("minimum_ring_size", min_ring_size),
        ("maximum_ring_size", max_ring_size),
    ] {
        if v == 0 || v > LbPolicy::MAX_RING_SIZE {
            return Err(FieldError::new(
                field,
                format!("{v} is outside 1..=8388608"),
            ));
        }
    }
    if min_ring_size > max_ring_size {
        return Err(FieldError::new(
            "minimum_ring_size",
            format!("{min_ring_size} is above maximum_ring_size {max_ring_size}"),
        ));
    }
    Ok(LbPolicy::RingHash {
        min_ring_size,
        max_ring_size,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::to_any;
    use envoy_types::pb::envoy::config::core::v3 as core;
    use envoy_types::pb::google::protobuf;

    fn err(c: wire::Cluster) -> FieldError {
        from_cluster(&c).unwrap_err()
    }

    fn any<M: Message>(name: &str, msg: &M) -> Any {
        to_any(&format!("type.googleapis.com/{name}"), msg)
    }

    #[test]
    fn legacy_lb_policies() {
        use wire::cluster::{LbConfig, LbPolicy as W, LeastRequestLbConfig, RingHashLbConfig};
        let with = |p: W, cfg: Option<LbConfig>| wire::Cluster {
            lb_policy: p as i32,
            lb_config: cfg,
            ..Default::default()
        };
        let policy = |w: wire::Cluster| from_cluster(&w).unwrap();
        assert_eq!(policy(with(W::Random, None)), LbPolicy::Random);
        assert_eq!(
            policy(with(W::LeastRequest, None)),
            LbPolicy::LeastRequest { choice_count: 2 }
        );
        let lr = |n| {
            Some(LbConfig::LeastRequestLbConfig(LeastRequestLbConfig {
                choice_count: Some(UInt32Value { value: n }),
                ..Default::default()
            }))
        };
        assert_eq!(
            policy(with(W::LeastRequest, lr(50))),
            LbPolicy::LeastRequest { choice_count: 10 }
        );
        assert_eq!(
            err(with(W::LeastRequest, lr(1))).field,
            "least_request_lb_config.choice_count"
        );
        let rh = |min: Option<u64>, max: Option<u64>, hash: i32| {
            Some(LbConfig::RingHashLbConfig(RingHashLbConfig {
                minimum_ring_size: min.map(|value| UInt64Value { value }),
                maximum_ring_size: max.map(|value| UInt64Value { value }),
                hash_function: hash,
            }))
        };
        assert_eq!(
            policy(with(W::RingHash, rh(Some(2048), None, 0))),
            LbPolicy::RingHash {
                min_ring_size: 2048,
                max_ring_size: 8_388_608
            }
        );
        assert_eq!(
            policy(with(W::RingHash, None)),
            LbPolicy::RingHash {
                min_ring_size: 1024,
                max_ring_size: 8_388_608
            }
        );
        assert_eq!(
            err(with(W::RingHash, rh(None, None, 1))).field,
            "ring_hash_lb_config.hash_function"
        );
        assert_eq!(
            err(with(W::RingHash, rh(None, Some(8_388_609), 0))).field,
            "ring_hash_lb_config.maximum_ring_size"
        );
        let e = err(with(W::RingHash, rh(Some(4096), Some(2048), 0)));
        assert_eq!(e.field, "ring_hash_lb_config.minimum_ring_size");
        assert!(e.reason.contains("above maximum_ring_size"), "{e}");
        for (p, name) in [
            (W::Maglev, "MAGLEV"),
            (W::ClusterProvided, "CLUSTER_PROVIDED"),
        ] {
            let e = err(with(p, None));
            assert_eq!(e.field, "lb_policy");
            assert!(e.reason.contains(name), "{e}");
        }
        assert_eq!(
            err(with(W::LoadBalancingPolicyConfig, None)).field,
            "lb_policy"
        );
        let w = wire::Cluster {
            lb_policy: 99,
            ..Default::default()
        };
        assert_eq!(err(w).field, "lb_policy");
    }

    fn policies(list: Vec<Any>) -> wire::LoadBalancingPolicy {
        wire::LoadBalancingPolicy {
            policies: list
                .into_iter()
                .map(|a| wire::load_balancing_policy::Policy {
                    typed_extension_config: Some(core::TypedExtensionConfig {
                        name: "policy".into(),
                        typed_config: Some(a),
                    }),
                })
                .collect(),
        }
    }

    fn with_policies(list: Vec<Any>) -> wire::Cluster {
        wire::Cluster {
            // load_balancing_policy wins over lb_policy.
            lb_policy: wire::cluster::LbPolicy::Maglev as i32,
            load_balancing_policy: Some(policies(list)),
            ..Default::default()
        }
    }

    fn wrr(inner: Vec<Any>) -> Any {
        any(
            "envoy.extensions.load_balancing_policies.wrr_locality.v3.WrrLocality",
            &ext::wrr_locality::v3::WrrLocality {
                endpoint_picking_policy: Some(policies(inner)),
            },
        )
    }

    fn unknown() -> Any {
        any(
            "envoy.extensions.load_balancing_policies.client_side_weighted_round_robin.v3.ClientSideWeightedRoundRobin",
            &protobuf::Empty {},
        )
    }

    fn typed_struct() -> Any {
        to_any(
            "type.googleapis.com/xds.type.v3.TypedStruct",
            &protobuf::Empty {},
        )
    }

    fn ring_hash(min: u64) -> Any {
        any(
            "envoy.extensions.load_balancing_policies.ring_hash.v3.RingHash",
            &ext::ring_hash::v3::RingHash {
                minimum_ring_size: Some(UInt64Value { value: min }),
                ..Default::default()
            },
        )
    }

    fn least_request(n: u32) -> Any {
        any(
            "envoy.extensions.load_balancing_policies.least_request.v3.LeastRequest",
            &ext::least_request::v3::LeastRequest {
                choice_count: Some(UInt32Value { value: n }),
                ..Default::default()
            },
        )
    }

    #[test]
    fn a52_first_supported_policy_wins() {
        let c = from_cluster(&with_policies(vec![
            unknown(),
            typed_struct(),
            least_request(3),
            ring_hash(1024),
        ]))
        .unwrap();
        assert_eq!(c, LbPolicy::LeastRequest { choice_count: 3 });
        let pick_first = any(
            "envoy.extensions.load_balancing_policies.pick_first.v3.PickFirst",
            &ext::pick_first::v3::PickFirst {
                shuffle_address_list: true,
            },
        );
        let c = from_cluster(&with_policies(vec![pick_first])).unwrap();
        assert_eq!(
            c,
            LbPolicy::PickFirst {
                shuffle_address_list: true
            }
        );
        let random = any(
            "envoy.extensions.load_balancing_policies.random.v3.Random",
            &ext::random::v3::Random::default(),
        );
        let c = from_cluster(&with_policies(vec![random])).unwrap();
        assert_eq!(c, LbPolicy::Random);
    }

    #[test]
    fn a52_unwraps_nested_wrr_locality() {
        let round_robin = any(
            "envoy.extensions.load_balancing_policies.round_robin.v3.RoundRobin",
            &ext::round_robin::v3::RoundRobin::default(),
        );
        let c = from_cluster(&with_policies(vec![
            unknown(),
            wrr(vec![unknown(), wrr(vec![typed_struct(), ring_hash(4096)])]),
            round_robin,
        ]))
        .unwrap();
        assert_eq!(
            c,
            LbPolicy::RingHash {
                min_ring_size: 4096,
                max_ring_size: 8_388_608
            }
        );
    }

    #[test]
    fn a52_nacks_when_nothing_converts() {
        let e = err(with_policies(vec![unknown(), typed_struct()]));
        assert_eq!(e.field, "load_balancing_policy.policies");
        let e = err(with_policies(vec![wrr(vec![unknown()])]));
        assert_eq!(
            e.field,
            "load_balancing_policy.policies[0].typed_extension_config.typed_config.endpoint_picking_policy.policies"
        );
    }

    #[test]
    fn a52_invalid_known_policy_nacks() {
        let e = err(with_policies(vec![least_request(1), ring_hash(1024)]));
        assert_eq!(
            e.field,
            "load_balancing_policy.policies[0].typed_extension_config.typed_config.choice_count"
        );
        let e = err(with_policies(vec![unknown(), ring_hash(0)]));
        assert_eq!(
            e.field,
            "load_balancing_policy.policies[1].typed_extension_config.typed_config.minimum_ring_size"
        );
        let murmur = any(
            "envoy.extensions.load_balancing_policies.ring_hash.v3.RingHash",
            &ext::ring_hash::v3::RingHash {
                hash_function: ext::ring_hash::v3::ring_hash::HashFunction::MurmurHash2 as i32,
                ..Default::default()
            },
        );
        let e = err(with_policies(vec![murmur]));
        assert_eq!(
            e.field,
            "load_balancing_policy.policies[0].typed_extension_config.typed_config.hash_function"
        );
        let mut garbage = ring_hash(1024);
        garbage.value = vec![0xff, 0xff];
        let e = err(with_policies(vec![garbage]));
        assert_eq!(
            e.field,
            "load_balancing_policy.policies[0].typed_extension_config.typed_config"
        );
        let mut w = with_policies(vec![]);
        w.load_balancing_policy.as_mut().unwrap().policies =
            vec![wire::load_balancing_policy::Policy::default()];
        assert_eq!(
            err(w).field,
            "load_balancing_policy.policies[0].typed_extension_config.typed_config"
        );
    }

    #[test]
    fn a52_nesting_is_bounded() {
        let mut policy = ring_hash(1024);
        for _ in 0..20 {
            policy = wrr(vec![policy]);
        }
        let e = err(with_policies(vec![policy]));
        assert!(e.reason.contains("nested"), "{e}");
    }
}
