//! The `mesh_ca` certificate provider's config: where the CA is, how to
//! authenticate to it, what to trust, and when to renew.
//!
//! Only the config is parsed and validated here; the CA client is
//! [`crate::ca_client`] and the rotation loop belongs to the TLS layer.
//!
//! ```json
//! "certificate_providers": {
//!   "default": {
//!     "plugin_name": "mesh_ca",
//!     "config": {
//!       "server_uri": "https://istiod.istio-system.svc:15012",
//!       "token_file": "/var/run/secrets/tokens/istio-token",
//!       "ca_certificate_file": "/etc/mesh/root-cert.pem",
//!       "certificate_lifetime": "86400s",
//!       "renewal_grace_ratio": 0.5,
//!       "renewal_jitter_ratio": 0.01,
//!       "key_type": "ECDSA_P256"
//!     }
//!   }
//! }
//! ```

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Map, Value};

use super::parse::{self, Obj};
use crate::resource::FieldError;

/// The plugin name of [`MeshCa`].
pub const MESH_CA: &str = "mesh_ca";

/// Istio's default workload certificate lifetime.
pub const DEFAULT_CERTIFICATE_LIFETIME: Duration = Duration::from_secs(24 * 3600);
/// Renew when this fraction of the lifetime remains (istio-agent's
/// `SECRET_ROTATION_GRACE_PERIOD_RATIO`).
pub const DEFAULT_RENEWAL_GRACE_RATIO: f64 = 0.5;
/// Spread of the renewal point, as a fraction of the lifetime.
pub const DEFAULT_RENEWAL_JITTER_RATIO: f64 = 0.01;
/// The first retry delay after a failed request.
pub const DEFAULT_RETRY_INITIAL_BACKOFF: Duration = Duration::from_secs(1);
/// The longest retry delay.
pub const DEFAULT_RETRY_MAX_BACKOFF: Duration = Duration::from_secs(60);
/// How long one request to the CA may take.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The key pair generated for each certificate request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum KeyType {
    /// ECDSA on P-256 with SHA-256 (Istio's default for ECC).
    #[default]
    EcdsaP256,
    /// ECDSA on P-384 with SHA-384.
    EcdsaP384,
}

