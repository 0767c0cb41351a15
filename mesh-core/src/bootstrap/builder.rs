//! [`BootstrapBuilder`]: a bootstrap built in code, for tests and for
//! embedding mesh without a file.
//!
//! The builder assembles gRPC's JSON and validates it with the same code as
//! a file, so a built bootstrap obeys exactly the rules a loaded one does.

use serde_json::{Map, Value, json};

use super::error::Origin;
use super::server::server_json;
use super::{
    Authority, Bootstrap, BootstrapError, CertificateProviderConfig, ChannelCreds, ServerFeatures,
    XdsServer,
};
use crate::resource::common::Locality;

/// Builds a [`Bootstrap`]; see [`Bootstrap::builder`].
///
/// ```
/// # use mesh_core::bootstrap::{Bootstrap, FileWatcher};
/// let b = Bootstrap::builder()
///     .xds_server("127.0.0.1:15010")
///     .node_id("greeter-client-1")
///     .node_metadata("GENERATOR", "grpc")
///     .certificate_provider("default", FileWatcher {
///         ca_certificate_file: Some("/etc/certs/root-cert.pem".into()),
///         ..FileWatcher::default()
///     })
///     .build()
///     .unwrap();
/// assert_eq!(b.node.id, "greeter-client-1");
/// ```
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct BootstrapBuilder {
    servers: Vec<Value>,
    node: Map<String, Value>,
    metadata: Map<String, Value>,
    certificate_providers: Map<String, Value>,
    server_template: Option<String>,
    client_default_template: Option<String>,
    authorities: Map<String, Value>,
}

impl BootstrapBuilder {
    /// Adds an xDS server with `insecure` credentials and the `xds_v3`
    /// feature. The URI is validated by [`build`](Self::build).
    pub fn xds_server(self, server_uri: impl Into<String>) -> Self {
        let features = ServerFeatures {
            xds_v3: true,
            ..ServerFeatures::default()
        };
        self.xds_server_with(server_uri, ChannelCreds::Insecure, features)
    }

    /// Adds an xDS server with the given credentials and features.
    pub fn xds_server_with(
        mut self,
        server_uri: impl Into<String>,
        channel_creds: ChannelCreds,
        server_features: ServerFeatures,
    ) -> Self {
        self.servers.push(server_json(
            &server_uri.into(),
            &channel_creds,
            server_features,
        ));
        self
    }

    /// Sets `node.id`.
    pub fn node_id(mut self, id: impl Into<String>) -> Self {
        self.node.insert("id".into(), id.into().into());
        self
    }

    /// Sets `node.cluster`.
    pub fn node_cluster(mut self, cluster: impl Into<String>) -> Self {
        self.node.insert("cluster".into(), cluster.into().into());
        self
    }

    /// Sets `node.locality`.
    pub fn node_locality(mut self, locality: Locality) -> Self {
        self.node.insert(
            "locality".into(),
            json!({"region": locality.region, "zone": locality.zone, "sub_zone": locality.sub_zone}),
        );
        self
    }

    /// Sets one `node.metadata` key.
    pub fn node_metadata(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }

    /// Adds a certificate provider instance.
    pub fn certificate_provider(
        mut self,
        instance_name: impl Into<String>,
        config: impl Into<CertificateProviderConfig>,
    ) -> Self {
        self.certificate_providers
            .insert(instance_name.into(), config.into().to_json());
        self
    }

    /// Sets `server_listener_resource_name_template` (A36).
    pub fn server_listener_resource_name_template(mut self, template: impl Into<String>) -> Self {
        self.server_template = Some(template.into());
        self
    }

    /// Sets `client_default_listener_resource_name_template` (A47).
    pub fn client_default_listener_resource_name_template(
        mut self,
        template: impl Into<String>,
    ) -> Self {
        self.client_default_template = Some(template.into());
        self
    }

    /// Adds a federation authority (A47).
    pub fn authority(mut self, name: impl Into<String>, authority: Authority) -> Self {
        let name = name.into();
        let v = json!({
            "client_listener_resource_name_template": authority.client_listener_resource_name_template,
            "xds_servers": authority.xds_servers.iter().map(XdsServer::to_json).collect::<Vec<_>>(),
        });
        self.authorities.insert(name, v);
        self
    }

    /// The bootstrap as gRPC JSON, before validation.
    fn into_json(self) -> Value {
        let mut node = self.node;
        if !self.metadata.is_empty() {
            node.insert("metadata".into(), Value::Object(self.metadata));
        }
        let mut o = Map::new();
        o.insert("xds_servers".into(), Value::Array(self.servers));
        o.insert("node".into(), Value::Object(node));
        o.insert(
            "certificate_providers".into(),
            Value::Object(self.certificate_providers),
        );
        if let Some(t) = self.server_template {
            o.insert("server_listener_resource_name_template".into(), t.into());
        }
        if let Some(t) = self.client_default_template {
            o.insert(
                "client_default_listener_resource_name_template".into(),
                t.into(),
            );
        }
        o.insert("authorities".into(), Value::Object(self.authorities));
        Value::Object(o)
    }

