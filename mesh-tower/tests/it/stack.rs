//! The whole client stack end to end: a TestAdsServer serves LDS/RDS/CDS/
//! EDS, mesh-core's watcher resolves them, discovery builds the cluster
//! runtimes and the stack routes real gRPC calls to loopback
//! TestServiceBackends. Also the harness `route.rs` uses.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use envoy_types::pb::envoy::config::route::v3 as route;
use envoy_types::pb::envoy::extensions::filters::http::fault::v3 as fault;
use envoy_types::pb::envoy::r#type::v3::FractionalPercent;
use envoy_types::pb::google::protobuf::UInt32Value;
use mesh_core::bootstrap::Bootstrap;
use mesh_core::resource::ResourceType;
use mesh_core::testing::ads_server::TestAdsServer;
use mesh_core::testing::proto::grpc_testing::SimpleRequest;
use mesh_core::testing::proto::grpc_testing::test_service_client::TestServiceClient;
use mesh_core::testing::resources::{self, any, type_url};
use mesh_core::testing::test_service::{RPC_BEHAVIOR_HEADER, RunningBackend, TestServiceBackend};
use mesh_core::xds::XdsClient;
use mesh_tower::discovery::{Discovery, DiscoveryOptions};
use mesh_tower::stack::{ClientService, ClientStack};
use tonic::Code;

/// The target every test channel dials (listener name and authority).
pub const TARGET: &str = "echo.test:7070";
/// The fault filter's instance name in the listener.
pub const FAULT_FILTER: &str = "envoy.filters.http.fault";

/// A control plane, backends and a client stack following them.
pub struct Mesh {
    pub ads: TestAdsServer,
    pub backends: Vec<RunningBackend>,
    _xds: XdsClient,
    pub stack: ClientStack,
}

impl Mesh {
    /// Backends named `hosts` (cluster `c-<host>` each), the routes, and a
    /// seeded stack over them.
    pub async fn start(hosts: &[&str], routes: Vec<route::Route>) -> Mesh {
        let mut backends = Vec::new();
        for host in hosts {
            backends.push(TestServiceBackend::new(*host).serve().await.unwrap());
        }
        let ads = TestAdsServer::start().await;
        let mesh_clusters: Vec<(String, SocketAddr)> = hosts
            .iter()
            .zip(&backends)
            .map(|(h, b)| (format!("c-{h}"), b.local_addr()))
            .collect();
        ads.set_resources(
            type_url(ResourceType::Listener),
            vec![any(&resources::client_listener(TARGET, "routes"))],
        );
        ads.set_resources(
            type_url(ResourceType::Cluster),
            mesh_clusters
                .iter()
                .map(|(c, _)| any(&resources::eds_cluster(c, "")))
                .collect(),
        );
        ads.set_resources(
            type_url(ResourceType::ClusterLoadAssignment),
            mesh_clusters
                .iter()
                .map(|(c, addr)| any(&resources::endpoints(c, &[*addr])))
                .collect(),
        );
        let mesh = {
            let bootstrap = Bootstrap::builder()
                .xds_server(format!("127.0.0.1:{}", ads.local_addr().port()))
                .node_id("mesh-tower-it")
                .build()
                .unwrap();
            let xds = XdsClient::new(&bootstrap);
            let watch = mesh_core::watch::watch_target(&xds, TARGET, TARGET);
            let options = DiscoveryOptions {
                seed: Some(11),
                ..Default::default()
            };
            let discovery = Discovery::from_watch(watch, options).await;
            let stack = ClientStack::builder().seed(5).build(discovery);
            Mesh {
                ads,
                backends,
                _xds: xds,
                stack,
            }
        };
        mesh.set_routes(routes);
        mesh
    }

    /// Serves `routes` as the one virtual host of RouteConfiguration
    /// `routes`.
    pub fn set_routes(&self, routes: Vec<route::Route>) {
        self.ads.set_resources(
            type_url(ResourceType::RouteConfiguration),
            vec![any(&resources::route_config("routes", &[TARGET], routes))],
        );
    }

    /// A TestService client over the stack.
    pub fn client(&self) -> TestServiceClient<ClientService> {
        TestServiceClient::with_origin(
            self.stack.service(),
            format!("http://{TARGET}").parse().unwrap(),
        )
    }

    /// RPCs served per backend hostname.
    pub fn served(&self) -> HashMap<String, u64> {
        self.backends
            .iter()
            .map(|b| (b.backend().hostname_str().to_owned(), b.served()))
            .collect()
    }
}

