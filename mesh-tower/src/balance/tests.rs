//! Picker behaviour with forced endpoint states and a seeded RNG. Without
//! a tokio runtime endpoints never connect, so states stay as set.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use mesh_core::resource::cluster::LbPolicy;
use mesh_core::resource::endpoint::{Endpoint, HealthStatus};
use rand::SeedableRng;
use rand::rngs::SmallRng;

use super::*;
use crate::endpoint::{ConnectionSettings, ConnectivityState as S};

pub(crate) fn handle(port: u16, weight: u32) -> Arc<EndpointHandle> {
    let ep = Endpoint {
        address: SocketAddr::from(([127, 0, 0, 1], port)),
        additional_addresses: Vec::new(),
        health: HealthStatus::Healthy,
        weight,
        hostname: String::new(),
        metadata: Default::default(),
    };
    Arc::new(EndpointHandle::new(
        ep,
        Arc::new(ConnectionSettings::default()),
    ))
}

fn ready(handles: &[Arc<EndpointHandle>]) {
    for h in handles {
        h.connection.set_state(S::Ready);
    }
}

fn count(b: &Balancer, n: usize, hash: impl Fn(usize) -> Option<u64>) -> HashMap<u16, usize> {
    let mut c = HashMap::new();
    for i in 0..n {
        let e = b.pick(hash(i)).expect("pick");
        *c.entry(e.address.port()).or_default() += 1;
    }
    c
}

fn flat(policy: LbPolicy, handles: &[Arc<EndpointHandle>]) -> Balancer {
    let b = Balancer::new("c").with_rng(SmallRng::seed_from_u64(7));
    b.update_flat(policy, handles.to_vec());
    b
}

fn localities(groups: &[(u32, &[Arc<EndpointHandle>])]) -> PriorityTargets {
    PriorityTargets {
        localities: groups
            .iter()
            .map(|(w, hs)| LocalityTargets {
                weight: *w,
                endpoints: hs.iter().map(|h| (h.clone(), 1)).collect(),
            })
            .collect(),
    }
}

#[test]
fn round_robin_is_exactly_even_and_skips_unready() {
    let hs: Vec<_> = (1..=4).map(|p| handle(p, 1)).collect();
    ready(&hs);
    let b = flat(LbPolicy::RoundRobin, &hs);
    let c = count(&b, 4000, |_| None);
    assert!(c.values().all(|&n| n == 1000), "{c:?}");
    // Consecutive picks cycle through all four.
    let seq: Vec<u16> = (0..4)
        .map(|_| b.pick(None).unwrap().address.port())
        .collect();
    let mut sorted = seq.clone();
    sorted.sort();
    assert_eq!(sorted, [1, 2, 3, 4], "{seq:?}");

    hs[1].connection.set_state(S::TransientFailure);
    hs[2].connection.set_state(S::Connecting);
    let c = count(&b, 3000, |_| None);
    assert_eq!(c.get(&2), None);
    assert_eq!(c.get(&3), None, "READY endpoints are preferred");
    assert_eq!(c[&1] + c[&4], 3000);
}

#[test]
fn round_robin_follows_endpoint_weights() {
    let hs = vec![handle(1, 1), handle(2, 3), handle(3, 6)];
    ready(&hs);
    let b = flat(LbPolicy::RoundRobin, &hs);
    let c = count(&b, 10_000, |_| None);
    // Schedule of length 10: exact over whole cycles.
    assert_eq!((c[&1], c[&2], c[&3]), (1000, 3000, 6000));
}

#[test]
fn random_is_uniform_within_tolerance() {
    let hs: Vec<_> = (1..=5).map(|p| handle(p, 1)).collect();
    ready(&hs);
    let b = flat(LbPolicy::Random, &hs);
    let c = count(&b, 50_000, |_| None);
    // Expected 10,000 each; ±5 % is > 10 standard deviations.
    assert!(c.values().all(|&n| (9_500..=10_500).contains(&n)), "{c:?}");
}

#[test]
fn least_request_prefers_the_less_loaded() {
    let hs: Vec<_> = (1..=2).map(|p| handle(p, 1)).collect();
    ready(&hs);
    let b = flat(LbPolicy::LeastRequest { choice_count: 2 }, &hs).with_settings(BalanceSettings {
        load_signal: crate::endpoint::LoadSignal::InFlight,
        ..BalanceSettings::default()
    });
    b.update_flat(LbPolicy::LeastRequest { choice_count: 2 }, hs.clone());
    for _ in 0..5 {
        hs[0].connection.load().start();
    }
    let c = count(&b, 10_000, |_| None);
    // Only when both choices land on port 1 (p = 1/4) does it win.
    let p1 = c.get(&1).copied().unwrap_or(0);
    assert!((2_200..=2_800).contains(&p1), "{c:?}");
}

