//! A smaller set of cases through mesh-control: the same client, configured
//! from Istio YAML (ServiceEntry, WorkloadEntry, DestinationRule,
//! VirtualService) instead of raw resources.

use std::time::Duration;

use mesh_control::server::{ControlPlane, RunningControlPlane};
use mesh_tonic::interop_client::RpcType;
use tonic::Code;

use super::{Backends, Client, completed, converge, count, delta, method_stats, peer};

const HOST: &str = "echo.interop.svc.cluster.local";
const PORT: u16 = 7070;

/// The service with `v1` backends and `v2` backends, then `extra` documents.
fn mesh_yaml(v1: &Backends, v2: &Backends, extra: &str) -> String {
    let mut y = format!(
        "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: echo, namespace: interop}}
spec:
  hosts: [{HOST}]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{{number: {PORT}, name: grpc, protocol: GRPC}}]
  workloadSelector: {{labels: {{app: echo}}}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: echo, namespace: interop}}
spec:
  host: {HOST}
  subsets:
  - {{name: v1, labels: {{version: v1}}}}
  - {{name: v2, labels: {{version: v2}}}}
"
    );
    for (version, backends) in [("v1", v1), ("v2", v2)] {
        for (i, addr) in backends.addrs.iter().enumerate() {
            y += &format!(
                "---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: echo-{version}-{i}, namespace: interop}}
spec:
  address: {ip}
  ports: {{grpc: {port}}}
  labels: {{app: echo, version: {version}}}
",
                ip = addr.ip(),
                port = addr.port()
            );
        }
    }
    if !extra.is_empty() {
        y += "---\n";
        y += extra;
    }
    y
}

fn virtual_service(http: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: echo, namespace: interop}}
spec:
  hosts: [{HOST}]
  http:
{http}"
    )
}

struct Setup {
    v1: Backends,
    v2: Backends,
    cp: RunningControlPlane,
    client: Client,
}

async fn setup(v1: usize, v2: usize, vs: &str) -> Setup {
    let v1 = Backends::start("mc-v1", v1).await;
    let v2 = Backends::start("mc-v2", v2).await;
    let cp = ControlPlane::builder()
        .config_yaml(mesh_yaml(&v1, &v2, vs))
        .listen("127.0.0.1:0".parse().unwrap())
        .watch_files(false)
        .start()
        .await
        .expect("mesh-control starts");
    let bootstrap = cp.client_bootstrap("xds-interop-client");
    let client = Client::start_with(&bootstrap, |c| {
        c.server = format!("xds:///{HOST}:{PORT}");
    })
    .await;
    Setup { v1, v2, cp, client }
}

fn apply(s: &Setup, vs: &str) {
    s.cp.apply_yaml(&mesh_yaml(&s.v1, &s.v2, vs))
        .unwrap_or_else(|e| panic!("config rejected: {e}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mesh_control_ping_pong() {
    let s = setup(2, 2, "").await;
    let mut all = s.v1.names();
    all.extend(s.v2.names());
    s.client.wait_all_reached(&all).await;
    let r = s.client.stats(100, 30).await;
    assert_eq!(r.num_failures, 0, "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mesh_control_traffic_splitting() {
    let only_v1 = virtual_service(&format!(
        "  - route:\n    - destination: {{host: {HOST}, subset: v1}}\n"
    ));
    let s = setup(1, 1, &only_v1).await;
    s.client.wait_all_reached(&s.v1.names()).await;
    let r = s.client.stats(200, 30).await;
    assert_eq!(peer(&r, &s.v1.name(0)), 200, "{r:?}");

    apply(
        &s,
        &virtual_service(&format!(
            "  - route:
    - {{destination: {{host: {HOST}, subset: v1}}, weight: 20}}
    - {{destination: {{host: {HOST}, subset: v2}}, weight: 80}}
"
        )),
    );
    s.client
        .wait_all_reached(&[s.v1.name(0), s.v2.name(0)])
        .await;
    let r = s.client.stats(1000, 60).await;
    let total = r.rpcs_by_peer.values().sum::<i32>();
    assert!(total >= 990, "{r:?}");
    let share = f64::from(peer(&r, &s.v1.name(0))) * 100.0 / f64::from(total);
    assert!((15.0..=25.0).contains(&share), "v1 got {share:.1}%: {r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mesh_control_fault_injection() {
    let s = setup(1, 0, "").await;
    s.client.wait_all_reached(&s.v1.names()).await;
    apply(
        &s,
        &virtual_service(&format!(
            "  - route:
    - destination: {{host: {HOST}}}
    fault:
      abort: {{grpcStatus: UNAVAILABLE, percentage: {{value: 50}}}}
"
        )),
    );
    // About half fail UNAVAILABLE, the rest succeed.
    let m = converge(
        "abort 50%",
        || async {
            let c = &s.client;
            let before = method_stats(&c.accumulated().await, RpcType::UnaryCall);
            tokio::time::sleep(Duration::from_secs(3)).await;
            delta(
                &method_stats(&c.accumulated().await, RpcType::UnaryCall),
                &before,
            )
        },
        |m| {
            let share =
                f64::from(count(m, Code::Unavailable)) * 100.0 / f64::from(completed(m).max(1));
            completed(m) >= 250 && (40.0..=60.0).contains(&share)
        },
    )
    .await;
    assert_eq!(
        count(&m, Code::Ok) + count(&m, Code::Unavailable),
        completed(&m),
        "{m:?}"
    );
}
