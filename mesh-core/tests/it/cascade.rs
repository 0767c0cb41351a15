//! The LDS → RDS → CDS → EDS cascade into one snapshot (A74), with
//! resources shaped as istiod sends them for `echo.default` port 7070.

use std::net::SocketAddr;
use std::time::Duration;

use mesh_core::resource::ResourceType::{self, *};
use mesh_core::resource::cluster::Discovery;
use mesh_core::testing::ads_server::TestAdsServer;
use mesh_core::testing::resources::*;
use mesh_core::watch::watch_target;

use super::support::client;

const HOST: &str = "echo.default.svc.cluster.local";
const LISTENER: &str = "echo.default.svc.cluster.local:7070";
const ROUTE: &str = "outbound|7070||echo.default.svc.cluster.local";
const CLUSTER: &str = "outbound|7070||echo.default.svc.cluster.local";
const V2: &str = "outbound|7070|v2|echo.default.svc.cluster.local";

fn url(t: ResourceType) -> &'static str {
    t.type_url()
}

fn addrs(ports: &[u16]) -> Vec<SocketAddr> {
    ports
        .iter()
        .map(|p| SocketAddr::from(([127, 0, 0, 1], *p)))
        .collect()
}

fn serve_echo(server: &TestAdsServer) {
    server.set_resources(url(Listener), vec![any(&client_listener(LISTENER, ROUTE))]);
    let domains = [
        HOST,
        LISTENER,
        "echo",
        "echo:7070",
        "echo.default",
        "echo.default:7070",
    ];
    server.set_resources(
        url(RouteConfiguration),
        vec![any(&route_config(
            ROUTE,
            &domains,
            vec![prefix_route("/", CLUSTER)],
        ))],
    );
    server.set_resources(url(Cluster), vec![any(&eds_cluster(CLUSTER, CLUSTER))]);
    server.set_resources(
        url(ClusterLoadAssignment),
        vec![any(&endpoints(CLUSTER, &addrs(&[7001, 7002])))],
    );
}

#[tokio::test]
async fn istiod_shaped_resources_resolve_into_one_snapshot() {
    let server = TestAdsServer::start().await;
    serve_echo(&server);
    let client = client(&server, &[]);
    let mut w = watch_target(&client, LISTENER, LISTENER);
    let cfg = w.first(Duration::from_secs(5)).await.expect("resolves");
    assert_eq!(cfg.target, LISTENER);
    assert_eq!(cfg.route_config.name, ROUTE);
    assert!(cfg.virtual_host().domains.iter().any(|d| d == LISTENER));
    assert_eq!(cfg.clusters.len(), 1);
    let c = cfg
        .cluster(CLUSTER)
        .unwrap()
        .as_ref()
        .expect("cluster resolved");
    assert!(
        matches!(&c.cluster.discovery, Discovery::Eds { service_name } if service_name == CLUSTER)
    );
    assert_eq!(c.endpoints.cluster_name, CLUSTER);
    assert_eq!(
        c.endpoints.priorities[0].localities[0].endpoints.len(),
        2,
        "both endpoints in the snapshot"
    );
}

#[tokio::test]
async fn no_snapshot_until_every_cluster_resolves() {
    let server = TestAdsServer::start().await;
    server.set_resources(url(Listener), vec![any(&client_listener(LISTENER, ROUTE))]);
    server.set_resources(
        url(RouteConfiguration),
        vec![any(&route_config(
            ROUTE,
            &[LISTENER],
            vec![prefix_route("/", CLUSTER)],
        ))],
    );
    server.set_resources(url(Cluster), vec![any(&eds_cluster(CLUSTER, ""))]);
    let client = client(&server, &[]);
    let mut w = watch_target(&client, LISTENER, LISTENER);
    // EDS never answered: the cascade waits (the 300 ms timer then fails
    // only that cluster, not the whole target).
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        w.current().is_none(),
        "A74: nothing published before EDS resolves"
    );
    let cfg = w
        .first(Duration::from_secs(5))
        .await
        .expect("resolves with a cluster error");
    let err = cfg.cluster(CLUSTER).unwrap().as_ref().unwrap_err();
    assert!(err.contains("does not exist"), "{err}");
}

#[tokio::test]
async fn one_cluster_failing_leaves_the_others_working() {
    let server = TestAdsServer::start().await;
    server.set_resources(url(Listener), vec![any(&client_listener(LISTENER, ROUTE))]);
    server.set_resources(
        url(RouteConfiguration),
        vec![any(&route_config(
            ROUTE,
            &[LISTENER],
            vec![weighted_route(&[(CLUSTER, 80), (V2, 20)])],
        ))],
    );
    // V2 is not in CDS: a complete-state CDS response without it means it
    // does not exist.
    server.set_resources(url(Cluster), vec![any(&eds_cluster(CLUSTER, "eds-echo"))]);
    server.set_resources(
        url(ClusterLoadAssignment),
        vec![any(&endpoints("eds-echo", &addrs(&[7001])))],
    );
    let client = client(&server, &[]);
    let mut w = watch_target(&client, LISTENER, LISTENER);
    let cfg = w.first(Duration::from_secs(5)).await.expect("resolves");
    assert!(
        cfg.cluster(CLUSTER).unwrap().is_ok(),
        "EDS service name differing from the cluster name"
    );
    assert!(cfg.cluster(V2).unwrap().is_err());
}