impl KeyType {
    /// The config spelling (`ECDSA_P256`).
    pub fn as_str(self) -> &'static str {
        match self {
            KeyType::EcdsaP256 => "ECDSA_P256",
            KeyType::EcdsaP384 => "ECDSA_P384",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        [KeyType::EcdsaP256, KeyType::EcdsaP384]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

/// The `mesh_ca` plugin's config: a workload certificate fetched from the
/// mesh's CA over Istio's CA API and renewed before it expires.
#[derive(Debug, Clone, PartialEq)]
pub struct MeshCa {
    /// The CA's address, `https://host:port` (the CA only serves TLS).
    pub server_uri: String,
    /// The name the CA's serving certificate is verified against; default
    /// the host of `server_uri`.
    pub server_name: Option<String>,
    /// A file holding the bootstrap token sent as `authorization: Bearer`;
    /// re-read at every request, as a projected service account token
    /// rotates.
    pub token_file: PathBuf,
    /// The trust anchor (PEM): verifies the CA's TLS certificate and the
    /// issued chain, and is the CA set peers are verified against.
    pub ca_certificate_file: PathBuf,
    /// The validity to request (the CA may cap it).
    pub certificate_lifetime: Duration,
    /// Renew when this fraction of the certificate's lifetime remains;
    /// in (0, 1).
    pub renewal_grace_ratio: f64,
    /// The renewal point varies by up to ± this fraction of the lifetime,
    /// so workloads started together do not renew together; in [0, 1),
    /// and the grace ratio ± the jitter stays within (0, 1).
    pub renewal_jitter_ratio: f64,
    /// The key type of each new key pair.
    pub key_type: KeyType,
    /// The first delay before retrying a failed request; doubled per
    /// failure up to `retry_max_backoff`.
    pub retry_initial_backoff: Duration,
    /// The longest delay between retries.
    pub retry_max_backoff: Duration,
    /// How long one request may take, connection included.
    pub request_timeout: Duration,
}

impl MeshCa {
    /// A config with the defaults for everything but the CA's address, the
    /// token file and the trust anchor.
    pub fn new(
        server_uri: impl Into<String>,
        token_file: impl Into<PathBuf>,
        ca_certificate_file: impl Into<PathBuf>,
    ) -> Self {
        MeshCa {
            server_uri: server_uri.into(),
            server_name: None,
            token_file: token_file.into(),
            ca_certificate_file: ca_certificate_file.into(),
            certificate_lifetime: DEFAULT_CERTIFICATE_LIFETIME,
            renewal_grace_ratio: DEFAULT_RENEWAL_GRACE_RATIO,
            renewal_jitter_ratio: DEFAULT_RENEWAL_JITTER_RATIO,
            key_type: KeyType::default(),
            retry_initial_backoff: DEFAULT_RETRY_INITIAL_BACKOFF,
            retry_max_backoff: DEFAULT_RETRY_MAX_BACKOFF,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
        }
    }

    pub(super) fn from_json(o: &Obj) -> Result<Self, FieldError> {
        let req_path =
            |key: &str| parse::opt_path(o, key)?.ok_or_else(|| FieldError::new(key, "missing"));
        let dur = |key: &str, default: Duration| {
            parse::opt_duration(o, key).map(|d| d.unwrap_or(default))
        };
        let key_type = match parse::opt_str(o, "key_type")? {
            None => KeyType::default(),
            Some(s) => KeyType::parse(s).ok_or_else(|| {
                FieldError::new(
                    "key_type",
                    format!("{s:?} is not one of \"ECDSA_P256\", \"ECDSA_P384\""),
                )
            })?,
        };
        let c = MeshCa {
            server_uri: parse::req_str(o, "server_uri")?.to_owned(),
            server_name: parse::opt_str(o, "server_name")?.map(str::to_owned),
            token_file: req_path("token_file")?,
            ca_certificate_file: req_path("ca_certificate_file")?,
            certificate_lifetime: dur("certificate_lifetime", DEFAULT_CERTIFICATE_LIFETIME)?,
            renewal_grace_ratio: opt_ratio(o, "renewal_grace_ratio")?
                .unwrap_or(DEFAULT_RENEWAL_GRACE_RATIO),
            renewal_jitter_ratio: opt_ratio(o, "renewal_jitter_ratio")?
                .unwrap_or(DEFAULT_RENEWAL_JITTER_RATIO),
            key_type,
            retry_initial_backoff: dur("retry_initial_backoff", DEFAULT_RETRY_INITIAL_BACKOFF)?,
            retry_max_backoff: dur("retry_max_backoff", DEFAULT_RETRY_MAX_BACKOFF)?,
            request_timeout: dur("request_timeout", DEFAULT_REQUEST_TIMEOUT)?,
        };
        c.validate()?;
        Ok(c)
    }

    /// Checks the rules a config built in code must also follow; the error
    /// names the field.
    pub fn validate(&self) -> Result<(), FieldError> {
        check_uri(&self.server_uri).map_err(|r| FieldError::new("server_uri", r))?;
        if self.server_name.as_deref() == Some("") {
            return Err(FieldError::new("server_name", "must not be empty"));
        }
        for (key, p) in [
            ("token_file", &self.token_file),
            ("ca_certificate_file", &self.ca_certificate_file),
        ] {
            if p.as_os_str().is_empty() {
                return Err(FieldError::new(key, "must not be empty"));
            }
        }
        if self.certificate_lifetime < Duration::from_secs(1) {
            return Err(FieldError::new(
                "certificate_lifetime",
                "must be at least 1s (the CA API counts whole seconds)",
            ));
        }
        let (g, j) = (self.renewal_grace_ratio, self.renewal_jitter_ratio);
        if !(g > 0.0 && g < 1.0) {
            return Err(FieldError::new(
                "renewal_grace_ratio",
                format!("{g} must be between 0 and 1 (exclusive)"),
            ));
        }
        if !(0.0..1.0).contains(&j) || g - j <= 0.0 || g + j >= 1.0 {
            return Err(FieldError::new(
                "renewal_jitter_ratio",
                format!(
                    "{j} must be at least 0 and keep renewal_grace_ratio ({g}) ± it between 0 \
                     and 1 (exclusive)"
                ),
            ));
        }
        for (key, d) in [
            ("retry_initial_backoff", self.retry_initial_backoff),
            ("retry_max_backoff", self.retry_max_backoff),
            ("request_timeout", self.request_timeout),
        ] {
            if d.is_zero() {
                return Err(FieldError::new(key, "must be positive"));
            }
        }
        if self.retry_max_backoff < self.retry_initial_backoff {
            return Err(FieldError::new(
                "retry_max_backoff",
                "must not be less than retry_initial_backoff",
            ));
        }
        Ok(())
    }

    /// The config in gRPC's bootstrap format (every field written).
    pub fn to_json(&self) -> Value {
        let mut c = Map::new();
        c.insert("server_uri".into(), self.server_uri.clone().into());
        if let Some(n) = &self.server_name {
            c.insert("server_name".into(), n.clone().into());
        }
        for (k, p) in [
            ("token_file", &self.token_file),
            ("ca_certificate_file", &self.ca_certificate_file),
        ] {
            c.insert(k.into(), p.to_string_lossy().into_owned().into());
        }
        for (k, d) in [
            ("certificate_lifetime", self.certificate_lifetime),
            ("retry_initial_backoff", self.retry_initial_backoff),
            ("retry_max_backoff", self.retry_max_backoff),
            ("request_timeout", self.request_timeout),
        ] {
            c.insert(k.into(), parse::format_duration(d).into());
        }
        c.insert(
            "renewal_grace_ratio".into(),
            self.renewal_grace_ratio.into(),
        );
        c.insert(
            "renewal_jitter_ratio".into(),
            self.renewal_jitter_ratio.into(),
        );
        c.insert("key_type".into(), self.key_type.as_str().into());
        Value::Object(c)
    }
}

/// An optional JSON number.
fn opt_ratio(o: &Obj, key: &str) -> Result<Option<f64>, FieldError> {
    match o.get(key).filter(|v| !v.is_null()) {
        None => Ok(None),
        Some(Value::Number(n)) => Ok(n.as_f64()),
        Some(v) => Err(FieldError::new(
            key,
            format!("must be a number, found {}", parse::type_name(v)),
        )),
    }
}

fn check_uri(s: &str) -> Result<(), String> {
    let uri: http::Uri = s.parse().map_err(|e| format!("{s:?} is not a URI ({e})"))?;
    if uri.scheme_str() != Some("https") {
        return Err(format!(
            "{s:?} must start with https:// (the CA is only served over TLS)"
        ));
    }
    match uri.authority() {
        Some(a) if !a.host().is_empty() && a.port_u16().is_some() => {}
        _ => return Err(format!("{s:?} must name a host and port")),
    }
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return Err(format!("{s:?} must not have a path or query"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::CertificateProviderConfig;
    use super::*;

    fn parse(config: Value) -> Result<CertificateProviderConfig, FieldError> {
        CertificateProviderConfig::from_json(&json!({"plugin_name": "mesh_ca", "config": config}))
    }

    fn minimal() -> Value {
        json!({"server_uri": "https://istiod.istio-system.svc:15012",
               "token_file": "/t", "ca_certificate_file": "/ca.pem"})
    }

    fn with(key: &str, v: Value) -> Value {
        let mut c = minimal();
        c[key] = v;
        c
    }

    #[test]
    fn parses_with_defaults_and_round_trips() {
        let c = parse(minimal()).unwrap();
        let CertificateProviderConfig::MeshCa(m) = &c else {
            panic!("{c:?}")
        };
        assert_eq!(
            *m,
            MeshCa::new("https://istiod.istio-system.svc:15012", "/t", "/ca.pem")
        );
        assert_eq!(c.plugin_name(), "mesh_ca");
        assert_eq!(parse(c.to_json()["config"].clone()).unwrap(), c);
    }

    #[test]
    fn parses_every_field() {
        let c = parse(json!({
            "server_uri": "https://127.0.0.1:15012",
            "server_name": "istiod.istio-system.svc",
            "token_file": "/t", "ca_certificate_file": "/ca.pem",
            "certificate_lifetime": "4s", "renewal_grace_ratio": 0.4,
            "renewal_jitter_ratio": 0, "key_type": "ECDSA_P384",
            "retry_initial_backoff": "0.1s", "retry_max_backoff": "2s",
            "request_timeout": "3s"}))
        .unwrap();
        let CertificateProviderConfig::MeshCa(m) = &c else {
            panic!()
        };
        assert_eq!(m.server_name.as_deref(), Some("istiod.istio-system.svc"));
        assert_eq!(m.certificate_lifetime, Duration::from_secs(4));
        assert_eq!(m.renewal_grace_ratio, 0.4);
        assert_eq!(m.renewal_jitter_ratio, 0.0);
        assert_eq!(m.key_type, KeyType::EcdsaP384);
        assert_eq!(m.retry_initial_backoff, Duration::from_millis(100));
        assert_eq!(m.retry_max_backoff, Duration::from_secs(2));
        assert_eq!(m.request_timeout, Duration::from_secs(3));
        assert_eq!(parse(c.to_json()["config"].clone()).unwrap(), c);
    }

    #[test]
    fn errors_name_the_field() {
        let mut no_uri = minimal();
        no_uri.as_object_mut().unwrap().remove("server_uri");
        let mut no_token = minimal();
        no_token.as_object_mut().unwrap().remove("token_file");
        let mut no_ca = minimal();
        no_ca.as_object_mut().unwrap().remove("ca_certificate_file");
        for (config, want) in [
            (json!(null), "config.server_uri: missing"),
            (no_uri, "config.server_uri: missing"),
            (no_token, "config.token_file: missing"),
            (no_ca, "config.ca_certificate_file: missing"),
            (
                with("server_uri", json!("http://ca:15012")),
                "config.server_uri: \"http://ca:15012\" must start with https://",
            ),
            (
                with("server_uri", json!("https://ca")),
                "config.server_uri: \"https://ca\" must name a host and port",
            ),
            (
                with("server_uri", json!("https://ca:1/x")),
                "config.server_uri: \"https://ca:1/x\" must not have a path",
            ),
            (
                with("server_uri", json!("not a uri")),
                "config.server_uri: \"not a uri\" is not a URI",
            ),
            (
                with("server_name", json!("")),
                "config.server_name: must not be empty",
            ),
            (
                with("token_file", json!("")),
                "config.token_file: must not be empty",
            ),
            (
                with("certificate_lifetime", json!("0.5s")),
                "config.certificate_lifetime: must be at least 1s",
            ),
            (
                with("certificate_lifetime", json!(3600)),
                "config.certificate_lifetime: must be a string",
            ),
            (
                with("renewal_grace_ratio", json!(1.0)),
                "config.renewal_grace_ratio: 1 must be between 0 and 1",
            ),
            (
                with("renewal_grace_ratio", json!("0.5")),
                "config.renewal_grace_ratio: must be a number",
            ),
            (
                with("renewal_jitter_ratio", json!(0.5)),
                "config.renewal_jitter_ratio: 0.5 must be at least 0",
            ),
            (
                with("renewal_jitter_ratio", json!(-0.1)),
                "config.renewal_jitter_ratio: -0.1 must be at least 0",
            ),
            (
                with("key_type", json!("RSA_2048")),
                "config.key_type: \"RSA_2048\" is not one of",
            ),
            (
                with("retry_max_backoff", json!("0.5s")),
                "config.retry_max_backoff: must not be less than retry_initial_backoff",
            ),
            (
                with("request_timeout", json!("0s")),
                "config.request_timeout: \"0s\" must be positive",
            ),
        ] {
            let e = parse(config.clone()).unwrap_err().to_string();
            assert!(e.starts_with(want), "{config}: got {e:?}");
        }
    }
}
