//! [`ProviderRegistry`]: the bootstrap's `certificate_providers`, started
//! on first use.
//!
//! Instances start lazily, when a TLS context first names them, because a
//! bootstrap may list providers no resource uses (and an unknown plugin
//! must only fail, naming the instance, when something refers to it, as
//! gRPC Java does). Started providers are cached weakly: every context
//! naming the same instance shares one watcher while any of them is in
//! use.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use mesh_core::bootstrap::{Bootstrap, CertificateProviderConfig};

use super::file_watcher::{DEFAULT_CHANGE_POLL, FileWatcherProvider};
use super::mesh_ca::MeshCaProvider;
use super::{CertificateProvider, WeakProvider};
use crate::tls::error::{TlsError, TlsErrorKind};

/// Certificate provider instances by name.
#[derive(Debug)]
pub struct ProviderRegistry {
    configs: BTreeMap<String, CertificateProviderConfig>,
    change_poll: Duration,
    /// Providers registered in code; held strongly.
    fixed: HashMap<String, CertificateProvider>,
    started: Mutex<HashMap<String, WeakProvider>>,
}

impl ProviderRegistry {
    /// A registry over these instance configs.
    pub fn new(configs: BTreeMap<String, CertificateProviderConfig>) -> Self {
        ProviderRegistry {
            configs,
            change_poll: DEFAULT_CHANGE_POLL,
            fixed: HashMap::new(),
            started: Mutex::new(HashMap::new()),
        }
    }

    /// A registry over the bootstrap's `certificate_providers`.
    pub fn from_bootstrap(bootstrap: &Bootstrap) -> Self {
        Self::new(bootstrap.certificate_providers.clone())
    }

    /// How often `file_watcher` providers check their files for changes
    /// (default 1 s).
    pub fn change_poll(mut self, every: Duration) -> Self {
        self.change_poll = every;
        self
    }

    /// Registers a provider built in code (a plugin the registry cannot
    /// start itself, or fixed test material) under its name; it takes
    /// precedence over a bootstrap entry of that name.
    pub fn register(&mut self, provider: CertificateProvider) {
        self.fixed.insert(provider.name().to_owned(), provider);
    }

    /// The provider instance `name`, started if it is not running. Errors
    /// name the instance: unknown, a plugin mesh cannot run, or files that
    /// cannot be loaded. A `mesh_ca` instance returns at once, before its
    /// first certificate arrives (see [`CertificateProvider::status`]).
    ///
    /// Must be called within a tokio runtime.
    pub fn get(&self, name: &str) -> Result<CertificateProvider, TlsError> {
        if let Some(p) = self.fixed.get(name) {
            return Ok(p.clone());
        }
        let config = self.configs.get(name).ok_or_else(|| {
            TlsError::new(
                TlsErrorKind::UnknownProvider,
                format!(
                    "certificate provider instance {name:?} is not defined in the bootstrap's \
                     certificate_providers (defined: {:?})",
                    self.configs.keys().collect::<Vec<_>>()
                ),
            )
        })?;
        let mut started = self.started.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = started.get(name).and_then(WeakProvider::upgrade) {
            return Ok(p);
        }
        let provider = match config {
            CertificateProviderConfig::FileWatcher(f) => FileWatcherProvider::new(name, f.clone())
                .change_poll(self.change_poll)
                .start()?,
            CertificateProviderConfig::MeshCa(m) => MeshCaProvider::new(name, m.clone()).start()?,
            other => {
                return Err(TlsError::new(
                    TlsErrorKind::UnsupportedPlugin,
                    format!(
                        "certificate provider instance {name:?} uses plugin {:?}, which mesh \
                         cannot run (supported: file_watcher, mesh_ca)",
                        other.plugin_name()
                    ),
                ));
            }
        };
        started.insert(name.to_owned(), provider.downgrade());
        Ok(provider)
    }
}
