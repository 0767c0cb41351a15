//! Picking one endpoint from a snapshot.
//!
//! Priorities are tried in order (A56): the first one with a READY
//! endpoint serves. A priority whose endpoints are all failing (sticky
//! until one is READY again), or that has gone without a READY endpoint
//! for longer than the failover timeout, hands over to the next one. When
//! no priority has a READY endpoint, the pick returns an endpoint that is
//! still connecting (the request waits for it), else fails UNAVAILABLE.
//!
//! Inside a priority: ring hash follows A42's picker; pick-first takes the
//! first READY endpoint in order; the other policies pick a locality at
//! random by locality weight, then an endpoint in it by round robin
//! (weighted schedule), random, or least request (P2C). A choice that is
//! not READY (or is ejected) falls back to a scan from it.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use mesh_core::resource::cluster::LbPolicy;

use super::Balancer;
use super::snapshot::{Locality, Priority, Snapshot};
use crate::cluster::EndpointHandle;
use crate::endpoint::ConnectivityState as S;

/// What a priority, locality or endpoint offers.
pub(crate) enum Outcome {
    /// A READY endpoint (index into the snapshot).
    Ready(u32),
    /// None READY; this one is connecting or idle (requests may wait).
    Pending(u32),
    /// Every endpoint failed or is ejected.
    Failed,
}

#[inline]
fn classify(e: &EndpointHandle) -> S {
    if !e.is_pickable() {
        return S::TransientFailure;
    }
    e.connection.state()
}

impl Balancer {
    /// Picks from the snapshot; `None` when nothing can serve.
    #[inline]
    pub(crate) fn pick_index(&self, snap: &Snapshot, hash: Option<u64>) -> Option<u32> {
        let mut fallback = None;
        for prio in snap.priorities.iter() {
            match self.pick_in_priority(snap, prio, hash) {
                Outcome::Ready(i) => {
                    if prio.not_ready_since.load(Ordering::Relaxed) != 0 {
                        prio.not_ready_since.store(0, Ordering::Relaxed);
                    }
                    if prio.failed.load(Ordering::Relaxed) {
                        prio.failed.store(false, Ordering::Relaxed);
                    }
                    return Some(i);
                }
                Outcome::Pending(i) => {
                    if !prio.failed.load(Ordering::Relaxed) && !self.failover_expired(prio) {
                        return Some(i);
                    }
                    fallback.get_or_insert(i);
                }
                Outcome::Failed => {
                    prio.failed.store(true, Ordering::Relaxed);
                }
            }
        }
        fallback
    }

    /// Starts the priority's failover timer if needed; whether it expired.
    fn failover_expired(&self, prio: &Priority) -> bool {
        let now = self.now_ms();
        let since = prio.not_ready_since.load(Ordering::Relaxed);
        if since == 0 {
            prio.not_ready_since.store(now, Ordering::Relaxed);
            return self.settings.failover_timeout.is_zero();
        }
        u128::from(now - since) >= self.settings.failover_timeout.as_millis()
    }

    fn pick_in_priority(&self, snap: &Snapshot, prio: &Priority, hash: Option<u64>) -> Outcome {
        match snap.policy {
            LbPolicy::RingHash { .. } => self.pick_ring(snap, prio, hash),
            LbPolicy::PickFirst { .. } => {
                let mut pending = None;
                for &i in prio.order.iter() {
                    match classify(&snap.endpoints[i as usize]) {
                        S::Ready => return Outcome::Ready(i),
                        S::Idle | S::Connecting => {
                            pending.get_or_insert(i);
                        }
                        S::TransientFailure => {}
                    }
                }
                pending.map_or(Outcome::Failed, Outcome::Pending)
            }
            _ => {
                let n = prio.localities.len();
                let first = if n == 1 {
                    0
                } else {
                    let total = prio.cumulative[n - 1];
                    let r = self.rng.below(total as usize) as u64;
                    prio.cumulative.partition_point(|&c| c <= r)
                };
                let mut pending = None;
                for k in 0..n {
                    let loc = &prio.localities[(first + k) % n];
                    match self.pick_in_locality(snap, loc) {
                        Outcome::Ready(i) => return Outcome::Ready(i),
                        Outcome::Pending(i) => {
                            pending.get_or_insert(i);
                        }
                        Outcome::Failed => {}
                    }
                }
                pending.map_or(Outcome::Failed, Outcome::Pending)
            }
        }
    }

