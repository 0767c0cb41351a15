//! Config errors (each names file, document and field path) and warnings
//! (unknown kinds and fields, lossy mappings).

use envoy_types::pb::envoy::config::cluster::v3 as cluster;
use mesh_control::config::{self, Config};
use mesh_control::snapshot::NodeInfo;
use mesh_control::translate::{HealthOverrides, translate};
use mesh_core::resource::ResourceType;

use super::{assert_all_valid, fixture, get};

fn error_of(yaml: &str) -> String {
    let e = Config::from_yaml_str("config/test.yaml", yaml).expect_err("invalid");
    assert_eq!(e.errors.len(), 1, "{e}");
    e.errors[0].to_string()
}

const VS_HEAD: &str = "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
";

#[test]
fn weight_out_of_range_names_file_document_field() {
    let e = config::load(fixture("errors/reviews.yaml")).expect_err("invalid");
    let msg = e.errors[0].to_string();
    assert!(
        msg.ends_with(
            "reviews.yaml: document 2 (VirtualService default/reviews): \
             spec.http[0].route[1].weight: must be between 0 and 100"
        ),
        "{msg}"
    );
    assert_eq!(
        e.errors[0].field.as_deref(),
        Some("spec.http[0].route[1].weight")
    );
}

#[test]
fn error_invalid_yaml_names_file() {
    let e = Config::from_yaml_str("config/bad.yaml", "a: [1, 2\nb: c").unwrap_err();
    assert!(
        e.errors[0]
            .to_string()
            .starts_with("config/bad.yaml: invalid YAML"),
        "{e}"
    );
}

#[test]
fn error_missing_required_field() {
    let msg = error_of(&format!("{VS_HEAD}  http: []\n"));
    assert_eq!(
        msg,
        "config/test.yaml: document 1 (VirtualService default/reviews): spec.hosts: is required"
    );
}

#[test]
fn error_wrong_type() {
    let msg = error_of(&format!("{VS_HEAD}  hosts: [r]\n  http: {{a: 1}}\n"));
    assert!(
        msg.contains("document 1 (VirtualService default/reviews): spec.http: must be a list"),
        "{msg}"
    );
}

#[test]
fn error_bad_duration() {
    let msg = error_of(&format!(
        "{VS_HEAD}  hosts: [r]\n  http:\n  - route: [{{destination: {{host: r}}}}]\n    timeout: soon\n"
    ));
    assert!(
        msg.contains("spec.http[0].timeout: \"soon\" is not a duration"),
        "{msg}"
    );
}

#[test]
fn error_bad_enum_value() {
    let msg = error_of(
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: r, namespace: x}\n\
         spec:\n  host: r\n  trafficPolicy:\n    loadBalancer: {simple: FASTEST}\n",
    );
    assert!(
        msg.contains("(DestinationRule x/r): spec.trafficPolicy.loadBalancer.simple: \"FASTEST\" is not one of"),
        "{msg}"
    );
}

#[test]
fn error_bad_address_and_second_document() {
    let yaml = "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: a}\n\
                spec: {address: 10.0.0.1}\n---\n\
                apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: b}\n\
                spec: {address: db.example.com}\n";
    let msg = error_of(yaml);
    assert!(
        msg.starts_with("config/test.yaml: document 2 (WorkloadEntry default/b): spec.address:"),
        "{msg}"
    );
}

#[test]
fn error_unsupported_policy_condition() {
    let msg = error_of(
        "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: p}\n\
         spec:\n  rules:\n  - from:\n    - source: {ipBlocks: [1.2.3.4]}\n",
    );
    assert!(
        msg.contains("spec.rules[0].from[0].source.ipBlocks: is not supported"),
        "{msg}"
    );
}

#[test]
fn error_duplicate_object() {
    let doc = format!("{VS_HEAD}  hosts: [r]\n");
    let msg = error_of(&format!("{doc}---\n{doc}"));
    assert!(
        msg.contains("document 2") && msg.contains("duplicate VirtualService"),
        "{msg}"
    );
}

#[test]
fn error_bad_health_annotation() {
    let msg = error_of(
        "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\n\
         metadata: {name: a, annotations: {mesh.dev/health: sick}}\nspec: {address: 10.0.0.1}\n",
    );
    assert!(
        msg.contains("metadata.annotations[\"mesh.dev/health\"]"),
        "{msg}"
    );
}

#[test]
fn invalid_directory_loads_nothing() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        fixture("bookinfo/services.yaml"),
        dir.path().join("services.yaml"),
    )
    .unwrap();
    assert!(config::load(dir.path()).is_ok());
    std::fs::copy(
        fixture("errors/reviews.yaml"),
        dir.path().join("reviews.yaml"),
    )
    .unwrap();
    let e = config::load(dir.path()).expect_err("one bad file fails the load");
    assert!(e.errors[0].file.ends_with("reviews.yaml"));
}

// Warnings.

#[test]
fn unknown_kinds_and_fields_warn_with_paths() {
    let yaml = format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: d}}\n---\n\
         {VS_HEAD}  hosts: [r]\n  http:\n  - route: [{{destination: {{host: r}}, bogus: 1}}]\n    colour: red\n"
    );
    let loaded = Config::from_yaml_str("config/w.yaml", &yaml).unwrap();
    let w: Vec<String> = loaded.warnings.iter().map(ToString::to_string).collect();
    assert!(
        w.contains(
            &"config/w.yaml: document 1 (Deployment default/d): unknown kind Deployment \
                     (apiVersion \"apps/v1\"): skipped"
                .to_owned()
        ),
        "{w:?}"
    );
    assert!(
        w.contains(
            &"config/w.yaml: document 2 (VirtualService default/reviews): spec.http[0].colour: \
              unknown field: ignored"
                .to_owned()
        ),
        "{w:?}"
    );
    assert!(
        w.iter()
            .any(|x| x.contains("spec.http[0].route[0].bogus: unknown field")),
        "{w:?}"
    );
    assert_eq!(loaded.config.virtual_services.len(), 1);
}

#[test]
fn random_and_maglev_map_and_warn() {
    let yaml = "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: echo}\n\
                spec:\n  hosts: [echo]\n  ports: [{number: 7070, name: grpc}]\n  \
                endpoints: [{address: 127.0.0.1}]\n---\n\
                apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: echo}\n\
                spec:\n  host: echo\n  trafficPolicy: {loadBalancer: {simple: RANDOM}}\n  subsets:\n  \
                - name: m\n    labels: {}\n    trafficPolicy:\n      loadBalancer:\n        \
                consistentHash: {httpHeaderName: x, maglev: {tableSize: 65537}}\n";
    let loaded = Config::from_yaml_str("echo.yaml", yaml).unwrap();
    let t = translate(&loaded.config, &HealthOverrides::default());
    assert!(
        t.warnings.iter().any(|w| w.contains("RANDOM")),
        "{:?}",
        t.warnings
    );
    assert!(
        t.warnings.iter().any(|w| w.contains("MAGLEV")),
        "{:?}",
        t.warnings
    );
    let rr: cluster::Cluster = get(
        &t.snapshot,
        ResourceType::Cluster,
        "outbound|7070||echo.default.svc.cluster.local",
    );
    assert_eq!(rr.lb_policy, 0, "RANDOM → round robin");
    let m: cluster::Cluster = get(
        &t.snapshot,
        ResourceType::Cluster,
        "outbound|7070|m|echo.default.svc.cluster.local",
    );
    assert_eq!(m.lb_policy, cluster::cluster::LbPolicy::RingHash as i32);
    assert_all_valid(&t.snapshot, &NodeInfo::default());
}
