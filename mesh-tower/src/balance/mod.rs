//! Endpoint picking, gRPC style: a picker over an arc-swapped snapshot of
//! the cluster's endpoints, consulted once per attempt (not tower's
//! readiness-driven `Balance`, see ../shared/PERF.md).
//!
//! Policies ([`LbPolicy`]): round robin (the default; weighted by endpoint
//! weight through a precomputed schedule, starting at a random offset),
//! least request (P2C over `choice_count` random choices; the load signal
//! is a peak-EWMA latency × (in-flight + 1) by default, see
//! [`crate::endpoint::LoadSignal`] for why), ring hash (A42), random and
//! pick-first. Priorities and locality weights follow A27/A56: see
//! [`pick`](self) for the failover rules.
//!
//! A pick is one arc-swap load, a few atomics and no allocation or lock.
//! Randomness comes from a lock-free SplitMix64 seeded per balancer
//! ([`Balancer::with_seed`], [`Balancer::with_rng`]).
//!
//! Not here: choosing the cluster (route), counting requests per cluster
//! (breaker), ejecting endpoints (outlier: the picker only skips ejected
//! ones), connecting (endpoint).

mod pick;
mod ring;
mod rng;
mod service;
mod snapshot;
mod wrr;

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use mesh_core::resource::cluster::LbPolicy;
use mesh_core::resource::endpoint::ClusterLoadAssignment;
use rand::RngCore;
use tokio::time::Instant;

use self::rng::AtomicRng;
pub use self::service::{Balance, BalanceLayer, ResponseFuture};
use self::snapshot::Snapshot;
pub use self::snapshot::{LocalityTargets, PriorityTargets};
use crate::BoxError;
use crate::cluster::EndpointHandle;
use crate::endpoint::LoadSignal;

/// Balancer settings beyond the cluster's policy.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BalanceSettings {
    /// What least request compares.
    pub load_signal: LoadSignal,
    /// How long a priority may go without a READY endpoint (connecting)
    /// before the next priority takes its traffic (gRPC: 10 s).
    pub failover_timeout: Duration,
}

impl Default for BalanceSettings {
    fn default() -> Self {
        BalanceSettings {
            load_signal: LoadSignal::default(),
            failover_timeout: Duration::from_secs(10),
        }
    }
}

/// The balancer of one cluster.
#[derive(Debug)]
pub struct Balancer {
    cluster: Arc<str>,
    snapshot: ArcSwap<Snapshot>,
    rng: AtomicRng,
    settings: BalanceSettings,
    epoch: Instant,
}

impl Default for Balancer {
    fn default() -> Self {
        Balancer::new("")
    }
}

impl Balancer {
    /// An empty balancer for `cluster` (the name appears in errors).
    pub fn new(cluster: impl Into<Arc<str>>) -> Self {
        Balancer {
            cluster: cluster.into(),
            snapshot: ArcSwap::from_pointee(Snapshot::empty(LbPolicy::default())),
            rng: AtomicRng::new(rand::rng().next_u64()),
            settings: BalanceSettings::default(),
            epoch: Instant::now(),
        }
    }

    /// Seeds the pick randomness (deterministic tests).
    pub fn with_seed(self, seed: u64) -> Self {
        self.rng.reseed(seed);
        self
    }

    /// Seeds the pick randomness from `rng` (e.g. a seeded `SmallRng`).
    pub fn with_rng(self, mut rng: impl RngCore) -> Self {
        self.rng.reseed(rng.next_u64());
        self
    }

    /// Replaces the settings.
    pub fn with_settings(mut self, settings: BalanceSettings) -> Self {
        self.settings = settings;
        self
    }

    /// The cluster's name.
    pub fn cluster(&self) -> &str {
        &self.cluster
    }

    /// The current policy.
    pub fn policy(&self) -> LbPolicy {
        self.snapshot.load().policy
    }

    /// Every endpoint of the current snapshot, in priority order (for the
    /// outlier detector).
    pub fn endpoints(&self) -> Arc<[Arc<EndpointHandle>]> {
        Arc::clone(&self.snapshot.load().endpoints)
    }

    /// Publishes a new endpoint set. Round robin, least request and random
    /// keep every endpoint connected; ring hash and pick-first connect on
    /// demand.
    pub fn update(&self, policy: LbPolicy, priorities: Vec<PriorityTargets>) {
        let snap = Snapshot::build(policy, priorities, &self.rng);
        let eager = matches!(
            policy,
            LbPolicy::RoundRobin | LbPolicy::LeastRequest { .. } | LbPolicy::Random
        );
        for e in snap.endpoints.iter() {
            e.connection.set_keep_connected(eager);
        }
        self.snapshot.store(Arc::new(snap));
    }

    /// Publishes one priority with one locality (weights from each
    /// endpoint's config).
    pub fn update_flat(&self, policy: LbPolicy, endpoints: Vec<Arc<EndpointHandle>>) {
        let endpoints = endpoints
            .into_iter()
            .map(|e| {
                let w = e.config.load().weight;
                (e, w)
            })
            .collect();
        self.update(
            policy,
            vec![PriorityTargets {
                localities: vec![LocalityTargets {
                    weight: 1,
                    endpoints,
                }],
            }],
        );
    }

    /// Publishes `assignment`'s usable endpoints, taking each endpoint's
    /// handle from `handle` (which may reuse an existing one).
    pub fn update_from_assignment(
        &self,
        policy: LbPolicy,
        assignment: &ClusterLoadAssignment,
        mut handle: impl FnMut(&mesh_core::resource::endpoint::Endpoint) -> Arc<EndpointHandle>,
    ) {
        let priorities = assignment
            .priorities
            .iter()
            .map(|p| PriorityTargets {
                localities: p
                    .localities
                    .iter()
                    .map(|l| LocalityTargets {
                        weight: l.weight,
                        endpoints: l
                            .endpoints
                            .iter()
                            .filter(|e| e.is_usable())
                            .map(|e| (handle(e), e.weight))
                            .collect(),
                    })
                    .collect(),
            })
            .collect();
        self.update(policy, priorities);
    }

    /// Picks an endpoint for one attempt. `hash` is the request hash for
    /// ring hash (a random one when `None`). Fails UNAVAILABLE, naming the
    /// cluster and why, when no endpoint can serve.
    #[inline]
    pub fn pick(&self, hash: Option<u64>) -> Result<Arc<EndpointHandle>, BoxError> {
        let snap = self.snapshot.load();
        match self.pick_index(&snap, hash) {
            Some(i) => Ok(Arc::clone(&snap.endpoints[i as usize])),
            None => Err(crate::error::unavailable(pick::describe_failure(
                &self.cluster,
                &snap.endpoints,
            ))),
        }
    }

    /// Whether any endpoint is READY and not ejected (priority failover and
    /// callers that want to know if traffic can flow).
    pub fn has_ready(&self) -> bool {
        self.snapshot.load().endpoints.iter().any(|e| {
            e.is_pickable() && e.connection.state() == crate::endpoint::ConnectivityState::Ready
        })
    }

    fn now_ms(&self) -> u64 {
        Instant::now()
            .saturating_duration_since(self.epoch)
            .as_millis() as u64
            + 1
    }
}

#[cfg(test)]
mod tests;
