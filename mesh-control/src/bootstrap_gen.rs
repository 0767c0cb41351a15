//! Ready-to-use gRPC xDS bootstraps for nodes of a local mesh: a client
//! node and an xDS-enabled server node, shaped as istio-agent writes them
//! (Istio-style node id, `GENERATOR=grpc`, `NAMESPACE`, `INSTANCE_IPS`,
//! `LABELS`, the inbound listener template), pointing at mesh-control.
//!
//! The bootstraps use plaintext xDS. [`with_mesh_ca`] adds the certificate
//! providers a workload needs for mTLS when its certificate comes from
//! mesh-control's CA; nothing here issues certificates or writes the files
//! those providers read (see `ca::cli`).

use std::collections::BTreeMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use mesh_core::bootstrap::{
    Bootstrap, BootstrapBuilder, BootstrapError, CertificateProviderConfig, FileWatcher, MeshCa,
};
use serde_json::{Map, Value};

use crate::ca::AGENT_REFRESH_INTERVAL;
use crate::ca::server::SERVER_NAME;
use crate::snapshot::ISTIO_INBOUND_PREFIX;

/// The namespace nodes are given when none is named.
pub const DEFAULT_NAMESPACE: &str = "default";

/// The server listener name template istio-agent's bootstrap carries.
pub fn istio_server_template() -> String {
    format!("{ISTIO_INBOUND_PREFIX}%s")
}

/// An Istio-style node id: `sidecar~IP~POD.NS~NS.svc.cluster.local`.
pub fn istio_node_id(ip: IpAddr, pod: &str, namespace: &str) -> String {
    format!("sidecar~{ip}~{pod}.{namespace}~{namespace}.svc.cluster.local")
}

fn base(xds: SocketAddr, node_id: &str, namespace: &str) -> BootstrapBuilder {
    Bootstrap::builder()
        .xds_server(xds.to_string())
        .node_id(node_id)
        .node_metadata("GENERATOR", "grpc")
        .node_metadata("NAMESPACE", namespace)
}

/// A client node's bootstrap. `node_id` is taken as given; an Istio-style
/// id (see [`istio_node_id`]) also gives the node its namespace.
pub fn client_bootstrap(xds: SocketAddr, node_id: &str) -> Bootstrap {
    let namespace = crate::ads::node_info(Some(&envoy_types::pb::envoy::config::core::v3::Node {
        id: node_id.to_owned(),
        ..Default::default()
    }))
    .namespace
    .unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned());
    base(xds, node_id, &namespace)
        .build()
        .expect("a bootstrap built from a socket address is valid")
}

/// A server node's bootstrap: the workload at `ip` in `namespace` with
/// `labels` (its pod name is the `app` label, else `server`), and the
/// inbound listener template, so an xDS-enabled server on any port of `ip`
/// finds its listener.
pub fn server_bootstrap(
    xds: SocketAddr,
    ip: IpAddr,
    namespace: &str,
    labels: &BTreeMap<String, String>,
) -> Bootstrap {
    let pod = labels.get("app").map_or("server", String::as_str);
    let labels: Map<String, Value> = labels
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    base(xds, &istio_node_id(ip, pod, namespace), namespace)
        .node_metadata("INSTANCE_IPS", ip.to_string())
        .node_metadata("LABELS", Value::Object(labels))
        .server_listener_resource_name_template(istio_server_template())
        .build()
        .expect("a bootstrap built from a socket address is valid")
}

/// The certificate provider instance that TLS contexts from mesh-control
/// (as from istiod) name for the workload's own certificate.
pub const IDENTITY_PROVIDER_INSTANCE: &str = "default";
/// The certificate provider instance that TLS contexts from mesh-control
/// (as from istiod) name for the roots peers are verified against.
pub const ROOT_PROVIDER_INSTANCE: &str = "ROOTCA";

/// `bootstrap` with the two certificate provider instances mesh-control's
/// TLS contexts name, for a workload that starts with only a token:
///
/// - `default` → `mesh_ca`: fetches the workload certificate from the CA at
///   `ca_uri` (`https://host:port`), authenticating with the token in
///   `token_file`, verifying the CA against `root_file` under the name the
///   CA's serving certificate carries ([`SERVER_NAME`], so `ca_uri` may
///   name any address of the CA), and renewing before expiry with the
///   provider's defaults;
/// - `ROOTCA` → `file_watcher` with only `ca_certificate_file` =
///   `root_file` (re-read every 15 minutes, as istio-agent's).
///
/// Other instances are kept; these two replace any of the same name. The
/// paths are written as given, so pass absolute ones for a bootstrap read
/// from another directory. Fails, naming the field, when `ca_uri` or a
/// path is not acceptable to a `mesh_ca` provider.
pub fn with_mesh_ca(
    bootstrap: Bootstrap,
    ca_uri: &str,
    token_file: &Path,
    root_file: &Path,
) -> Result<Bootstrap, BootstrapError> {
    let mut mesh_ca = MeshCa::new(ca_uri, token_file, root_file);
    mesh_ca.server_name = Some(SERVER_NAME.to_owned());
    let roots = FileWatcher {
        ca_certificate_file: Some(root_file.to_owned()),
        refresh_interval: AGENT_REFRESH_INTERVAL,
        ..FileWatcher::default()
    };
    let mut b = bootstrap;
    b.certificate_providers.insert(
        IDENTITY_PROVIDER_INSTANCE.to_owned(),
        CertificateProviderConfig::MeshCa(mesh_ca),
    );
    b.certificate_providers.insert(
        ROOT_PROVIDER_INSTANCE.to_owned(),
        CertificateProviderConfig::FileWatcher(roots),
    );
    // Through gRPC's JSON and back: the parser's checks apply, and the
    // result is exactly what a workload reading the file gets.
    Bootstrap::from_value(&b.to_json())
}

