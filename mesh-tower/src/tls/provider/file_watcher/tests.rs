//! The watcher under paused time: every wait is virtual, and the watcher
//! task runs to completion at each of its ticks before time moves on.

use std::collections::BTreeMap;

use mesh_core::bootstrap::CertificateProviderConfig;

use rustls_pki_types::CertificateDer;

use super::*;
use crate::tls::TlsErrorKind;
use crate::tls::provider::ProviderRegistry;
use crate::tls::testing::{CA, CERT, KEY, KubeSecretDir, Leaf, TestCa, write_atomic, write_plain};

const POLL: Duration = Duration::from_millis(100);

fn config(dir: &Path, refresh: Duration) -> FileWatcher {
    FileWatcher {
        certificate_file: Some(dir.join(CERT)),
        private_key_file: Some(dir.join(KEY)),
        ca_certificate_file: Some(dir.join(CA)),
        refresh_interval: refresh,
    }
}

fn leaf_of(p: &CertificateProvider) -> CertificateDer<'static> {
    p.current().identity().expect("identity").cert[0].clone()
}

async fn next_change(rx: &mut watch::Receiver<Arc<CertifiedMaterial>>) {
    tokio::time::timeout(Duration::from_secs(60), rx.changed())
        .await
        .expect("a reload within a minute")
        .expect("provider alive");
}

fn try_start(
    dir: &Path,
    refresh: Duration,
    poll: Duration,
) -> Result<CertificateProvider, TlsError> {
    FileWatcherProvider::new("default", config(dir, refresh))
        .change_poll(poll)
        .start()
}

fn start(dir: &Path, refresh: Duration, poll: Duration) -> CertificateProvider {
    try_start(dir, refresh, poll).unwrap()
}

#[tokio::test(start_paused = true)]
async fn reloads_when_a_file_changes() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("ca");
    let (one, two) = (ca.leaf(&["spiffe://td/one"]), ca.leaf(&["spiffe://td/two"]));
    write_plain(dir.path(), &one, &ca.pem());
    let p = start(dir.path(), Duration::from_secs(3600), POLL);
    let mut rx = p.subscribe();
    assert_eq!(leaf_of(&p), one.der);
    assert_eq!(p.current().roots().unwrap().len(), 1);

    write_atomic(&dir.path().join(CERT), &two.chain_pem);
    write_atomic(&dir.path().join(KEY), &two.key_pem);
    next_change(&mut rx).await;
    assert_eq!(leaf_of(&p), two.der);
}

#[tokio::test(start_paused = true)]
async fn reloads_every_refresh_interval_when_change_polling_is_slower() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("ca");
    let (one, two) = (ca.leaf(&["a.test"]), ca.leaf(&["b.test"]));
    write_plain(dir.path(), &one, &ca.pem());
    let p = start(
        dir.path(),
        Duration::from_secs(30),
        Duration::from_secs(3600),
    );
    write_plain(dir.path(), &two, &ca.pem());

    tokio::time::sleep(Duration::from_secs(20)).await;
    assert_eq!(leaf_of(&p), one.der, "not before the refresh interval");
    tokio::time::sleep(Duration::from_secs(15)).await;
    assert_eq!(leaf_of(&p), two.der, "reloaded at the refresh interval");
}

#[tokio::test(start_paused = true)]
async fn follows_a_kubernetes_data_symlink_swap() {
    let dir = tempfile::tempdir().unwrap();
    let (ca1, ca2) = (TestCa::new("ca1"), TestCa::new("ca2"));
    let (one, two) = (
        ca1.leaf(&["spiffe://td/one"]),
        ca2.leaf(&["spiffe://td/two"]),
    );
    let mut secret = KubeSecretDir::new(dir.path(), &one, &ca1.pem());
    let p = start(dir.path(), Duration::from_secs(3600), POLL);
    let mut rx = p.subscribe();
    assert_eq!(leaf_of(&p), one.der);

    secret.swap(&two, &ca2.pem());
    next_change(&mut rx).await;
    assert_eq!(leaf_of(&p), two.der);
    let roots = Arc::clone(p.current().roots().unwrap());
    assert_eq!(roots.len(), 1);
    // The new CA, not the old one.
    let m2 = CertifiedMaterial::from_pem("t", None, None, Some(ca2.pem().as_bytes())).unwrap();
    assert_eq!(roots.roots, m2.roots().unwrap().roots);

    // And again: the old version directory is gone, the paths still work.
    secret.swap(&one, &ca1.pem());
    next_change(&mut rx).await;
    assert_eq!(leaf_of(&p), one.der);
}

