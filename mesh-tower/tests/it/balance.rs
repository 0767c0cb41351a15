//! Balancing over several loopback backends, through a small stack: a
//! hand-made RouteDecision (with a ring-hash hash from a header), then
//! `Balance` over the endpoint service.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::Request;
use mesh_core::resource::Cluster;
use mesh_core::resource::cluster::{CircuitBreakers, Discovery, LbPolicy};
use mesh_core::resource::endpoint::ClusterLoadAssignment;
use mesh_core::testing::proto::grpc_testing::SimpleRequest;
use mesh_core::testing::proto::grpc_testing::test_service_client::TestServiceClient;
use mesh_core::testing::test_service::{RunningBackend, TestServiceBackend};
use mesh_tower::balance::{Balance, Balancer, LocalityTargets, PriorityTargets};
use mesh_tower::breaker::Breaker;
use mesh_tower::cluster::{ClusterRuntime, EndpointHandle};
use mesh_tower::context::{RouteDecision, RoutePolicy};
use mesh_tower::endpoint::{ConnectivityState, EndpointService};

use super::endpoint::{endpoint, fast_settings};

const USER_HEADER: &str = "x-user";

fn cluster_runtime(name: &str, policy: LbPolicy) -> Arc<ClusterRuntime> {
    let config = Arc::new(Cluster {
        name: name.to_owned(),
        discovery: Discovery::Static(Arc::new(ClusterLoadAssignment {
            cluster_name: name.to_owned(),
            priorities: Vec::new(),
            overprovisioning_factor: 140,
            drop_overloads: Vec::new(),
        })),
        lb_policy: policy,
        circuit_breakers: CircuitBreakers::default(),
        outlier_detection: None,
        tls: None,
        lrs_server: false,
        override_host_status: Default::default(),
        metadata: Default::default(),
        upstream_http: Default::default(),
    });
    Arc::new(ClusterRuntime {
        name: name.into(),
        breaker: Breaker::shared(name, name, &config.circuit_breakers),
        config,
        balancer: Arc::new(Balancer::new(name).with_seed(3)),
    })
}

fn targets(groups: &[&[Arc<EndpointHandle>]]) -> Vec<PriorityTargets> {
    groups
        .iter()
        .map(|g| PriorityTargets {
            localities: vec![LocalityTargets {
                weight: 1,
                endpoints: g.iter().map(|h| (h.clone(), 1)).collect(),
            }],
        })
        .collect()
}

/// Inserts the route decision by hand (hash = XXH64 of the `x-user`
/// header), then balances.
#[derive(Clone)]
struct Svc {
    cluster: Arc<ClusterRuntime>,
    route: Arc<RoutePolicy>,
    inner: Balance<EndpointService>,
}

impl tower::Service<Request<tonic::body::Body>> for Svc {
    type Response = http::Response<hyper::body::Incoming>;
    type Error = mesh_tower::BoxError;
    type Future = mesh_tower::balance::ResponseFuture<mesh_tower::endpoint::ResponseFuture>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<tonic::body::Body>) -> Self::Future {
        let hash = req
            .headers()
            .get(USER_HEADER)
            .map(|v| xxhash_rust::xxh64::xxh64(v.as_bytes(), 0));
        req.extensions_mut().insert(RouteDecision {
            route: Arc::clone(&self.route),
            cluster: Arc::clone(&self.cluster),
            hash,
        });
        self.inner.call(req)
    }
}

fn client(cluster: &Arc<ClusterRuntime>) -> TestServiceClient<Svc> {
    let svc = Svc {
        cluster: Arc::clone(cluster),
        route: Arc::new(RoutePolicy::default()),
        inner: Balance::new(EndpointService),
    };
    TestServiceClient::with_origin(svc, "http://echo.test:7070".parse().unwrap())
}

async fn call(c: &mut TestServiceClient<Svc>, user: Option<&str>) -> Result<String, tonic::Status> {
    let mut req = tonic::Request::new(SimpleRequest {
        fill_server_id: true,
        ..SimpleRequest::default()
    });
    if let Some(u) = user {
        req.metadata_mut().insert(USER_HEADER, u.parse().unwrap());
    }
    c.unary_call(req).await.map(|r| r.into_inner().server_id)
}

async fn backends(n: usize) -> Vec<RunningBackend> {
    let mut v = Vec::new();
    for i in 0..n {
        v.push(
            TestServiceBackend::new(format!("b{i}"))
                .serve()
                .await
                .unwrap(),
        );
    }
    v
}

fn handles(bs: &[RunningBackend]) -> Vec<Arc<EndpointHandle>> {
    bs.iter()
        .map(|b| endpoint(b.local_addr(), fast_settings()))
        .collect()
}