#[tokio::test]
async fn endpoint_change_publishes_a_new_snapshot_sharing_the_rest() {
    let server = TestAdsServer::start().await;
    serve_echo(&server);
    let client = client(&server, &[]);
    let mut w = watch_target(&client, LISTENER, LISTENER);
    let first = w.first(Duration::from_secs(5)).await.unwrap();
    server.set_resources(
        url(ClusterLoadAssignment),
        vec![any(&endpoints(CLUSTER, &addrs(&[7001, 7003])))],
    );
    let second = loop {
        let s = w.changed().await.unwrap().unwrap();
        if !std::sync::Arc::ptr_eq(&s, &first) {
            break s;
        }
    };
    assert!(std::sync::Arc::ptr_eq(&first.listener, &second.listener));
    assert!(std::sync::Arc::ptr_eq(
        &first.route_config,
        &second.route_config
    ));
    let a = first.cluster(CLUSTER).unwrap().as_ref().unwrap();
    let b = second.cluster(CLUSTER).unwrap().as_ref().unwrap();
    assert!(
        std::sync::Arc::ptr_eq(&a.cluster, &b.cluster),
        "the unchanged cluster is shared"
    );
    assert!(!std::sync::Arc::ptr_eq(&a.endpoints, &b.endpoints));
}

#[tokio::test]
async fn missing_listener_is_an_error_naming_it() {
    let server = TestAdsServer::start().await;
    let client = client(&server, &[]);
    let mut w = watch_target(&client, "nope:80", "nope:80");
    let err = w.first(Duration::from_secs(5)).await.unwrap_err();
    assert!(err.reason.contains("nope:80"), "{err}");
}

#[tokio::test]
async fn no_matching_virtual_host_is_an_error() {
    let server = TestAdsServer::start().await;
    serve_echo(&server);
    server.set_resources(
        url(Listener),
        vec![any(&client_listener("other:80", ROUTE))],
    );
    let client = client(&server, &[]);
    let mut w = watch_target(&client, "other:80", "other:80");
    let err = w.first(Duration::from_secs(5)).await.unwrap_err();
    assert!(err.reason.contains("no virtual host"), "{err}");
}

#[tokio::test]
async fn server_listener_resolves_with_its_rds_routes() {
    use mesh_core::resource::route::RouteAction;
    use mesh_core::watch::watch_server;
    let name = "xds.istio.io/grpc/lds/inbound/0.0.0.0:7070";
    let server = TestAdsServer::start().await;
    server.set_resources(
        url(Listener),
        vec![
            any(&server_listener(
                name,
                "0.0.0.0:7070".parse().unwrap(),
                Some("inbound-rds"),
            )),
            any(&client_listener(LISTENER, ROUTE)),
        ],
    );
    let mut routes = inbound_routes();
    routes.name = "inbound-rds".into();
    server.set_resources(url(RouteConfiguration), vec![any(&routes)]);
    let client = client(&server, &[]);
    let mut w = watch_server(&client, name);
    let cfg = w.first(Duration::from_secs(5)).await.expect("resolves");
    assert_eq!(cfg.server().address, Some("0.0.0.0:7070".parse().unwrap()));
    let chain = &cfg.server().filter_chains[0];
    let rc = cfg.chain_routes(chain).expect("RDS routes resolved");
    let vh = rc.virtual_host_for("anything:80").expect("domain *");
    assert!(matches!(vh.routes[0].action, RouteAction::NonForwarding));

    // A client listener is not a server's.
    let mut wrong = watch_server(&client, LISTENER);
    let err = wrong.first(Duration::from_secs(5)).await.unwrap_err();
    assert!(err.reason.contains("client listener"), "{err}");
}

#[tokio::test]
async fn shared_clients_are_keyed_by_target() {
    let server = TestAdsServer::start().await;
    let b = super::support::bootstrap(&server, &[]);
    let a1 = mesh_core::xds::XdsClient::shared(&b, "xds:///a");
    let a2 = mesh_core::xds::XdsClient::shared(&b, "xds:///a");
    let s = mesh_core::xds::XdsClient::shared(&b, mesh_core::xds::SERVER_CLIENT_KEY);
    assert!(a1.ptr_eq(&a2), "one client per target");
    assert!(!a1.ptr_eq(&s), "servers have their own");
}
