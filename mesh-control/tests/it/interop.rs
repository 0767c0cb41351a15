//! Interop with a real gRPC xDS client: grpcio (Python) reads a bootstrap
//! mesh-control prints, talks ADS to it, and sends RPCs through the
//! config mesh-control translated from Istio YAML to TestService backends
//! on loopback.
//!
//! The Python side comes from [`mesh_core::testing::python`]: pinned
//! grpcio in `target/interop-venv`, generated stubs. When that is
//! impossible the test is skipped loudly, unless `MESH_REQUIRE_PEERS=1`,
//! which makes it fail.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use mesh_control::server::{ControlPlane, RunningControlPlane};
use mesh_core::testing::python::{self, Python};
use mesh_core::testing::test_service::{RunningBackend, TestServiceBackend};
use serde_json::Value;

const HOST: &str = "echo.default.svc.cluster.local";
const PORT: u16 = 7070;

/// Results of one client run.
#[derive(Debug)]
struct Outcome {
    ok: u64,
    by_host: BTreeMap<String, u64>,
    errors: BTreeMap<String, u64>,
}

/// Runs the client with the bootstrap at `bootstrap` (blocking: call it
/// from `spawn_blocking`, the control plane runs on the runtime).
fn client(py: &Python, bootstrap: &Path, rpcs: u32, metadata: &[&str]) -> Outcome {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/xds_client.py");
    let mut cmd = py.script(&script);
    cmd.arg("--target")
        .arg(format!("xds:///{HOST}:{PORT}"))
        .arg("--stubs")
        .arg(&py.stubs)
        .arg("--num-rpcs")
        .arg(rpcs.to_string())
        .env("GRPC_XDS_BOOTSTRAP", bootstrap);
    for m in metadata {
        cmd.arg("--metadata").arg(m);
    }
    let out = python::run(&mut cmd).unwrap_or_else(|e| panic!("python client: {e}"));
    let v: Value = serde_json::from_str(out.trim()).expect("client prints JSON");
    let map = |k: &str| {
        v[k].as_object()
            .unwrap()
            .iter()
            .map(|(k, n)| (k.clone(), n.as_u64().unwrap()))
            .collect()
    };
    Outcome {
        ok: v["ok"].as_u64().unwrap(),
        by_host: map("by_host"),
        errors: map("errors"),
    }
}

/// Three backends: b0 is version v1, b1 and b2 are v2.
fn mesh_yaml(backends: &[RunningBackend], extra: &str) -> String {
    let mut y = format!(
        "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: echo, namespace: default}}
spec:
  hosts: [{HOST}]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{{number: {PORT}, name: grpc, protocol: GRPC}}]
  workloadSelector: {{labels: {{app: echo}}}}
"
    );
    for (i, b) in backends.iter().enumerate() {
        let version = if i == 0 { "v1" } else { "v2" };
        y += &format!(
            "---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: echo-{i}, namespace: default}}
spec:
  address: 127.0.0.1
  ports: {{grpc: {port}}}
  labels: {{app: echo, version: {version}}}
",
            port = b.local_addr().port()
        );
    }
    y += &format!(
        "---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: echo, namespace: default}}
spec:
  host: {HOST}
  subsets:
  - {{name: v1, labels: {{version: v1}}}}
  - {{name: v2, labels: {{version: v2}}}}
"
    );
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
metadata: {{name: echo, namespace: default}}
spec:
  hosts: [{HOST}]
  http:
{http}"
    )
}

/// Applies `yaml` and waits until it is served.
async fn apply(cp: &RunningControlPlane, yaml: &str) {
    let before = cp.snapshot().version;
    cp.apply_yaml(yaml)
        .unwrap_or_else(|e| panic!("config rejected: {e}\n{yaml}"));
    assert!(
        cp.snapshot().version > before,
        "a new config publishes a new snapshot"
    );
}

/// Runs the client until `accept` holds (at most `tries` runs): results
/// converge once every subchannel is connected.
async fn converge(
    py: &Arc<Python>,
    bootstrap: &Path,
    rpcs: u32,
    metadata: &'static [&'static str],
    tries: usize,
    accept: impl Fn(&Outcome) -> bool,
) -> Outcome {
    let mut last = None;
    for _ in 0..tries {
        let (py, b) = (py.clone(), bootstrap.to_owned());
        let o = tokio::task::spawn_blocking(move || client(&py, &b, rpcs, metadata))
            .await
            .unwrap();
        if accept(&o) {
            return o;
        }
        last = Some(o);
    }
    panic!("results never converged: {last:?}");
}

