//! `certificate_providers` (A29): provider instances that TLS contexts from
//! xDS name (`instance_name: "default"`), keyed by instance name.
//!
//! Only the configuration is parsed here; watching files and building TLS
//! configs belongs to the TLS layer. The plugins mesh knows are
//! `file_watcher` and `mesh_ca` (see [`MeshCa`]). Other plugins load as [`CertificateProviderConfig::Other`]
//! with their raw config: gRPC implementations disagree on when an unknown
//! plugin fails (C-core rejects the bootstrap, Go drops the entry, Java fails
//! when a TLS context uses it); mesh keeps the entry so that the failure
//! happens, with the instance's name, only if an xDS resource refers to it.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Map, Value, json};

use super::mesh_ca::{MESH_CA, MeshCa};
use super::parse::{self, Obj};
use crate::resource::{AtField, FieldError};

/// The plugin name of [`FileWatcher`].
pub const FILE_WATCHER: &str = "file_watcher";

/// One certificate provider instance.
#[derive(Debug, Clone, PartialEq)]
pub enum CertificateProviderConfig {
    /// `file_watcher`: PEM files re-read periodically.
    FileWatcher(FileWatcher),
    /// `mesh_ca`: a certificate fetched from the mesh's CA and renewed.
    MeshCa(MeshCa),
    /// A plugin mesh-core does not interpret (e.g. `spiffe`); the TLS layer
    /// decides whether it can use it.
    Other {
        /// The plugin name.
        plugin_name: String,
        /// Its config object (`{}` when the bootstrap has none).
        config: Value,
    },
}

/// The `file_watcher` plugin's config (A29): identity certificate and key,
/// and/or CA certificates, re-read every `refresh_interval`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FileWatcher {
    /// Identity certificate chain (PEM); set together with the key.
    pub certificate_file: Option<PathBuf>,
    /// Identity private key (PEM); set together with the chain.
    pub private_key_file: Option<PathBuf>,
    /// CA certificates (PEM) used to validate peers.
    pub ca_certificate_file: Option<PathBuf>,
    /// How often to re-read the files (default 600 s).
    pub refresh_interval: Duration,
}

impl Default for FileWatcher {
    fn default() -> Self {
        FileWatcher {
            certificate_file: None,
            private_key_file: None,
            ca_certificate_file: None,
            refresh_interval: super::DEFAULT_REFRESH_INTERVAL,
        }
    }
}

impl From<FileWatcher> for CertificateProviderConfig {
    fn from(f: FileWatcher) -> Self {
        CertificateProviderConfig::FileWatcher(f)
    }
}

impl From<MeshCa> for CertificateProviderConfig {
    fn from(m: MeshCa) -> Self {
        CertificateProviderConfig::MeshCa(m)
    }
}

impl CertificateProviderConfig {
    /// The plugin name (`file_watcher`, ...).
    pub fn plugin_name(&self) -> &str {
        match self {
            CertificateProviderConfig::FileWatcher(_) => FILE_WATCHER,
            CertificateProviderConfig::MeshCa(_) => MESH_CA,
            CertificateProviderConfig::Other { plugin_name, .. } => plugin_name,
        }
    }

    /// Parses one instance; errors are relative to it.
    pub(super) fn from_json(v: &Value) -> Result<Self, FieldError> {
        let o = parse::as_object(v)?;
        let plugin_name = parse::req_str(o, "plugin_name")?;
        let empty = Obj::new();
        let config = parse::opt_obj(o, "config")?;
        match plugin_name {
            FILE_WATCHER => FileWatcher::from_json(config.unwrap_or(&empty))
                .at_field("config")
                .map(CertificateProviderConfig::FileWatcher),
            MESH_CA => MeshCa::from_json(config.unwrap_or(&empty))
                .at_field("config")
                .map(CertificateProviderConfig::MeshCa),
            "" => Err(FieldError::new("plugin_name", "must not be empty")),
            other => Ok(CertificateProviderConfig::Other {
                plugin_name: other.to_owned(),
                config: Value::Object(config.cloned().unwrap_or_default()),
            }),
        }
    }

    /// The instance in gRPC's bootstrap format.
    pub fn to_json(&self) -> Value {
        match self {
            CertificateProviderConfig::FileWatcher(f) => {
                json!({"plugin_name": FILE_WATCHER, "config": f.to_json()})
            }
            CertificateProviderConfig::MeshCa(m) => {
                json!({"plugin_name": MESH_CA, "config": m.to_json()})
            }
            CertificateProviderConfig::Other {
                plugin_name,
                config,
            } => json!({"plugin_name": plugin_name, "config": config}),
        }
    }
}

