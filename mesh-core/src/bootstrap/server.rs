//! One `xds_servers` entry: the server URI (parsed into a dialable
//! [`ServerTarget`]), the channel credentials and the server features.
//!
//! This module parses and validates; it does not dial or load certificates.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};

use super::error::{BootstrapError, Origin};
use super::parse::{self, Obj};
use super::target::{ServerTarget, parse_target};
use crate::resource::{AtField, FieldError};

/// An xDS management server (one `xds_servers` entry).
///
/// Equal servers (same URI, credentials and features) can share one ADS
/// connection (A47 de-duplication, A71 per-target clients).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct XdsServer {
    server_uri: String,
    target: ServerTarget,
    channel_creds: ChannelCreds,
    server_features: ServerFeatures,
}

/// The channel credentials used to reach an xDS server: the first entry of
/// `channel_creds` whose type mesh supports.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ChannelCreds {
    /// `insecure`: plaintext HTTP/2.
    Insecure,
    /// `tls` (A65): TLS, or mTLS when an identity certificate is given.
    Tls(TlsCreds),
}

/// The `tls` channel credentials' config (A65).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TlsCreds {
    /// CA certificates (PEM); the system roots when `None`.
    pub ca_certificate_file: Option<PathBuf>,
    /// Identity certificate chain (PEM) for mTLS; set together with the key.
    pub certificate_file: Option<PathBuf>,
    /// Identity private key (PEM) for mTLS; set together with the chain.
    pub private_key_file: Option<PathBuf>,
    /// How often to re-read the files (default 600 s).
    pub refresh_interval: Duration,
}

impl Default for TlsCreds {
    fn default() -> Self {
        TlsCreds {
            ca_certificate_file: None,
            certificate_file: None,
            private_key_file: None,
            refresh_interval: super::DEFAULT_REFRESH_INTERVAL,
        }
    }
}

/// The `server_features` mesh understands; unknown features are ignored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct ServerFeatures {
    /// `xds_v3` (A30): the server speaks xDS v3 (the only version mesh speaks).
    pub xds_v3: bool,
    /// `ignore_resource_deletion` (A53): keep LDS/CDS resources a response
    /// omits. A88 supersedes it; still accepted.
    pub ignore_resource_deletion: bool,
    /// `fail_on_data_errors` (A88): drop a cached resource on a deletion or
    /// a data error instead of keeping it.
    pub fail_on_data_errors: bool,
    /// `resource_timer_is_transient_error` (A88): the does-not-exist timer
    /// yields a transient error rather than a does-not-exist.
    pub resource_timer_is_transient_error: bool,
    /// `trusted_xds_server`: the server may configure security-sensitive
    /// features.
    pub trusted_xds_server: bool,
}

impl ServerFeatures {
    const NAMES: [&'static str; 5] = [
        "xds_v3",
        "ignore_resource_deletion",
        "fail_on_data_errors",
        "resource_timer_is_transient_error",
        "trusted_xds_server",
    ];

    fn flag(&mut self, name: &str) -> Option<&mut bool> {
        Some(match name {
            "xds_v3" => &mut self.xds_v3,
            "ignore_resource_deletion" => &mut self.ignore_resource_deletion,
            "fail_on_data_errors" => &mut self.fail_on_data_errors,
            "resource_timer_is_transient_error" => &mut self.resource_timer_is_transient_error,
            "trusted_xds_server" => &mut self.trusted_xds_server,
            _ => return None,
        })
    }

    /// The feature names that are set, in the bootstrap's spelling.
    pub fn names(&self) -> Vec<&'static str> {
        let mut copy = *self;
        Self::NAMES
            .into_iter()
            .filter(|n| copy.flag(n).is_some_and(|f| *f))
            .collect()
    }
}

