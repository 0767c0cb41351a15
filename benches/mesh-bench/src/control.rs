//! The `control` subcommand: mesh-control in its own process, serving two
//! services over the bench backends, and the client bootstrap file that
//! points at it.
//!
//! - `echo1.bench.svc.cluster.local:7070`: one endpoint, the first backend
//!   (compared with a bare tonic `Channel`);
//! - `echo3.bench.svc.cluster.local:7070`: all backends (compared with
//!   `balance_list`);
//! - with mTLS backends, `echo1-mtls…` and `echo3-mtls…`: the same over
//!   the mTLS backends (service account `echo`), with a DestinationRule
//!   whose `trafficPolicy.tls.mode` is `ISTIO_MUTUAL`, so the clusters carry
//!   istiod's UpstreamTlsContext (certificate provider instance `default`,
//!   SAN `spiffe://cluster.local/ns/bench/sa/echo`).
//!
//! No VirtualService, and no DestinationRule on the plaintext services: the
//! clients get mesh-control's defaults (the same route, retry and cluster
//! layers any service gets), and no fault.
//!
//! Two bootstraps: the plain one, and with the client's certificate
//! directory a second one (`*-mtls.json`) whose `certificate_providers`
//! name it as a `file_watcher` instance `default`, as istio-agent writes it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use mesh_control::ca::{AGENT_REFRESH_INTERVAL, WorkloadCertPaths};
use mesh_control::server::ControlPlane;
use serde::{Deserialize, Serialize};

use crate::BoxError;
use crate::backends::{print_line, wait_for_stdin_eof};

/// The one-endpoint service's host.
pub const HOST_ONE: &str = "echo1.bench.svc.cluster.local";
/// The three-endpoint service's host.
pub const HOST_THREE: &str = "echo3.bench.svc.cluster.local";
/// The one-endpoint mTLS service's host.
pub const HOST_ONE_MTLS: &str = "echo1-mtls.bench.svc.cluster.local";
/// The three-endpoint mTLS service's host.
pub const HOST_THREE_MTLS: &str = "echo3-mtls.bench.svc.cluster.local";
/// The services' port.
pub const PORT: u16 = 7070;
/// The bench client's node id (Istio style, namespace `bench`).
pub const NODE_ID: &str = "sidecar~127.0.0.1~loadclient.bench~bench.svc.cluster.local";

/// What the `control` process prints once it listens.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ControlReady {
    /// Where ADS listens.
    pub addr: SocketAddr,
    /// The client bootstrap file it wrote.
    pub bootstrap: PathBuf,
    /// The bootstrap with the client's certificate provider, if written.
    #[serde(default)]
    pub bootstrap_mtls: Option<PathBuf>,
}

/// The `xds:///` target of a service host.
pub fn target(host: &str) -> String {
    format!("xds:///{host}:{PORT}")
}

/// The Istio YAML: two ServiceEntries with inline loopback endpoints for
/// the plaintext backends and, if `mtls_ports` is not empty, two more for
/// the mTLS backends with their ISTIO_MUTUAL DestinationRules.
pub fn mesh_yaml(backend_ports: &[u16], mtls_ports: &[u16]) -> String {
    let first = |ports: &[u16]| ports[..ports.len().min(1)].to_vec();
    let mut y = service_entry("echo1", HOST_ONE, &first(backend_ports), None);
    y += "---\n";
    y += &service_entry("echo3", HOST_THREE, backend_ports, None);
    if !mtls_ports.is_empty() {
        let sa = Some(crate::certs::SERVER_SA);
        for (name, host, ports) in [
            ("echo1-mtls", HOST_ONE_MTLS, first(mtls_ports)),
            ("echo3-mtls", HOST_THREE_MTLS, mtls_ports.to_vec()),
        ] {
            y += "---\n";
            y += &service_entry(name, host, &ports, sa);
            y += "---\n";
            y += &istio_mutual(name, host);
        }
    }
    y
}

fn istio_mutual(name: &str, host: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: {name}, namespace: bench}}
spec:
  host: {host}
  trafficPolicy:
    tls: {{mode: ISTIO_MUTUAL}}
"
    )
}

fn service_entry(name: &str, host: &str, ports: &[u16], service_account: Option<&str>) -> String {
    let mut y = format!(
        "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: {name}, namespace: bench}}
spec:
  hosts: [{host}]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{{number: {PORT}, name: grpc, protocol: GRPC}}]
  endpoints:
"
    );
    let sa = service_account
        .map(|sa| format!(", serviceAccount: {sa}"))
        .unwrap_or_default();
    for p in ports {
        y += &format!("  - {{address: 127.0.0.1, ports: {{grpc: {p}}}{sa}}}\n");
    }
    y
}

