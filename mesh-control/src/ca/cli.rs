//! What `mesh-control ca init` and `mesh-control ca issue` do, kept out of
//! `main.rs` so the command line only parses arguments.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::authority::{Authority, CA_CERT_FILE};
use super::error::{CaError, CaErrorKind as Kind};
use super::files::WorkloadCertPaths;

/// `ca init`: generates a root for `trust_domain` and saves it into `out`
/// (`ca-cert.pem`, `ca-key.pem`, `root-cert.pem`). Refuses to overwrite an
/// existing CA there.
pub fn init(out: &Path, trust_domain: &str) -> Result<Authority, CaError> {
    if out.join(CA_CERT_FILE).exists() {
        return Err(CaError::new(
            Kind::Io,
            format!(
                "{} already exists: refusing to replace a CA",
                out.join(CA_CERT_FILE).display()
            ),
        ));
    }
    let ca = Authority::generate(trust_domain)?;
    ca.save(out)?;
    Ok(ca)
}

/// What `ca issue` did.
#[derive(Debug)]
pub struct Issued {
    /// The files written.
    pub paths: WorkloadCertPaths,
    /// The identity issued.
    pub identity: String,
    /// Whether the root was generated on the fly (no `--root`): nothing else
    /// will trust it unless its `root-cert.pem` is distributed.
    pub ephemeral_root: bool,
}

/// `ca issue`: issues `ns`/`sa` into `out` (`cert-chain.pem`, `key.pem`,
/// `root-cert.pem`), signing with the CA in `root` or, without one, with a
/// freshly generated root.
pub fn issue(
    ns: &str,
    sa: &str,
    out: &Path,
    root: Option<&PathBuf>,
    trust_domain: &str,
    validity: Option<Duration>,
) -> Result<Issued, CaError> {
    let ca = match root {
        Some(dir) => Authority::load(dir, trust_domain)?,
        None => Authority::generate(trust_domain)?,
    };
    let id = ca.identity(ns, sa)?;
    let paths = ca.issue_for(&id, validity)?.write_to(out)?;
    Ok(Issued {
        paths,
        identity: id.uri(),
        ephemeral_root: root.is_none(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_then_issue_with_that_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let ca = init(&root, "cluster.local").unwrap();
        assert!(init(&root, "cluster.local").is_err(), "no overwrite");
        let out = dir.path().join("echo");
        let issued = issue("default", "echo", &out, Some(&root), "cluster.local", None).unwrap();
        assert_eq!(issued.identity, "spiffe://cluster.local/ns/default/sa/echo");
        assert!(!issued.ephemeral_root);
        let written_root = std::fs::read_to_string(&issued.paths.root_cert).unwrap();
        assert_eq!(written_root, ca.root_pem());
        assert!(issued.paths.key.exists() && issued.paths.cert_chain.exists());
    }

    #[test]
    fn issue_without_root_generates_one() {
        let dir = tempfile::tempdir().unwrap();
        let issued = issue("ns", "sa", dir.path(), None, "cluster.local", None).unwrap();
        assert!(issued.ephemeral_root);
        assert!(issued.paths.root_cert.exists());
        let missing = dir.path().join("nothing-here");
        let err = issue(
            "ns",
            "sa",
            dir.path(),
            Some(&missing),
            "cluster.local",
            None,
        )
        .unwrap_err();
        assert!(err.to_string().contains("ca-cert.pem"), "{err}");
    }
}
