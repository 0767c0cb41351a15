//! gRPC's xDS bootstrap file (`doc/grpc_xds_bootstrap_format.md`, gRFCs
//! A27, A29, A30, A36, A47, A53, A65, A71, A88): which xDS servers to talk
//! to, who this client is, the certificate provider instances TLS contexts
//! refer to, and the templates that turn targets into Listener names.
//!
//! [`Bootstrap::from_env`] reads `GRPC_XDS_BOOTSTRAP` (a file path) or
//! `GRPC_XDS_BOOTSTRAP_CONFIG` (the JSON itself); the path wins when both are
//! set. Loading validates everything up front, so a bad bootstrap fails at
//! start-up with the key path that is wrong; unknown keys are ignored.
//! [`Bootstrap::builder`] builds one in code, and [`Bootstrap::to_json`]
//! writes one back in gRPC's format.
//!
//! This module does not dial servers, read certificate files or watch the
//! bootstrap for changes.

mod builder;
mod certs;
mod error;
mod mesh_ca;
mod names;
mod node;
mod parse;
mod server;
mod target;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::resource::{AtField, FieldError};

pub use self::builder::BootstrapBuilder;
pub use self::certs::{CertificateProviderConfig, FILE_WATCHER, FileWatcher};
pub use self::error::{BootstrapError, BootstrapErrorKind};
pub use self::mesh_ca::{
    DEFAULT_CERTIFICATE_LIFETIME, DEFAULT_RENEWAL_GRACE_RATIO, DEFAULT_RENEWAL_JITTER_RATIO,
    DEFAULT_REQUEST_TIMEOUT, DEFAULT_RETRY_INITIAL_BACKOFF, DEFAULT_RETRY_MAX_BACKOFF, KeyType,
    MESH_CA, MeshCa,
};
pub use self::names::Authority;
pub use self::node::{CLIENT_FEATURES, Node, USER_AGENT_NAME};
pub use self::server::{ChannelCreds, ServerFeatures, TlsCreds, XdsServer};
pub use self::target::ServerTarget;

use self::error::Origin;

/// The environment variable holding the bootstrap file's path.
pub const ENV_PATH: &str = "GRPC_XDS_BOOTSTRAP";
/// The environment variable holding the bootstrap JSON itself.
pub const ENV_CONFIG: &str = "GRPC_XDS_BOOTSTRAP_CONFIG";

/// The default certificate refresh interval (`file_watcher`, `tls` creds).
pub const DEFAULT_REFRESH_INTERVAL: Duration = Duration::from_secs(600);

/// A validated xDS bootstrap.
#[derive(Debug, Clone, PartialEq)]
pub struct Bootstrap {
    /// The xDS servers, in fallback order (A71); never empty.
    pub xds_servers: Vec<XdsServer>,
    /// This client's identity.
    pub node: Node,
    /// Certificate provider instances by instance name (A29).
    pub certificate_providers: BTreeMap<String, CertificateProviderConfig>,
    /// The server Listener name template (A36), `%s` = `ip:port`; xDS-enabled
    /// servers cannot start without it.
    pub server_listener_resource_name_template: Option<String>,
    /// The client Listener name template for `xds:` targets without an
    /// authority (A47); `"%s"` by default.
    pub client_default_listener_resource_name_template: String,
    /// Federation authorities by name (A47).
    pub authorities: BTreeMap<String, Authority>,
}

impl Bootstrap {
    /// A builder, for tests and embedding.
    pub fn builder() -> BootstrapBuilder {
        BootstrapBuilder::default()
    }

    /// Loads the bootstrap named by the environment: the file at
    /// `GRPC_XDS_BOOTSTRAP` if set (and non-empty), else the JSON in
    /// `GRPC_XDS_BOOTSTRAP_CONFIG`.
    pub fn from_env() -> Result<Self, BootstrapError> {
        Self::from_lookup(|k| std::env::var_os(k).and_then(|v| v.into_string().ok()))
    }

    fn from_lookup(var: impl Fn(&str) -> Option<String>) -> Result<Self, BootstrapError> {
        let set = |k| var(k).filter(|v| !v.is_empty());
        if let Some(path) = set(ENV_PATH) {
            Self::from_file(path)
        } else if let Some(json) = set(ENV_CONFIG) {
            Self::parse_str(&json, Origin::EnvConfig)
        } else {
            Err(BootstrapError::not_configured())
        }
    }

