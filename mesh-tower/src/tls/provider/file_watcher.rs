//! The `file_watcher` certificate provider (gRPC A29): PEM files re-read
//! every `refresh_interval`, and as soon as they change.
//!
//! Changes are found by polling each file's identity (the fully resolved
//! path, device, inode, size and modification time) every
//! [`FileWatcherProvider::change_poll`]. The paths are resolved afresh at
//! every check, so the atomic swap Kubernetes uses for secret volumes
//! (`cert.pem -> ..data/cert.pem`, with the `..data` symlink replaced) is
//! seen like an in-place rewrite. A reload that fails (unreadable file,
//! bad PEM, a key that does not match the certificate because the files
//! were caught half-written) is logged and the previous material stays; it
//! is retried at the next change or refresh.
//!
//! Polling rather than inotify: it behaves the same on every filesystem,
//! follows symlink swaps without re-arming watches, and a stat of three
//! files per second costs nothing. The files are read with blocking I/O on
//! the watcher's task; they are a few kilobytes.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use mesh_core::bootstrap::FileWatcher;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::CertificateProvider;
use crate::tls::error::TlsError;
use crate::tls::material::CertifiedMaterial;

/// How often files are checked for changes unless configured otherwise.
pub const DEFAULT_CHANGE_POLL: Duration = Duration::from_secs(1);

/// Starts `file_watcher` providers.
#[derive(Debug, Clone)]
pub struct FileWatcherProvider {
    name: Arc<str>,
    config: FileWatcher,
    change_poll: Duration,
}

impl FileWatcherProvider {
    /// A provider for the bootstrap instance `name` with `config`.
    pub fn new(name: impl Into<Arc<str>>, config: FileWatcher) -> Self {
        FileWatcherProvider {
            name: name.into(),
            config,
            change_poll: DEFAULT_CHANGE_POLL,
        }
    }

    /// How often to check the files for changes (default 1 s; never less
    /// often than the refresh interval).
    pub fn change_poll(mut self, every: Duration) -> Self {
        self.change_poll = every.max(Duration::from_millis(1));
        self
    }

    /// Loads the files now (an error names the instance and the file) and
    /// starts watching them in a background task, which stops when the
    /// last handle to the returned provider is dropped.
    ///
    /// Must be called within a tokio runtime.
    pub fn start(self) -> Result<CertificateProvider, TlsError> {
        let files = Files::from(&self.config);
        let material = files.load().map_err(|e| self.context(e))?;
        let (tx, rx) = watch::channel(Arc::new(material));
        let fingerprint = files.fingerprint();
        let task = tokio::spawn(self.clone().watch(files, fingerprint, tx));
        Ok(CertificateProvider::from_watch(
            Arc::clone(&self.name),
            rx,
            AbortOnDrop(task),
        ))
    }

    fn context(&self, e: TlsError) -> TlsError {
        TlsError::with_source(
            e.kind(),
            format!(
                "certificate provider instance {:?} (file_watcher)",
                self.name
            ),
            e,
        )
    }

    async fn watch(
        self,
        files: Files,
        mut fingerprint: Fingerprint,
        tx: watch::Sender<Arc<CertifiedMaterial>>,
    ) {
        let refresh = self.config.refresh_interval;
        let poll = self.change_poll.min(refresh);
        let mut next_refresh = Instant::now() + refresh;
        loop {
            tokio::time::sleep(poll).await;
            let now = Instant::now();
            let current = files.fingerprint();
            let due = now >= next_refresh;
            if current == fingerprint && !due {
                continue;
            }
            if due {
                next_refresh = now + refresh;
            }
            // Remember what was seen even if the load fails, so a broken
            // file is logged once per change, not once per poll.
            fingerprint = current;
            match files.load() {
                Ok(material) => {
                    let changed = !tx.borrow().same_source(&material);
                    if changed {
                        tracing::info!(instance = %self.name, "certificate provider reloaded");
                        tx.send_replace(Arc::new(material));
                    }
                }
                Err(error) => {
                    let error = self.context(error);
                    tracing::warn!(%error, "certificate reload failed; keeping the previous certificates");
                }
            }
        }
    }
}

/// Aborts the watch task with the provider's last handle.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The watched paths, as configured (never pre-resolved, so symlink swaps
/// are followed).
#[derive(Debug)]
struct Files {
    chain: Option<PathBuf>,
    key: Option<PathBuf>,
    ca: Option<PathBuf>,
}

impl From<&FileWatcher> for Files {
    fn from(c: &FileWatcher) -> Self {
        Files {
            chain: c.certificate_file.clone(),
            key: c.private_key_file.clone(),
            ca: c.ca_certificate_file.clone(),
        }
    }
}

impl Files {
    fn load(&self) -> Result<CertifiedMaterial, TlsError> {
        CertifiedMaterial::from_files(
            self.chain.as_deref(),
            self.key.as_deref(),
            self.ca.as_deref(),
        )
    }

    fn fingerprint(&self) -> Fingerprint {
        [&self.chain, &self.key, &self.ca].map(|p| p.as_deref().map(FileId::of))
    }
}

type Fingerprint = [Option<FileId>; 3];

/// What identifies one version of a file, through any symlinks.
#[derive(Debug, Clone, PartialEq, Eq)]
enum FileId {
    Present {
        resolved: PathBuf,
        device: u64,
        inode: u64,
        len: u64,
        modified: Option<SystemTime>,
    },
    /// Missing or unreadable (the error kind, so a change of kind counts).
    Missing(std::io::ErrorKind),
}

impl FileId {
    fn of(path: &Path) -> FileId {
        let resolved = match std::fs::canonicalize(path) {
            Ok(p) => p,
            Err(e) => return FileId::Missing(e.kind()),
        };
        match std::fs::metadata(&resolved) {
            Ok(m) => {
                let (device, inode) = dev_ino(&m);
                FileId::Present {
                    resolved,
                    device,
                    inode,
                    len: m.len(),
                    modified: m.modified().ok(),
                }
            }
            Err(e) => FileId::Missing(e.kind()),
        }
    }
}

#[cfg(unix)]
fn dev_ino(m: &std::fs::Metadata) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    (m.dev(), m.ino())
}

#[cfg(not(unix))]
fn dev_ino(_: &std::fs::Metadata) -> (u64, u64) {
    (0, 0)
}

#[cfg(test)]
mod tests;
