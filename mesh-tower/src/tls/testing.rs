//! Test certificates made with rcgen, and the file layouts providers
//! watch. Shared by the unit tests and (through `#[path]`) the
//! integration tests; depends on nothing of the crate.

#![allow(dead_code)]

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};
use rustls_pki_types::CertificateDer;

/// A self-signed test CA.
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A leaf certificate and its key, PEM.
pub struct Leaf {
    /// The leaf certificate (the chain: the CA is the trust anchor).
    pub chain_pem: String,
    /// Its PKCS#8 private key.
    pub key_pem: String,
    /// The leaf, DER.
    pub der: CertificateDer<'static>,
}

impl TestCa {
    /// A CA named `name`.
    pub fn new(name: &str) -> TestCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().unwrap();
        TestCa {
            issuer: CertifiedIssuer::self_signed(params, key).unwrap(),
        }
    }

    /// The CA certificate, PEM.
    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A leaf valid now with these SANs: `scheme://...` is a URI, an IP
    /// address an IP, anything else a DNS name.
    pub fn leaf(&self, sans: &[&str]) -> Leaf {
        self.issue(sans, false)
    }

    /// A leaf that expired in 2001.
    pub fn expired_leaf(&self, sans: &[&str]) -> Leaf {
        self.issue(sans, true)
    }

    fn issue(&self, sans: &[&str], expired: bool) -> Leaf {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, sans.first().copied().unwrap_or("leaf"));
        params.subject_alt_names = sans.iter().map(|s| san(s)).collect();
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        if expired {
            params.not_before = rcgen::date_time_ymd(2000, 1, 1);
            params.not_after = rcgen::date_time_ymd(2001, 1, 1);
        }
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            chain_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().clone(),
        }
    }
}

fn san(s: &str) -> SanType {
    if s.contains("://") {
        SanType::URI(s.try_into().unwrap())
    } else if let Ok(ip) = s.parse::<IpAddr>() {
        SanType::IpAddress(ip)
    } else if s.contains('@') {
        SanType::Rfc822Name(s.try_into().unwrap())
    } else {
        SanType::DnsName(s.try_into().unwrap())
    }
}

/// Writes `contents` to `path` atomically (a new inode, as most tools
/// replace files).
pub fn write_atomic(path: &Path, contents: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, contents).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// The file names a `file_watcher` provider is pointed at.
pub const CERT: &str = "cert-chain.pem";
/// The private key file name.
pub const KEY: &str = "key.pem";
/// The CA file name.
pub const CA: &str = "root-cert.pem";

/// A directory laid out as Kubernetes mounts a secret volume:
/// `cert-chain.pem -> ..data/cert-chain.pem`, `..data -> ..<version>/`,
/// updated by writing a new version directory and renaming a new `..data`
/// symlink over the old one.
pub struct KubeSecretDir {
    root: PathBuf,
    version: u32,
}

impl KubeSecretDir {
    /// Lays out `root` with the first version of the files.
    pub fn new(root: &Path, leaf: &Leaf, ca_pem: &str) -> KubeSecretDir {
        let mut dir = KubeSecretDir {
            root: root.to_owned(),
            version: 0,
        };
        dir.swap(leaf, ca_pem);
        for name in [CERT, KEY, CA] {
            std::os::unix::fs::symlink(Path::new("..data").join(name), root.join(name)).unwrap();
        }
        dir
    }

    /// Publishes a new version of the files atomically.
    pub fn swap(&mut self, leaf: &Leaf, ca_pem: &str) {
        self.version += 1;
        let name = format!("..2026_01_01_00_00_{:02}.{}", self.version, self.version);
        let dir = self.root.join(&name);
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join(CERT), &leaf.chain_pem).unwrap();
        std::fs::write(dir.join(KEY), &leaf.key_pem).unwrap();
        std::fs::write(dir.join(CA), ca_pem).unwrap();
        let tmp = self.root.join("..data_tmp");
        std::os::unix::fs::symlink(&name, &tmp).unwrap();
        std::fs::rename(&tmp, self.root.join("..data")).unwrap();
        if self.version > 1 {
            let old = format!(
                "..2026_01_01_00_00_{:02}.{}",
                self.version - 1,
                self.version - 1
            );
            std::fs::remove_dir_all(self.root.join(old)).unwrap();
        }
    }

    /// The path of one of the files as a provider sees it.
    pub fn path(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }
}

/// Writes a plain (no symlinks) cert, key and CA into `dir`.
pub fn write_plain(dir: &Path, leaf: &Leaf, ca_pem: &str) {
    write_atomic(&dir.join(CERT), &leaf.chain_pem);
    write_atomic(&dir.join(KEY), &leaf.key_pem);
    write_atomic(&dir.join(CA), ca_pem);
}
