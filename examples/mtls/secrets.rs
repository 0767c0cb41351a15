//! Workload certificates on disk: a Kubernetes-style secret volume per
//! workload, the `file_watcher` provider a bootstrap points at it with, and
//! short tags naming certificates in the output. Issuing is the CA's job
//! (`mesh_control::ca::Authority`); reading and reloading is the provider's.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::PathBuf;
use std::time::Duration;

use mesh_control::ca::{DEFAULT_PROVIDER_INSTANCE, IssuedCert, WorkloadCertPaths};
use mesh_core::bootstrap::{Bootstrap, CertificateProviderConfig};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use crate::common::{BoxError, Options};

/// A short, stable name for one certificate (a hash of its DER).
pub(crate) fn cert_tag(der: &[u8]) -> String {
    let mut h = DefaultHasher::new();
    der.hash(&mut h);
    format!("cert#{:08x}", h.finish() as u32)
}

/// The tag of an issued certificate's leaf.
pub(crate) fn issued_tag(cert: &IssuedCert) -> Result<String, BoxError> {
    let leaf = CertificateDer::pem_slice_iter(cert.chain_pem.as_bytes())
        .next()
        .ok_or("an issued chain without a certificate")??;
    Ok(cert_tag(&leaf))
}

/// One workload's certificate files, laid out as Kubernetes writes a secret
/// volume: `cert-chain.pem -> ..data/cert-chain.pem` (and the same for the
/// key and root), with `..data` a symlink to the current generation's
/// directory. A rotation writes a new generation and swaps `..data` in one
/// rename, so a reader never sees a new certificate with an old key.
pub(crate) struct SecretVolume {
    /// The volume's directory.
    pub(crate) dir: PathBuf,
    generation: u32,
}

impl SecretVolume {
    /// Writes `cert` into a new volume at `dir`.
    pub(crate) fn create(dir: PathBuf, cert: &IssuedCert) -> Result<SecretVolume, BoxError> {
        std::fs::create_dir_all(&dir)?;
        let mut v = SecretVolume { dir, generation: 0 };
        v.publish(cert)?;
        Ok(v)
    }

    /// The files a `file_watcher` provider reads.
    pub(crate) fn paths(&self) -> WorkloadCertPaths {
        WorkloadCertPaths::in_dir(&self.dir)
    }

    /// Makes `cert` the volume's content, atomically.
    pub(crate) fn publish(&mut self, cert: &IssuedCert) -> Result<(), BoxError> {
        self.generation += 1;
        let data = format!("..gen-{}", self.generation);
        let paths = cert.write_to(self.dir.join(&data))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::symlink;
            let tmp = self.dir.join("..data_tmp");
            let _ = std::fs::remove_file(&tmp);
            symlink(&data, &tmp)?;
            std::fs::rename(&tmp, self.dir.join("..data"))?;
            if self.generation == 1 {
                for file in [&paths.cert_chain, &paths.key, &paths.root_cert] {
                    let name = file.file_name().expect("a file name");
                    symlink(
                        std::path::Path::new("..data").join(name),
                        self.dir.join(name),
                    )?;
                }
            } else {
                let old = self.dir.join(format!("..gen-{}", self.generation - 1));
                std::fs::remove_dir_all(old)?;
            }
        }
        #[cfg(not(unix))]
        {
            // No symlinks: replace the files in place (each atomically; a
            // provider catching a key that does not match keeps the old
            // pair until the next check).
            let _ = paths;
            cert.write_to(&self.dir)?;
        }
        Ok(())
    }
}

/// `bootstrap` with a `file_watcher` provider named `default` over `volume`
/// (what istio-agent writes into a workload's bootstrap).
pub(crate) fn with_certificates(
    mut bootstrap: Bootstrap,
    volume: &SecretVolume,
    opts: Options,
) -> Bootstrap {
    let refresh = opts.pick(Duration::from_secs(1), Duration::from_millis(200));
    bootstrap.certificate_providers.insert(
        DEFAULT_PROVIDER_INSTANCE.into(),
        CertificateProviderConfig::from(volume.paths().file_watcher(refresh)),
    );
    bootstrap
}