/// Writes `client.json` and `server.json` into `dir` (created if needed);
/// returns their paths.
pub fn write_bootstraps(
    dir: &Path,
    client: &Bootstrap,
    server: &Bootstrap,
) -> io::Result<(PathBuf, PathBuf)> {
    std::fs::create_dir_all(dir)?;
    let write = |name: &str, b: &Bootstrap| -> io::Result<PathBuf> {
        let path = dir.join(name);
        let json = serde_json::to_string_pretty(&b.to_json()).map_err(io::Error::other)?;
        std::fs::write(&path, json + "\n")?;
        Ok(path)
    };
    Ok((write("client.json", client)?, write("server.json", server)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn xds() -> SocketAddr {
        "127.0.0.1:15010".parse().unwrap()
    }

    #[test]
    fn server_bootstrap_is_istio_shaped() {
        let labels = [("app".to_owned(), "echo".to_owned())]
            .into_iter()
            .collect();
        let b = server_bootstrap(xds(), "127.0.0.1".parse().unwrap(), "prod", &labels);
        assert_eq!(
            b.node.id,
            "sidecar~127.0.0.1~echo.prod~prod.svc.cluster.local"
        );
        assert_eq!(b.node.metadata["GENERATOR"], "grpc");
        assert_eq!(b.node.metadata["INSTANCE_IPS"], "127.0.0.1");
        assert_eq!(b.node.metadata["LABELS"]["app"], "echo");
        assert_eq!(
            b.server_listener_name("0.0.0.0:7070").unwrap(),
            "xds.istio.io/grpc/lds/inbound/0.0.0.0:7070"
        );
        // Round trip through gRPC's JSON format.
        let again = Bootstrap::from_value(&b.to_json()).unwrap();
        assert_eq!(again.node.id, b.node.id);
        assert_eq!(again.xds_servers[0].server_uri(), "127.0.0.1:15010");
    }

    #[test]
    fn client_bootstrap_takes_namespace_from_istio_id() {
        let id = istio_node_id("10.0.0.9".parse().unwrap(), "c", "ns2");
        assert_eq!(
            client_bootstrap(xds(), &id).node.metadata["NAMESPACE"],
            "ns2"
        );
        let b = client_bootstrap(xds(), "plain");
        assert_eq!(b.node.metadata["NAMESPACE"], DEFAULT_NAMESPACE);
        assert!(b.server_listener_resource_name_template.is_none());
    }

    #[test]
    fn mesh_ca_providers_round_trip() {
        let b = with_mesh_ca(
            client_bootstrap(xds(), "c"),
            "https://127.0.0.1:15012",
            Path::new("/run/mesh/client.token"),
            Path::new("/run/mesh/root-cert.pem"),
        )
        .unwrap();
        let again = Bootstrap::from_json(&b.to_json().to_string()).unwrap();
        assert_eq!(again, b);
        let CertificateProviderConfig::MeshCa(m) = &again.certificate_providers["default"] else {
            panic!("{:?}", again.certificate_providers)
        };
        assert_eq!(m.server_uri, "https://127.0.0.1:15012");
        assert_eq!(m.server_name.as_deref(), Some(SERVER_NAME));
        assert_eq!(m.token_file, Path::new("/run/mesh/client.token"));
        assert_eq!(m.ca_certificate_file, Path::new("/run/mesh/root-cert.pem"));
        let CertificateProviderConfig::FileWatcher(f) = &again.certificate_providers["ROOTCA"]
        else {
            panic!("{:?}", again.certificate_providers)
        };
        assert_eq!(
            f.ca_certificate_file.as_deref(),
            Some(Path::new("/run/mesh/root-cert.pem"))
        );
        assert!(f.certificate_file.is_none() && f.private_key_file.is_none());
        assert_eq!(again.certificate_providers.len(), 2);
    }

    #[test]
    fn mesh_ca_rejects_a_non_tls_ca_uri() {
        let err = with_mesh_ca(
            client_bootstrap(xds(), "c"),
            "127.0.0.1:15012",
            Path::new("/t"),
            Path::new("/r"),
        )
        .unwrap_err();
        assert!(err.to_string().contains("server_uri"), "{err}");
    }

    #[test]
    fn writes_both_files() {
        let dir = tempfile::tempdir().unwrap();
        let c = client_bootstrap(xds(), "c");
        let s = server_bootstrap(
            xds(),
            "127.0.0.1".parse().unwrap(),
            "default",
            &BTreeMap::new(),
        );
        let (cp, sp) = write_bootstraps(&dir.path().join("sub"), &c, &s).unwrap();
        assert_eq!(Bootstrap::from_file(cp).unwrap().node.id, "c");
        assert!(
            Bootstrap::from_file(sp)
                .unwrap()
                .node
                .id
                .starts_with("sidecar~")
        );
    }
}