/// What the `control` process serves and writes.
#[derive(Debug, Clone)]
pub struct ControlSpec {
    /// The plaintext backends' ports.
    pub ports: Vec<u16>,
    /// The mTLS backends' ports (none: no mTLS services).
    pub mtls_ports: Vec<u16>,
    /// Where to write the plain client bootstrap.
    pub bootstrap: PathBuf,
    /// The client's certificate files, for the mTLS bootstrap.
    pub client_certs: Option<WorkloadCertPaths>,
    /// Runtime worker threads.
    pub workers: usize,
}

/// The path of the mTLS bootstrap beside `bootstrap`
/// (`bootstrap.json` → `bootstrap-mtls.json`).
pub fn mtls_bootstrap_path(bootstrap: &Path) -> PathBuf {
    let stem = bootstrap
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "bootstrap".into());
    bootstrap.with_file_name(format!("{stem}-mtls.json"))
}

/// `bootstrap` (JSON) with a `certificate_providers` object naming the
/// client's files as `file_watcher` instance `default`.
pub fn with_certificate_providers(
    mut bootstrap: serde_json::Value,
    files: &WorkloadCertPaths,
) -> serde_json::Value {
    bootstrap["certificate_providers"] =
        files.bootstrap_certificate_providers(AGENT_REFRESH_INTERVAL);
    bootstrap
}

/// Runs the control plane on a runtime of `spec.workers` threads, writes
/// the client bootstrap(s), prints [`ControlReady`] and serves until stdin
/// closes.
pub fn run(spec: &ControlSpec) -> Result<(), BoxError> {
    let (backend_ports, bootstrap, workers) = (&spec.ports, &spec.bootstrap, spec.workers);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let cp = ControlPlane::builder()
            .listen("127.0.0.1:0".parse()?)
            .config_yaml(mesh_yaml(backend_ports, &spec.mtls_ports))
            .start()
            .await?;
        let json = cp.client_bootstrap(NODE_ID).to_json();
        if let Some(dir) = bootstrap.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(bootstrap, serde_json::to_string_pretty(&json)?)?;
        let mut bootstrap_mtls = None;
        if let Some(files) = &spec.client_certs {
            let path = mtls_bootstrap_path(bootstrap);
            let json = with_certificate_providers(json, files);
            std::fs::write(&path, serde_json::to_string_pretty(&json)?)?;
            bootstrap_mtls = Some(path);
        }
        let ready = ControlReady {
            addr: cp.local_addr(),
            bootstrap: bootstrap.to_owned(),
            bootstrap_mtls,
        };
        print_line(&serde_json::to_string(&ready)?)?;
        wait_for_stdin_eof().await;
        cp.shutdown().await;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_endpoint_cluster_has_only_the_first_backend() {
        let y = mesh_yaml(&[1001, 1002, 1003], &[]);
        let (one, three) = y.split_once("---\n").unwrap();
        assert!(one.contains("grpc: 1001") && !one.contains("grpc: 1002"));
        assert!(three.contains("grpc: 1001") && three.contains("grpc: 1003"));
        assert!(!y.contains("DestinationRule") && !y.contains("mtls"));
    }

    #[test]
    fn mtls_services_get_istio_mutual_and_the_server_account() {
        let y = mesh_yaml(&[1001, 1002, 1003], &[2001, 2002, 2003]);
        let docs: Vec<&str> = y.split("---\n").collect();
        assert_eq!(docs.len(), 6, "{y}");
        let one = docs[2];
        assert!(
            one.contains(HOST_ONE_MTLS) && one.contains("grpc: 2001"),
            "{one}"
        );
        assert!(!one.contains("grpc: 2002") && one.contains("serviceAccount: echo"));
        assert!(docs[3].contains(&format!("host: {HOST_ONE_MTLS}")));
        assert!(docs[3].contains("mode: ISTIO_MUTUAL"));
        assert!(docs[4].contains("grpc: 2003") && docs[5].contains(HOST_THREE_MTLS));
    }

    #[test]
    fn mtls_bootstrap_names_the_client_files() {
        assert_eq!(
            mtls_bootstrap_path(Path::new("/x/bootstrap.json")),
            Path::new("/x/bootstrap-mtls.json")
        );
        let files = WorkloadCertPaths::in_dir("/certs/client");
        let b = with_certificate_providers(serde_json::json!({"node": {}}), &files);
        let p = &b["certificate_providers"]["default"];
        assert_eq!(p["plugin_name"], "file_watcher");
        assert_eq!(
            p["config"]["certificate_file"],
            "/certs/client/cert-chain.pem"
        );
        assert_eq!(
            p["config"]["ca_certificate_file"],
            "/certs/client/root-cert.pem"
        );
    }

    #[tokio::test]
    async fn control_plane_accepts_the_yaml() {
        let cp = ControlPlane::builder()
            .listen("127.0.0.1:0".parse().unwrap())
            .config_yaml(mesh_yaml(&[1001, 1002, 1003], &[2001, 2002, 2003]))
            .start()
            .await
            .unwrap();
        assert_eq!(cp.last_error(), None);
        cp.shutdown().await;
    }
}
