//! Whole-bootstrap tests: the file istio-agent writes, loading from the
//! environment, top-level errors and Listener names.

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};

use super::*;

/// The bootstrap istio-agent writes for a proxyless gRPC pod (ISTIO.md).
fn istio_bootstrap() -> Value {
    json!({
        "xds_servers": [{
            "server_uri": "unix:///etc/istio/proxy/XDS",
            "channel_creds": [{"type": "insecure"}],
            "server_features": ["xds_v3"]
        }],
        "node": {
            "id": "sidecar~10.0.0.1~echo-v1-abc.default~default.svc.cluster.local",
            "metadata": {
                "CLUSTER_ID": "Kubernetes",
                "ENVOY_PROMETHEUS_PORT": 15090,
                "GENERATOR": "grpc",
                "INSTANCE_IPS": "10.0.0.1",
                "ISTIO_VERSION": "1.24.0",
                "LABELS": {
                    "app": "echo",
                    "version": "v1",
                    "service.istio.io/canonical-name": "echo",
                    "service.istio.io/canonical-revision": "v1"
                },
                "MESH_ID": "cluster.local",
                "NAMESPACE": "default",
                "SERVICE_ACCOUNT": "echo",
                "WORKLOAD_NAME": "echo-v1"
            }
        },
        "certificate_providers": {
            "default": {
                "plugin_name": "file_watcher",
                "config": {
                    "certificate_file": "/var/lib/istio/data/cert-chain.pem",
                    "private_key_file": "/var/lib/istio/data/key.pem",
                    "ca_certificate_file": "/var/lib/istio/data/root-cert.pem",
                    "refresh_interval": "900s"
                }
            }
        },
        "server_listener_resource_name_template": "xds.istio.io/grpc/lds/inbound/%s"
    })
}

#[test]
fn istio_agent_bootstrap_loads_and_round_trips() {
    let json = istio_bootstrap();
    let b = Bootstrap::from_json(&json.to_string()).unwrap();

    assert_eq!(b.xds_servers.len(), 1);
    let s = &b.xds_servers[0];
    assert_eq!(s.server_uri(), "unix:///etc/istio/proxy/XDS");
    assert_eq!(
        s.target(),
        &ServerTarget::Unix("/etc/istio/proxy/XDS".into())
    );
    assert_eq!(s.channel_creds(), &ChannelCreds::Insecure);
    assert!(s.server_features().xds_v3);

    assert_eq!(
        b.node.id,
        "sidecar~10.0.0.1~echo-v1-abc.default~default.svc.cluster.local"
    );
    assert_eq!(b.node.metadata["GENERATOR"], "grpc");
    assert_eq!(b.node.metadata["NAMESPACE"], "default");
    assert_eq!(b.node.metadata["LABELS"]["app"], "echo");
    assert_eq!(b.node.user_agent_name, "mesh");

    let CertificateProviderConfig::FileWatcher(fw) = &b.certificate_providers["default"] else {
        panic!("not a file watcher")
    };
    assert_eq!(
        fw.certificate_file,
        Some(PathBuf::from("/var/lib/istio/data/cert-chain.pem"))
    );
    assert_eq!(fw.refresh_interval, Duration::from_secs(900));

    assert_eq!(
        b.server_listener_name("10.0.0.1:8080").as_deref(),
        Some("xds.istio.io/grpc/lds/inbound/10.0.0.1:8080")
    );
    assert_eq!(
        b.client_listener_name(None, "echo.default.svc.cluster.local:7070")
            .as_deref(),
        Some("echo.default.svc.cluster.local:7070")
    );

    // Written back, it is the same file, and loads to the same bootstrap.
    assert_eq!(b.to_json(), json);
    assert_eq!(Bootstrap::from_value(&b.to_json()).unwrap(), b);

    // The wire node carries the metadata istiod reads.
    let p = b.node.to_proto();
    assert_eq!(p.id, b.node.id);
    let meta = p.metadata.unwrap();
    assert!(meta.fields.contains_key("GENERATOR") && meta.fields.contains_key("LABELS"));
}

#[test]
fn unknown_keys_are_ignored() {
    let mut json = istio_bootstrap();
    json["future_top_level"] = json!({"x": 1});
    json["xds_servers"][0]["call_creds"] = json!([{"type": "jwt"}]);
    json["node"]["user_agent_name"] = json!("someone-else");
    let b = Bootstrap::from_value(&json).unwrap();
    assert_eq!(b.node.user_agent_name, "mesh");
}

fn write_temp(text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(text.as_bytes()).unwrap();
    f
}