    #[inline]
    fn pick_in_locality(&self, snap: &Snapshot, loc: &Locality) -> Outcome {
        let n = loc.members.len();
        let start = match snap.policy {
            LbPolicy::Random => self.rng.below(n),
            LbPolicy::LeastRequest { choice_count } => {
                let mut best: Option<(usize, f64)> = None;
                let mut first = None;
                for _ in 0..choice_count.max(1) {
                    let m = self.rng.below(n);
                    first.get_or_insert(m);
                    let e = &snap.endpoints[loc.members[m] as usize];
                    if classify(e) != S::Ready {
                        continue;
                    }
                    let cost = e.connection.load().cost(self.settings.load_signal);
                    if best.is_none_or(|(_, c)| cost < c) {
                        best = Some((m, cost));
                    }
                }
                match best {
                    Some((m, _)) => return Outcome::Ready(loc.members[m]),
                    None => first.unwrap_or(0),
                }
            }
            // Round robin (weighted by the schedule).
            _ => {
                let c = loc.cursor.fetch_add(1, Ordering::Relaxed);
                loc.schedule[c % loc.schedule.len()] as usize
            }
        };
        scan(snap, &loc.members, start)
    }

    /// A42's picker: the first ring entry at or after the hash if READY;
    /// if it is IDLE or CONNECTING, connect and wait for it; if it failed,
    /// the same for the next distinct endpoint; else the first READY entry
    /// walking on, connecting IDLE ones on the way.
    fn pick_ring(&self, snap: &Snapshot, prio: &Priority, hash: Option<u64>) -> Outcome {
        let ring = &prio.ring;
        if ring.len() == 0 {
            return Outcome::Failed;
        }
        let hash = hash.unwrap_or_else(|| self.rng.next_u64());
        let first = ring.position(hash);
        let i0 = ring.at(first);
        if let Some(o) = self.ring_entry(snap, i0) {
            return o;
        }
        let mut pos = first + 1;
        while pos < first + ring.len() && ring.at(pos) == i0 {
            pos += 1;
        }
        if pos < first + ring.len()
            && let Some(o) = self.ring_entry(snap, ring.at(pos))
        {
            return o;
        }
        // Both failed: walk on. Walking a big ring with nothing READY on
        // it is costly, so look at the endpoints first.
        let any_ready = prio
            .order
            .iter()
            .any(|&i| classify(&snap.endpoints[i as usize]) == S::Ready);
        let mut pending = None;
        for p in pos..first + ring.len() {
            let i = ring.at(p);
            let e = &snap.endpoints[i as usize];
            match classify(e) {
                S::Ready => return Outcome::Ready(i),
                S::Idle => {
                    e.connection.connect();
                    pending.get_or_insert(i);
                }
                S::Connecting => {
                    pending.get_or_insert(i);
                }
                S::TransientFailure => {}
            }
            if !any_ready && pending.is_some() {
                break;
            }
        }
        if !any_ready {
            // Connect every IDLE endpoint, as the walk would have.
            for &i in prio.order.iter() {
                let e = &snap.endpoints[i as usize];
                if classify(e) == S::Idle {
                    e.connection.connect();
                    pending.get_or_insert(i);
                } else if classify(e) == S::Connecting {
                    pending.get_or_insert(i);
                }
            }
        }
        pending.map_or(Outcome::Failed, Outcome::Pending)
    }

    /// One of the first two ring entries: `None` if it failed.
    fn ring_entry(&self, snap: &Snapshot, i: u32) -> Option<Outcome> {
        let e = &snap.endpoints[i as usize];
        match classify(e) {
            S::Ready => Some(Outcome::Ready(i)),
            S::Idle => {
                e.connection.connect();
                Some(Outcome::Pending(i))
            }
            S::Connecting => Some(Outcome::Pending(i)),
            S::TransientFailure => None,
        }
    }
}

/// The first READY member from `start` on; else the first connecting or
/// idle one.
#[inline]
fn scan(snap: &Snapshot, members: &[u32], start: usize) -> Outcome {
    let n = members.len();
    let mut pending = None;
    for k in 0..n {
        let i = members[(start + k) % n];
        match classify(&snap.endpoints[i as usize]) {
            S::Ready => return Outcome::Ready(i),
            S::Idle | S::Connecting => {
                pending.get_or_insert(i);
            }
            S::TransientFailure => {}
        }
    }
    pending.map_or(Outcome::Failed, Outcome::Pending)
}

/// Counts for the error message when nothing can serve.
pub(crate) fn describe_failure(cluster: &str, endpoints: &[Arc<EndpointHandle>]) -> String {
    if endpoints.is_empty() {
        return format!("cluster {cluster} has no endpoints");
    }
    let ejected = endpoints.iter().filter(|e| !e.is_pickable()).count();
    let failing = endpoints
        .iter()
        .filter(|e| e.is_pickable() && e.connection.state() == S::TransientFailure)
        .count();
    let last = endpoints
        .iter()
        .find_map(|e| e.connection.last_error().map(|err| (e.address, err)));
    let mut msg = format!(
        "no ready endpoint in cluster {cluster}: {} endpoints, {failing} in TRANSIENT_FAILURE, {ejected} ejected",
        endpoints.len()
    );
    if let Some((addr, err)) = last {
        msg.push_str(&format!("; last error from {addr}: {err}"));
    }
    msg
}
