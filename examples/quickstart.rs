//! Quickstart (first cut): starts an in-process xDS server holding
//! istiod-shaped resources for `echo.default.svc.cluster.local:7070`,
//! connects mesh's xDS client to it, and prints the resolved snapshot.
//!
//! The full demo (embedded mesh-control, three backends, live traffic
//! shifting) replaces this as mesh-tonic lands.

use std::net::SocketAddr;
use std::time::Duration;

use mesh_core::bootstrap::Bootstrap;
use mesh_core::resource::ResourceType;
use mesh_core::testing::ads_server::TestAdsServer;
use mesh_core::testing::resources::*;
use mesh_core::watch::watch_target;
use mesh_core::xds::XdsClient;

const TARGET: &str = "echo.default.svc.cluster.local:7070";
const ROUTE: &str = "outbound|7070||echo.default.svc.cluster.local";
const V1: &str = "outbound|7070|v1|echo.default.svc.cluster.local";
const V2: &str = "outbound|7070|v2|echo.default.svc.cluster.local";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = TestAdsServer::start().await;
    let addrs = |ports: &[u16]| -> Vec<SocketAddr> {
        ports
            .iter()
            .map(|p| SocketAddr::from(([127, 0, 0, 1], *p)))
            .collect()
    };
    server.set_resources(
        ResourceType::Listener.type_url(),
        vec![any(&client_listener(TARGET, ROUTE))],
    );
    server.set_resources(
        ResourceType::RouteConfiguration.type_url(),
        vec![any(&route_config(
            ROUTE,
            &[TARGET],
            vec![weighted_route(&[(V1, 90), (V2, 10)])],
        ))],
    );
    server.set_resources(
        ResourceType::Cluster.type_url(),
        vec![any(&eds_cluster(V1, "")), any(&eds_cluster(V2, ""))],
    );
    server.set_resources(
        ResourceType::ClusterLoadAssignment.type_url(),
        vec![
            any(&endpoints(V1, &addrs(&[7001, 7002]))),
            any(&endpoints(V2, &addrs(&[7003]))),
        ],
    );
    println!("xDS server on {}", server.local_addr());

    let bootstrap = Bootstrap::builder()
        .xds_server(server.local_addr().to_string())
        .node_id("quickstart")
        .build()?;
    let client = XdsClient::new(&bootstrap);
    let mut watch = watch_target(&client, TARGET, TARGET);
    let snapshot = watch.first(Duration::from_secs(10)).await?;

    println!("target {}", snapshot.target);
    println!("  route config {}", snapshot.route_config.name);
    println!(
        "  virtual host {} {:?}",
        snapshot.virtual_host().name,
        snapshot.virtual_host().domains
    );
    for (name, cluster) in &snapshot.clusters {
        match cluster {
            Ok(c) => {
                let eps: Vec<String> = c
                    .endpoints
                    .endpoints()
                    .map(|(_, _, e)| e.address.to_string())
                    .collect();
                println!(
                    "  cluster {name}: {:?}, endpoints {eps:?}",
                    c.cluster.lb_policy
                );
            }
            Err(e) => println!("  cluster {name}: error {e}"),
        }
    }
    let status = client.status().await;
    println!("client status (what CSDS would report):");
    for r in &status.resources {
        println!(
            "  {:<4} {:<55} {:?} version {}",
            r.kind, r.name, r.status, r.version
        );
    }
    Ok(())
}
