//! The TLS material of the mTLS rows, issued by mesh-control's CA
//! ([`Authority`]) and written as istio-agent lays it out
//! (`cert-chain.pem`, `key.pem`, `root-cert.pem`), one directory per
//! holder, so a `file_watcher` certificate provider can read it:
//!
//! - `server/`: the mTLS backends' SPIFFE workload certificate
//!   (`spiffe://cluster.local/ns/bench/sa/echo`, the SAN mesh-control's
//!   ISTIO_MUTUAL cluster expects);
//! - `tls-server/`: the bare tonic TLS backend's serving certificate, for
//!   `localhost` and `127.0.0.1` (tonic's client checks a DNS or IP SAN, not
//!   a SPIFFE ID);
//! - `client/`: the bench client's workload certificate
//!   (`spiffe://cluster.local/ns/bench/sa/loadclient`), presented by both
//!   the mesh and the bare tonic TLS clients.
//!
//! Every certificate is ECDSA P-256 from the same root, so the handshakes of
//! the TLS rows cost the same. Nothing here serves or connects.

use std::path::{Path, PathBuf};

use mesh_control::ca::{Authority, DEFAULT_TRUST_DOMAIN, WorkloadCertPaths};

use crate::BoxError;

/// The namespace of every bench identity.
pub const NAMESPACE: &str = "bench";
/// The mTLS backends' service account.
pub const SERVER_SA: &str = "echo";
/// The bench client's service account.
pub const CLIENT_SA: &str = "loadclient";
/// The host name the bare tonic TLS backend's certificate carries.
pub const TLS_SERVER_NAME: &str = "localhost";

/// Where the bench's certificate directories are, under one root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertDirs {
    /// The directory holding the three below.
    pub root: PathBuf,
}

impl CertDirs {
    /// The layout under `root` (nothing is written).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        CertDirs { root: root.into() }
    }

    /// The mTLS backends' files.
    pub fn server(&self) -> WorkloadCertPaths {
        WorkloadCertPaths::in_dir(self.root.join("server"))
    }

    /// The bare tonic TLS backend's files.
    pub fn tls_server(&self) -> WorkloadCertPaths {
        WorkloadCertPaths::in_dir(self.root.join("tls-server"))
    }

    /// The bench client's files.
    pub fn client(&self) -> WorkloadCertPaths {
        WorkloadCertPaths::in_dir(self.root.join("client"))
    }

    /// Generates a fresh root and issues the three certificates into
    /// `root` (each run gets a new CA; the bench keeps no keys around).
    pub fn issue(&self) -> Result<(), BoxError> {
        let ca = Authority::generate(DEFAULT_TRUST_DOMAIN)?;
        ca.issue(NAMESPACE, SERVER_SA)?
            .write_to(&self.server().dir)?;
        ca.issue(NAMESPACE, CLIENT_SA)?
            .write_to(&self.client().dir)?;
        ca.issue_server(&[TLS_SERVER_NAME, "127.0.0.1"])?
            .write_to(&self.tls_server().dir)?;
        Ok(())
    }
}

/// Reads a PEM file, naming it in the error.
pub fn read_pem(path: &Path) -> Result<String, BoxError> {
    std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()).into())
}

/// The SPIFFE ID the mTLS backends' certificate carries.
pub fn server_spiffe_id() -> String {
    format!("spiffe://{DEFAULT_TRUST_DOMAIN}/ns/{NAMESPACE}/sa/{SERVER_SA}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issues_three_directories_from_one_root() {
        let tmp = std::env::temp_dir().join(format!("mesh-bench-certs-{}", std::process::id()));
        let dirs = CertDirs::new(&tmp);
        dirs.issue().unwrap();
        let root = read_pem(&dirs.server().root_cert).unwrap();
        for p in [dirs.server(), dirs.tls_server(), dirs.client()] {
            assert!(
                read_pem(&p.cert_chain)
                    .unwrap()
                    .contains("BEGIN CERTIFICATE")
            );
            assert!(read_pem(&p.key).unwrap().contains("PRIVATE KEY"));
            assert_eq!(read_pem(&p.root_cert).unwrap(), root);
        }
        let _ = std::fs::remove_dir_all(&tmp);
    }
}