impl FileWatcher {
    fn from_json(o: &Obj) -> Result<Self, FieldError> {
        let f = FileWatcher {
            certificate_file: parse::opt_path(o, "certificate_file")?,
            private_key_file: parse::opt_path(o, "private_key_file")?,
            ca_certificate_file: parse::opt_path(o, "ca_certificate_file")?,
            refresh_interval: parse::opt_duration(o, "refresh_interval")?
                .unwrap_or(super::DEFAULT_REFRESH_INTERVAL),
        };
        f.validate()?;
        Ok(f)
    }

    /// The A29 rules: certificate and key together, and at least one of the
    /// certificate and the CA certificate.
    pub(super) fn validate(&self) -> Result<(), FieldError> {
        super::server::check_key_pair(&self.certificate_file, &self.private_key_file)?;
        if self.certificate_file.is_none() && self.ca_certificate_file.is_none() {
            return Err(FieldError::new(
                "",
                "at least one of certificate_file and ca_certificate_file must be set",
            ));
        }
        if self.refresh_interval.is_zero() {
            return Err(FieldError::new("refresh_interval", "must be positive"));
        }
        Ok(())
    }

    fn to_json(&self) -> Value {
        let mut c = Map::new();
        for (k, p) in [
            ("certificate_file", &self.certificate_file),
            ("private_key_file", &self.private_key_file),
            ("ca_certificate_file", &self.ca_certificate_file),
        ] {
            if let Some(p) = p {
                c.insert(k.into(), p.to_string_lossy().into_owned().into());
            }
        }
        c.insert(
            "refresh_interval".into(),
            parse::format_duration(self.refresh_interval).into(),
        );
        Value::Object(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: Value) -> Result<CertificateProviderConfig, FieldError> {
        CertificateProviderConfig::from_json(&v)
    }

    #[test]
    fn file_watcher_parses_with_default_refresh() {
        let c = parse(json!({"plugin_name": "file_watcher", "config": {
            "certificate_file": "/c.pem", "private_key_file": "/k.pem",
            "ca_certificate_file": "/ca.pem"}}))
        .unwrap();
        let CertificateProviderConfig::FileWatcher(f) = &c else {
            panic!("{c:?}")
        };
        assert_eq!(f.refresh_interval, Duration::from_secs(600));
        assert_eq!(c.plugin_name(), "file_watcher");
        assert_eq!(parse(c.to_json()).unwrap(), c);

        // CA only (a client that has no identity) is fine.
        let c = parse(json!({"plugin_name": "file_watcher", "config": {
            "ca_certificate_file": "/ca.pem", "refresh_interval": "1.5s"}}))
        .unwrap();
        let CertificateProviderConfig::FileWatcher(f) = c else {
            panic!()
        };
        assert_eq!(f.refresh_interval, Duration::from_millis(1500));
    }

    #[test]
    fn unknown_plugins_load_as_other() {
        let c =
            parse(json!({"plugin_name": "spiffe", "config": {"addr": "istiod:15012"}})).unwrap();
        assert_eq!(c.plugin_name(), "spiffe");
        assert_eq!(
            c,
            CertificateProviderConfig::Other {
                plugin_name: "spiffe".into(),
                config: json!({"addr": "istiod:15012"})
            }
        );
        let c = parse(json!({"plugin_name": "x"})).unwrap();
        assert_eq!(c.to_json(), json!({"plugin_name": "x", "config": {}}));
    }

    #[test]
    fn errors_name_their_key() {
        for (v, want) in [
            (json!({"config": {}}), "plugin_name: missing"),
            (json!({"plugin_name": ""}), "plugin_name: must not be empty"),
            (json!({"plugin_name": 1}), "plugin_name: must be a string"),
            (
                json!({"plugin_name": "x", "config": []}),
                "config: must be a JSON object",
            ),
            (
                json!({"plugin_name": "file_watcher"}),
                "config: at least one of certificate_file and ca_certificate_file",
            ),
            (
                json!({"plugin_name": "file_watcher", "config": {"certificate_file": "/c"}}),
                "config.private_key_file: missing",
            ),
            (
                json!({"plugin_name": "file_watcher", "config": {"private_key_file": "/k", "ca_certificate_file": "/ca"}}),
                "config.certificate_file: missing",
            ),
            (
                json!({"plugin_name": "file_watcher", "config": {"ca_certificate_file": "/ca", "refresh_interval": "0s"}}),
                "config.refresh_interval: \"0s\" must be positive",
            ),
            (
                json!({"plugin_name": "file_watcher", "config": {"ca_certificate_file": "/ca", "refresh_interval": 600}}),
                "config.refresh_interval: must be a string",
            ),
            (
                json!({"plugin_name": "file_watcher", "config": {"ca_certificate_file": ""}}),
                "config.ca_certificate_file: must not be empty",
            ),
        ] {
            let e = parse(v.clone()).unwrap_err().to_string();
            assert!(e.starts_with(want), "{v}: got {e:?}");
        }
    }
}
