//! gRPC's xDS interop cases (`doc/xds-test-descriptions.md`), run the way
//! the gRPC project's test driver runs them: the interop client
//! (in-process, [`mesh_tonic::interop_client`]) sends RPCs to TestService
//! backends on loopback, a control plane configures it, and the case
//! queries the client's stats port (GetClientStats,
//! GetClientAccumulatedStats) until the results converge.
//!
//! The control plane is mesh-core's raw-resource test ADS server serving
//! resources shaped as other control planes send them (a router filter
//! named `router`, routes with `prefix: ""`, `eds_config {self: {}}`, EDS
//! service names that differ from cluster names), or mesh-control from
//! Istio YAML ([`control`]).

mod basic;
mod binary;
mod control;
mod failover;
mod resilience;
mod routing;
mod security;

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use envoy_types::pb::envoy::config::cluster::v3 as cluster;
use envoy_types::pb::envoy::config::core::v3 as core;
use envoy_types::pb::envoy::config::endpoint::v3 as endpoint;
use envoy_types::pb::envoy::config::listener::v3 as listener;
use envoy_types::pb::envoy::config::route::v3 as route;
use envoy_types::pb::envoy::extensions::filters::http::fault::v3::HttpFault;
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3 as hcm;
use envoy_types::pb::envoy::service::status::v3::client_status_discovery_service_client::ClientStatusDiscoveryServiceClient;
use mesh_core::bootstrap::Bootstrap;
use mesh_core::resource::ResourceType;
use mesh_core::testing::ads_server::TestAdsServer;
use mesh_core::testing::proto::grpc_testing::client_configure_request::{
    Metadata, RpcType as ProtoRpcType,
};
use mesh_core::testing::proto::grpc_testing::load_balancer_accumulated_stats_response::MethodStats;
use mesh_core::testing::proto::grpc_testing::load_balancer_stats_service_client::LoadBalancerStatsServiceClient;
use mesh_core::testing::proto::grpc_testing::xds_update_client_configure_service_client::XdsUpdateClientConfigureServiceClient;
use mesh_core::testing::proto::grpc_testing::{
    ClientConfigureRequest, LoadBalancerAccumulatedStatsRequest,
    LoadBalancerAccumulatedStatsResponse, LoadBalancerStatsRequest, LoadBalancerStatsResponse,
};
use mesh_core::testing::resources::{self, any, http_filter, self_source};
use mesh_core::testing::test_service::{RunningBackend, TestServiceBackend};
use mesh_tonic::interop_client::{self, ClientConfig, RpcType, RunningClient};
use tonic::transport::{Channel, Endpoint};

/// The service every case targets (`xds:///` + this).
pub(crate) const SERVICE: &str = "interop.test:8080";
/// The route configuration's name.
const ROUTES: &str = "interop-routes";
/// How long any one condition may take to converge: generous, since two
/// cores are shared with other tests.
pub(crate) const CONVERGE: Duration = Duration::from_secs(60);
/// The client's rate; modest, for 2 cores.
pub(crate) const QPS: u32 = 100;

// ---------------------------------------------------------------- backends

/// Backends answering with hostnames `PREFIX-0`, `PREFIX-1`, ...
pub(crate) struct Backends {
    pub prefix: String,
    pub running: Vec<Option<RunningBackend>>,
    pub addrs: Vec<SocketAddr>,
}

impl Backends {
    pub async fn start(prefix: &str, n: usize) -> Backends {
        let mut running = Vec::new();
        let mut addrs = Vec::new();
        for i in 0..n {
            let b = TestServiceBackend::new(format!("{prefix}-{i}"))
                .serve()
                .await
                .unwrap();
            addrs.push(b.local_addr());
            running.push(Some(b));
        }
        Backends {
            prefix: prefix.into(),
            running,
            addrs,
        }
    }

    /// The hostnames, in order.
    pub fn names(&self) -> Vec<String> {
        (0..self.addrs.len())
            .map(|i| format!("{}-{i}", self.prefix))
            .collect()
    }

    pub fn name(&self, i: usize) -> String {
        format!("{}-{i}", self.prefix)
    }

    /// Stops backend `i` as a crash would (connections closed).
    pub fn stop(&mut self, i: usize) {
        self.running[i] = None;
    }

