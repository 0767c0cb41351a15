//! [`Authority`]: the signing key and certificate, and what it issues.
//!
//! It generates a root (ECDSA P-256) or loads one from a directory laid out
//! as Istio's plugged-in `cacerts` secret (`ca-cert.pem`, `ca-key.pem`,
//! optional `root-cert.pem` and `cert-chain.pem`), and issues SPIFFE
//! workload certificates with a fresh key ([`Authority::issue`]) or for a
//! CSR ([`Authority::sign_csr`]). It does not authenticate anyone: callers
//! decide whose identity a certificate carries (see [`super::server`]).

use std::fs;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rand::RngCore as _;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PublicKeyData as _, SanType, SerialNumber,
    SubjectPublicKeyInfo,
};

use super::error::{CaError, CaErrorKind as Kind};
use super::files::write_atomic;
use super::identity::SpiffeId;
use super::x509::{self, VerifiedCsr};

/// Default workload certificate validity (Istio's default).
pub const DEFAULT_VALIDITY: Duration = Duration::from_secs(24 * 3600);
/// Default cap on a requested validity (Istio's max workload cert TTL).
pub const DEFAULT_MAX_VALIDITY: Duration = Duration::from_secs(90 * 24 * 3600);
/// Validity of a generated root.
pub const ROOT_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// Backdating of `notBefore`, so peers with slightly slow clocks accept a
/// brand-new certificate.
const CLOCK_SKEW: Duration = Duration::from_secs(60);

/// File names in a CA directory (as in Istio's `cacerts` secret).
pub const CA_CERT_FILE: &str = "ca-cert.pem";
/// The signing key file.
pub const CA_KEY_FILE: &str = "ca-key.pem";
/// The trust anchor file (defaults to `ca-cert.pem`).
pub const ROOT_CERT_FILE: &str = "root-cert.pem";
/// Optional: the signing cert's chain up to the root.
pub const CERT_CHAIN_FILE: &str = "cert-chain.pem";

/// A freshly issued certificate with its key.
#[derive(Clone)]
pub struct IssuedCert {
    /// The leaf then the CA chain up to and including the root, PEM (what
    /// istio-agent writes to `cert-chain.pem`).
    pub chain_pem: String,
    /// The leaf's private key, PKCS#8 PEM.
    pub key_pem: String,
    /// The root (trust anchor), PEM.
    pub root_pem: String,
    /// When the leaf expires.
    pub not_after: SystemTime,
}

impl std::fmt::Debug for IssuedCert {
    // Never print the private key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedCert")
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

/// A certificate authority for one trust domain. Cheap to clone.
#[derive(Clone)]
pub struct Authority {
    inner: Arc<Inner>,
    default_validity: Duration,
    max_validity: Duration,
}

struct Inner {
    trust_domain: String,
    issuer: Issuer<'static, KeyPair>,
    ca_cert_pem: String,
    ca_key_pem: String,
    /// The chain after the leaf: signing cert … root.
    chain_tail: Vec<String>,
    root_pem: String,
    ca_not_after: SystemTime,
}

impl std::fmt::Debug for Authority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authority")
            .field("trust_domain", &self.inner.trust_domain)
            .field("default_validity", &self.default_validity)
            .field("max_validity", &self.max_validity)
            .finish_non_exhaustive()
    }
}

fn signing(what: &str, e: rcgen::Error) -> CaError {
    CaError::with_source(Kind::Signing, what.to_owned(), e)
}