impl XdsServer {
    /// A validated server: `server_uri` must be one of the forms
    /// [`XdsServer::target`] describes.
    pub fn new(
        server_uri: impl Into<String>,
        channel_creds: ChannelCreds,
        server_features: ServerFeatures,
    ) -> Result<Self, BootstrapError> {
        let server_uri = server_uri.into();
        Self::from_json(&server_json(&server_uri, &channel_creds, server_features))
            .map_err(|e| BootstrapError::invalid(Origin::Inline, e))
    }

    /// The URI as the bootstrap spelled it.
    pub fn server_uri(&self) -> &str {
        &self.server_uri
    }

    /// Where to connect. Accepted `server_uri` forms: `host:port`,
    /// `host` (port 443), `[::1]:port`, `dns:///host:port`, `dns:host:port`,
    /// `ipv4:10.0.0.1:port`, `ipv6:[::1]:port`, `unix:///abs/path` and
    /// `unix:path`.
    pub fn target(&self) -> &ServerTarget {
        &self.target
    }

    /// The credentials to dial with.
    pub fn channel_creds(&self) -> &ChannelCreds {
        &self.channel_creds
    }

    /// The server's features.
    pub fn server_features(&self) -> ServerFeatures {
        self.server_features
    }

    /// Parses one `xds_servers` entry; errors are relative to the entry.
    pub(super) fn from_json(v: &Value) -> Result<Self, FieldError> {
        let o = parse::as_object(v)?;
        let server_uri = parse::req_str(o, "server_uri")?;
        let target = parse_target(server_uri).map_err(|r| FieldError::new("server_uri", r))?;
        let channel_creds = parse_channel_creds(o)?;
        let mut server_features = ServerFeatures::default();
        for f in parse::opt_array(o, "server_features")?.unwrap_or_default() {
            // Unknown features and non-strings are ignored, as gRPC does.
            if let Some(flag) = f.as_str().and_then(|n| server_features.flag(n)) {
                *flag = true;
            }
        }
        Ok(XdsServer {
            server_uri: server_uri.to_owned(),
            target,
            channel_creds,
            server_features,
        })
    }

    /// The entry in gRPC's bootstrap format.
    pub fn to_json(&self) -> Value {
        server_json(&self.server_uri, &self.channel_creds, self.server_features)
    }
}

/// An `xds_servers` entry in gRPC's bootstrap format.
pub(super) fn server_json(uri: &str, creds: &ChannelCreds, features: ServerFeatures) -> Value {
    let creds = match creds {
        ChannelCreds::Insecure => json!({"type": "insecure"}),
        ChannelCreds::Tls(t) => {
            let mut c = serde_json::Map::new();
            for (k, p) in [
                ("ca_certificate_file", &t.ca_certificate_file),
                ("certificate_file", &t.certificate_file),
                ("private_key_file", &t.private_key_file),
            ] {
                if let Some(p) = p {
                    c.insert(k.into(), p.to_string_lossy().into_owned().into());
                }
            }
            if t.refresh_interval != super::DEFAULT_REFRESH_INTERVAL {
                c.insert(
                    "refresh_interval".into(),
                    parse::format_duration(t.refresh_interval).into(),
                );
            }
            json!({"type": "tls", "config": c})
        }
    };
    json!({
        "server_uri": uri,
        "channel_creds": [creds],
        "server_features": features.names(),
    })
}

/// The first supported `channel_creds` entry. Like gRPC, every supported
/// entry's config is validated, not only the chosen one.
fn parse_channel_creds(o: &Obj) -> Result<ChannelCreds, FieldError> {
    let list = parse::opt_array(o, "channel_creds")?
        .ok_or_else(|| FieldError::new("channel_creds", "missing"))?;
    let mut chosen = None;
    let mut unsupported = Vec::new();
    for (i, entry) in list.iter().enumerate() {
        let creds = parse_one_creds(entry).at_field(format!("channel_creds[{i}]"))?;
        match creds {
            Ok(c) => {
                chosen.get_or_insert(c);
            }
            Err(ty) => unsupported.push(ty),
        }
    }
    chosen.ok_or_else(|| {
        let found = if unsupported.is_empty() {
            "the list is empty".to_owned()
        } else {
            format!("found {}", unsupported.join(", "))
        };
        FieldError::new(
            "channel_creds",
            format!("no supported type ({found}; mesh supports insecure and tls)"),
        )
    })
}

