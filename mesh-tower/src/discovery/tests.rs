//! Runtimes built from hand-made snapshots: reuse across snapshots and
//! A88 error handling. Outside a tokio runtime nothing connects.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use mesh_core::resource::cluster::LbPolicy;
use mesh_core::resource::{Cluster, ClusterLoadAssignment, Listener, RouteConfig};
use mesh_core::testing::resources as fx;
use mesh_core::watch::{ClientConfig, ConfigError, ResolvedCluster};

use super::*;

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

type Resolved = Result<(Arc<Cluster>, Arc<ClusterLoadAssignment>), String>;

fn config(clusters: Vec<(&str, Resolved)>) -> Arc<ClientConfig> {
    let routes = fx::route_config("rc", &["echo"], vec![fx::prefix_route("/", "a")]);
    let listener = Listener::try_from(fx::client_listener_inline("echo", routes.clone())).unwrap();
    let route_config = RouteConfig::try_from(routes).unwrap();
    let clusters: BTreeMap<String, _> = clusters
        .into_iter()
        .map(|(n, r)| {
            (
                n.to_owned(),
                r.map(|(cluster, endpoints)| ResolvedCluster { cluster, endpoints }),
            )
        })
        .collect();
    Arc::new(ClientConfig {
        target: "echo".into(),
        listener: Arc::new(listener),
        route_config: Arc::new(route_config),
        virtual_host_index: 0,
        clusters,
    })
}

fn cluster(name: &str) -> Arc<Cluster> {
    Arc::new(Cluster::try_from(fx::eds_cluster(name, name)).unwrap())
}

fn cla(name: &str, ports: &[u16]) -> Arc<ClusterLoadAssignment> {
    let addrs: Vec<SocketAddr> = ports.iter().map(|&p| addr(p)).collect();
    Arc::new(ClusterLoadAssignment::try_from(fx::endpoints(name, &addrs)).unwrap())
}

fn handles(rt: &Runtime, name: &str) -> Vec<Arc<crate::cluster::EndpointHandle>> {
    rt.clusters[name].balancer.endpoints().to_vec()
}

#[tokio::test]
async fn unchanged_clusters_and_endpoints_are_reused() {
    let d = Discovery::manual(DiscoveryOptions::default());
    assert!(d.load().check().is_err(), "no config yet");
    let (ca, cb) = (cluster("a"), cluster("b"));
    d.apply(Some(Ok(config(vec![
        ("a", Ok((ca.clone(), cla("a", &[1, 2, 3])))),
        ("b", Ok((cb.clone(), cla("b", &[4])))),
    ]))))
    .await;
    let rt1 = d.load_full();
    assert_eq!(handles(&rt1, "a").len(), 3);

    // Endpoint 2 leaves and 5 arrives in cluster a; b is untouched.
    let rx = d.subscribe();
    d.apply(Some(Ok(config(vec![
        ("a", Ok((ca.clone(), cla("a", &[1, 3, 5])))),
        ("b", Ok((cb.clone(), cla("b", &[4])))),
    ]))))
    .await;
    assert!(rx.has_changed().unwrap());
    let rt2 = d.load_full();
    assert!(
        Arc::ptr_eq(&rt1.clusters["a"], &rt2.clusters["a"]),
        "runtime kept"
    );
    assert!(Arc::ptr_eq(&rt1.clusters["b"], &rt2.clusters["b"]));
    let (h1, h2) = (handles(&rt1, "a"), handles(&rt2, "a"));
    let find = |hs: &[Arc<crate::cluster::EndpointHandle>], p: u16| {
        hs.iter().find(|h| h.address.port() == p).cloned()
    };
    assert!(Arc::ptr_eq(&find(&h1, 1).unwrap(), &find(&h2, 1).unwrap()));
    assert!(Arc::ptr_eq(&find(&h1, 3).unwrap(), &find(&h2, 3).unwrap()));
    assert!(find(&h2, 2).is_none());
    assert!(find(&h2, 5).is_some());

    // A cluster config change: new runtime, same balancer and handles.
    let mut ca2 = (*ca).clone();
    ca2.lb_policy = LbPolicy::Random;
    let ca2 = Arc::new(ca2);
    d.apply(Some(Ok(config(vec![
        ("a", Ok((ca2, cla("a", &[1, 3, 5])))),
        ("b", Ok((cb.clone(), cla("b", &[4])))),
    ]))))
    .await;
    let rt3 = d.load_full();
    assert!(!Arc::ptr_eq(&rt2.clusters["a"], &rt3.clusters["a"]));
    assert!(Arc::ptr_eq(
        &rt2.clusters["a"].balancer,
        &rt3.clusters["a"].balancer
    ));
    assert_eq!(rt3.clusters["a"].balancer.policy(), LbPolicy::Random);
    assert!(Arc::ptr_eq(
        &find(&h2, 5).unwrap(),
        &find(&handles(&rt3, "a"), 5).unwrap()
    ));
}

