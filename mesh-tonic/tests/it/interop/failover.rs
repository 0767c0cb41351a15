//! gentle_failover: the primary locality loses most of its backends and the
//! control plane shifts traffic with an EDS update; the client follows EDS
//! and does not overprovision on its own.

use envoy_types::pb::envoy::config::core::v3::{HealthStatus, Locality};
use envoy_types::pb::envoy::config::endpoint::v3::LocalityLbEndpoints;
use envoy_types::pb::google::protobuf::UInt32Value;
use mesh_tonic::interop_client::RpcType;

use super::{
    Backends, Client, Xds, cla_localities, eds_cluster, lb_endpoint, match_all, peer, route,
    to_cluster,
};

/// A locality at `priority` with `(backend index, health)` of `backends`.
fn locality(
    zone: &str,
    priority: u32,
    backends: &Backends,
    health: &[HealthStatus],
) -> LocalityLbEndpoints {
    LocalityLbEndpoints {
        locality: Some(Locality {
            region: "r1".into(),
            zone: zone.into(),
            sub_zone: String::new(),
        }),
        load_balancing_weight: Some(UInt32Value { value: 1 }),
        priority,
        lb_endpoints: backends
            .addrs
            .iter()
            .zip(health)
            .map(|(a, h)| lb_endpoint(*a, *h))
            .collect(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gentle_failover() {
    use HealthStatus::{Healthy, Unhealthy};
    let mut primary = Backends::start("primary", 3).await;
    let secondary = Backends::start("secondary", 2).await;
    let xds = Xds::start().await;
    xds.clusters(vec![eds_cluster("cluster-a")]);
    let eds = |p: LocalityLbEndpoints, s: LocalityLbEndpoints| {
        xds.endpoints(vec![cla_localities("cluster-a", vec![p, s])]);
    };
    eds(
        locality("z-primary", 0, &primary, &[Healthy; 3]),
        locality("z-secondary", 1, &secondary, &[Healthy; 2]),
    );
    xds.routes(vec![route(match_all(), to_cluster("cluster-a"))]);
    let client = Client::start(&xds.bootstrap, &[RpcType::UnaryCall]).await;
    client.wait_all_reached(&primary.names()).await;
    let r = client.stats(100, 30).await;
    assert!(secondary.names().iter().all(|n| peer(&r, n) == 0), "{r:?}");

    // Two of three primary backends go down; the control plane marks them
    // UNHEALTHY. One healthy primary backend is enough: no RPC spills to
    // the secondary (no client-side overprovisioning), none fails.
    primary.stop(1);
    primary.stop(2);
    eds(
        locality("z-primary", 0, &primary, &[Healthy, Unhealthy, Unhealthy]),
        locality("z-secondary", 1, &secondary, &[Healthy; 2]),
    );
    let r = client
        .stats_until("only the healthy primary serves", 100, |r| {
            peer(r, &primary.name(0)) == 100
        })
        .await;
    assert_eq!(r.num_failures, 0, "{r:?}");
    let r = client.stats(200, 30).await;
    assert_eq!(peer(&r, &primary.name(0)), 200, "{r:?}");

    // The control plane fails over gently: the secondary joins priority 0
    // next to what is left of the primary. Traffic spreads over both.
    eds(
        locality("z-primary", 0, &primary, &[Healthy, Unhealthy, Unhealthy]),
        locality("z-secondary", 0, &secondary, &[Healthy; 2]),
    );
    let mut serving = secondary.names();
    serving.push(primary.name(0));
    client.wait_all_reached(&serving).await;
    let r = client
        .stats_until("no failures with the secondary in", 100, |r| {
            r.num_failures == 0
        })
        .await;
    assert_eq!(
        peer(&r, &primary.name(1)) + peer(&r, &primary.name(2)),
        0,
        "{r:?}"
    );

    // The primary recovers; the original assignment returns and the
    // secondary gets nothing again.
    primary.restart(1).await;
    primary.restart(2).await;
    eds(
        locality("z-primary", 0, &primary, &[Healthy; 3]),
        locality("z-secondary", 1, &secondary, &[Healthy; 2]),
    );
    client.wait_all_reached(&primary.names()).await;
    client
        .stats_until("secondary idle again", 100, |r| {
            r.num_failures == 0 && secondary.names().iter().all(|n| peer(r, n) == 0)
        })
        .await;
}
