//! The Istio YAML of the example: the echo service and the security
//! policies each step adds.

use std::time::{Duration, Instant};

use mesh_control::server::RunningControlPlane;

use crate::common::{BoxError, HOST, PORT};

/// The service, its one workload (echo, running as service account `echo`)
/// and `extra` documents.
pub(crate) fn config(echo_port: u16, extra: &[&str]) -> String {
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
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: echo-1, namespace: default}}
spec:
  address: 127.0.0.1
  ports: {{grpc: {echo_port}}}
  labels: {{app: echo}}
  serviceAccount: echo
"
    );
    for doc in extra {
        y += "---\n";
        y += doc;
    }
    y
}

pub(crate) const STRICT: &str = "apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: default}
spec:
  mtls: {mode: STRICT}
";

pub(crate) const ISTIO_MUTUAL: &str = "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: echo, namespace: default}
spec:
  host: echo.default.svc.cluster.local
  trafficPolicy:
    tls: {mode: ISTIO_MUTUAL}
";

pub(crate) const ALLOW_CLIENT: &str = "apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: echo-callers, namespace: default}
spec:
  selector: {matchLabels: {app: echo}}
  action: ALLOW
  rules:
  - from:
    - source: {principals: [cluster.local/ns/default/sa/client]}
";

pub(crate) const DENY_EMPTY_CALL: &str = "apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: no-empty-call, namespace: default}
spec:
  selector: {matchLabels: {app: echo}}
  action: DENY
  rules:
  - to:
    - operation: {paths: [/grpc.testing.TestService/EmptyCall]}
";

/// Applies `yaml` and waits (at most 5 s) until every connected xDS client
/// has been sent what changed for it; the callers then poll until the
/// outcome converges.
pub(crate) async fn apply(cp: &RunningControlPlane, yaml: &str) -> Result<(), BoxError> {
    cp.apply_yaml(yaml)?;
    let version = cp.snapshot().version;
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        let clients = cp.clients();
        if clients
            .iter()
            .filter(|c| c.connected)
            .all(|c| c.seen_version >= version)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}
