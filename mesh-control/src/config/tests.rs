use std::time::Duration;

use super::*;

fn one(yaml: &str) -> Config {
    let l = Config::from_yaml_str("t.yaml", yaml).unwrap_or_else(|e| panic!("{e}"));
    assert!(l.warnings.is_empty(), "{:?}", l.warnings);
    l.config
}

#[test]
fn empty_text_is_an_empty_config() {
    let l = Config::from_yaml_str("x.yaml", "").unwrap();
    assert!(l.config.service_entries.is_empty() && l.warnings.is_empty());
}

#[test]
fn short_hosts_expand_relative_to_the_namespace() {
    assert_eq!(
        fqdn("reviews", "default"),
        "reviews.default.svc.cluster.local"
    );
    assert_eq!(
        fqdn("reviews.other.svc.cluster.local", "default"),
        "reviews.other.svc.cluster.local"
    );
    assert_eq!(fqdn("api.example.com", "default"), "api.example.com");
}

#[test]
fn virtual_service_fields_parse() {
    let c = one(r#"
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: {name: r, namespace: ns}
spec:
  hosts: [r]
  http:
  - match:
    - headers: {X-User: {prefix: a}}
      method: {exact: POST}
    route:
    - destination: {host: r, port: {number: 80}}
    timeout: 1.5s
    retries: {attempts: 2}
    fault:
      delay: {fixedDelay: 2s}
      abort: {httpStatus: 503, percentage: {value: 0.5}}
"#);
    let vs = &c.virtual_services[0];
    assert_eq!(vs.meta.namespace, "ns");
    let h = &vs.http[0];
    assert_eq!(
        h.matches[0].headers["x-user"],
        StringMatch::Prefix("a".into()),
        "names lower-cased"
    );
    assert_eq!(h.matches[0].method, Some(StringMatch::Exact("POST".into())));
    assert_eq!(h.route[0].weight, 100, "a lone destination gets everything");
    assert_eq!(h.route[0].port, Some(80));
    assert_eq!(h.timeout, Some(Duration::from_millis(1500)));
    assert_eq!(h.retries.as_ref().unwrap().attempts, 2);
    let f = h.fault.as_ref().unwrap();
    assert_eq!(
        f.delay.as_ref().unwrap().percent,
        100.0,
        "unset percentage = 100"
    );
    let a = f.abort.as_ref().unwrap();
    assert_eq!((a.status, a.percent), (AbortStatus::Http(503), 0.5));
}

#[test]
fn subset_policies_override_part_by_part() {
    let c = one(r#"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: r}
spec:
  host: r
  trafficPolicy:
    loadBalancer: {simple: LEAST_CONN}
    tls: {mode: ISTIO_MUTUAL}
  subsets:
  - name: a
    labels: {v: a}
    trafficPolicy:
      loadBalancer: {simple: ROUND_ROBIN}
"#);
    let dr = &c.destination_rules[0];
    let merged = dr.traffic_policy.merged_with(&dr.subsets[0].traffic_policy);
    assert_eq!(
        merged.load_balancer,
        Some(LoadBalancer::Simple(SimpleLb::RoundRobin))
    );
    assert_eq!(merged.tls, Some(TlsMode::IstioMutual));
    assert_eq!(
        dr.traffic_policy.load_balancer,
        Some(LoadBalancer::Simple(SimpleLb::LeastRequest)),
        "LEAST_CONN is LEAST_REQUEST"
    );
}

#[test]
fn grpc_status_accepts_names_and_numbers() {
    let yaml = |s: &str| {
        format!(
            "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: r}}\n\
             spec:\n  hosts: [r]\n  http:\n  - route: [{{destination: {{host: r}}}}]\n    \
             fault: {{abort: {{grpcStatus: {s}}}}}\n"
        )
    };
    let status = |s: &str| {
        one(&yaml(s)).virtual_services[0].http[0]
            .fault
            .as_ref()
            .unwrap()
            .abort
            .as_ref()
            .unwrap()
            .status
    };
    assert_eq!(status("UNAVAILABLE"), AbortStatus::Grpc(14));
    assert_eq!(status("\"4\""), AbortStatus::Grpc(4));
    let e = Config::from_yaml_str("t.yaml", &yaml("NOPE")).unwrap_err();
    assert!(
        e.to_string()
            .contains("spec.http[0].fault.abort.grpcStatus"),
        "{e}"
    );
}

#[test]
fn ignored_fields_warn_with_their_reason() {
    let l = Config::from_yaml_str(
        "t.yaml",
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: r}\n\
         spec:\n  hosts: [r]\n  gateways: [mesh]\n",
    )
    .unwrap();
    assert_eq!(l.warnings.len(), 1);
    assert_eq!(l.warnings[0].field.as_deref(), Some("spec.gateways"));
    assert!(l.warnings[0].message.starts_with("ignored:"));
}

#[test]
fn unsupported_api_version_is_skipped_with_a_warning() {
    let l = Config::from_yaml_str(
        "t.yaml",
        "apiVersion: networking.istio.io/v2\nkind: VirtualService\nmetadata: {name: r}\nspec: {hosts: [r]}\n",
    )
    .unwrap();
    assert!(l.config.virtual_services.is_empty());
    assert!(l.warnings[0].to_string().contains("unsupported version"));
}

#[test]
fn match_conditions_that_would_widen_are_errors() {
    let e = Config::from_yaml_str(
        "t.yaml",
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: r}\n\
         spec:\n  hosts: [r]\n  http:\n  - match: [{queryParams: {a: {exact: b}}}]\n    \
         route: [{destination: {host: r}}]\n",
    )
    .unwrap_err();
    assert_eq!(
        e.errors[0].field.as_deref(),
        Some("spec.http[0].match[0].queryParams")
    );
}

#[test]
fn all_zero_weights_are_an_error() {
    let e = Config::from_yaml_str(
        "t.yaml",
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: r}\n\
         spec:\n  hosts: [r]\n  http:\n  - route:\n    - destination: {host: r, subset: a}\n    \
         - destination: {host: r, subset: b}\n",
    )
    .unwrap_err();
    assert_eq!(e.errors[0].field.as_deref(), Some("spec.http[0].route"));
}