impl Authority {
    /// Generates a self-signed ECDSA P-256 root for `trust_domain`
    /// (`O=<trust domain>`, valid [`ROOT_VALIDITY`]).
    pub fn generate(trust_domain: &str) -> Result<Self, CaError> {
        // Validates the trust domain with the same rules as identities.
        SpiffeId::new(trust_domain, "x", "x")?;
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .map_err(|e| signing("cannot generate the root key", e))?;
        let now = SystemTime::now();
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, trust_domain);
        dn.push(DnType::CommonName, "mesh root CA");
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.not_before = (now - CLOCK_SKEW).into();
        params.not_after = (now + ROOT_VALIDITY).into();
        params.serial_number = Some(random_serial());
        let cert = params
            .self_signed(&key)
            .map_err(|e| signing("cannot self-sign the root", e))?;
        let pem = cert.pem();
        let ca_key_pem = key.serialize_pem();
        Ok(Authority::assemble(
            trust_domain,
            Issuer::new(params, key),
            pem.clone(),
            ca_key_pem,
            vec![pem.clone()],
            pem,
            now + ROOT_VALIDITY,
        ))
    }

    /// Loads a CA from `dir`: `ca-cert.pem` and `ca-key.pem` (the signing
    /// pair), `root-cert.pem` (the trust anchor; default `ca-cert.pem`) and
    /// `cert-chain.pem` (the signing cert's chain; default `ca-cert.pem`,
    /// then the root when that differs). Refuses a key that does not match
    /// the certificate, a non-CA certificate and an expired one.
    pub fn load(dir: impl AsRef<Path>, trust_domain: &str) -> Result<Self, CaError> {
        SpiffeId::new(trust_domain, "x", "x")?;
        let dir = dir.as_ref();
        let read = |name: &str| -> Result<Option<String>, CaError> {
            let p = dir.join(name);
            match fs::read_to_string(&p) {
                Ok(s) => Ok(Some(s)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(CaError::with_source(
                    Kind::Io,
                    format!("cannot read {}", p.display()),
                    e,
                )),
            }
        };
        let need = |name: &str| -> Result<String, CaError> {
            read(name)?.ok_or_else(|| {
                CaError::new(
                    Kind::InvalidRoot,
                    format!("{} is missing", dir.join(name).display()),
                )
            })
        };
        let ca_cert_pem = need(CA_CERT_FILE)?;
        let ca_key_pem = need(CA_KEY_FILE)?;
        let cert_path = dir.join(CA_CERT_FILE).display().to_string();
        let key_path = dir.join(CA_KEY_FILE).display().to_string();

        let ca_der = x509::certs_from_pem(&cert_path, &ca_cert_pem)?.remove(0);
        let (_, parsed) = x509_parser::parse_x509_certificate(&ca_der)
            .map_err(|e| CaError::with_source(Kind::InvalidRoot, cert_path.clone(), e))?;
        if !parsed.is_ca() {
            return Err(CaError::new(
                Kind::InvalidRoot,
                format!("{cert_path}: not a CA certificate (basicConstraints CA:TRUE missing)"),
            ));
        }
        let key = KeyPair::from_pem(&ca_key_pem)
            .map_err(|e| CaError::with_source(Kind::InvalidRoot, key_path.clone(), e))?;
        if parsed.public_key().raw != key.subject_public_key_info().as_slice() {
            return Err(CaError::new(
                Kind::InvalidRoot,
                format!("{key_path} does not match the public key in {cert_path}"),
            ));
        }
        let info = x509::cert_info(&ca_der)?;
        if info.not_after <= SystemTime::now() {
            return Err(CaError::new(
                Kind::InvalidRoot,
                format!("{cert_path} has expired"),
            ));
        }
        let issuer = Issuer::from_ca_cert_der(&ca_der, key)
            .map_err(|e| CaError::with_source(Kind::InvalidRoot, cert_path.clone(), e))?;

        let root_pem = match read(ROOT_CERT_FILE)? {
            Some(r) => {
                x509::certs_from_pem(&dir.join(ROOT_CERT_FILE).display().to_string(), &r)?;
                r
            }
            None => ca_cert_pem.clone(),
        };
        let chain_tail = match read(CERT_CHAIN_FILE)? {
            Some(c) => split_pem(&dir.join(CERT_CHAIN_FILE).display().to_string(), &c)?,
            None => vec![ca_cert_pem.clone()],
        };
        Ok(Authority::assemble(
            trust_domain,
            issuer,
            ca_cert_pem,
            ca_key_pem,
            chain_tail,
            root_pem,
            info.not_after,
        ))
    }

    /// [`Authority::load`] when `dir` holds a CA, otherwise
    /// [`Authority::generate`] and [`Authority::save`] into `dir`.
    pub fn load_or_generate(dir: impl AsRef<Path>, trust_domain: &str) -> Result<Self, CaError> {
        let dir = dir.as_ref();
        if dir.join(CA_CERT_FILE).exists() {
            return Authority::load(dir, trust_domain);
        }
        let ca = Authority::generate(trust_domain)?;
        ca.save(dir)?;
        Ok(ca)
    }

    fn assemble(
        trust_domain: &str,
        issuer: Issuer<'static, KeyPair>,
        ca_cert_pem: String,
        ca_key_pem: String,
        mut chain_tail: Vec<String>,
        root_pem: String,
        ca_not_after: SystemTime,
    ) -> Self {
        // The chain ends with the root, as Istio's CA answers.
        if chain_tail.last().map(|c| c.trim()) != Some(root_pem.trim()) {
            chain_tail.push(root_pem.clone());
        }
        Authority {
            inner: Arc::new(Inner {
                trust_domain: trust_domain.to_owned(),
                issuer,
                ca_cert_pem,
                ca_key_pem,
                chain_tail,
                root_pem,
                ca_not_after,
            }),
            default_validity: DEFAULT_VALIDITY,
            max_validity: DEFAULT_MAX_VALIDITY,
        }
    }

    /// Sets the validity of certificates issued without a requested one
    /// (default [`DEFAULT_VALIDITY`]) and the cap on requested ones (default
    /// [`DEFAULT_MAX_VALIDITY`]; raised to `default` if lower).
    pub fn with_validity(mut self, default: Duration, max: Duration) -> Self {
        self.default_validity = default;
        self.max_validity = max.max(default);
        self
    }

    /// Writes `ca-cert.pem`, `ca-key.pem` (mode 0600) and `root-cert.pem`
    /// into `dir` (created if missing).
    pub fn save(&self, dir: impl AsRef<Path>) -> Result<(), CaError> {
        let dir = dir.as_ref();
        fs::create_dir_all(dir).map_err(|e| {
            CaError::with_source(Kind::Io, format!("cannot create {}", dir.display()), e)
        })?;
        write_atomic(&dir.join(CA_CERT_FILE), &self.inner.ca_cert_pem, false)?;
        write_atomic(&dir.join(CA_KEY_FILE), &self.inner.ca_key_pem, true)?;
        write_atomic(&dir.join(ROOT_CERT_FILE), &self.inner.root_pem, false)
    }

    /// The trust domain identities are issued in.
    pub fn trust_domain(&self) -> &str {
        &self.inner.trust_domain
    }

    /// The root (trust anchor), PEM.
    pub fn root_pem(&self) -> &str {
        &self.inner.root_pem
    }

    /// The default validity of issued certificates.
    pub fn default_validity(&self) -> Duration {
        self.default_validity
    }

    /// The identity `spiffe://<trust domain>/ns/<ns>/sa/<sa>`.
    pub fn identity(&self, ns: &str, sa: &str) -> Result<SpiffeId, CaError> {
        SpiffeId::new(self.inner.trust_domain.clone(), ns, sa)
    }

    /// Issues a workload certificate for `ns`/`sa` with a fresh ECDSA P-256
    /// key, valid for the default validity.
    pub fn issue(&self, ns: &str, sa: &str) -> Result<IssuedCert, CaError> {
        self.issue_for(&self.identity(ns, sa)?, None)
    }

    /// Issues a workload certificate for `id` with a fresh key; `validity`
    /// defaults to the CA's default and is capped at its maximum.
    pub fn issue_for(
        &self,
        id: &SpiffeId,
        validity: Option<Duration>,
    ) -> Result<IssuedCert, CaError> {
        let (not_before, not_after) = self.window(validity);
        self.issue_window(id, not_before, not_after)
    }

    /// Issues a workload certificate valid exactly from `not_before` to
    /// `not_after` (no cap): for tests of expired and not-yet-valid
    /// certificates.
    pub fn issue_window(
        &self,
        id: &SpiffeId,
        not_before: SystemTime,
        not_after: SystemTime,
    ) -> Result<IssuedCert, CaError> {
        self.check_domain(id)?;
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .map_err(|e| signing("cannot generate a workload key", e))?;
        let params = self.leaf_params(vec![uri_san(id)?], not_before, not_after);
        let cert = params
            .signed_by(&key, &self.inner.issuer)
            .map_err(|e| signing("cannot sign the workload certificate", e))?;
        Ok(self.issued(cert.pem(), key.serialize_pem(), not_after))
    }

    /// Issues a serving certificate for host names and IP addresses (DNS
    /// and IP SANs, no SPIFFE ID), e.g. the CA server's own
    /// `istiod.istio-system.svc`. It is valid for the CA's maximum validity
    /// (a server outliving that must be restarted to get a new one).
    pub fn issue_server(&self, hosts: &[&str]) -> Result<IssuedCert, CaError> {
        let sans = hosts
            .iter()
            .map(|h| match h.parse::<std::net::IpAddr>() {
                Ok(ip) => Ok(SanType::IpAddress(ip)),
                Err(_) => (*h)
                    .try_into()
                    .map(SanType::DnsName)
                    .map_err(|e| signing(&format!("host {h:?}"), e)),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let (not_before, not_after) = self.window(Some(self.max_validity));
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .map_err(|e| signing("cannot generate a serving key", e))?;
        let cert = self
            .leaf_params(sans, not_before, not_after)
            .signed_by(&key, &self.inner.issuer)
            .map_err(|e| signing("cannot sign the serving certificate", e))?;
        Ok(self.issued(cert.pem(), key.serialize_pem(), not_after))
    }

    /// Signs a PEM CSR for `identity` and returns the chain: the leaf, then
    /// the CA chain up to and including the root (PEM strings).
    ///
    /// The CSR's signature must verify. Its subject and extensions are
    /// ignored except its SANs: if it asks for any SAN, every one must be
    /// `identity`'s URI, otherwise the request is refused
    /// ([`super::CaErrorKind::IdentityMismatch`]). The certificate carries
    /// exactly `identity`. `validity` defaults to the CA's default and is
    /// capped at its maximum.
    pub fn sign_csr(
        &self,
        csr_pem: &str,
        identity: &SpiffeId,
        validity: Option<Duration>,
    ) -> Result<Vec<String>, CaError> {
        self.check_domain(identity)?;
        let csr = x509::parse_csr(csr_pem)?;
        check_requested(&csr, identity)?;
        let spki = SubjectPublicKeyInfo::from_der(&csr.spki_der).map_err(|e| {
            CaError::with_source(Kind::InvalidCsr, "CSR: unsupported public key", e)
        })?;
        let (not_before, not_after) = self.window(validity);
        let cert = self
            .leaf_params(vec![uri_san(identity)?], not_before, not_after)
            .signed_by(&spki, &self.inner.issuer)
            .map_err(|e| signing("cannot sign the CSR", e))?;
        let mut chain = Vec::with_capacity(1 + self.inner.chain_tail.len());
        chain.push(cert.pem());
        chain.extend(self.inner.chain_tail.iter().cloned());
        Ok(chain)
    }

    fn check_domain(&self, id: &SpiffeId) -> Result<(), CaError> {
        if id.trust_domain() == self.inner.trust_domain {
            Ok(())
        } else {
            Err(CaError::new(
                Kind::InvalidIdentity,
                format!(
                    "{id} is outside this CA's trust domain {:?}",
                    self.inner.trust_domain
                ),
            ))
        }
    }

    /// `[now - skew, now + validity]`, validity defaulted and capped, and
    /// never past the CA's own expiry.
    fn window(&self, validity: Option<Duration>) -> (SystemTime, SystemTime) {
        let v = validity
            .filter(|v| !v.is_zero())
            .unwrap_or(self.default_validity)
            .min(self.max_validity);
        let now = SystemTime::now();
        (now - CLOCK_SKEW, (now + v).min(self.inner.ca_not_after))
    }

    fn leaf_params(
        &self,
        sans: Vec<SanType>,
        not_before: SystemTime,
        not_after: SystemTime,
    ) -> CertificateParams {
        let mut p = CertificateParams::default();
        // Istio leaves the subject empty; rcgen then marks the SAN critical
        // as RFC 5280 requires.
        p.distinguished_name = DistinguishedName::new();
        p.subject_alt_names = sans;
        p.not_before = not_before.into();
        p.not_after = not_after.into();
        p.serial_number = Some(random_serial());
        p.is_ca = IsCa::ExplicitNoCa;
        p.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        p.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        p.use_authority_key_identifier_extension = true;
        p
    }

    fn issued(&self, leaf_pem: String, key_pem: String, not_after: SystemTime) -> IssuedCert {
        let mut chain_pem = leaf_pem;
        for c in &self.inner.chain_tail {
            if !chain_pem.ends_with('\n') {
                chain_pem.push('\n');
            }
            chain_pem.push_str(c);
        }
        IssuedCert {
            chain_pem,
            key_pem,
            root_pem: self.inner.root_pem.clone(),
            // Certificates carry whole seconds.
            not_after: truncate_secs(not_after),
        }
    }
}

/// Every requested SAN must be the caller's own SPIFFE URI.
fn check_requested(csr: &VerifiedCsr, identity: &SpiffeId) -> Result<(), CaError> {
    let want = identity.uri();
    let foreign: Vec<&String> = csr
        .sans
        .uris
        .iter()
        .filter(|u| **u != want)
        .chain(csr.sans.others.iter())
        .collect();
    if foreign.is_empty() {
        Ok(())
    } else {
        Err(CaError::new(
            Kind::IdentityMismatch,
            format!(
                "CSR asks for {} but the caller is {want}",
                foreign
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ))
    }
}

fn uri_san(id: &SpiffeId) -> Result<SanType, CaError> {
    id.uri()
        .try_into()
        .map(SanType::URI)
        .map_err(|e| signing(&format!("identity {id}"), e))
}

/// 16 random bytes, top bit clear: a positive serial (RFC 5280 allows 20).
fn random_serial() -> SerialNumber {
    let mut b = [0u8; 16];
    rand::rng().fill_bytes(&mut b);
    b[0] &= 0x7f;
    SerialNumber::from_slice(&b)
}

fn truncate_secs(t: SystemTime) -> SystemTime {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
}

/// Splits a PEM bundle into one PEM string per certificate (after checking
/// that every block parses).
fn split_pem(what: &str, pem: &str) -> Result<Vec<String>, CaError> {
    const END: &str = "-----END CERTIFICATE-----";
    x509::certs_from_pem(what, pem)?;
    let mut out = Vec::new();
    let mut rest = pem;
    while let Some(start) = rest.find("-----BEGIN CERTIFICATE-----") {
        let Some(end) = rest[start..].find(END) else {
            break;
        };
        let stop = start + end + END.len();
        out.push(format!("{}\n", &rest[start..stop]));
        rest = &rest[stop..];
    }
    Ok(out)
}
