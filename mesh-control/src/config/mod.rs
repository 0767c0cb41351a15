//! Istio config in: YAML files (or a directory of them) parsed into a
//! validated model of the kinds mesh-control understands.
//!
//! Kinds: `networking.istio.io` VirtualService, DestinationRule,
//! ServiceEntry and WorkloadEntry (v1, v1beta1, v1alpha3), and
//! `security.istio.io` PeerAuthentication and AuthorizationPolicy (v1,
//! v1beta1). ServiceEntries and WorkloadEntries stand in for Kubernetes
//! Services and Pods.
//!
//! Unknown kinds and unknown fields are warnings naming the file, the
//! document (1-based index, kind and `namespace/name`) and the field path.
//! Invalid values are errors naming the same, and fail the whole load:
//! [`load`] returns `Err` and the caller keeps its last good [`Config`].
//!
//! One mesh-local extension: the annotation `mesh.dev/health: unhealthy` on
//! a WorkloadEntry (or on a ServiceEntry, for its inline endpoints) marks
//! its endpoints UNHEALTHY in EDS, so failover can be tried from config.
//!
//! This module does not translate anything to xDS (see
//! [`crate::translate`]) and does not watch files.

mod destination_rule;
mod security;
mod service_entry;
mod source;
mod virtual_service;
mod walk;

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

pub use self::destination_rule::{
    ConnectionPool, DestinationRule, HashKey, LoadBalancer, OutlierDetection, RingKind, SimpleLb,
    Subset, TlsMode, TrafficPolicy,
};
pub use self::security::{
    AuthorizationPolicy, AuthzAction, AuthzCondition, AuthzOperation, AuthzRule, AuthzSource,
    MtlsMode, PeerAuthentication,
};
pub use self::service_entry::{
    Resolution, ServiceEntry, ServicePort, WorkloadEndpoint, WorkloadEntry,
};
pub use self::virtual_service::{
    AbortStatus, Fault, FaultAbort, FaultDelay, HttpMatch, HttpRoute, Retries, RouteDestination,
    StringMatch, VirtualService,
};

/// The annotation marking a WorkloadEntry's endpoints unhealthy.
pub const HEALTH_ANNOTATION: &str = "mesh.dev/health";

/// Istio's root namespace: mesh-wide policies live here.
pub const ROOT_NAMESPACE: &str = "istio-system";

/// Where a config object came from.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DocRef {
    /// The file (or the name given to [`Config::from_yaml_str`]).
    pub file: String,
    /// The document's 1-based index in the file.
    pub index: usize,
    /// The object's kind, if the document had one.
    pub kind: String,
    /// `namespace/name`, if the document had a name.
    pub name: String,
}

impl fmt::Display for DocRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: document {}", self.file, self.index)?;
        match (self.kind.is_empty(), self.name.is_empty()) {
            (true, true) => Ok(()),
            (false, true) => write!(f, " ({})", self.kind),
            (true, false) => write!(f, " ({})", self.name),
            (false, false) => write!(f, " ({} {})", self.kind, self.name),
        }
    }
}

/// An object's metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace` (`default` when unset).
    pub namespace: String,
    /// `metadata.labels`.
    pub labels: BTreeMap<String, String>,
    /// `metadata.annotations`.
    pub annotations: BTreeMap<String, String>,
    /// Where the object was read.
    pub source: DocRef,
}

/// A warning or error about the config: where, which field, what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file (always set).
    pub file: String,
    /// The document, when the problem is inside one.
    pub document: Option<DocRef>,
    /// The field path inside the document (`spec.http[0].route[1].weight`).
    pub field: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl Diagnostic {
    fn in_doc(doc: &DocRef, field: Option<String>, message: impl Into<String>) -> Self {
        Diagnostic {
            file: doc.file.clone(),
            document: Some(doc.clone()),
            field,
            message: message.into(),
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.document {
            Some(d) => write!(f, "{d}: ")?,
            None => write!(f, "{}: ", self.file)?,
        }
        if let Some(field) = &self.field {
            write!(f, "{field}: ")?;
        }
        f.write_str(&self.message)
    }
}

/// Why a config could not be loaded: every invalid value found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors {
    /// The errors, in file and document order.
    pub errors: Vec<Diagnostic>,
    /// Warnings found on the way (unknown kinds or fields).
    pub warnings: Vec<Diagnostic>,
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// A successfully loaded config and the warnings about it.
#[derive(Debug, Clone, Default)]
pub struct Loaded {
    /// The config.
    pub config: Config,
    /// Unknown kinds, unknown or ignored fields.
    pub warnings: Vec<Diagnostic>,
}

/// The validated Istio config mesh-control translates.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// VirtualServices.
    pub virtual_services: Vec<VirtualService>,
    /// DestinationRules.
    pub destination_rules: Vec<DestinationRule>,
    /// ServiceEntries (services).
    pub service_entries: Vec<ServiceEntry>,
    /// WorkloadEntries (workloads).
    pub workload_entries: Vec<WorkloadEntry>,
    /// PeerAuthentications.
    pub peer_authentications: Vec<PeerAuthentication>,
    /// AuthorizationPolicies.
    pub authorization_policies: Vec<AuthorizationPolicy>,
}

impl Config {
    /// Parses YAML text (one or more documents); `name` stands for the file
    /// name in diagnostics.
    pub fn from_yaml_str(name: &str, yaml: &str) -> Result<Loaded, ConfigErrors> {
        let mut acc = source::Accumulator::default();
        acc.add_text(name, yaml);
        acc.finish()
    }

    /// Adds everything in `other` to this config.
    pub fn extend(&mut self, other: Config) {
        self.virtual_services.extend(other.virtual_services);
        self.destination_rules.extend(other.destination_rules);
        self.service_entries.extend(other.service_entries);
        self.workload_entries.extend(other.workload_entries);
        self.peer_authentications.extend(other.peer_authentications);
        self.authorization_policies
            .extend(other.authorization_policies);
    }
}

/// Loads a YAML file, or every `.yaml`/`.yml` file under a directory
/// (recursively, in name order). On `Err` nothing was loaded: keep the
/// previous config.
pub fn load(path: impl AsRef<Path>) -> Result<Loaded, ConfigErrors> {
    let mut acc = source::Accumulator::default();
    acc.add_path(path.as_ref());
    acc.finish()
}

/// Expands a short host name relative to `namespace` as Istio does: a name
/// without dots (`reviews`) becomes `reviews.<namespace>.svc.cluster.local`;
/// names with dots and wildcards are taken as they are.
pub fn fqdn(host: &str, namespace: &str) -> String {
    if host.contains('.') || host == "*" {
        host.to_owned()
    } else {
        format!("{host}.{namespace}.svc.cluster.local")
    }
}

#[cfg(test)]
mod tests;