#[test]
fn least_request_peak_ewma_avoids_the_slow_endpoint() {
    let hs: Vec<_> = (1..=3).map(|p| handle(p, 1)).collect();
    ready(&hs);
    let b = flat(LbPolicy::LeastRequest { choice_count: 2 }, &hs);
    let now = tokio::time::Instant::now();
    let decay = crate::endpoint::DEFAULT_DECAY;
    hs[0]
        .connection
        .load()
        .observe(Duration::from_millis(10), now, decay);
    hs[1]
        .connection
        .load()
        .observe(Duration::from_millis(1), now, decay);
    hs[2]
        .connection
        .load()
        .observe(Duration::from_millis(1), now, decay);
    let c = count(&b, 9_000, |_| None);
    // The slow one wins only when both choices are it: p = 1/9.
    let slow = c.get(&1).copied().unwrap_or(0);
    assert!((800..=1_200).contains(&slow), "{c:?}");
}

#[test]
fn ring_hash_spreads_by_weight_and_sticks() {
    let policy = LbPolicy::RingHash {
        min_ring_size: 1024,
        max_ring_size: 8 << 20,
    };
    let hs = vec![handle(1, 1), handle(2, 1), handle(3, 2)];
    ready(&hs);
    let b = flat(policy, &hs);
    let rng = rand::rngs::SmallRng::seed_from_u64(3);
    let hashes: Vec<u64> = {
        use rand::Rng;
        let mut r = rng;
        (0..20_000).map(|_| r.random()).collect()
    };
    let c = count(&b, hashes.len(), |i| Some(hashes[i]));
    // Shares 1:1:2 within ±15 % (the ring has ~1024 entries per unit).
    let share = |p: u16| c[&p] as f64 / hashes.len() as f64;
    assert!((share(1) - 0.25).abs() < 0.04, "{c:?}");
    assert!((share(2) - 0.25).abs() < 0.04, "{c:?}");
    assert!((share(3) - 0.5).abs() < 0.06, "{c:?}");
    // Sticky: the same hash always maps to the same endpoint.
    for &h in &hashes[..100] {
        let a = b.pick(Some(h)).unwrap().address;
        assert_eq!(b.pick(Some(h)).unwrap().address, a);
    }
    // A failed endpoint's keys move to the next; the others' stay.
    let before: Vec<_> = hashes[..2000]
        .iter()
        .map(|&h| b.pick(Some(h)).unwrap().address.port())
        .collect();
    hs[0].connection.set_state(S::TransientFailure);
    for (i, &h) in hashes[..2000].iter().enumerate() {
        let now = b.pick(Some(h)).unwrap().address.port();
        if before[i] != 1 {
            assert_eq!(now, before[i], "keys of healthy endpoints stay put");
        } else {
            assert_ne!(now, 1);
        }
    }
}

#[test]
fn ring_hash_waits_for_a_connecting_first_choice() {
    let policy = LbPolicy::RingHash {
        min_ring_size: 64,
        max_ring_size: 64,
    };
    let hs = vec![handle(1, 1), handle(2, 1)];
    let b = flat(policy, &hs);
    // Both IDLE: the pick returns the hashed endpoint (the call connects).
    let e = b.pick(Some(42)).unwrap();
    hs.iter()
        .filter(|h| h.address != e.address)
        .for_each(|h| h.connection.set_state(S::Ready));
    assert_eq!(b.pick(Some(42)).unwrap().address, e.address);
}

#[test]
fn pick_first_takes_the_first_ready_in_order() {
    let hs: Vec<_> = (1..=3).map(|p| handle(p, 1)).collect();
    let b = flat(
        LbPolicy::PickFirst {
            shuffle_address_list: false,
        },
        &hs,
    );
    hs[1].connection.set_state(S::Ready);
    hs[2].connection.set_state(S::Ready);
    assert!(count(&b, 100, |_| None)[&2] == 100);
    hs[0].connection.set_state(S::Ready);
    assert!(count(&b, 100, |_| None)[&1] == 100);
}

