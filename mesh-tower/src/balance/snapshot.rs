//! One endpoint set as the picker sees it: endpoints grouped by priority
//! and locality, with every schedule and ring precomputed, so a pick only
//! reads.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize};

use mesh_core::resource::cluster::LbPolicy;

use super::ring::Ring;
use super::rng::AtomicRng;
use super::wrr;
use crate::cluster::EndpointHandle;

/// The endpoints of one priority, by locality (the balancer's input).
#[derive(Debug, Clone, Default)]
pub struct PriorityTargets {
    /// Its localities.
    pub localities: Vec<LocalityTargets>,
}

/// The endpoints of one locality (the balancer's input).
#[derive(Debug, Clone)]
pub struct LocalityTargets {
    /// The locality's `load_balancing_weight` (≥ 1).
    pub weight: u32,
    /// Its endpoints with their `load_balancing_weight` (≥ 1).
    pub endpoints: Vec<(Arc<EndpointHandle>, u32)>,
}

#[derive(Debug)]
pub(crate) struct Snapshot {
    pub(crate) policy: LbPolicy,
    pub(crate) endpoints: Arc<[Arc<EndpointHandle>]>,
    pub(crate) priorities: Box<[Priority]>,
}

#[derive(Debug)]
pub(crate) struct Priority {
    pub(crate) localities: Box<[Locality]>,
    /// Cumulative locality weights, for a weighted random locality.
    pub(crate) cumulative: Box<[u64]>,
    /// Ring hash: the ring over the priority's endpoints.
    pub(crate) ring: Ring,
    /// Pick first: the priority's endpoints in order (shuffled if asked).
    pub(crate) order: Box<[u32]>,
    /// Failover timer: when the priority was first seen without a READY
    /// endpoint (ms since the balancer's epoch + 1; 0 = not running).
    pub(crate) not_ready_since: AtomicU64,
    /// Sticky TRANSIENT_FAILURE: set when every endpoint failed, cleared
    /// when one is READY again, so reconnect attempts do not pull traffic
    /// back before the priority recovers.
    pub(crate) failed: AtomicBool,
}

#[derive(Debug)]
pub(crate) struct Locality {
    /// Indices into `Snapshot::endpoints`.
    pub(crate) members: Box<[u32]>,
    /// Weighted round-robin schedule: indices into `members`.
    pub(crate) schedule: Box<[u32]>,
    pub(crate) cursor: AtomicUsize,
}

impl Snapshot {
    pub(crate) fn empty(policy: LbPolicy) -> Self {
        Snapshot {
            policy,
            endpoints: Arc::from(Vec::new()),
            priorities: Box::new([]),
        }
    }

    pub(crate) fn build(policy: LbPolicy, input: Vec<PriorityTargets>, rng: &AtomicRng) -> Self {
        let mut endpoints: Vec<Arc<EndpointHandle>> = Vec::new();
        let mut priorities = Vec::with_capacity(input.len());
        for p in input {
            let p_start = endpoints.len() as u32;
            let mut localities = Vec::new();
            let mut cumulative = Vec::new();
            let mut total = 0u64;
            // (address key, ring weight, endpoint index)
            let mut ring_input: Vec<(String, u64, u32)> = Vec::new();
            for l in p.localities {
                if l.endpoints.is_empty() {
                    continue;
                }
                let mut members = Vec::with_capacity(l.endpoints.len());
                let mut weights = Vec::with_capacity(l.endpoints.len());
                let lw = u64::from(l.weight.max(1));
                for (ep, w) in l.endpoints {
                    let idx = endpoints.len() as u32;
                    ring_input.push((ep.address.to_string(), lw * u64::from(w.max(1)), idx));
                    endpoints.push(ep);
                    members.push(idx);
                    weights.push(w.max(1));
                }
                total += lw;
                cumulative.push(total);
                let start = if members.is_empty() {
                    0
                } else {
                    rng.below(members.len())
                };
                localities.push(Locality {
                    schedule: wrr::schedule(&weights),
                    members: members.into_boxed_slice(),
                    // Round robin starts at a random offset.
                    cursor: AtomicUsize::new(start),
                });
            }
            if localities.is_empty() {
                continue;
            }
            let ring = match policy {
                LbPolicy::RingHash {
                    min_ring_size,
                    max_ring_size,
                } => Ring::build(
                    ring_input.iter().map(|(k, w, i)| (k.as_str(), *w, *i)),
                    min_ring_size,
                    max_ring_size,
                ),
                _ => Ring::default(),
            };
            let mut order: Vec<u32> = (p_start..endpoints.len() as u32).collect();
            if let LbPolicy::PickFirst {
                shuffle_address_list: true,
            } = policy
            {
                for i in (1..order.len()).rev() {
                    order.swap(i, rng.below(i + 1));
                }
            }
            priorities.push(Priority {
                localities: localities.into_boxed_slice(),
                cumulative: cumulative.into_boxed_slice(),
                ring,
                order: order.into_boxed_slice(),
                not_ready_since: AtomicU64::new(0),
                failed: AtomicBool::new(false),
            });
        }
        Snapshot {
            policy,
            endpoints: endpoints.into(),
            priorities: priorities.into_boxed_slice(),
        }
    }
}