/// One UnaryCall with `headers`: the answering backend's hostname (from
/// the `hostname` response header), or the status. Bounded, so a routing
/// bug fails the test instead of hanging it.
pub async fn unary(
    client: &mut TestServiceClient<ClientService>,
    headers: &[(&'static str, &str)],
) -> Result<String, tonic::Status> {
    let mut req = tonic::Request::new(SimpleRequest::default());
    for (k, v) in headers {
        req.metadata_mut().append(*k, v.parse().unwrap());
    }
    let call = client.unary_call(req);
    let resp = tokio::time::timeout(Duration::from_secs(10), call)
        .await
        .expect("RPC finished within 10 s")?;
    Ok(resp
        .metadata()
        .get("hostname")
        .expect("hostname header")
        .to_str()
        .unwrap()
        .to_owned())
}

/// A weighted route over `(cluster, weight)`.
pub fn weighted(clusters: &[(&str, u32)]) -> route::Route {
    resources::weighted_route(clusters)
}

/// A prefix route to `cluster`.
pub fn prefix(p: &str, cluster: &str) -> route::Route {
    resources::prefix_route(p, cluster)
}

fn route_action(r: &mut route::Route) -> &mut route::RouteAction {
    match r.action.as_mut() {
        Some(route::route::Action::Route(a)) => a,
        _ => unreachable!("a forwarding route"),
    }
}

/// Adds a retry policy on `retry_on` with `num_retries`.
pub fn with_retries(mut r: route::Route, retry_on: &str, num_retries: u32) -> route::Route {
    route_action(&mut r).retry_policy = Some(route::RetryPolicy {
        retry_on: retry_on.into(),
        num_retries: Some(UInt32Value { value: num_retries }),
        ..Default::default()
    });
    r
}

/// Overrides the fault filter on `r`: abort with `code` for `percent`%.
pub fn with_abort(mut r: route::Route, code: Code, percent: u32) -> route::Route {
    let config = fault::HttpFault {
        abort: Some(fault::FaultAbort {
            error_type: Some(fault::fault_abort::ErrorType::GrpcStatus(code as u32)),
            percentage: Some(FractionalPercent {
                numerator: percent,
                denominator: 0,
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    r.typed_per_filter_config
        .insert(FAULT_FILTER.into(), any(&config));
    r
}

#[tokio::test]
async fn traffic_splits_20_80_over_1000_rpcs() {
    let mesh = Mesh::start(&["a", "b"], vec![weighted(&[("c-a", 20), ("c-b", 80)])]).await;
    let mut client = mesh.client();
    let mut by_host: HashMap<String, u32> = HashMap::new();
    for _ in 0..1000 {
        *by_host
            .entry(unary(&mut client, &[]).await.unwrap())
            .or_default() += 1;
    }
    let a = by_host.get("a").copied().unwrap_or(0);
    let b = by_host.get("b").copied().unwrap_or(0);
    assert_eq!(a + b, 1000, "{by_host:?}");
    // 20% ± 5 points.
    assert!((150..=250).contains(&a), "{by_host:?}");
}

#[tokio::test]
async fn fault_abort_percentage_from_a_route_override() {
    let mesh = Mesh::start(
        &["a"],
        vec![with_abort(prefix("/", "c-a"), Code::Aborted, 30)],
    )
    .await;
    let mut client = mesh.client();
    let n = 500;
    let mut aborted = 0;
    for _ in 0..n {
        match unary(&mut client, &[]).await {
            Ok(_) => {}
            Err(s) => {
                assert_eq!(s.code(), Code::Aborted, "{s:?}");
                assert!(s.message().contains("fault injection"), "{s:?}");
                aborted += 1;
            }
        }
    }
    // 30% ± 7 points (over 3 standard deviations at n = 500).
    assert!((115..=185).contains(&aborted), "{aborted} of {n} aborted");
    // Aborted RPCs never reach the backend.
    assert_eq!(mesh.served()["a"], n - aborted);
}

#[tokio::test]
async fn retries_turn_transient_unavailable_into_success() {
    // Each backend fails an RPC's first attempt with UNAVAILABLE and
    // serves the first retry.
    let behavior = [(
        RPC_BEHAVIOR_HEADER,
        "succeed-on-retry-attempt-1,error-code-14",
    )];
    let mesh = Mesh::start(&["a"], vec![prefix("/", "c-a")]).await;
    let mut client = mesh.client();
    let s = unary(&mut client, &behavior).await.unwrap_err();
    assert_eq!(s.code(), Code::Unavailable, "no retry policy: {s:?}");

    mesh.set_routes(vec![with_retries(prefix("/", "c-a"), "unavailable", 2)]);
    let mut ok = false;
    for _ in 0..100 {
        // The new routes arrive asynchronously: poll until they apply.
        if unary(&mut client, &behavior).await.is_ok() {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(ok, "the retry policy never applied");
    for _ in 0..20 {
        assert_eq!(unary(&mut client, &behavior).await.unwrap(), "a");
    }
}

#[tokio::test]
async fn retries_stay_on_the_rpcs_weighted_cluster() {
    let behavior = [(
        RPC_BEHAVIOR_HEADER,
        "succeed-on-retry-attempt-1,error-code-14",
    )];
    let route = with_retries(weighted(&[("c-a", 50), ("c-b", 50)]), "unavailable", 2);
    let mesh = Mesh::start(&["a", "b"], vec![route]).await;
    let mut client = mesh.client();
    let mut answered: HashMap<String, u64> = HashMap::new();
    for _ in 0..100 {
        *answered
            .entry(unary(&mut client, &behavior).await.unwrap())
            .or_default() += 1;
    }
    let served = mesh.served();
    assert!(answered.len() == 2, "both clusters used: {answered:?}");
    for (host, n) in &answered {
        // Each RPC's failed attempt and its retry went to the same cluster.
        assert_eq!(
            served[host],
            2 * n,
            "{host}: served {served:?}, answered {answered:?}"
        );
    }
}