/// `from_env` reads variables through a lookup so tests need not mutate the
/// process environment (`set_var` is unsafe in edition 2024 and races with
/// parallel tests).
fn from_vars(vars: &[(&str, &str)]) -> Result<Bootstrap, BootstrapError> {
    let vars: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    Bootstrap::from_lookup(|k| vars.get(k).cloned())
}

#[test]
fn env_path_wins_over_config() {
    let file = write_temp(&istio_bootstrap().to_string());
    let path = file.path().to_str().unwrap();
    let inline = Bootstrap::builder()
        .xds_server("127.0.0.1:15010")
        .node_id("from-config")
        .build()
        .unwrap()
        .to_json()
        .to_string();

    let b = from_vars(&[(ENV_PATH, path), (ENV_CONFIG, &inline)]).unwrap();
    assert!(b.node.id.starts_with("sidecar~"), "the path must win");

    let b = from_vars(&[(ENV_CONFIG, &inline)]).unwrap();
    assert_eq!(b.node.id, "from-config");

    // An empty path counts as unset.
    let b = from_vars(&[(ENV_PATH, ""), (ENV_CONFIG, &inline)]).unwrap();
    assert_eq!(b.node.id, "from-config");

    let e = from_vars(&[]).unwrap_err();
    assert_eq!(e.kind(), BootstrapErrorKind::NotConfigured);

    // A path that cannot be read fails; the config is not a fallback.
    let e = from_vars(&[
        (ENV_PATH, "/nonexistent/bootstrap.json"),
        (ENV_CONFIG, &inline),
    ])
    .unwrap_err();
    assert_eq!(e.kind(), BootstrapErrorKind::Io);
    assert!(
        e.to_string()
            .starts_with("bootstrap /nonexistent/bootstrap.json: cannot read file"),
        "{e}"
    );

    let e = from_vars(&[(ENV_CONFIG, "{\"xds_servers\": []}")]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "bootstrap GRPC_XDS_BOOTSTRAP_CONFIG: xds_servers: must be non-empty"
    );
}

#[test]
fn from_file_errors_name_the_file() {
    let mut json = istio_bootstrap();
    json["xds_servers"][0]
        .as_object_mut()
        .unwrap()
        .remove("server_uri");
    let file = write_temp(&json.to_string());
    let e = Bootstrap::from_file(file.path()).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "bootstrap {}: xds_servers[0].server_uri: missing",
            file.path().display()
        )
    );
    assert_eq!(e.path(), Some(file.path()));

    let file = write_temp("{not json");
    let e = Bootstrap::from_file(file.path()).unwrap_err();
    assert_eq!(e.kind(), BootstrapErrorKind::Json);
    assert!(e.to_string().contains(": invalid JSON: "), "{e}");
}

#[test]
fn each_error_names_its_key() {
    let base = istio_bootstrap();
    type Mutate = fn(&mut Value);
    let cases: Vec<(Mutate, &str)> = vec![
        (|j| *j = json!([]), "must be a JSON object, found array"),
        (
            |j| {
                j.as_object_mut().unwrap().remove("xds_servers");
            },
            "xds_servers: missing",
        ),
        (
            |j| j["xds_servers"] = json!({}),
            "xds_servers: must be an array",
        ),
        (
            |j| j["xds_servers"] = json!([]),
            "xds_servers: must be non-empty",
        ),
        (
            |j| j["xds_servers"][0] = json!("unix:///x"),
            "xds_servers[0]: must be a JSON object",
        ),
        (
            |j| j["xds_servers"][0]["server_uri"] = json!(""),
            "xds_servers[0].server_uri: must not be empty",
        ),
        (
            |j| j["xds_servers"][0]["channel_creds"] = json!([{"type": "google_default"}]),
            "xds_servers[0].channel_creds: no supported type",
        ),
        (|j| j["node"] = json!("n"), "node: must be a JSON object"),
        (
            |j| j["node"]["metadata"] = json!([1]),
            "node.metadata: must be a JSON object",
        ),
        (
            |j| j["certificate_providers"] = json!([]),
            "certificate_providers: must be a JSON object",
        ),
        (
            |j| j["certificate_providers"]["default"]["config"]["refresh_interval"] = json!("15m"),
            "certificate_providers.default.config.refresh_interval: \"15m\" is not a duration",
        ),
        (
            |j| j["certificate_providers"]["my.ca"] = json!({"config": {}}),
            "certificate_providers[\"my.ca\"].plugin_name: missing",
        ),
        (
            |j| j["server_listener_resource_name_template"] = json!(1),
            "server_listener_resource_name_template: must be a string",
        ),
        (
            |j| j["client_default_listener_resource_name_template"] = json!(true),
            "client_default_listener_resource_name_template: must be a string",
        ),
        (
            |j| j["authorities"] = json!([]),
            "authorities: must be a JSON object",
        ),
        (
            |j| {
                j["authorities"] =
                    json!({"a.com": {"client_listener_resource_name_template": "xdstp://b.com/%s"}})
            },
            "authorities[\"a.com\"].client_listener_resource_name_template: \"xdstp://b.com/%s\" must start with \"xdstp://a.com/\"",
        ),
        (
            |j| j["authorities"] = json!({"a.com": {"xds_servers": [{"server_uri": "x:1"}]}}),
            "authorities[\"a.com\"].xds_servers[0].channel_creds: missing",
        ),
    ];
    for (mutate, want) in cases {
        let mut j = base.clone();
        mutate(&mut j);
        let e = Bootstrap::from_json(&j.to_string()).unwrap_err();
        assert_eq!(e.kind(), BootstrapErrorKind::Invalid);
        let msg = e.to_string();
        assert!(
            msg.starts_with(&format!("bootstrap: {want}")),
            "got {msg:?}, want {want:?}"
        );
    }
}

