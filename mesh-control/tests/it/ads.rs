//! The ADS server against mesh-core's xDS client (and a raw ADS stream
//! where the exact responses matter), over real loopback sockets, fed
//! hand-built snapshots.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::config::listener::v3 as listener;
use envoy_types::pb::envoy::config::route::v3 as route;
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3 as hcm;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use mesh_control::ads::ClientStatus;
use mesh_control::health::HealthCheckConfig;
use mesh_control::server::{ControlPlane, RunningControlPlane};
use mesh_control::snapshot::{InboundListener, SnapshotResource, XdsSnapshot};
use mesh_core::resource::ResourceType;
use mesh_core::testing::resources as fx;
use mesh_core::testing::test_service::TestServiceBackend;
use mesh_core::watch::{ClientConfig, watch_target};
use mesh_core::xds::XdsClient;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

const LDS: ResourceType = ResourceType::Listener;
const CDS: ResourceType = ResourceType::Cluster;
const EDS: ResourceType = ResourceType::ClusterLoadAssignment;
const WAIT: Duration = Duration::from_secs(10);

/// A snapshot with, per service `name`: Listener `name` → RDS `name` →
/// Cluster `name` → EDS `name` with `addrs`.
pub(crate) fn services(list: &[(&str, &[SocketAddr])]) -> XdsSnapshot {
    let mut s = XdsSnapshot::default();
    for (name, addrs) in list {
        put(&mut s, LDS, name, fx::any(&fx::client_listener(name, name)));
        let rc = fx::route_config(name, &["*"], vec![fx::prefix_route("", name)]);
        put(&mut s, ResourceType::RouteConfiguration, name, fx::any(&rc));
        put(&mut s, CDS, name, fx::any(&fx::eds_cluster(name, "")));
        put(&mut s, EDS, name, fx::any(&fx::endpoints(name, addrs)));
    }
    s
}