#[test]
fn localities_share_by_weight() {
    let a: Vec<_> = (1..=2).map(|p| handle(p, 1)).collect();
    let c: Vec<_> = (3..=4).map(|p| handle(p, 1)).collect();
    ready(&a);
    ready(&c);
    let b = Balancer::new("c").with_seed(11);
    b.update(LbPolicy::RoundRobin, vec![localities(&[(1, &a), (4, &c)])]);
    let n = count(&b, 50_000, |_| None);
    let in_a = n[&1] + n[&2];
    // Expected 20 %: 10,000 ± 5 %.
    assert!((9_500..=10_500).contains(&in_a), "{n:?}");
    // Round robin inside the locality stays even.
    assert!(n[&1].abs_diff(n[&2]) <= 1, "{n:?}");
    // A locality without READY endpoints gives its share to the others.
    a.iter()
        .for_each(|h| h.connection.set_state(S::TransientFailure));
    let n = count(&b, 1000, |_| None);
    assert_eq!(n[&3] + n[&4], 1000);
}

#[test]
fn priorities_fail_over_and_return() {
    let p0: Vec<_> = (1..=2).map(|p| handle(p, 1)).collect();
    let p1: Vec<_> = (3..=4).map(|p| handle(p, 1)).collect();
    ready(&p0);
    ready(&p1);
    let b = Balancer::new("c").with_seed(1);
    b.update(
        LbPolicy::RoundRobin,
        vec![localities(&[(1, &p0)]), localities(&[(1, &p1)])],
    );
    let n = count(&b, 100, |_| None);
    assert_eq!(n[&1] + n[&2], 100, "priority 0 serves");
    // One p0 endpoint failing keeps traffic in p0.
    p0[0].connection.set_state(S::TransientFailure);
    assert_eq!(count(&b, 100, |_| None)[&2], 100);
    // All of p0 failing moves it to p1.
    p0[1].connection.set_state(S::TransientFailure);
    let n = count(&b, 100, |_| None);
    assert_eq!(n[&3] + n[&4], 100);
    // Reconnect attempts (CONNECTING) do not pull traffic back: sticky.
    p0[0].connection.set_state(S::Connecting);
    let n = count(&b, 100, |_| None);
    assert_eq!(n[&3] + n[&4], 100);
    // READY again: traffic returns.
    p0[0].connection.set_state(S::Ready);
    assert_eq!(count(&b, 100, |_| None)[&1], 100);
    // Nothing anywhere: UNAVAILABLE naming the cluster.
    for h in p0.iter().chain(&p1) {
        h.connection.set_state(S::TransientFailure);
    }
    let err = b.pick(None).unwrap_err();
    let status = crate::error::find_status(&*err).unwrap();
    assert_eq!(status.code(), tonic::Code::Unavailable);
    assert!(status.message().contains("cluster c"), "{status:?}");
}

#[tokio::test(start_paused = true)]
async fn failover_timer_moves_a_connecting_priority_after_10s() {
    let p0 = vec![handle(1, 1)];
    let p1 = vec![handle(2, 1)];
    // Ring hash connects lazily; no real attempt runs here because the
    // state is forced before any call.
    let b = Balancer::new("c").with_seed(1);
    b.update(
        LbPolicy::PickFirst {
            shuffle_address_list: false,
        },
        vec![localities(&[(1, &p0)]), localities(&[(1, &p1)])],
    );
    p0[0].connection.set_state(S::Connecting);
    p1[0].connection.set_state(S::Ready);
    assert_eq!(b.pick(None).unwrap().address.port(), 1, "waits for p0");
    tokio::time::advance(Duration::from_secs(9)).await;
    assert_eq!(b.pick(None).unwrap().address.port(), 1);
    tokio::time::advance(Duration::from_secs(2)).await;
    assert_eq!(b.pick(None).unwrap().address.port(), 2, "timer fired");
    p0[0].connection.set_state(S::Ready);
    assert_eq!(b.pick(None).unwrap().address.port(), 1, "p0 is back");
}

#[test]
fn endpoints_lists_every_priority_and_unusable_ones_are_left_out() {
    let hs: Vec<_> = (1..=3).map(|p| handle(p, 1)).collect();
    let b = Balancer::new("c");
    b.update(
        LbPolicy::RoundRobin,
        vec![localities(&[(1, &hs[..2])]), localities(&[(1, &hs[2..])])],
    );
    assert_eq!(b.endpoints().len(), 3);
    let empty = Balancer::new("empty");
    let err = empty.pick(None).unwrap_err();
    assert!(err.to_string().contains("has no endpoints"), "{err}");
}