fn federated() -> Bootstrap {
    Bootstrap::from_value(&json!({
        "xds_servers": [{"server_uri": "xds.authority.com:443", "channel_creds": [{"type": "insecure"}]}],
        "client_default_listener_resource_name_template":
            "xdstp://xds.authority.com/envoy.config.listener.v3.Listener/grpc/client/%s?project_id=1234",
        "server_listener_resource_name_template":
            "xdstp://xds.authority.com/envoy.config.listener.v3.Listener/grpc/server/%s",
        "authorities": {
            "xds.authority.com": {
                "client_listener_resource_name_template":
                    "xdstp://xds.authority.com/envoy.config.listener.v3.Listener/grpc/client/%s?project_id=1234"
            },
            "xds.other.com": {
                "xds_servers": [{"server_uri": "xds-server.other.com:443", "channel_creds": [{"type": "insecure"}]}]
            }
        }
    }))
    .unwrap()
}

#[test]
fn client_listener_names_follow_a47() {
    let b = federated();
    // No authority: the default template, xdstp so percent-encoded.
    assert_eq!(
        b.client_listener_name(None, "server.example.com").unwrap(),
        "xdstp://xds.authority.com/envoy.config.listener.v3.Listener/grpc/client/server.example.com?project_id=1234"
    );
    assert_eq!(
        b.client_listener_name(None, "a b/c?").unwrap(),
        "xdstp://xds.authority.com/envoy.config.listener.v3.Listener/grpc/client/a%20b/c%3F?project_id=1234"
    );
    // An authority with the default template.
    assert_eq!(
        b.client_listener_name(Some("xds.other.com"), "server.example.com")
            .unwrap(),
        "xdstp://xds.other.com/envoy.config.listener.v3.Listener/server.example.com"
    );
    // An unknown authority fails the channel.
    assert_eq!(b.client_listener_name(Some("nope.com"), "s"), None);

    // Old-style default: no encoding.
    let plain = Bootstrap::builder().xds_server("x:1").build().unwrap();
    assert_eq!(
        plain.client_listener_name(None, "echo:7070 x").unwrap(),
        "echo:7070 x"
    );
    assert_eq!(plain.server_listener_name("0.0.0.0:8080"), None);
}

#[test]
fn server_listener_names_encode_xdstp() {
    let b = federated();
    assert_eq!(
        b.server_listener_name("[::]:8080").unwrap(),
        "xdstp://xds.authority.com/envoy.config.listener.v3.Listener/grpc/server/%5B::%5D:8080"
    );
    let istio = Bootstrap::from_value(&istio_bootstrap()).unwrap();
    assert_eq!(
        istio.server_listener_name("[::]:8080").unwrap(),
        "xds.istio.io/grpc/lds/inbound/[::]:8080"
    );
}

#[test]
fn servers_for_resource_names() {
    let b = federated();
    let top = b.xds_servers.as_slice();
    assert_eq!(b.servers_for("echo:7070"), Some(top));
    assert_eq!(
        b.servers_for("xdstp://xds.authority.com/envoy.config.listener.v3.Listener/x"),
        Some(top)
    );
    let other = b
        .servers_for("xdstp://xds.other.com/envoy.config.cluster.v3.Cluster/c")
        .unwrap();
    assert_eq!(other[0].server_uri(), "xds-server.other.com:443");
    assert_eq!(b.servers_for("xdstp://unknown.com/t/n"), None);
    assert_eq!(Bootstrap::from_value(&b.to_json()).unwrap(), b);
}
