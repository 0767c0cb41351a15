//! SPIFFE workload identities as Istio names them:
//! `spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>`.
//!
//! This module parses and prints identities; it does not look at
//! certificates (see [`super::x509`]).

use std::fmt;
use std::str::FromStr;

use super::error::{CaError, CaErrorKind as Kind};

/// Istio's default trust domain.
pub const DEFAULT_TRUST_DOMAIN: &str = "cluster.local";

/// A workload identity: trust domain, namespace and service account.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SpiffeId {
    trust_domain: String,
    namespace: String,
    service_account: String,
}

impl SpiffeId {
    /// An identity in `trust_domain`; each part must be a non-empty path
    /// segment (no `/`, no whitespace) and the trust domain a lowercase DNS-ish
    /// name.
    pub fn new(
        trust_domain: impl Into<String>,
        namespace: impl Into<String>,
        service_account: impl Into<String>,
    ) -> Result<Self, CaError> {
        let id = SpiffeId {
            trust_domain: trust_domain.into(),
            namespace: namespace.into(),
            service_account: service_account.into(),
        };
        check_trust_domain(&id.trust_domain)?;
        check_segment("namespace", &id.namespace)?;
        check_segment("service account", &id.service_account)?;
        Ok(id)
    }

    /// The trust domain (`cluster.local`).
    pub fn trust_domain(&self) -> &str {
        &self.trust_domain
    }

    /// The Kubernetes namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The Kubernetes service account.
    pub fn service_account(&self) -> &str {
        &self.service_account
    }

    /// The URI form, as carried in a certificate's URI SAN.
    pub fn uri(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "spiffe://{}/ns/{}/sa/{}",
            self.trust_domain, self.namespace, self.service_account
        )
    }
}

impl FromStr for SpiffeId {
    type Err = CaError;

    /// Parses `spiffe://<td>/ns/<ns>/sa/<sa>`; other SPIFFE path shapes are
    /// not Istio workload identities and are refused.
    fn from_str(s: &str) -> Result<Self, CaError> {
        let bad = || {
            CaError::new(
                Kind::InvalidIdentity,
                format!(
                    "{s:?} is not a workload identity (spiffe://<trust-domain>/ns/<ns>/sa/<sa>)"
                ),
            )
        };
        let rest = s.strip_prefix("spiffe://").ok_or_else(bad)?;
        let (td, path) = rest.split_once('/').ok_or_else(bad)?;
        let parts: Vec<&str> = path.split('/').collect();
        match parts.as_slice() {
            ["ns", ns, "sa", sa] => SpiffeId::new(td, *ns, *sa),
            _ => Err(bad()),
        }
    }
}

fn check_segment(what: &str, v: &str) -> Result<(), CaError> {
    let ok = !v.is_empty()
        && v != "."
        && v != ".."
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'));
    if ok {
        Ok(())
    } else {
        Err(CaError::new(
            Kind::InvalidIdentity,
            format!("{what} {v:?}: expected letters, digits, '-', '.' or '_'"),
        ))
    }
}

fn check_trust_domain(v: &str) -> Result<(), CaError> {
    let ok = !v.is_empty()
        && v.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '.' | '_'));
    if ok {
        Ok(())
    } else {
        Err(CaError::new(
            Kind::InvalidIdentity,
            format!("trust domain {v:?}: expected lowercase letters, digits, '-', '.' or '_'"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_istio_shape() {
        let id: SpiffeId = "spiffe://cluster.local/ns/default/sa/echo".parse().unwrap();
        assert_eq!(id.trust_domain(), "cluster.local");
        assert_eq!(id.namespace(), "default");
        assert_eq!(id.service_account(), "echo");
        assert_eq!(id.uri(), "spiffe://cluster.local/ns/default/sa/echo");
    }

    #[test]
    fn refuses_other_shapes() {
        for bad in [
            "spiffe://cluster.local/ns/default",
            "spiffe://cluster.local/ns/default/sa/echo/extra",
            "spiffe://cluster.local/sa/echo/ns/default",
            "https://cluster.local/ns/default/sa/echo",
            "spiffe://cluster.local/ns//sa/echo",
            "spiffe://Cluster.Local/ns/a/sa/b",
            "spiffe://cluster.local/ns/../sa/b",
        ] {
            let err = bad.parse::<SpiffeId>().unwrap_err();
            assert_eq!(err.kind(), Kind::InvalidIdentity, "{bad}");
        }
    }
}
