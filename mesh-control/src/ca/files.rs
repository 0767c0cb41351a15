//! Writing issued certificates to disk as istio-agent lays them out
//! (`cert-chain.pem`, `key.pem`, `root-cert.pem`), atomically, so a
//! `file_watcher` provider never reads a half-written file.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use super::authority::IssuedCert;
use super::error::{CaError, CaErrorKind as Kind};

/// The certificate chain file istio-agent writes.
pub const CERT_CHAIN_PEM: &str = "cert-chain.pem";
/// The private key file istio-agent writes.
pub const KEY_PEM: &str = "key.pem";
/// The trust anchor file istio-agent writes.
pub const ROOT_CERT_PEM: &str = "root-cert.pem";

/// Where one workload's certificate files are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkloadCertPaths {
    /// The directory holding the three files.
    pub dir: PathBuf,
    /// `cert-chain.pem`: the leaf, then the CA chain.
    pub cert_chain: PathBuf,
    /// `key.pem`: the leaf's private key (mode 0600 on Unix).
    pub key: PathBuf,
    /// `root-cert.pem`: the trust anchor.
    pub root_cert: PathBuf,
}

impl WorkloadCertPaths {
    /// The paths in `dir` (nothing is written).
    pub fn in_dir(dir: impl Into<PathBuf>) -> Self {
        let dir = dir.into();
        WorkloadCertPaths {
            cert_chain: dir.join(CERT_CHAIN_PEM),
            key: dir.join(KEY_PEM),
            root_cert: dir.join(ROOT_CERT_PEM),
            dir,
        }
    }
}

impl IssuedCert {
    /// Writes `cert-chain.pem`, `key.pem` and `root-cert.pem` into `dir`
    /// (created if missing). Each file is replaced atomically; the key is
    /// written before the chain so a watcher that reloads on the chain's
    /// change finds a matching key.
    pub fn write_to(&self, dir: impl AsRef<Path>) -> Result<WorkloadCertPaths, CaError> {
        let paths = WorkloadCertPaths::in_dir(dir.as_ref());
        fs::create_dir_all(&paths.dir).map_err(|e| {
            CaError::with_source(
                Kind::Io,
                format!("cannot create {}", paths.dir.display()),
                e,
            )
        })?;
        write_atomic(&paths.root_cert, &self.root_pem, false)?;
        write_atomic(&paths.key, &self.key_pem, true)?;
        write_atomic(&paths.cert_chain, &self.chain_pem, false)?;
        Ok(paths)
    }
}

/// Writes `contents` to a temporary sibling and renames it over `path`.
/// `private` files get mode 0600 on Unix.
pub(crate) fn write_atomic(path: &Path, contents: &str, private: bool) -> Result<(), CaError> {
    let io = |e: std::io::Error| {
        CaError::with_source(Kind::Io, format!("cannot write {}", path.display()), e)
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = private;
    let mut f = opts.open(&tmp).map_err(io)?;
    f.write_all(contents.as_bytes()).map_err(io)?;
    f.sync_all().map_err(io)?;
    drop(f);
    fs::rename(&tmp, path).map_err(io)
}