fn share(o: &Outcome, host: &str) -> f64 {
    *o.by_host.get(host).unwrap_or(&0) as f64 * 100.0 / o.ok.max(1) as f64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpcio_client_through_mesh_control() {
    let Some(py) = python::peer_or_skip("grpcio_client_through_mesh_control").await else {
        return;
    };
    let mut backends = Vec::new();
    for i in 0..3 {
        backends.push(
            TestServiceBackend::new(format!("b{i}"))
                .serve()
                .await
                .unwrap(),
        );
    }
    let cp = ControlPlane::builder()
        .listen("127.0.0.1:0".parse().unwrap())
        .config_yaml(mesh_yaml(&backends, ""))
        .start()
        .await
        .expect("control plane starts");
    let dir = tempfile::tempdir().unwrap();
    let bootstrap = dir.path().join("client.json");
    let b = cp.client_bootstrap("sidecar~127.0.0.1~pyclient.default~default.svc.cluster.local");
    std::fs::write(&bootstrap, b.to_json().to_string()).unwrap();

    // Round robin: an even spread over the three.
    let o = converge(&py, &bootstrap, 300, &[], 5, |o| {
        o.ok == 300
            && ["b0", "b1", "b2"]
                .iter()
                .all(|h| (share(o, h) - 33.3).abs() <= 5.0)
    })
    .await;
    eprintln!("round robin: {:?}", o.by_host);

    // 20/80 between subsets.
    let split = virtual_service(
        "  - route:
    - {destination: {host: echo, subset: v1}, weight: 20}
    - {destination: {host: echo, subset: v2}, weight: 80}
",
    );
    apply(&cp, &mesh_yaml(&backends, &split)).await;
    let o = converge(&py, &bootstrap, 1000, &[], 3, |o| {
        o.ok == 1000 && (share(o, "b0") - 20.0).abs() <= 5.0
    })
    .await;
    eprintln!("20/80: {:?}", o.by_host);

    // Header-based routing.
    let headers = virtual_service(
        "  - match: [{headers: {x-canary: {exact: \"yes\"}}}]
    route: [{destination: {host: echo, subset: v1}}]
  - route: [{destination: {host: echo, subset: v2}}]
",
    );
    apply(&cp, &mesh_yaml(&backends, &headers)).await;
    let o = converge(&py, &bootstrap, 50, &["x-canary=yes"], 3, |o| {
        o.by_host.len() == 1
    })
    .await;
    assert_eq!(o.by_host.get("b0"), Some(&50), "{o:?}");
    let o = converge(&py, &bootstrap, 50, &[], 3, |o| o.ok == 50).await;
    assert!(!o.by_host.contains_key("b0"), "{o:?}");

    // Fault abort on half the RPCs.
    let fault = virtual_service(
        "  - fault: {abort: {percentage: {value: 50}, httpStatus: 503}}
    route: [{destination: {host: echo}}]
",
    );
    apply(&cp, &mesh_yaml(&backends, &fault)).await;
    let o = converge(&py, &bootstrap, 1000, &[], 3, |o| {
        let aborted = *o.errors.get("UNAVAILABLE").unwrap_or(&0);
        o.ok + aborted == 1000 && (aborted as f64 / 10.0 - 50.0).abs() <= 5.0
    })
    .await;
    eprintln!("fault abort: ok {} errors {:?}", o.ok, o.errors);

    // grpcio accepted everything mesh-control sent.
    let clients = cp.clients();
    let python: Vec<_> = clients
        .iter()
        .filter(|c| c.node_id.contains("pyclient"))
        .collect();
    assert!(
        !python.is_empty(),
        "the Python clients were seen: {clients:#?}"
    );
    for c in &python {
        assert_eq!(c.nacks, 0, "grpcio NACKed: {:?}", c.last_nack);
    }
    assert!(
        python.iter().any(|c| c.user_agent.contains("Python")),
        "{python:#?}"
    );
    cp.shutdown().await;
}
