//! Certificate providers (gRPC A29): named sources of
//! [`CertifiedMaterial`] that TLS contexts from xDS refer to by instance
//! name.
//!
//! A [`CertificateProvider`] is a cheap handle onto a watch of the current
//! material: handshakes read [`CertificateProvider::current`], so a reload
//! reaches the next handshake and leaves established connections alone.
//! [`FileWatcherProvider`] is the `file_watcher` plugin;
//! [`ProviderRegistry`] starts providers on first use from the bootstrap's
//! `certificate_providers`. [`MeshCaProvider`] is the `mesh_ca` plugin,
//! which fetches its certificate from the mesh's CA: such providers start
//! without an identity and report how they are doing as a
//! [`ProviderStatus`]. Other plugins publish through
//! [`CertificateProvider::from_watch`].

mod file_watcher;
pub mod mesh_ca;
mod registry;

use std::fmt;
use std::sync::Arc;

use tokio::sync::watch;

pub use self::file_watcher::FileWatcherProvider;
pub use self::mesh_ca::MeshCaProvider;
pub use self::registry::ProviderRegistry;
use super::material::CertifiedMaterial;

/// A handle onto one provider instance's current material. Clones share
/// the provider; when the last one is dropped, the provider's background
/// work (if any) stops.
#[derive(Clone)]
pub struct CertificateProvider {
    inner: Arc<Handle>,
}

#[derive(Debug)]
struct Handle {
    name: Arc<str>,
    material: watch::Receiver<Arc<CertifiedMaterial>>,
    /// Set for providers that obtain their material asynchronously.
    status: Option<watch::Receiver<ProviderStatus>>,
    /// Whatever keeps the provider's publisher alive (a task guard).
    _guard: Guard,
}

impl CertificateProvider {
    /// A provider whose material is published on `material` by someone
    /// else; `guard` is dropped with the last handle (e.g. to stop the
    /// publishing task).
    pub fn from_watch(
        name: impl Into<Arc<str>>,
        material: watch::Receiver<Arc<CertifiedMaterial>>,
        guard: impl Send + Sync + 'static,
    ) -> Self {
        CertificateProvider {
            inner: Arc::new(Handle {
                name: name.into(),
                material,
                status: None,
                _guard: Guard(Box::new(guard)),
            }),
        }
    }

    /// Like [`from_watch`](Self::from_watch), for a provider that obtains
    /// its material asynchronously (e.g. from a CA) and publishes how that
    /// goes on `status`. Until it has an identity, TLS configs naming it
    /// can still be built; handshakes needing its certificate fail with
    /// [`pending_reason`](Self::pending_reason).
    pub fn from_watch_with_status(
        name: impl Into<Arc<str>>,
        material: watch::Receiver<Arc<CertifiedMaterial>>,
        status: watch::Receiver<ProviderStatus>,
        guard: impl Send + Sync + 'static,
    ) -> Self {
        CertificateProvider {
            inner: Arc::new(Handle {
                name: name.into(),
                material,
                status: Some(status),
                _guard: Guard(Box::new(guard)),
            }),
        }
    }

    /// How an asynchronous provider is doing; `None` for providers that
    /// load their material synchronously (`file_watcher`, fixed).
    pub fn status(&self) -> Option<ProviderStatus> {
        self.inner.status.as_ref().map(|s| s.borrow().clone())
    }

    /// Why this provider cannot present a certificate yet: `Some` while an
    /// asynchronous provider has no identity, with its last error if any.
    pub fn pending_reason(&self) -> Option<String> {
        let status = self.inner.status.as_ref()?;
        if self.current().identity().is_some() {
            return None;
        }
        let status = status.borrow();
        Some(format!(
            "certificate provider instance {:?} has no certificate yet: {}",
            self.name(),
            status
                .last_error
                .as_deref()
                .unwrap_or("the first request is in progress")
        ))
    }

    /// A provider whose material never changes.
    pub fn fixed(name: impl Into<Arc<str>>, material: CertifiedMaterial) -> Self {
        let (tx, rx) = watch::channel(Arc::new(material));
        Self::from_watch(name, rx, tx)
    }

    /// The instance name (the bootstrap `certificate_providers` key).
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The current material; what a handshake starting now uses.
    pub fn current(&self) -> Arc<CertifiedMaterial> {
        Arc::clone(&self.inner.material.borrow())
    }

    /// A receiver that sees every newly published material.
    pub fn subscribe(&self) -> watch::Receiver<Arc<CertifiedMaterial>> {
        let mut rx = self.inner.material.clone();
        rx.mark_unchanged();
        rx
    }

    /// A reference that does not keep the provider alive.
    pub(crate) fn downgrade(&self) -> WeakProvider {
        WeakProvider(Arc::downgrade(&self.inner))
    }
}

/// How a provider that fetches its material (`mesh_ca`) is doing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProviderStatus {
    /// The last attempt's error, naming the instance; `None` once an
    /// attempt succeeds.
    pub last_error: Option<Arc<str>>,
    /// How many certificates it has obtained (renewals are this minus one).
    pub issued: u64,
    /// How many attempts have failed in total.
    pub failures: u64,
}

/// A [`CertificateProvider`] that does not keep it alive (the registry's
/// cache, so unused providers stop).
#[derive(Debug, Clone)]
pub(crate) struct WeakProvider(std::sync::Weak<Handle>);

impl WeakProvider {
    /// The provider, if some handle still holds it.
    pub(crate) fn upgrade(&self) -> Option<CertificateProvider> {
        self.0.upgrade().map(|inner| CertificateProvider { inner })
    }
}

/// Holds a provider's publisher alive; opaque.
struct Guard(#[allow(dead_code)] Box<dyn Send + Sync>);

impl fmt::Debug for Guard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Guard")
    }
}

impl fmt::Debug for CertificateProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertificateProvider")
            .field("name", &self.inner.name)
            .field("material", &*self.inner.material.borrow())
            .finish()
    }
}
