//! Certificate providers (gRPC A29): named sources of
//! [`CertifiedMaterial`] that TLS contexts from xDS refer to by instance
//! name.
//!
//! A [`CertificateProvider`] is a cheap handle onto a watch of the current
//! material: handshakes read [`CertificateProvider::current`], so a reload
//! reaches the next handshake and leaves established connections alone.
//! [`FileWatcherProvider`] is the `file_watcher` plugin;
//! [`ProviderRegistry`] starts providers on first use from the bootstrap's
//! `certificate_providers`. Other plugins (e.g. a CA client) publish through
//! [`CertificateProvider::from_watch`].

mod file_watcher;
mod registry;

use std::fmt;
use std::sync::Arc;

use tokio::sync::watch;

pub use self::file_watcher::FileWatcherProvider;
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
                _guard: Guard(Box::new(guard)),
            }),
        }
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