/// `Ok(Ok(creds))` for a supported type, `Ok(Err(type))` for one mesh skips.
fn parse_one_creds(v: &Value) -> Result<Result<ChannelCreds, String>, FieldError> {
    let o = parse::as_object(v)?;
    let ty = parse::req_str(o, "type")?;
    let config = parse::opt_obj(o, "config")?;
    Ok(match ty {
        // insecure accepts no configuration; gRPC ignores what is there.
        "insecure" => Ok(ChannelCreds::Insecure),
        "tls" => {
            let empty = Obj::new();
            let c = config.unwrap_or(&empty);
            let t = TlsCreds {
                ca_certificate_file: parse::opt_path(c, "ca_certificate_file")
                    .at_field("config")?,
                certificate_file: parse::opt_path(c, "certificate_file").at_field("config")?,
                private_key_file: parse::opt_path(c, "private_key_file").at_field("config")?,
                refresh_interval: parse::opt_duration(c, "refresh_interval")
                    .at_field("config")?
                    .unwrap_or(super::DEFAULT_REFRESH_INTERVAL),
            };
            check_key_pair(&t.certificate_file, &t.private_key_file).at_field("config")?;
            Ok(ChannelCreds::Tls(t))
        }
        // google_default and anything newer: skip to the next entry.
        other => Err(other.to_owned()),
    })
}