    /// Restarts backend `i` on its old port.
    pub async fn restart(&mut self, i: usize) {
        let addr = self.addrs[i];
        let deadline = tokio::time::Instant::now() + CONVERGE;
        loop {
            match TestServiceBackend::new(self.name(i)).serve_on(addr).await {
                Ok(b) => {
                    self.running[i] = Some(b);
                    return;
                }
                Err(e) if tokio::time::Instant::now() < deadline => {
                    eprintln!("rebinding {addr}: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("cannot rebind {addr}: {e}"),
            }
        }
    }
}

// ---------------------------------------------------------------- resources

/// The client Listener for [`SERVICE`]: HCM over RDS (ADS), filters
/// `fault` and `router`.
pub(crate) fn client_listener() -> listener::Listener {
    let manager = hcm::HttpConnectionManager {
        stat_prefix: "interop".into(),
        route_specifier: Some(hcm::http_connection_manager::RouteSpecifier::Rds(
            hcm::Rds {
                config_source: Some(resources::ads_source()),
                route_config_name: ROUTES.into(),
            },
        )),
        http_filters: vec![
            http_filter("fault", &HttpFault::default()),
            http_filter("router", &Router::default()),
        ],
        ..Default::default()
    };
    listener::Listener {
        name: SERVICE.into(),
        api_listener: Some(listener::ApiListener {
            api_listener: Some(any(&manager)),
        }),
        ..Default::default()
    }
}

/// The route configuration: one virtual host for [`SERVICE`] with `routes`.
pub(crate) fn route_config(routes: Vec<route::Route>) -> route::RouteConfiguration {
    resources::route_config(ROUTES, &[SERVICE], routes)
}

/// A route matching `m` to `action`.
pub(crate) fn route(m: route::RouteMatch, action: route::RouteAction) -> route::Route {
    route::Route {
        r#match: Some(m),
        action: Some(route::route::Action::Route(action)),
        ..Default::default()
    }
}

/// `prefix: ""`: matches everything.
pub(crate) fn match_all() -> route::RouteMatch {
    match_prefix("")
}

pub(crate) fn match_prefix(prefix: &str) -> route::RouteMatch {
    route::RouteMatch {
        path_specifier: Some(route::route_match::PathSpecifier::Prefix(prefix.into())),
        ..Default::default()
    }
}

pub(crate) fn match_path(path: &str) -> route::RouteMatch {
    route::RouteMatch {
        path_specifier: Some(route::route_match::PathSpecifier::Path(path.into())),
        ..Default::default()
    }
}

/// A route action to one cluster.
pub(crate) fn to_cluster(cluster: &str) -> route::RouteAction {
    route::RouteAction {
        cluster_specifier: Some(route::route_action::ClusterSpecifier::Cluster(
            cluster.into(),
        )),
        ..Default::default()
    }
}

/// The EDS service name of `cluster` (deliberately not the cluster's name).
pub(crate) fn eds_name(cluster: &str) -> String {
    format!("eds-service/{cluster}")
}

/// An EDS cluster with `eds_config {self: {}}` and its own service name.
pub(crate) fn eds_cluster(name: &str) -> cluster::Cluster {
    cluster::Cluster {
        name: name.into(),
        cluster_discovery_type: Some(cluster::cluster::ClusterDiscoveryType::Type(
            cluster::cluster::DiscoveryType::Eds as i32,
        )),
        eds_cluster_config: Some(cluster::cluster::EdsClusterConfig {
            eds_config: Some(self_source()),
            service_name: eds_name(name),
        }),
        ..Default::default()
    }
}

/// The endpoints of `cluster`: one locality with `addrs`.
pub(crate) fn cla(cluster: &str, addrs: &[SocketAddr]) -> endpoint::ClusterLoadAssignment {
    cla_localities(cluster, vec![resources::locality_endpoints("z1", 0, addrs)])
}

pub(crate) fn cla_localities(
    cluster: &str,
    localities: Vec<endpoint::LocalityLbEndpoints>,
) -> endpoint::ClusterLoadAssignment {
    endpoint::ClusterLoadAssignment {
        cluster_name: eds_name(cluster),
        endpoints: localities,
        ..Default::default()
    }
}

/// An endpoint with a health status.
pub(crate) fn lb_endpoint(addr: SocketAddr, health: core::HealthStatus) -> endpoint::LbEndpoint {
    let mut e = resources::lb_endpoint(addr);
    e.health_status = health as i32;
    e
}

// ---------------------------------------------------------------- the mesh

/// The test ADS server with the client's bootstrap.
pub(crate) struct Xds {
    pub ads: TestAdsServer,
    pub bootstrap: Bootstrap,
}

impl Xds {
    /// A server already holding [`client_listener`].
    pub async fn start() -> Xds {
        let ads = TestAdsServer::start().await;
        ads.set_filter_by_name(true);
        let bootstrap = Bootstrap::builder()
            .xds_server(ads.local_addr().to_string())
            .node_id("xds-interop-client-test")
            .build()
            .unwrap();
        ads.set_resources(
            ResourceType::Listener.type_url(),
            vec![any(&client_listener())],
        );
        Xds { ads, bootstrap }
    }

    pub fn routes(&self, routes: Vec<route::Route>) {
        self.ads.set_resources(
            ResourceType::RouteConfiguration.type_url(),
            vec![any(&route_config(routes))],
        );
    }

    pub fn clusters(&self, clusters: Vec<cluster::Cluster>) {
        self.ads.set_resources(
            ResourceType::Cluster.type_url(),
            clusters.iter().map(any).collect(),
        );
    }

    pub fn endpoints(&self, assignments: Vec<endpoint::ClusterLoadAssignment>) {
        self.ads.set_resources(
            ResourceType::ClusterLoadAssignment.type_url(),
            assignments.iter().map(any).collect(),
        );
    }

    /// One route (`prefix: ""`) to one EDS cluster over `backends`.
    pub fn single(&self, cluster: &str, backends: &Backends) {
        self.clusters(vec![eds_cluster(cluster)]);
        self.endpoints(vec![cla(cluster, &backends.addrs)]);
        self.routes(vec![route(match_all(), to_cluster(cluster))]);
    }
}

// ---------------------------------------------------------------- the client

/// The interop client under test and clients of its stats port.
pub(crate) struct Client {
    pub running: RunningClient,
    /// CSDS on the stats port.
    pub csds: ClientStatusDiscoveryServiceClient<Channel>,
    stats: LoadBalancerStatsServiceClient<Channel>,
    configure: XdsUpdateClientConfigureServiceClient<Channel>,
}

impl Client {
    /// Starts the client at [`QPS`] with `types` against [`SERVICE`].
    pub async fn start(bootstrap: &Bootstrap, types: &[RpcType]) -> Client {
        Client::start_with(bootstrap, |c| c.rpc.types = types.to_vec()).await
    }

    pub async fn start_with(bootstrap: &Bootstrap, edit: impl FnOnce(&mut ClientConfig)) -> Client {
        let mut config = ClientConfig::new(format!("xds:///{SERVICE}"));
        config.stats_port = 0;
        config.qps = QPS;
        config.bootstrap = Some(bootstrap.clone());
        config.seed = Some(7);
        edit(&mut config);
        let running = interop_client::start(config).await.unwrap();
        let channel =
            Endpoint::from_shared(format!("http://127.0.0.1:{}", running.stats_addr().port()))
                .unwrap()
                .connect_lazy();
        Client {
            running,
            csds: ClientStatusDiscoveryServiceClient::new(channel.clone()),
            stats: LoadBalancerStatsServiceClient::new(channel.clone()),
            configure: XdsUpdateClientConfigureServiceClient::new(channel),
        }
    }

    /// Panics if `fail_on_failed_rpc` saw an RPC fail after a success.
    pub fn assert_no_failed_rpc(&mut self) {
        use futures::FutureExt;
        if let Some(why) = self.running.failed().now_or_never() {
            panic!("--fail_on_failed_rpc would have exited: {why}");
        }
    }

    /// GetClientStats for the next `num_rpcs` (at most `timeout_sec`).
    pub async fn stats(&self, num_rpcs: i32, timeout_sec: i32) -> LoadBalancerStatsResponse {
        self.stats_with_keys(num_rpcs, timeout_sec, &[]).await
    }

    pub async fn stats_with_keys(
        &self,
        num_rpcs: i32,
        timeout_sec: i32,
        keys: &[&str],
    ) -> LoadBalancerStatsResponse {
        self.stats
            .clone()
            .get_client_stats(LoadBalancerStatsRequest {
                num_rpcs,
                timeout_sec,
                metadata_keys: keys.iter().map(|k| (*k).into()).collect(),
            })
            .await
            .expect("GetClientStats")
            .into_inner()
    }

    pub async fn accumulated(&self) -> LoadBalancerAccumulatedStatsResponse {
        self.stats
            .clone()
            .get_client_accumulated_stats(LoadBalancerAccumulatedStatsRequest {})
            .await
            .expect("GetClientAccumulatedStats")
            .into_inner()
    }

    /// XdsUpdateClientConfigureService.Configure.
    pub async fn configure(
        &self,
        types: &[RpcType],
        metadata: &[(RpcType, &str, &str)],
        timeout_sec: i32,
    ) {
        let proto = |t: RpcType| match t {
            RpcType::EmptyCall => ProtoRpcType::EmptyCall as i32,
            RpcType::UnaryCall => ProtoRpcType::UnaryCall as i32,
        };
        self.configure
            .clone()
            .configure(ClientConfigureRequest {
                types: types.iter().map(|t| proto(*t)).collect(),
                metadata: metadata
                    .iter()
                    .map(|(t, k, v)| Metadata {
                        r#type: proto(*t),
                        key: (*k).into(),
                        value: (*v).into(),
                    })
                    .collect(),
                timeout_sec,
            })
            .await
            .expect("Configure");
    }

    /// Polls blocks of `num_rpcs` until `accept` holds for one; returns it.
    pub async fn stats_until(
        &self,
        what: &str,
        num_rpcs: i32,
        accept: impl Fn(&LoadBalancerStatsResponse) -> bool,
    ) -> LoadBalancerStatsResponse {
        converge(what, || self.stats(num_rpcs, 10), accept).await
    }

    /// Waits until every backend in `names` got at least one RPC of a block.
    pub async fn wait_all_reached(&self, names: &[String]) {
        self.stats_until(&format!("all of {names:?} reached"), 200, |r| {
            names
                .iter()
                .all(|n| r.rpcs_by_peer.get(n).copied().unwrap_or(0) > 0)
        })
        .await;
    }

    /// Accumulated stats of one method, polled until `accept` holds for
    /// the difference to `since` (what happened in between).
    pub async fn accumulated_until(
        &self,
        what: &str,
        rpc: RpcType,
        accept: impl Fn(&MethodStats) -> bool,
    ) -> MethodStats {
        converge(
            what,
            || async {
                tokio::time::sleep(Duration::from_millis(200)).await;
                method_stats(&self.accumulated().await, rpc)
            },
            accept,
        )
        .await
    }
}

/// The stats of `rpc` in an accumulated response (empty if none yet).
pub(crate) fn method_stats(r: &LoadBalancerAccumulatedStatsResponse, rpc: RpcType) -> MethodStats {
    let key = match rpc {
        RpcType::EmptyCall => "EMPTY_CALL",
        RpcType::UnaryCall => "UNARY_CALL",
    };
    r.stats_per_method.get(key).cloned().unwrap_or_default()
}

/// `later - earlier`, per status code, and started.
pub(crate) fn delta(later: &MethodStats, earlier: &MethodStats) -> MethodStats {
    let mut result = HashMap::new();
    for (code, n) in &later.result {
        let d = n - earlier.result.get(code).copied().unwrap_or(0);
        if d != 0 {
            result.insert(*code, d);
        }
    }
    MethodStats {
        rpcs_started: later.rpcs_started - earlier.rpcs_started,
        result,
    }
}

/// Completed RPCs in `m` with status `code`.
pub(crate) fn count(m: &MethodStats, code: tonic::Code) -> i32 {
    m.result.get(&(code as i32)).copied().unwrap_or(0)
}

/// Completed RPCs in `m`, whatever their status.
pub(crate) fn completed(m: &MethodStats) -> i32 {
    m.result.values().sum()
}

/// The RPCs of `rpc` in a stats block that reached `peer`.
pub(crate) fn by_method(r: &LoadBalancerStatsResponse, rpc: RpcType, peer: &str) -> i32 {
    r.rpcs_by_method
        .get(rpc.method())
        .and_then(|m| m.rpcs_by_peer.get(peer))
        .copied()
        .unwrap_or(0)
}

pub(crate) fn peer(r: &LoadBalancerStatsResponse, peer: &str) -> i32 {
    r.rpcs_by_peer.get(peer).copied().unwrap_or(0)
}

/// Calls `probe` until `accept` holds for its result, at most [`CONVERGE`];
/// panics with the last result otherwise.
pub(crate) async fn converge<T, F, Fut>(what: &str, mut probe: F, accept: impl Fn(&T) -> bool) -> T
where
    T: std::fmt::Debug,
    F: FnMut() -> Fut,
    Fut: Future<Output = T>,
{
    let deadline = tokio::time::Instant::now() + CONVERGE;
    loop {
        let got = probe().await;
        if accept(&got) {
            return got;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("{what}: did not converge within {CONVERGE:?}; last: {got:#?}");
        }
    }
}
