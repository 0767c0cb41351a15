//! The cost of one pick over 1,000 READY endpoints, per policy (goal:
//! under 100 ns), and the heap allocations per pick (goal: none), counted
//! by a counting global allocator.

#![allow(unsafe_code)] // The counting allocator only.
#![allow(missing_docs)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use criterion::{Criterion, criterion_group, criterion_main};
use mesh_core::resource::cluster::LbPolicy;
use mesh_core::resource::endpoint::{Endpoint, HealthStatus};
use mesh_tower::balance::{Balancer, LocalityTargets, PriorityTargets};
use mesh_tower::cluster::EndpointHandle;
use mesh_tower::endpoint::{ConnectionSettings, ConnectivityState};

struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const N: u16 = 1000;

fn balancer(policy: LbPolicy, localities: usize) -> Balancer {
    let settings = Arc::new(ConnectionSettings::default());
    let handles: Vec<Arc<EndpointHandle>> = (0..N)
        .map(|i| {
            let e = Endpoint {
                address: SocketAddr::from(([10, 0, (i >> 8) as u8, i as u8], 8080)),
                additional_addresses: Vec::new(),
                health: HealthStatus::Healthy,
                weight: 1 + u32::from(i % 3),
                hostname: String::new(),
                metadata: Default::default(),
            };
            let h = Arc::new(EndpointHandle::new(e, settings.clone()));
            h.connection.set_state(ConnectivityState::Ready);
            h
        })
        .collect();
    let per = handles.len() / localities;
    let b = Balancer::new("bench").with_seed(1);
    b.update(
        policy,
        vec![PriorityTargets {
            localities: handles
                .chunks(per)
                .enumerate()
                .map(|(i, c)| LocalityTargets {
                    weight: 1 + i as u32,
                    endpoints: c
                        .iter()
                        .map(|h| (h.clone(), h.config.load().weight))
                        .collect(),
                })
                .collect(),
        }],
    );
    b
}

fn picks(c: &mut Criterion) {
    let cases = [
        ("round_robin", LbPolicy::RoundRobin, 1),
        ("round_robin_4_localities", LbPolicy::RoundRobin, 4),
        ("random", LbPolicy::Random, 1),
        (
            "least_request_p2c",
            LbPolicy::LeastRequest { choice_count: 2 },
            1,
        ),
        (
            "ring_hash",
            LbPolicy::RingHash {
                min_ring_size: 1024,
                max_ring_size: 8 << 20,
            },
            1,
        ),
        (
            "pick_first",
            LbPolicy::PickFirst {
                shuffle_address_list: false,
            },
            1,
        ),
    ];
    let mut group = c.benchmark_group("pick_1000_endpoints");
    for (name, policy, localities) in cases {
        let b = balancer(policy, localities);
        let mut h = 0u64;
        // Allocations per pick, measured outside criterion's own work.
        let before = ALLOCS.load(Ordering::Relaxed);
        for _ in 0..10_000 {
            h = h.wrapping_add(0x9E37_79B9_7F4A_7C15);
            black_box(b.pick(Some(h)).unwrap());
        }
        let allocs = ALLOCS.load(Ordering::Relaxed) - before;
        println!(
            "{name}: {:.3} heap allocations per pick",
            allocs as f64 / 10_000.0
        );
        group.bench_function(name, |bench| {
            bench.iter(|| {
                h = h.wrapping_add(0x9E37_79B9_7F4A_7C15);
                black_box(b.pick(black_box(Some(h))).unwrap())
            })
        });
    }
    group.finish();
}

criterion_group!(benches, picks);
criterion_main!(benches);