#[tokio::test]
async fn cluster_errors_fail_only_their_cluster_and_config_errors_fail_all() {
    let d = Discovery::manual(DiscoveryOptions::default());
    d.apply(Some(Ok(config(vec![
        ("a", Ok((cluster("a"), cla("a", &[1])))),
        ("b", Err("Cluster \"b\": does not exist".into())),
    ]))))
    .await;
    let rt = d.load_full();
    assert!(rt.cluster("a").is_ok());
    let err = rt.cluster("b").unwrap_err();
    let status = crate::error::find_status(&*err).unwrap();
    assert_eq!(status.code(), tonic::Code::Unavailable);
    assert!(status.message().contains("does not exist"), "{status:?}");

    // The listener is really gone (mesh-core only reports it then).
    d.apply(Some(Err(ConfigError {
        reason: "Listener \"echo\": does not exist".into(),
    })))
    .await;
    let rt = d.load_full();
    let err = rt.check().unwrap_err();
    let status = crate::error::find_status(&*err).unwrap();
    assert_eq!(status.code(), tonic::Code::Unavailable);
    assert_eq!(status.message(), "Listener \"echo\": does not exist");
    assert!(rt.cluster("a").is_err());
}

fn tls_cluster(name: &str, provider: &str, san: &str) -> Arc<Cluster> {
    let wire = fx::with_istio_mutual(fx::eds_cluster(name, name), provider, san);
    Arc::new(Cluster::try_from(wire).unwrap())
}

fn registry_with(provider: &str) -> Arc<crate::tls::ProviderRegistry> {
    use crate::tls::testing::TestCa;
    use crate::tls::{CertificateProvider, CertifiedMaterial};
    let ca = TestCa::new("root");
    let leaf = ca.leaf(&["spiffe://cluster.local/ns/default/sa/client"]);
    let material = CertifiedMaterial::from_pem(
        provider,
        Some(leaf.chain_pem.as_bytes()),
        Some(leaf.key_pem.as_bytes()),
        Some(ca.pem().as_bytes()),
    )
    .unwrap();
    let mut registry = crate::tls::ProviderRegistry::new(BTreeMap::new());
    registry.register(CertificateProvider::fixed(provider, material));
    Arc::new(registry)
}

fn status_message(rt: &Runtime, name: &str) -> String {
    let err = rt.cluster(name).unwrap_err();
    let status = crate::error::find_status(&*err).unwrap();
    assert_eq!(status.code(), tonic::Code::Unavailable);
    status.message().to_owned()
}

#[tokio::test]
async fn tls_clusters_need_a_registry_and_known_providers() {
    const SAN: &str = "spiffe://cluster.local/ns/default/sa/echo";
    // No registry: the TLS cluster fails, the plaintext one serves.
    let d = Discovery::manual(DiscoveryOptions::default());
    d.apply(Some(Ok(config(vec![
        ("a", Ok((tls_cluster("a", "default", SAN), cla("a", &[1])))),
        ("b", Ok((cluster("b"), cla("b", &[2])))),
    ]))))
    .await;
    let rt = d.load_full();
    assert!(rt.cluster("b").is_ok());
    let msg = status_message(&rt, "a");
    assert!(msg.contains("tls_registry"), "{msg}");

    // A registry without the instance the context names.
    let d = Discovery::manual(DiscoveryOptions {
        tls_registry: Some(registry_with("other")),
        ..Default::default()
    });
    d.apply(Some(Ok(config(vec![(
        "a",
        Ok((tls_cluster("a", "default", SAN), cla("a", &[1]))),
    )]))))
    .await;
    let msg = status_message(&d.load_full(), "a");
    assert!(msg.contains("\"default\"") && msg.contains("TLS"), "{msg}");
}

#[tokio::test]
async fn the_tls_connector_is_rebuilt_only_when_the_context_changes() {
    const SAN: &str = "spiffe://cluster.local/ns/default/sa/echo";
    let d = Discovery::manual(DiscoveryOptions {
        tls_registry: Some(registry_with("default")),
        ..Default::default()
    });
    let a1 = tls_cluster("a", "default", SAN);
    d.apply(Some(Ok(config(vec![(
        "a",
        Ok((a1.clone(), cla("a", &[1]))),
    )]))))
    .await;
    let rt1 = d.load_full();
    let h1 = handles(&rt1, "a");
    assert_eq!(
        h1[0].connection.address(),
        addr(1),
        "the TLS cluster resolved"
    );

    // Another setting changes, the TLS context does not: same connections.
    let mut a2 = (*a1).clone();
    a2.lb_policy = LbPolicy::Random;
    d.apply(Some(Ok(config(vec![(
        "a",
        Ok((Arc::new(a2), cla("a", &[1]))),
    )]))))
    .await;
    let h2 = handles(&d.load_full(), "a");
    assert!(Arc::ptr_eq(&h1[0], &h2[0]));

    // A new SAN is a new context: new connector, new connections.
    let a3 = tls_cluster("a", "default", "spiffe://cluster.local/ns/default/sa/other");
    d.apply(Some(Ok(config(vec![("a", Ok((a3, cla("a", &[1]))))]))))
        .await;
    let h3 = handles(&d.load_full(), "a");
    assert!(!Arc::ptr_eq(&h2[0], &h3[0]));
}

#[tokio::test]
async fn the_shared_registry_is_one_per_provider_config() {
    use mesh_core::bootstrap::{Bootstrap, FileWatcher};
    let bootstrap = |ca: &str| {
        Bootstrap::builder()
            .xds_server("127.0.0.1:1")
            .node_id("n")
            .certificate_provider(
                "default",
                FileWatcher {
                    ca_certificate_file: Some(ca.into()),
                    ..Default::default()
                },
            )
            .build()
            .unwrap()
    };
    let a = shared_tls_registry(&bootstrap("/a.pem"));
    let b = shared_tls_registry(&bootstrap("/a.pem"));
    let c = shared_tls_registry(&bootstrap("/c.pem"));
    assert!(Arc::ptr_eq(&a, &b));
    assert!(!Arc::ptr_eq(&a, &c));
}