async fn all_ready(hs: &[Arc<EndpointHandle>]) {
    for _ in 0..500 {
        if hs
            .iter()
            .all(|h| h.connection.state() == ConnectivityState::Ready)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("endpoints never became READY");
}

/// Calls until `want` answers, tolerating UNAVAILABLE on the way.
async fn until_served_by(c: &mut TestServiceClient<Svc>, want: &str) {
    for _ in 0..300 {
        match call(c, None).await {
            Ok(id) if id == want => return,
            Ok(_) => {}
            Err(e) => assert_eq!(e.code(), tonic::Code::Unavailable, "{e:?}"),
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("traffic never reached {want}");
}

#[tokio::test]
async fn round_robin_spreads_evenly_over_three_backends() {
    let bs = backends(3).await;
    let hs = handles(&bs);
    let cluster = cluster_runtime("rr", LbPolicy::RoundRobin);
    cluster
        .balancer
        .update(LbPolicy::RoundRobin, targets(&[&hs]));
    // Round robin connects every endpoint eagerly.
    all_ready(&hs).await;
    let mut c = client(&cluster);
    for _ in 0..300 {
        call(&mut c, None).await.unwrap();
    }
    let served: Vec<u64> = bs.iter().map(RunningBackend::served).collect();
    assert_eq!(served, [100, 100, 100]);
}

#[tokio::test]
async fn priority_failover_and_recovery() {
    let bs = backends(2).await;
    let hs = handles(&bs);
    let p0_addr: SocketAddr = bs[0].local_addr();
    let cluster = cluster_runtime("prio", LbPolicy::RoundRobin);
    cluster
        .balancer
        .update(LbPolicy::RoundRobin, targets(&[&hs[..1], &hs[1..]]));
    all_ready(&hs).await;
    let mut c = client(&cluster);
    for _ in 0..20 {
        assert_eq!(call(&mut c, None).await.unwrap(), "b0");
    }

    // Priority 0 dies: traffic moves to priority 1.
    let mut bs = bs.into_iter();
    drop(bs.next());
    let p1 = bs.next().unwrap();
    until_served_by(&mut c, "b1").await;
    for _ in 0..20 {
        assert_eq!(call(&mut c, None).await.unwrap(), "b1");
    }
    assert_ne!(hs[0].connection.state(), ConnectivityState::Ready);

    // Back on the same port: reconnected after the backoff, traffic returns.
    let b0 = TestServiceBackend::new("b0")
        .serve_on(p0_addr)
        .await
        .unwrap();
    until_served_by(&mut c, "b0").await;
    for _ in 0..20 {
        assert_eq!(call(&mut c, None).await.unwrap(), "b0");
    }
    assert!(b0.served() >= 20);
    drop(p1);
}

#[tokio::test]
async fn ring_hash_sticks_on_a_header_and_rehashes_when_its_backend_leaves() {
    let policy = LbPolicy::RingHash {
        min_ring_size: 1024,
        max_ring_size: 8 << 20,
    };
    let bs = backends(3).await;
    let hs = handles(&bs);
    let cluster = cluster_runtime("ring", policy);
    cluster.balancer.update(policy, targets(&[&hs]));
    let mut c = client(&cluster);
    let users: Vec<String> = (0..200).map(|i| format!("user-{i}")).collect();
    let mut first = Vec::new();
    for u in &users {
        // The first call may wait for its endpoint to connect (ring hash
        // connects lazily), then it sticks.
        first.push(call(&mut c, Some(u)).await.unwrap());
    }
    for _ in 0..3 {
        for (u, want) in users.iter().zip(&first) {
            assert_eq!(&call(&mut c, Some(u)).await.unwrap(), want, "{u} moved");
        }
    }
    let used: std::collections::HashSet<&String> = first.iter().collect();
    assert_eq!(used.len(), 3, "200 users spread over all three");

    // Remove the backend of user-0 from the snapshot: its users move. The
    // others mostly stay: A42 rebuilds the ring with more entries per
    // remaining endpoint, which moves about 1/6 of their keys between them.
    let gone = first[0].clone();
    let gone_idx: usize = gone[1..].parse().unwrap();
    let kept: Vec<Arc<EndpointHandle>> = hs
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != gone_idx)
        .map(|(_, h)| h.clone())
        .collect();
    cluster.balancer.update(policy, targets(&[&kept]));
    let before = bs[gone_idx].served();
    let (mut stayed, mut eligible) = (0, 0);
    let mut second = Vec::new();
    for (u, was) in users.iter().zip(&first) {
        let now = call(&mut c, Some(u)).await.unwrap();
        if *was == gone {
            assert_ne!(now, gone, "{u} still on the removed backend");
        } else {
            eligible += 1;
            stayed += usize::from(&now == was);
        }
        second.push(now);
    }
    assert_eq!(bs[gone_idx].served(), before);
    assert!(
        stayed * 10 >= eligible * 6,
        "only {stayed} of {eligible} users kept their backend"
    );
    // And the new mapping is sticky again.
    for (u, want) in users.iter().zip(&second) {
        assert_eq!(&call(&mut c, Some(u)).await.unwrap(), want, "{u} moved");
    }
    // Without the header: a random hash, still only remaining backends.
    for _ in 0..20 {
        assert_ne!(call(&mut c, None).await.unwrap(), gone);
    }
}
