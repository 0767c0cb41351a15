use envoy_types::pb::envoy::config::cluster::v3 as cluster;
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use prost::Message;

use super::*;

fn translated(yaml: &str) -> Translation {
    let loaded = Config::from_yaml_str("t.yaml", yaml).unwrap_or_else(|e| panic!("{e}"));
    translate(&loaded.config, &HealthOverrides::default())
}

const ECHO: &str = "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: echo, namespace: NS}
spec:
  hosts: [echo]
  ports: [{number: 7070, name: grpc}]
  endpoints: [{address: 127.0.0.1}]
";

#[test]
fn empty_config_translates_to_nothing() {
    let t = translate(&Config::default(), &HealthOverrides::default());
    assert!(t.snapshot.resources.is_empty());
    assert!(t.warnings.is_empty());
}

#[test]
fn optional_filter_sets_is_optional() {
    let f = optional_filter(wire::http_filter("x", &Router::default()));
    assert!(f.is_optional);
    assert_eq!(f.name, "x");
}

#[test]
fn short_name_conflicts_go_to_the_first_host_with_a_warning() {
    let yaml = format!(
        "{}---\n{}",
        ECHO.replace("NS", "default"),
        ECHO.replace("NS", "other")
    );
    let t = translated(&yaml);
    let lds = &t.snapshot.resources[&ResourceType::Listener];
    assert!(lds.contains_key("echo:7070"));
    assert!(
        lds.contains_key("echo.other:7070"),
        "qualified short names do not clash"
    );
    assert!(lds.contains_key("echo.other.svc.cluster.local:7070"));
    assert!(
        t.warnings
            .iter()
            .any(|w| w.contains("short name echo of echo.other.svc.cluster.local")),
        "{:?}",
        t.warnings
    );
}

#[test]
fn unsupported_hash_key_warns() {
    let yaml = format!(
        "{}---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: e}}\n\
         spec:\n  host: echo\n  trafficPolicy:\n    loadBalancer:\n      consistentHash: {{useSourceIp: true}}\n",
        ECHO.replace("NS", "default")
    );
    let t = translated(&yaml);
    assert!(
        t.warnings.iter().any(|w| w.contains("useSourceIp")),
        "{:?}",
        t.warnings
    );
    let c = &t.snapshot.resources[&ResourceType::Cluster]["outbound|7070||echo.default.svc.cluster.local"];
    let c = cluster::Cluster::decode(c.any.value.as_slice()).unwrap();
    assert_eq!(c.lb_policy, cluster::cluster::LbPolicy::RingHash as i32);
}

#[test]
fn dangling_subset_and_unknown_host_warn() {
    let yaml = format!(
        "{}---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: e}}\n\
         spec:\n  hosts: [echo]\n  http:\n  - route:\n    - destination: {{host: echo, subset: v9}}\n      \
         weight: 50\n    - destination: {{host: nowhere}}\n      weight: 50\n",
        ECHO.replace("NS", "default")
    );
    let t = translated(&yaml);
    assert!(
        t.warnings.iter().any(|w| w.contains("subset \"v9\"")),
        "{:?}",
        t.warnings
    );
    assert!(
        t.warnings
            .iter()
            .any(|w| w.contains("nowhere.default.svc.cluster.local has no ServiceEntry")),
        "{:?}",
        t.warnings
    );
}
