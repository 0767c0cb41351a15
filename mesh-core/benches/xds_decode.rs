//! Decode + validate + publish costs of large xDS updates.
//!
//! - an EDS update with 10,000 endpoints (istiod-shaped metadata), and a
//!   CDS update with 1,000 clusters: decode and validate alone;
//! - the same EDS update end to end: the test ADS server sends it over
//!   loopback, the client decodes, validates, caches and publishes it to a
//!   watcher (the wall time from send to the watcher seeing it).
//!
//! Goal (issue #2): the 10k-endpoint update decoded, validated and
//! published in under 20 ms.

#![allow(missing_docs)] // criterion_group! generates undocumented items.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use envoy_types::pb::envoy::config::core::v3 as core;
use envoy_types::pb::google::protobuf::{Any, Struct, Value, value::Kind};
use mesh_core::resource::{self, Cluster, ClusterLoadAssignment, ResourceType};
use mesh_core::testing::ads_server::TestAdsServer;
use mesh_core::testing::resources::{any, eds_cluster, lb_endpoint, locality_endpoints};
use mesh_core::xds::XdsClient;

fn cla_10k(port_base: u16) -> Any {
    let mut cla = envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment {
        cluster_name: "outbound|7070||echo.default.svc.cluster.local".into(),
        ..Default::default()
    };
    for zone in 0..10u16 {
        let mut loc = locality_endpoints(&format!("zone-{zone}"), 0, &[]);
        for i in 0..1000u16 {
            let addr = SocketAddr::from((
                [10, zone as u8, (i / 256) as u8, (i % 256) as u8],
                port_base,
            ));
            let mut ep = lb_endpoint(addr);
            let workload = Value {
                kind: Some(Kind::StringValue(format!(
                    "echo-{zone}-{i};default;echo;v1;Kubernetes"
                ))),
            };
            ep.metadata = Some(core::Metadata {
                filter_metadata: [(
                    "istio".to_owned(),
                    Struct {
                        fields: [("workload".to_owned(), workload)].into(),
                    },
                )]
                .into(),
                ..Default::default()
            });
            loc.lb_endpoints.push(ep);
        }
        cla.endpoints.push(loc);
    }
    any(&cla)
}

fn clusters_1k() -> Vec<Any> {
    (0..1000)
        .map(|i| {
            let name = format!("outbound|7070||svc-{i}.default.svc.cluster.local");
            any(&eds_cluster(&name, &name))
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let eds = cla_10k(7070);
    c.bench_function("eds_10k_endpoints_decode_validate", |b| {
        b.iter(|| resource::decode::<ClusterLoadAssignment>(&eds).expect("valid"))
    });
    let cds = clusters_1k();
    c.bench_function("cds_1k_clusters_decode_validate", |b| {
        b.iter(|| {
            for a in &cds {
                resource::decode::<Cluster>(a).expect("valid");
            }
        })
    });

    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let (server, client) = rt.block_on(async {
        let server = TestAdsServer::start().await;
        let bootstrap = mesh_core::bootstrap::Bootstrap::builder()
            .xds_server(server.local_addr().to_string())
            .node_id("bench")
            .build()
            .expect("bootstrap");
        let client = XdsClient::new(&bootstrap);
        (server, client)
    });
    let url = ResourceType::ClusterLoadAssignment.type_url();
    let updates = [cla_10k(7070), cla_10k(7071)];
    let mut which = 0;
    let mut watch = rt.block_on(async {
        let mut w = client.watch(
            ResourceType::ClusterLoadAssignment,
            "outbound|7070||echo.default.svc.cluster.local",
        );
        server.set_resources(url, vec![updates[0].clone()]);
        w.resolved().await;
        w
    });
    c.bench_function("eds_10k_endpoints_send_decode_validate_publish", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    which ^= 1;
                    let start = Instant::now();
                    server.set_resources(url, vec![updates[which].clone()]);
                    watch.changed().await;
                    total += start.elapsed();
                }
                total
            })
        })
    });
    println!("goal: eds_10k_endpoints_send_decode_validate_publish under 20 ms (issue #2)");
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(4));
    targets = bench
}
criterion_main!(benches);
