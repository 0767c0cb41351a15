//! The provider without a CA: start-up errors, and what it reports while
//! the CA cannot be reached or the token cannot be read. Fetching and
//! renewing against mesh-control's CA is in mesh-tonic's integration
//! tests (`security::mesh_ca`).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use mesh_core::bootstrap::{CertificateProviderConfig, MeshCa};

use super::*;
use crate::tls::ProviderRegistry;
use crate::tls::testing::TestCa;

/// A config for a CA at a port nothing listens on, with fast retries.
fn config(dir: &Path, token: &str) -> MeshCa {
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    std::fs::write(dir.join("token"), token).unwrap();
    std::fs::write(dir.join("root.pem"), TestCa::new("root").pem()).unwrap();
    MeshCa {
        retry_initial_backoff: Duration::from_millis(10),
        retry_max_backoff: Duration::from_millis(20),
        request_timeout: Duration::from_secs(5),
        ..MeshCa::new(
            format!("https://{addr}"),
            dir.join("token"),
            dir.join("root.pem"),
        )
    }
}

async fn wait_for_failures(p: &CertificateProvider, n: u64) -> ProviderStatus {
    let mut rx = p.inner.status.clone().unwrap();
    tokio::time::timeout(Duration::from_secs(20), rx.wait_for(|s| s.failures >= n))
        .await
        .expect("the provider keeps retrying")
        .unwrap()
        .clone()
}

#[tokio::test]
async fn an_unreachable_ca_is_reported_and_retried() {
    let dir = tempfile::tempdir().unwrap();
    let p = MeshCaProvider::new("default", config(dir.path(), "tok"))
        .jitter(|| 0.0)
        .start()
        .unwrap();
    // The trust anchor is there at once; the identity is not.
    assert_eq!(p.current().roots().unwrap().len(), 1);
    assert!(p.current().identity().is_none());
    let status = wait_for_failures(&p, 3).await;
    assert_eq!(status.issued, 0);
    let e = status.last_error.unwrap();
    assert!(
        e.starts_with("certificate provider instance \"default\" (mesh_ca): certificate request failed: CA https://127.0.0.1:"),
        "{e}"
    );
    assert!(e.contains("cannot connect"), "{e}");
    let reason = p.pending_reason().unwrap();
    assert!(
        reason.starts_with("certificate provider instance \"default\" has no certificate yet: certificate provider instance \"default\" (mesh_ca): certificate request failed"),
        "{reason}"
    );
}

#[tokio::test]
async fn an_empty_token_file_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let p = MeshCaProvider::new("default", config(dir.path(), " \n"))
        .start()
        .unwrap();
    let e = wait_for_failures(&p, 1).await.last_error.unwrap();
    assert!(e.contains("token file") && e.ends_with("is empty"), "{e}");
}

#[tokio::test]
async fn tls_configs_build_before_the_first_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let p = MeshCaProvider::new("default", config(dir.path(), "tok"))
        .start()
        .unwrap();
    crate::tls::server::server_config_from(p.clone(), Some(p.clone()), true).unwrap();
    crate::tls::client::client_config_from(p.clone(), Some(p), vec![]).unwrap();
}

#[tokio::test]
async fn start_errors_name_the_instance_and_field_or_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path(), "tok");
    c.ca_certificate_file = dir.path().join("missing.pem");
    let e = MeshCaProvider::new("default", c).start().unwrap_err();
    assert_eq!(e.kind(), TlsErrorKind::Load);
    assert!(
        e.to_string().starts_with(&format!(
            "certificate provider instance \"default\" (mesh_ca): cannot read {}",
            dir.path().join("missing.pem").display()
        )),
        "{e}"
    );

    let mut c = config(dir.path(), "tok");
    c.renewal_grace_ratio = 1.5;
    let e = MeshCaProvider::new("default", c).start().unwrap_err();
    assert_eq!(e.kind(), TlsErrorKind::Config);
    assert!(
        e.to_string().starts_with(
            "certificate provider instance \"default\" (mesh_ca): config.renewal_grace_ratio: 1.5"
        ),
        "{e}"
    );
}

#[tokio::test]
async fn the_registry_starts_mesh_ca_instances() {
    let dir = tempfile::tempdir().unwrap();
    let registry = ProviderRegistry::new(BTreeMap::from([(
        "default".to_owned(),
        CertificateProviderConfig::MeshCa(config(dir.path(), "tok")),
    )]));
    let a = registry.get("default").unwrap();
    let b = registry.get("default").unwrap();
    assert!(Arc::ptr_eq(&a.inner, &b.inner), "one provider per instance");
    assert!(a.status().is_some());
}