pub(crate) fn put(
    s: &mut XdsSnapshot,
    kind: ResourceType,
    name: &str,
    any: envoy_types::pb::google::protobuf::Any,
) {
    s.resources
        .entry(kind)
        .or_default()
        .insert(name.to_owned(), SnapshotResource::new(any));
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

async fn start() -> RunningControlPlane {
    ControlPlane::builder()
        .listen(addr(0))
        .start()
        .await
        .expect("control plane starts")
}

fn endpoints_of(cfg: &ClientConfig, cluster: &str) -> Vec<SocketAddr> {
    let c = cfg.cluster(cluster).unwrap().as_ref().unwrap();
    c.endpoints
        .priorities
        .iter()
        .flat_map(|p| &p.localities)
        .flat_map(|l| &l.endpoints)
        .map(|e| e.address)
        .collect()
}

/// Polls the control plane's client table until `pred` holds for the
/// client `node`; returns that status.
pub(crate) async fn wait_client(
    cp: &RunningControlPlane,
    node: &str,
    mut pred: impl FnMut(&ClientStatus) -> bool,
) -> ClientStatus {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let found = cp.clients().into_iter().find(|c| c.node_id == node);
        if let Some(c) = found.as_ref().filter(|c| pred(c)) {
            return c.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "client {node} never reached the expected state: {found:#?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits until `watch` publishes a config whose `cluster` has `want`.
async fn wait_endpoints(
    watch: &mut mesh_core::watch::TargetWatch,
    cluster: &str,
    want: &[SocketAddr],
) {
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut state = watch.current();
    loop {
        let got = match &state {
            Some(Ok(cfg)) => endpoints_of(cfg, cluster),
            _ => Vec::new(),
        };
        if got == want {
            return;
        }
        state = tokio::time::timeout_at(deadline, watch.changed())
            .await
            .unwrap_or_else(|_| panic!("{cluster}: endpoints stayed {got:?}, want {want:?}"));
    }
}

fn acked_all(c: &ClientStatus, version: u64) -> bool {
    let v = version.to_string();
    [LDS, ResourceType::RouteConfiguration, CDS, EDS]
        .iter()
        .all(|k| c.acked.get(k) == Some(&v))
}

#[tokio::test]
async fn change_is_pushed_and_acked() {
    let cp = start().await;
    cp.set_snapshot(services(&[("echo", &[addr(1001)])]));
    let client = XdsClient::new(&cp.client_bootstrap("c1"));
    let mut w = watch_target(&client, "echo", "echo");
    wait_endpoints(&mut w, "echo", &[addr(1001)]).await;
    wait_client(&cp, "c1", |c| acked_all(c, 1)).await;

    cp.set_snapshot(services(&[("echo", &[addr(1001), addr(1002)])]));
    wait_endpoints(&mut w, "echo", &[addr(1001), addr(1002)]).await;
    let c = wait_client(&cp, "c1", |c| {
        c.acked.get(&EDS).map(String::as_str) == Some("2")
    })
    .await;
    assert_eq!(
        c.acked[&LDS], "1",
        "only EDS changed, so only EDS was resent"
    );
    assert_eq!(c.responses_of(LDS), 1);
    assert_eq!(c.responses_of(EDS), 2);
    assert!(c.last_nack.is_none());
}

#[tokio::test]
async fn only_clients_watching_a_change_are_notified() {
    let cp = start().await;
    cp.set_snapshot(services(&[("a", &[addr(1001)]), ("b", &[addr(2001)])]));
    let ca = XdsClient::new(&cp.client_bootstrap("client-a"));
    let cb = XdsClient::new(&cp.client_bootstrap("client-b"));
    let mut wa = watch_target(&ca, "a", "a");
    let mut wb = watch_target(&cb, "b", "b");
    wait_endpoints(&mut wa, "a", &[addr(1001)]).await;
    wait_endpoints(&mut wb, "b", &[addr(2001)]).await;
    let b_before = wait_client(&cp, "client-b", |c| acked_all(c, 1)).await;
    wait_client(&cp, "client-a", |c| acked_all(c, 1)).await;

    cp.set_snapshot(services(&[("a", &[addr(1002)]), ("b", &[addr(2001)])]));
    wait_endpoints(&mut wa, "a", &[addr(1002)]).await;
    wait_client(&cp, "client-a", |c| {
        c.acked.get(&EDS).map(String::as_str) == Some("2")
    })
    .await;
    // Once b's session has looked at version 2, it must have sent nothing.
    let b_after = wait_client(&cp, "client-b", |c| c.seen_version == 2).await;
    assert_eq!(
        b_after.responses, b_before.responses,
        "client b got a response"
    );
    assert_eq!(b_after.acked, b_before.acked);
}

#[tokio::test]
async fn complete_cds_keeps_unchanged_clusters() {
    let cp = start().await;
    cp.set_snapshot(services(&[("a", &[addr(1001)]), ("b", &[addr(2001)])]));
    let client = XdsClient::new(&cp.client_bootstrap("c"));
    let mut wa = watch_target(&client, "a", "a");
    let mut wb = watch_target(&client, "b", "b");
    wait_endpoints(&mut wa, "a", &[addr(1001)]).await;
    wait_endpoints(&mut wb, "b", &[addr(2001)]).await;
    // Change cluster a only: a partial CDS response would delete b.
    let mut next = services(&[("a", &[addr(1001)]), ("b", &[addr(2001)])]);
    let mut ca = fx::eds_cluster("a", "");
    ca.connect_timeout = Some(envoy_types::pb::google::protobuf::Duration {
        seconds: 3,
        nanos: 0,
    });
    put(&mut next, CDS, "a", fx::any(&ca));
    cp.set_snapshot(next);
    wait_client(&cp, "c", |c| {
        c.acked.get(&CDS).map(String::as_str) == Some("2")
    })
    .await;
    let status = client.status().await;
    let b = status.resource(CDS, "b").expect("b subscribed");
    assert!(b.raw.is_some(), "cluster b still cached: {:?}", b.status);
    assert!(
        matches!(wb.current(), Some(Ok(_))),
        "target b still resolves"
    );
}

/// A raw ADS stream, for checking the exact responses.
struct RawStream {
    tx: mpsc::Sender<DiscoveryRequest>,
    rx: tonic::Streaming<DiscoveryResponse>,
}

impl RawStream {
    async fn open(cp: &RunningControlPlane) -> Self {
        let mut client =
            AggregatedDiscoveryServiceClient::connect(format!("http://{}", cp.local_addr()))
                .await
                .unwrap();
        let (tx, rx) = mpsc::channel(8);
        let rx = client
            .stream_aggregated_resources(ReceiverStream::new(rx))
            .await
            .unwrap()
            .into_inner();
        RawStream { tx, rx }
    }

    async fn send(&self, kind: ResourceType, names: &[&str], nonce: &str) {
        let req = DiscoveryRequest {
            type_url: kind.type_url().into(),
            resource_names: names.iter().map(|n| (*n).to_owned()).collect(),
            response_nonce: nonce.into(),
            node: Some(Node {
                id: "raw".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        self.tx.send(req).await.unwrap();
    }

    async fn recv(&mut self) -> DiscoveryResponse {
        tokio::time::timeout(WAIT, self.rx.message())
            .await
            .expect("a response in time")
            .unwrap()
            .expect("stream open")
    }
}

fn names_in(r: &DiscoveryResponse) -> Vec<String> {
    #[derive(Clone, PartialEq, prost::Message)]
    struct Named {
        #[prost(string, tag = "1")]
        name: String,
    }
    r.resources
        .iter()
        .map(|a| {
            <Named as prost::Message>::decode(a.value.as_slice())
                .unwrap()
                .name
        })
        .collect()
}

#[tokio::test]
async fn lds_cds_complete_rds_eds_changed_only() {
    let cp = start().await;
    cp.set_snapshot(services(&[("a", &[addr(1001)]), ("b", &[addr(2001)])]));
    let mut s = RawStream::open(&cp).await;
    s.send(CDS, &["a", "b", "missing"], "").await;
    let r = s.recv().await;
    assert_eq!(
        (r.version_info.as_str(), names_in(&r)),
        ("1", vec!["a".into(), "b".into()])
    );
    s.send(CDS, &["a", "b", "missing"], &r.nonce).await;
    s.send(EDS, &["a", "b"], "").await;
    let e = s.recv().await;
    assert_eq!(names_in(&e), ["a", "b"]);
    s.send(EDS, &["a", "b"], &e.nonce).await;

    let mut next = services(&[("a", &[addr(1002)]), ("b", &[addr(2001)])]);
    put(&mut next, CDS, "a", fx::any(&fx::eds_cluster("a", "a-v2")));
    cp.set_snapshot(next);
    let r = s.recv().await;
    assert_eq!(r.type_url, CDS.type_url(), "clusters first");
    assert_eq!(
        (r.version_info.as_str(), names_in(&r)),
        ("2", vec!["a".into(), "b".into()])
    );
    let e = s.recv().await;
    assert_eq!(e.type_url, EDS.type_url());
    assert_eq!(names_in(&e), ["a"], "EDS carries only the changed one");

    // Delta is not served.
    let mut client =
        AggregatedDiscoveryServiceClient::connect(format!("http://{}", cp.local_addr()))
            .await
            .unwrap();
    let err = client
        .delta_aggregated_resources(tokio_stream::empty())
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unimplemented);
}

#[tokio::test]
async fn nack_is_logged_and_recorded_then_fixed() {
    let cp = start().await;
    let mut bad = services(&[("echo", &[addr(1001)])]);
    // A client listener whose HCM has no http_filters: mesh-core NACKs it.
    let mut l = fx::client_listener("echo", "echo");
    let mut manager: hcm::HttpConnectionManager = prost::Message::decode(
        l.api_listener
            .as_ref()
            .unwrap()
            .api_listener
            .as_ref()
            .unwrap()
            .value
            .as_slice(),
    )
    .unwrap();
    manager.http_filters.clear();
    l.api_listener = Some(listener::ApiListener {
        api_listener: Some(fx::any(&manager)),
    });
    put(&mut bad, LDS, "echo", fx::any(&l));
    cp.set_snapshot(bad);

    let client = XdsClient::new(&cp.client_bootstrap("nacker"));
    let mut w = watch_target(&client, "echo", "echo");
    let c = wait_client(&cp, "nacker", |c| c.last_nack.is_some()).await;
    let nack = c.last_nack.unwrap();
    assert_eq!(nack.kind, LDS);
    assert_eq!(nack.accepted_version, "", "nothing accepted yet");
    assert!(
        nack.error_detail.contains("http_filters"),
        "{}",
        nack.error_detail
    );
    assert_eq!(c.nacks, 1);
    assert!(!c.acked.contains_key(&LDS));

    cp.set_snapshot(services(&[("echo", &[addr(1001)])]));
    wait_endpoints(&mut w, "echo", &[addr(1001)]).await;
    let c = wait_client(&cp, "nacker", |c| {
        c.acked.get(&LDS).map(String::as_str) == Some("2")
    })
    .await;
    assert_eq!(c.nacks, 1, "the NACK stays on record");
}

/// An istiod-shaped inbound listener (plaintext chain, inline routes).
fn inbound_listener(at: SocketAddr) -> listener::Listener {
    let rc = route::RouteConfiguration {
        name: "inbound".into(),
        virtual_hosts: vec![route::VirtualHost {
            name: "inbound".into(),
            domains: vec!["*".into()],
            routes: vec![route::Route {
                r#match: Some(route::RouteMatch {
                    path_specifier: Some(route::route_match::PathSpecifier::Prefix("/".into())),
                    ..Default::default()
                }),
                action: Some(route::route::Action::NonForwardingAction(Default::default())),
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    };
    let manager = hcm::HttpConnectionManager {
        stat_prefix: "inbound".into(),
        route_specifier: Some(hcm::http_connection_manager::RouteSpecifier::RouteConfig(
            rc,
        )),
        http_filters: vec![fx::http_filter(
            "envoy.filters.http.router",
            &Router::default(),
        )],
        ..Default::default()
    };
    listener::Listener {
        address: Some(fx::socket_address(at)),
        filter_chains: vec![listener::FilterChain {
            name: "inbound-plaintext".into(),
            filters: vec![listener::Filter {
                name: "envoy.filters.network.http_connection_manager".into(),
                config_type: Some(listener::filter::ConfigType::TypedConfig(fx::any(&manager))),
            }],
            ..Default::default()
        }],
        ..Default::default()
    }
}

#[tokio::test]
async fn server_node_gets_its_inbound_listener() {
    let cp = start().await;
    let mut snap = XdsSnapshot::default();
    snap.inbound.insert(
        ("127.0.0.1".parse().unwrap(), 7070),
        InboundListener {
            listener: inbound_listener(addr(7070)),
        },
    );
    cp.set_snapshot(snap);
    let labels = BTreeMap::from([("app".to_owned(), "echo".to_owned())]);
    let b = cp.server_bootstrap("127.0.0.1".parse().unwrap(), "default", &labels);
    let name = b.server_listener_name("0.0.0.0:7070").unwrap();
    let client = XdsClient::new(&b);
    let mut w = client.watch(LDS, name.clone());
    let u = tokio::time::timeout(WAIT, w.resolved()).await.unwrap();
    assert!(u.is_resolved());
    let c = wait_client(&cp, &b.node.id, |c| c.acked.contains_key(&LDS)).await;
    assert!(c.subscriptions[&LDS].names.contains(&name));
    assert!(c.last_nack.is_none(), "{:?}", c.last_nack);
    // Another port has no listener: the complete LDS response without it
    // tells the client at once that it does not exist.
    let other = Arc::new(b.server_listener_name("0.0.0.0:9999").unwrap());
    let mut w2 = client.watch(LDS, other.as_str());
    let u = tokio::time::timeout(WAIT, w2.resolved()).await.unwrap();
    assert!(u.error.is_some(), "does not exist: {u:?}");
    let c = wait_client(&cp, &b.node.id, |c| {
        c.subscriptions[&LDS].names.contains(other.as_str())
    })
    .await;
    assert_eq!(c.responses_of(LDS), 2);
    assert!(w.current().data.is_some(), "the existing listener stays");
}

#[tokio::test]
async fn shutdown_ends_streams() {
    let cp = start().await;
    cp.set_snapshot(services(&[("echo", &[addr(1001)])]));
    let mut s = RawStream::open(&cp).await;
    s.send(LDS, &["echo"], "").await;
    s.recv().await;
    cp.shutdown().await;
    let end = tokio::time::timeout(WAIT, s.rx.message()).await.unwrap();
    match end {
        Err(status) => assert_eq!(status.code(), tonic::Code::Unavailable),
        Ok(m) => panic!("expected UNAVAILABLE, got {m:?}"),
    }
}

/// A service with one WorkloadEntry per address.
fn mesh_yaml(ports: &[u16]) -> String {
    let mut y = "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: echo, namespace: default}
spec:
  hosts: [echo.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 7070, name: grpc, protocol: GRPC}]
  workloadSelector: {labels: {app: echo}}
"
    .to_owned();
    for (i, p) in ports.iter().enumerate() {
        y += &format!(
            "---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: echo-{i}, namespace: default}}
spec:
  address: 127.0.0.1
  ports: {{grpc: {p}}}
  labels: {{app: echo}}
"
        );
    }
    y
}

/// Endpoint addresses and health statuses in the served EDS.
fn served_endpoints(cp: &RunningControlPlane) -> Vec<(SocketAddr, i32)> {
    use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
    let snap = cp.snapshot();
    let mut out = Vec::new();
    for r in snap
        .resources
        .get(&EDS)
        .into_iter()
        .flat_map(|m| m.values())
    {
        let cla: ClusterLoadAssignment = prost::Message::decode(r.any.value.as_slice()).unwrap();
        let s = mesh_core::resource::decode::<mesh_core::resource::ClusterLoadAssignment>(&r.any)
            .unwrap()
            .1;
        for (ep, wire) in s
            .priorities
            .iter()
            .flat_map(|p| &p.localities)
            .flat_map(|l| &l.endpoints)
            .zip(cla.endpoints.iter().flat_map(|l| &l.lb_endpoints))
        {
            out.push((ep.address, wire.health_status));
        }
    }
    out.sort();
    out.dedup();
    out
}

async fn poll(what: &str, mut pred: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !pred() {
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn config_file_hot_reload_keeps_last_good() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mesh.yaml");
    std::fs::write(&file, mesh_yaml(&[1001])).unwrap();
    let cp = ControlPlane::builder()
        .listen(addr(0))
        .config_path(dir.path())
        .debounce(Duration::from_millis(50))
        .start()
        .await
        .unwrap();
    assert_eq!(
        served_endpoints(&cp)
            .iter()
            .map(|e| e.0)
            .collect::<Vec<_>>(),
        [addr(1001)]
    );
    let v1 = cp.snapshot().version;

    std::fs::write(&file, "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: x}\nspec: {address: not-an-ip}\n").unwrap();
    poll("the bad config is reported", || cp.last_error().is_some()).await;
    let err = cp.last_error().unwrap();
    assert!(err.contains("mesh.yaml"), "the error names the file: {err}");
    assert_eq!(cp.snapshot().version, v1, "the last good config stays");

    std::fs::write(&file, mesh_yaml(&[1001, 1002])).unwrap();
    poll("the fixed config is served", || {
        served_endpoints(&cp).len() == 2
    })
    .await;
    assert!(cp.snapshot().version > v1);
    assert_eq!(cp.last_error(), None);
}

#[tokio::test]
async fn apply_yaml_rejects_bad_config() {
    let cp = ControlPlane::builder()
        .listen(addr(0))
        .config_yaml(mesh_yaml(&[1001]))
        .start()
        .await
        .unwrap();
    let v = cp.snapshot().version;
    let err = cp.apply_yaml("kind: WorkloadEntry\napiVersion: networking.istio.io/v1\nmetadata: {name: x}\nspec: {address: nope}\n").unwrap_err();
    assert!(!err.errors().is_empty());
    assert_eq!(cp.snapshot().version, v);
    assert!(cp.last_error().is_some());
    cp.apply_yaml(&mesh_yaml(&[1001, 1002])).unwrap();
    assert_eq!(cp.snapshot().version, v + 1);
    assert_eq!(cp.last_error(), None);
    // The same config again publishes nothing new.
    cp.apply_yaml(&mesh_yaml(&[1001, 1002])).unwrap();
    assert_eq!(cp.snapshot().version, v + 1);
}

#[tokio::test]
async fn health_checks_take_dead_endpoints_out_and_back() {
    use envoy_types::pb::envoy::config::core::v3::HealthStatus;
    let a = TestServiceBackend::new("a").serve().await.unwrap();
    let b = TestServiceBackend::new("b").serve().await.unwrap();
    let yaml = mesh_yaml(&[a.local_addr().port(), b.local_addr().port()]);
    let cp = ControlPlane::builder()
        .listen(addr(0))
        .config_yaml(yaml)
        .health_check_config(HealthCheckConfig::with_interval(Duration::from_millis(50)))
        .start()
        .await
        .unwrap();
    let unhealthy = HealthStatus::Unhealthy as i32;
    let status_of = |cp: &RunningControlPlane, at: SocketAddr| {
        served_endpoints(cp)
            .into_iter()
            .find(|e| e.0 == at)
            .map(|e| e.1)
    };
    assert_ne!(status_of(&cp, b.local_addr()), Some(unhealthy));
    b.set_serving(false).await;
    poll("b marked UNHEALTHY", || {
        status_of(&cp, b.local_addr()) == Some(unhealthy)
    })
    .await;
    assert_ne!(
        status_of(&cp, a.local_addr()),
        Some(unhealthy),
        "a untouched"
    );
    b.set_serving(true).await;
    poll("b back", || {
        status_of(&cp, b.local_addr()).is_some_and(|s| s != unhealthy)
    })
    .await;
}