/// An identity certificate and its key come together (A29, A65).
pub(super) fn check_key_pair(
    cert: &Option<PathBuf>,
    key: &Option<PathBuf>,
) -> Result<(), FieldError> {
    match (cert, key) {
        (Some(_), None) => Err(FieldError::new(
            "private_key_file",
            "missing (certificate_file is set; both or neither)",
        )),
        (None, Some(_)) => Err(FieldError::new(
            "certificate_file",
            "missing (private_key_file is set; both or neither)",
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(v: Value) -> Result<XdsServer, FieldError> {
        XdsServer::from_json(&v)
    }

    #[test]
    fn channel_creds_fall_through_to_first_supported() {
        let s = server(json!({
            "server_uri": "xds:443",
            "channel_creds": [{"type": "google_default"}, {"type": "insecure"}, {"type": "tls"}]
        }))
        .unwrap();
        assert_eq!(s.channel_creds(), &ChannelCreds::Insecure);

        let s = server(json!({
            "server_uri": "xds:443",
            "channel_creds": [{"type": "google_default"}, {"type": "tls", "config": {
                "ca_certificate_file": "/ca.pem", "certificate_file": "/c.pem",
                "private_key_file": "/k.pem", "refresh_interval": "30s"}}]
        }))
        .unwrap();
        let ChannelCreds::Tls(t) = s.channel_creds() else {
            panic!("not tls")
        };
        assert_eq!(t.ca_certificate_file.as_deref(), Some("/ca.pem".as_ref()));
        assert_eq!(t.refresh_interval, Duration::from_secs(30));

        let s = server(json!({"server_uri": "xds:443", "channel_creds": [{"type": "tls"}]}));
        assert_eq!(
            s.unwrap().channel_creds(),
            &ChannelCreds::Tls(TlsCreds::default())
        );
    }

    #[test]
    fn channel_creds_errors_name_their_key() {
        let cases = [
            (json!({"server_uri": "x:1"}), "channel_creds: missing"),
            (
                json!({"server_uri": "x:1", "channel_creds": {}}),
                "channel_creds: must be an array, found object",
            ),
            (
                json!({"server_uri": "x:1", "channel_creds": []}),
                "channel_creds: no supported type (the list is empty",
            ),
            (
                json!({"server_uri": "x:1", "channel_creds": [{"type": "google_default"}]}),
                "channel_creds: no supported type (found google_default;",
            ),
            (
                json!({"server_uri": "x:1", "channel_creds": [{"config": {}}]}),
                "channel_creds[0].type: missing",
            ),
            (
                json!({"server_uri": "x:1", "channel_creds": ["insecure"]}),
                "channel_creds[0]: must be a JSON object, found string",
            ),
            (
                json!({"server_uri": "x:1", "channel_creds": [{"type": "insecure", "config": 3}]}),
                "channel_creds[0].config: must be a JSON object",
            ),
            // A later supported entry is validated too, as gRPC does.
            (
                json!({"server_uri": "x:1", "channel_creds": [{"type": "insecure"},
                    {"type": "tls", "config": {"certificate_file": "/c.pem"}}]}),
                "channel_creds[1].config.private_key_file: missing",
            ),
            (
                json!({"server_uri": "x:1", "channel_creds": [{"type": "tls",
                    "config": {"refresh_interval": "10"}}]}),
                "channel_creds[0].config.refresh_interval: \"10\" is not a duration",
            ),
            (
                json!({"channel_creds": [{"type": "insecure"}]}),
                "server_uri: missing",
            ),
            (
                json!({"server_uri": "a:b", "channel_creds": [{"type": "insecure"}]}),
                "server_uri: \"a:b\": port",
            ),
            (
                json!({"server_uri": "x:1", "channel_creds": [{"type": "insecure"}],
                    "server_features": "xds_v3"}),
                "server_features: must be an array",
            ),
        ];
        for (v, want) in cases {
            let e = server(v.clone()).unwrap_err().to_string();
            assert!(e.starts_with(want), "{v}: got {e:?}, want {want:?}");
        }
    }

    #[test]
    fn server_features_are_flags_and_unknown_ones_ignored() {
        let s = server(json!({
            "server_uri": "x:1",
            "channel_creds": [{"type": "insecure"}],
            "server_features": ["xds_v3", "ignore_resource_deletion", "fail_on_data_errors",
                "resource_timer_is_transient_error", "trusted_xds_server", "future_thing", 7]
        }))
        .unwrap();
        let f = s.server_features();
        assert!(f.xds_v3 && f.ignore_resource_deletion && f.fail_on_data_errors);
        assert!(f.resource_timer_is_transient_error && f.trusted_xds_server);
        assert_eq!(f.names().len(), 5);
        let none = server(json!({"server_uri": "x:1", "channel_creds": [{"type": "insecure"}]}));
        assert_eq!(none.unwrap().server_features(), ServerFeatures::default());
    }

    #[test]
    fn equal_servers_hash_equal_and_round_trip() {
        use std::collections::HashSet;
        let v = json!({"server_uri": "unix:///etc/istio/proxy/XDS",
            "channel_creds": [{"type": "insecure"}], "server_features": ["xds_v3"]});
        let a = server(v.clone()).unwrap();
        let b = server(a.to_json()).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.to_json(), v);
        let set: HashSet<_> = [a.clone(), b].into_iter().collect();
        assert_eq!(set.len(), 1);
        let other = XdsServer::new(
            "unix:///etc/istio/proxy/XDS",
            ChannelCreds::Insecure,
            ServerFeatures::default(),
        )
        .unwrap();
        assert_ne!(a, other, "features are part of the identity");
    }

    #[test]
    fn new_validates() {
        let e = XdsServer::new("", ChannelCreds::Insecure, ServerFeatures::default());
        assert_eq!(e.unwrap_err().field(), Some("server_uri"));
        let tls = TlsCreds {
            private_key_file: Some("/k.pem".into()),
            ..TlsCreds::default()
        };
        let e = XdsServer::new("x:1", ChannelCreds::Tls(tls), ServerFeatures::default());
        assert_eq!(
            e.unwrap_err().field(),
            Some("channel_creds[0].config.certificate_file")
        );
    }
}