    /// Validates and returns the bootstrap (at least one server is needed).
    pub fn build(self) -> Result<Bootstrap, BootstrapError> {
        Bootstrap::parse_value(&self.into_json())
            .map_err(|e| BootstrapError::invalid(Origin::Inline, e))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::bootstrap::{FileWatcher, ServerTarget, TlsCreds};

    #[test]
    fn builder_defaults_to_insecure_xds_v3() {
        let b = Bootstrap::builder()
            .xds_server("127.0.0.1:15010")
            .node_id("n1")
            .node_cluster("c1")
            .node_locality(Locality {
                zone: "z1".into(),
                ..Locality::default()
            })
            .node_metadata("GENERATOR", "grpc")
            .node_metadata("LABELS", json!({"app": "echo"}))
            .build()
            .unwrap();
        let s = &b.xds_servers[0];
        assert_eq!(s.channel_creds(), &ChannelCreds::Insecure);
        assert!(s.server_features().xds_v3);
        assert_eq!(
            s.target(),
            &ServerTarget::Tcp {
                host: "127.0.0.1".into(),
                port: 15010
            }
        );
        assert_eq!(b.node.id, "n1");
        assert_eq!(b.node.cluster, "c1");
        assert_eq!(b.node.locality.zone, "z1");
        assert_eq!(b.node.metadata["LABELS"]["app"], "echo");
        assert_eq!(b.client_default_listener_resource_name_template, "%s");
        assert!(b.server_listener_resource_name_template.is_none());
        assert_eq!(Bootstrap::from_value(&b.to_json()).unwrap(), b);
    }

    #[test]
    fn builder_sets_everything() {
        let fw = FileWatcher {
            certificate_file: Some("/c.pem".into()),
            private_key_file: Some("/k.pem".into()),
            ca_certificate_file: Some("/ca.pem".into()),
            refresh_interval: Duration::from_secs(900),
        };
        let other = XdsServer::new(
            "dns:///xds.other.com:443",
            ChannelCreds::Tls(TlsCreds::default()),
            ServerFeatures::default(),
        )
        .unwrap();
        let b = Bootstrap::builder()
            .xds_server("unix:///etc/istio/proxy/XDS")
            .xds_server_with(
                "xds.example.com:443",
                ChannelCreds::Tls(TlsCreds::default()),
                ServerFeatures {
                    ignore_resource_deletion: true,
                    ..ServerFeatures::default()
                },
            )
            .certificate_provider("default", fw.clone())
            .server_listener_resource_name_template("xds.istio.io/grpc/lds/inbound/%s")
            .client_default_listener_resource_name_template("xdstp://a.com/l/%s")
            .authority("a.com", Authority::new("a.com"))
            .authority(
                "b.com",
                Authority {
                    xds_servers: vec![other.clone()],
                    ..Authority::new("b.com")
                },
            )
            .build()
            .unwrap();
        assert_eq!(b.xds_servers.len(), 2);
        assert!(b.xds_servers[1].server_features().ignore_resource_deletion);
        assert_eq!(
            b.certificate_providers["default"],
            CertificateProviderConfig::FileWatcher(fw)
        );
        assert_eq!(b.authorities["b.com"].xds_servers, vec![other]);
        assert_eq!(
            b.server_listener_name("10.0.0.1:8080").unwrap(),
            "xds.istio.io/grpc/lds/inbound/10.0.0.1:8080"
        );
        assert_eq!(Bootstrap::from_value(&b.to_json()).unwrap(), b);
    }

    #[test]
    fn builder_validates_like_a_file() {
        let e = Bootstrap::builder().node_id("n").build().unwrap_err();
        assert_eq!(e.to_string(), "bootstrap: xds_servers: must be non-empty");
        let e = Bootstrap::builder()
            .xds_server("127.0.0.1:15010")
            .xds_server("bad:port")
            .build()
            .unwrap_err();
        assert_eq!(e.field(), Some("xds_servers[1].server_uri"));
        let e = Bootstrap::builder()
            .xds_server("127.0.0.1:15010")
            .certificate_provider("default", FileWatcher::default())
            .build()
            .unwrap_err();
        assert_eq!(e.field(), Some("certificate_providers.default.config"));
        let e = Bootstrap::builder()
            .xds_server("127.0.0.1:15010")
            .authority(
                "a.com",
                Authority {
                    client_listener_resource_name_template: "xdstp://b.com/%s".into(),
                    xds_servers: vec![],
                },
            )
            .build()
            .unwrap_err();
        assert_eq!(
            e.field(),
            Some("authorities[\"a.com\"].client_listener_resource_name_template")
        );
    }
}
