//! Config-driven issuance: a certificate per (namespace, service account)
//! found in mesh-control's config, written as
//! `<dir>/<ns>/<sa>/{cert-chain.pem,key.pem,root-cert.pem}`, and the
//! `file_watcher` certificate provider a workload's bootstrap points at
//! them with.
//!
//! Workloads are WorkloadEntries and inline ServiceEntry endpoints with a
//! `serviceAccount` (an endpoint without one has no identity and gets no
//! certificate). This module does not rotate anything: call it again (or
//! run the CA server) before the certificates expire.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use mesh_core::bootstrap::{CertificateProviderConfig, FileWatcher};
use serde_json::{Value, json};

use super::authority::Authority;
use super::error::CaError;
use super::files::WorkloadCertPaths;
use super::identity::SpiffeId;
use crate::config::Config;

/// The certificate provider instance name istio-agent's bootstrap uses.
pub const DEFAULT_PROVIDER_INSTANCE: &str = "default";
/// istio-agent's `refresh_interval` for the `file_watcher` provider.
pub const AGENT_REFRESH_INTERVAL: Duration = Duration::from_secs(900);

/// Every identity (namespace, service account) the config's workloads use,
/// sorted and without duplicates.
pub fn workload_identities(config: &Config) -> BTreeSet<(String, String)> {
    let entries = config.workload_entries.iter().filter_map(|w| {
        w.endpoint
            .service_account
            .as_ref()
            .map(|sa| (w.meta.namespace.clone(), sa.clone()))
    });
    let inline = config.service_entries.iter().flat_map(|se| {
        se.endpoints.iter().filter_map(|ep| {
            ep.service_account
                .as_ref()
                .map(|sa| (se.meta.namespace.clone(), sa.clone()))
        })
    });
    entries.chain(inline).collect()
}

/// Issues a certificate for every identity in `config` into
/// `<dir>/<ns>/<sa>/` and returns the files written, by identity. Stops at
/// the first failure (an invalid namespace or service account name, an
/// unwritable directory); files written before it stay.
pub fn issue_for_config(
    authority: &Authority,
    config: &Config,
    dir: impl AsRef<Path>,
) -> Result<BTreeMap<SpiffeId, WorkloadCertPaths>, CaError> {
    let dir = dir.as_ref();
    let mut out = BTreeMap::new();
    for (ns, sa) in workload_identities(config) {
        let id = authority.identity(&ns, &sa)?;
        let paths = authority
            .issue_for(&id, None)?
            .write_to(dir.join(&ns).join(&sa))?;
        out.insert(id, paths);
    }
    Ok(out)
}

impl WorkloadCertPaths {
    /// The `file_watcher` provider reading these files, refreshed every
    /// `refresh_interval` (istio-agent uses [`AGENT_REFRESH_INTERVAL`]).
    pub fn file_watcher(&self, refresh_interval: Duration) -> FileWatcher {
        FileWatcher {
            certificate_file: Some(self.cert_chain.clone()),
            private_key_file: Some(self.key.clone()),
            ca_certificate_file: Some(self.root_cert.clone()),
            refresh_interval,
        }
    }

    /// The bootstrap's `certificate_providers` object for these files:
    /// `{"default": {"plugin_name": "file_watcher", "config": {...}}}`, as
    /// istio-agent writes it (TLS contexts from istiod name the instance
    /// `default` for both the identity and `ROOTCA`).
    pub fn bootstrap_certificate_providers(&self, refresh_interval: Duration) -> Value {
        let provider = CertificateProviderConfig::from(self.file_watcher(refresh_interval));
        json!({ DEFAULT_PROVIDER_INSTANCE: provider.to_json() })
    }
}
