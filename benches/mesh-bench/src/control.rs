//! The `control` subcommand: mesh-control in its own process, serving two
//! services over the bench backends, and the client bootstrap file that
//! points at it.
//!
//! - `echo1.bench.svc.cluster.local:7070`: one endpoint, the first backend
//!   (compared with a bare tonic `Channel`);
//! - `echo3.bench.svc.cluster.local:7070`: all backends (compared with
//!   `balance_list`).
//!
//! No VirtualService or DestinationRule: the clients get mesh-control's
//! defaults (the same route, retry and cluster layers any service gets),
//! and no fault.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use mesh_control::server::ControlPlane;
use serde::{Deserialize, Serialize};

use crate::BoxError;
use crate::backends::{print_line, wait_for_stdin_eof};

/// The one-endpoint service's host.
pub const HOST_ONE: &str = "echo1.bench.svc.cluster.local";
/// The three-endpoint service's host.
pub const HOST_THREE: &str = "echo3.bench.svc.cluster.local";
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
}

/// The `xds:///` target of a service host.
pub fn target(host: &str) -> String {
    format!("xds:///{host}:{PORT}")
}

/// The Istio YAML: two ServiceEntries with inline loopback endpoints.
pub fn mesh_yaml(backend_ports: &[u16]) -> String {
    let one = &backend_ports[..backend_ports.len().min(1)];
    let mut y = service_entry("echo1", HOST_ONE, one);
    y += "---\n";
    y += &service_entry("echo3", HOST_THREE, backend_ports);
    y
}

fn service_entry(name: &str, host: &str, ports: &[u16]) -> String {
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
    for p in ports {
        y += &format!("  - {{address: 127.0.0.1, ports: {{grpc: {p}}}}}\n");
    }
    y
}

/// Runs the control plane for `backend_ports` on a runtime of `workers`
/// threads, writes the client bootstrap to `bootstrap`, prints
/// [`ControlReady`] and serves until stdin closes.
pub fn run(backend_ports: &[u16], bootstrap: &Path, workers: usize) -> Result<(), BoxError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let cp = ControlPlane::builder()
            .listen("127.0.0.1:0".parse()?)
            .config_yaml(mesh_yaml(backend_ports))
            .start()
            .await?;
        let json = cp.client_bootstrap(NODE_ID).to_json();
        if let Some(dir) = bootstrap.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(bootstrap, serde_json::to_string_pretty(&json)?)?;
        let ready = ControlReady {
            addr: cp.local_addr(),
            bootstrap: bootstrap.to_owned(),
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
        let y = mesh_yaml(&[1001, 1002, 1003]);
        let (one, three) = y.split_once("---\n").unwrap();
        assert!(one.contains("grpc: 1001") && !one.contains("grpc: 1002"));
        assert!(three.contains("grpc: 1001") && three.contains("grpc: 1003"));
    }

    #[tokio::test]
    async fn control_plane_accepts_the_yaml() {
        let cp = ControlPlane::builder()
            .listen("127.0.0.1:0".parse().unwrap())
            .config_yaml(mesh_yaml(&[1001, 1002, 1003]))
            .start()
            .await
            .unwrap();
        assert_eq!(cp.last_error(), None);
        cp.shutdown().await;
    }
}