#[tokio::test(start_paused = true)]
async fn a_bad_reload_keeps_the_previous_material() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("ca");
    let (one, two) = (ca.leaf(&["a.test"]), ca.leaf(&["b.test"]));
    write_plain(dir.path(), &one, &ca.pem());
    let p = start(dir.path(), Duration::from_secs(3600), POLL);
    let mut rx = p.subscribe();

    // Half-swapped: the new certificate with the old key.
    write_atomic(&dir.path().join(CERT), &two.chain_pem);
    tokio::time::sleep(POLL * 5).await;
    assert_eq!(leaf_of(&p), one.der);
    // Garbage, then a missing file.
    write_atomic(&dir.path().join(KEY), "not a key");
    tokio::time::sleep(POLL * 5).await;
    std::fs::remove_file(dir.path().join(CA)).unwrap();
    tokio::time::sleep(POLL * 5).await;
    assert_eq!(leaf_of(&p), one.der);
    assert!(!rx.has_changed().unwrap(), "nothing was published");

    // Fixed: picked up.
    write_plain(dir.path(), &two, &ca.pem());
    next_change(&mut rx).await;
    assert_eq!(leaf_of(&p), two.der);
}

#[tokio::test(start_paused = true)]
async fn an_unchanged_refresh_publishes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("ca");
    write_plain(dir.path(), &ca.leaf(&["a.test"]), &ca.pem());
    let p = start(dir.path(), Duration::from_secs(1), POLL);
    let rx = p.subscribe();
    // Rewritten with the same contents: a new inode, a reload, no change.
    let pem = std::fs::read_to_string(dir.path().join(CA)).unwrap();
    write_atomic(&dir.path().join(CA), &pem);
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(!rx.has_changed().unwrap());
}

#[tokio::test]
async fn an_initial_load_failure_names_the_instance_and_file() {
    let dir = tempfile::tempdir().unwrap();
    let e = try_start(dir.path(), Duration::from_secs(1), POLL).unwrap_err();
    assert_eq!(e.kind(), TlsErrorKind::Load);
    let msg = e.to_string();
    assert!(
        msg.starts_with("certificate provider instance \"default\" (file_watcher): cannot read ")
            && msg.contains(CERT),
        "{msg}"
    );

    let ca = TestCa::new("ca");
    let (one, two) = (ca.leaf(&["a.test"]), ca.leaf(&["b.test"]));
    write_plain(dir.path(), &one, &ca.pem());
    write_atomic(&dir.path().join(KEY), &two.key_pem);
    let msg = try_start(dir.path(), Duration::from_secs(1), POLL)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("unusable certificate and key"), "{msg}");
}

#[tokio::test]
async fn the_registry_starts_providers_once_and_names_bad_instances() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("ca");
    let leaf: Leaf = ca.leaf(&["a.test"]);
    write_plain(dir.path(), &leaf, &ca.pem());
    let mut configs = BTreeMap::new();
    configs.insert(
        "default".to_owned(),
        CertificateProviderConfig::FileWatcher(config(dir.path(), Duration::from_secs(600))),
    );
    configs.insert(
        "ca".to_owned(),
        CertificateProviderConfig::Other {
            plugin_name: "mesh_ca".into(),
            config: Default::default(),
        },
    );
    let registry = ProviderRegistry::new(configs);

    let a = registry.get("default").unwrap();
    let b = registry.get("default").unwrap();
    assert!(Arc::ptr_eq(&a.inner, &b.inner), "one provider per instance");
    assert_eq!(leaf_of(&a), leaf.der);

    let e = registry.get("nope").unwrap_err();
    assert_eq!(e.kind(), TlsErrorKind::UnknownProvider);
    assert_eq!(
        e.to_string(),
        "certificate provider instance \"nope\" is not defined in the bootstrap's \
         certificate_providers (defined: [\"ca\", \"default\"])"
    );
    let e = registry.get("ca").unwrap_err();
    assert_eq!(e.kind(), TlsErrorKind::UnsupportedPlugin);
    assert!(
        e.to_string().contains("\"ca\" uses plugin \"mesh_ca\""),
        "{e}"
    );

    // A registered provider wins over the bootstrap entry.
    let mut registry = registry;
    registry.register(CertificateProvider::fixed("ca", CertifiedMaterial::empty()));
    assert!(registry.get("ca").unwrap().current().identity().is_none());
}