    /// Loads a bootstrap file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, BootstrapError> {
        let path = path.as_ref();
        let origin = Origin::File(path.to_owned());
        let text =
            std::fs::read_to_string(path).map_err(|e| BootstrapError::io(origin.clone(), e))?;
        Self::parse_str(&text, origin)
    }

    /// Parses bootstrap JSON.
    pub fn from_json(json: &str) -> Result<Self, BootstrapError> {
        Self::parse_str(json, Origin::Inline)
    }

    /// Validates an already-parsed JSON value.
    pub fn from_value(value: &Value) -> Result<Self, BootstrapError> {
        Self::parse_value(value).map_err(|e| BootstrapError::invalid(Origin::Inline, e))
    }

    fn parse_str(json: &str, origin: Origin) -> Result<Self, BootstrapError> {
        let value: Value =
            serde_json::from_str(json).map_err(|e| BootstrapError::json(origin.clone(), e))?;
        Self::parse_value(&value).map_err(|e| BootstrapError::invalid(origin, e))
    }

    fn parse_value(v: &Value) -> Result<Self, FieldError> {
        let o = parse::as_object(v)?;
        let servers = parse::opt_array(o, "xds_servers")?
            .ok_or_else(|| FieldError::new("xds_servers", "missing"))?;
        if servers.is_empty() {
            return Err(FieldError::new("xds_servers", "must be non-empty"));
        }
        let xds_servers = servers
            .iter()
            .enumerate()
            .map(|(i, s)| XdsServer::from_json(s).at_field(format!("xds_servers[{i}]")))
            .collect::<Result<_, _>>()?;
        let node = match o.get("node").filter(|n| !n.is_null()) {
            Some(n) => Node::from_json(n).at_field("node")?,
            None => Node::default(),
        };
        let mut certificate_providers = BTreeMap::new();
        for (name, c) in parse::opt_obj(o, "certificate_providers")?.unwrap_or(&Map::new()) {
            let path = parse::key_path("certificate_providers", name);
            let c = CertificateProviderConfig::from_json(c).at_field(path)?;
            certificate_providers.insert(name.clone(), c);
        }
        let server_listener_resource_name_template =
            parse::opt_str(o, "server_listener_resource_name_template")?.map(str::to_owned);
        let client_default_listener_resource_name_template =
            parse::opt_str(o, "client_default_listener_resource_name_template")?
                .unwrap_or("%s")
                .to_owned();
        let mut authorities = BTreeMap::new();
        for (name, a) in parse::opt_obj(o, "authorities")?.unwrap_or(&Map::new()) {
            let a = Authority::from_json(name, a).at_field(parse::key_path("authorities", name))?;
            authorities.insert(name.clone(), a);
        }
        Ok(Bootstrap {
            xds_servers,
            node,
            certificate_providers,
            server_listener_resource_name_template,
            client_default_listener_resource_name_template,
            authorities,
        })
    }

    /// The bootstrap in gRPC's JSON format, loadable by any gRPC xDS client
    /// (defaults and the node fields mesh fills are left out).
    pub fn to_json(&self) -> Value {
        let mut o = Map::new();
        o.insert(
            "xds_servers".into(),
            self.xds_servers.iter().map(XdsServer::to_json).collect(),
        );
        o.insert("node".into(), self.node.to_json());
        if !self.certificate_providers.is_empty() {
            let c = self
                .certificate_providers
                .iter()
                .map(|(k, v)| (k.clone(), v.to_json()))
                .collect();
            o.insert("certificate_providers".into(), Value::Object(c));
        }
        if let Some(t) = &self.server_listener_resource_name_template {
            o.insert(
                "server_listener_resource_name_template".into(),
                t.clone().into(),
            );
        }
        if self.client_default_listener_resource_name_template != "%s" {
            o.insert(
                "client_default_listener_resource_name_template".into(),
                self.client_default_listener_resource_name_template
                    .clone()
                    .into(),
            );
        }
        if !self.authorities.is_empty() {
            let a = self
                .authorities
                .iter()
                .map(|(k, v)| (k.clone(), v.to_json(k)))
                .collect();
            o.insert("authorities".into(), Value::Object(a));
        }
        Value::Object(o)
    }

    /// The Listener name a client channel subscribes to (A47), for a target
    /// `xds://<target_authority>/<target>` (or `xds:<target>` when
    /// `target_authority` is `None`).
    ///
    /// Without an authority, `client_default_listener_resource_name_template`
    /// is used; with one, that authority's template. `%s` becomes `target`,
    /// percent-encoded when the template is an `xdstp:` name. `None` when
    /// `target_authority` is not in `authorities`: A47 makes that channel
    /// fail.
    pub fn client_listener_name(
        &self,
        target_authority: Option<&str>,
        target: &str,
    ) -> Option<String> {
        let template = match target_authority {
            None => &self.client_default_listener_resource_name_template,
            Some(a) => {
                &self
                    .authorities
                    .get(a)?
                    .client_listener_resource_name_template
            }
        };
        Some(names::expand(template, target))
    }

    /// The Listener name an xDS-enabled server listening on `addr`
    /// (`0.0.0.0:8080`, `[::]:8080`) subscribes to (A36, A47); `None` when
    /// the bootstrap has no `server_listener_resource_name_template`.
    pub fn server_listener_name(&self, addr: &str) -> Option<String> {
        self.server_listener_resource_name_template
            .as_deref()
            .map(|t| names::expand(t, addr))
    }

    /// The servers that serve resource `name` (A47): an `xdstp://` name's
    /// authority's servers (the top-level ones if it lists none), the
    /// top-level servers for old-style names; `None` when the `xdstp://`
    /// authority is not in `authorities`.
    pub fn servers_for(&self, name: &str) -> Option<&[XdsServer]> {
        match names::xdstp_authority(name) {
            None => Some(&self.xds_servers),
            Some(a) => {
                let a = self.authorities.get(a)?;
                if a.xds_servers.is_empty() {
                    Some(&self.xds_servers)
                } else {
                    Some(&a.xds_servers)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
