//! Unit tests: issuance, CSR signing, the identity check, root load/save
//! and config-driven issuance.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rcgen::{CertificateParams, DistinguishedName, KeyPair, SanType};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, UnixTime};
use x509_parser::extensions::ParsedExtension;

use super::x509::{cert_info, certs_from_pem};
use super::*;

/// Verifies `chain_pem` (leaf first) as a TLS client chain against
/// `root_pem` at `now`, as a server requiring client certs would.
fn verify_client_chain(
    chain_pem: &str,
    root_pem: &str,
    now: SystemTime,
) -> Result<(), rustls::Error> {
    let mut roots = rustls::RootCertStore::empty();
    for r in certs_from_pem("root", root_pem).unwrap() {
        roots.add(r).unwrap();
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        Arc::new(rustls::crypto::ring::default_provider()),
    )
    .build()
    .unwrap();
    let chain = certs_from_pem("chain", chain_pem).unwrap();
    let (leaf, rest) = chain.split_first().unwrap();
    verifier
        .verify_client_cert(leaf, rest, UnixTime::since_unix_epoch(since_epoch(now)))
        .map(|_| ())
}

fn since_epoch(t: SystemTime) -> Duration {
    t.duration_since(SystemTime::UNIX_EPOCH).unwrap()
}

fn leaf_der(chain_pem: &str) -> CertificateDer<'static> {
    certs_from_pem("chain", chain_pem).unwrap().remove(0)
}

fn csr_for(key: &KeyPair, sans: Vec<SanType>) -> String {
    let mut p = CertificateParams::default();
    p.distinguished_name = DistinguishedName::new();
    p.subject_alt_names = sans;
    p.serialize_request(key).unwrap().pem().unwrap()
}

fn uri(s: &str) -> SanType {
    SanType::URI(s.try_into().unwrap())
}

#[test]
fn issued_cert_carries_spiffe_id_and_verifies_against_root() {
    let ca = Authority::generate(DEFAULT_TRUST_DOMAIN).unwrap();
    let issued = ca.issue("default", "echo").unwrap();
    assert_eq!(issued.root_pem, ca.root_pem());

    let info = cert_info(&leaf_der(&issued.chain_pem)).unwrap();
    assert_eq!(
        info.sans.uris,
        vec!["spiffe://cluster.local/ns/default/sa/echo".to_owned()]
    );
    assert!(info.sans.others.is_empty(), "{:?}", info.sans.others);
    assert_eq!(info.not_after, issued.not_after);
    // 24 h from now, backdated by the clock-skew allowance.
    assert_eq!(
        info.not_after.duration_since(info.not_before).unwrap(),
        DEFAULT_VALIDITY + Duration::from_secs(60)
    );
    let left = issued.not_after.duration_since(SystemTime::now()).unwrap();
    assert!(
        left > DEFAULT_VALIDITY - Duration::from_secs(120),
        "{left:?}"
    );

    verify_client_chain(&issued.chain_pem, ca.root_pem(), SystemTime::now()).unwrap();
    // The chain file is [leaf, root], as istio-agent writes it.
    let chain = certs_from_pem("chain", &issued.chain_pem).unwrap();
    assert_eq!(chain.len(), 2);
    assert_eq!(chain[1], certs_from_pem("root", ca.root_pem()).unwrap()[0]);
}

#[test]
fn issued_cert_has_workload_key_usages() {
    let ca = Authority::generate(DEFAULT_TRUST_DOMAIN).unwrap();
    let issued = ca.issue("default", "echo").unwrap();
    let der = leaf_der(&issued.chain_pem);
    let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
    assert!(!cert.is_ca());
    let ku = cert.key_usage().unwrap().unwrap().value;
    assert!(ku.digital_signature() && ku.key_encipherment());
    assert!(!ku.key_cert_sign());
    let eku = cert.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.server_auth && eku.client_auth);
    // Empty subject, so the SAN must be critical (RFC 5280 4.2.1.6).
    assert!(cert.subject().iter().next().is_none());
    let san = cert
        .extensions()
        .iter()
        .find(|e| {
            matches!(
                e.parsed_extension(),
                ParsedExtension::SubjectAlternativeName(_)
            )
        })
        .unwrap();
    assert!(san.critical);
    // The signature is the root's.
    let root = certs_from_pem("root", ca.root_pem()).unwrap().remove(0);
    let (_, root) = x509_parser::parse_x509_certificate(&root).unwrap();
    cert.verify_signature(Some(root.public_key())).unwrap();
}

#[test]
fn validity_is_configurable_and_capped() {
    let ca = Authority::generate(DEFAULT_TRUST_DOMAIN)
        .unwrap()
        .with_validity(Duration::from_secs(3600), Duration::from_secs(7200));
    assert_eq!(ca.default_validity(), Duration::from_secs(3600));
    let id = ca.identity("ns", "sa").unwrap();
    let lifetime = |c: &IssuedCert| {
        let i = cert_info(&leaf_der(&c.chain_pem)).unwrap();
        i.not_after.duration_since(i.not_before).unwrap() - Duration::from_secs(60)
    };
    assert_eq!(
        lifetime(&ca.issue_for(&id, None).unwrap()),
        Duration::from_secs(3600)
    );
    assert_eq!(
        lifetime(&ca.issue_for(&id, Some(Duration::from_secs(600))).unwrap()),
        Duration::from_secs(600)
    );
    assert_eq!(
        lifetime(
            &ca.issue_for(&id, Some(Duration::from_secs(99_999)))
                .unwrap()
        ),
        Duration::from_secs(7200)
    );
}

#[test]
fn expired_cert_fails_verification() {
    let ca = Authority::generate(DEFAULT_TRUST_DOMAIN).unwrap();
    let id = ca.identity("default", "old").unwrap();
    let now = SystemTime::now();
    let old = ca
        .issue_window(
            &id,
            now - Duration::from_secs(7200),
            now - Duration::from_secs(3600),
        )
        .unwrap();
    let err = verify_client_chain(&old.chain_pem, ca.root_pem(), now).unwrap_err();
    assert!(
        matches!(
            err,
            rustls::Error::InvalidCertificate(rustls::CertificateError::ExpiredContext { .. })
                | rustls::Error::InvalidCertificate(rustls::CertificateError::Expired)
        ),
        "{err:?}"
    );
}

#[test]
fn other_roots_do_not_verify() {
    let a = Authority::generate(DEFAULT_TRUST_DOMAIN).unwrap();
    let b = Authority::generate(DEFAULT_TRUST_DOMAIN).unwrap();
    let issued = a.issue("default", "echo").unwrap();
    assert!(verify_client_chain(&issued.chain_pem, b.root_pem(), SystemTime::now()).is_err());
}

#[test]
fn serials_are_random() {
    let ca = Authority::generate(DEFAULT_TRUST_DOMAIN).unwrap();
    let serial = |c: &IssuedCert| {
        let der = leaf_der(&c.chain_pem);
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        cert.raw_serial().to_vec()
    };
    let a = serial(&ca.issue("n", "s").unwrap());
    let b = serial(&ca.issue("n", "s").unwrap());
    assert_ne!(a, b);
}

#[test]
fn sign_csr_issues_the_callers_identity_for_the_csr_key() {
    let ca = Authority::generate(DEFAULT_TRUST_DOMAIN).unwrap();
    let id = ca.identity("default", "echo").unwrap();
    let key = KeyPair::generate().unwrap();
    for sans in [vec![], vec![uri(&id.uri())]] {
        let chain = ca.sign_csr(&csr_for(&key, sans), &id, None).unwrap();
        assert_eq!(chain.len(), 2);
        assert_eq!(chain[1], ca.root_pem());
        let leaf = leaf_der(&chain[0]);
        let info = cert_info(&leaf).unwrap();
        assert_eq!(info.sans.uris, vec![id.uri()]);
        let (_, cert) = x509_parser::parse_x509_certificate(&leaf).unwrap();
        assert_eq!(
            cert.public_key().raw,
            rcgen::PublicKeyData::subject_public_key_info(&key)
        );
        verify_client_chain(&chain.concat(), ca.root_pem(), SystemTime::now()).unwrap();
    }
}

#[test]
fn sign_csr_honours_requested_validity() {
    let ca = Authority::generate(DEFAULT_TRUST_DOMAIN).unwrap();
    let id = ca.identity("default", "echo").unwrap();
    let csr = csr_for(&KeyPair::generate().unwrap(), vec![]);
    let chain = ca
        .sign_csr(&csr, &id, Some(Duration::from_secs(300)))
        .unwrap();
    let info = cert_info(&leaf_der(&chain[0])).unwrap();
    assert_eq!(
        info.not_after.duration_since(info.not_before).unwrap(),
        Duration::from_secs(360)
    );
}

#[test]
fn sign_csr_refuses_another_identity() {
    let ca = Authority::generate(DEFAULT_TRUST_DOMAIN).unwrap();
    let caller = ca.identity("default", "echo").unwrap();
    let key = KeyPair::generate().unwrap();
    for sans in [
        vec![uri("spiffe://cluster.local/ns/default/sa/admin")],
        vec![
            uri(&caller.uri()),
            uri("spiffe://cluster.local/ns/kube-system/sa/x"),
        ],
        vec![SanType::DnsName("evil.example.com".try_into().unwrap())],
    ] {
        let err = ca
            .sign_csr(&csr_for(&key, sans), &caller, None)
            .unwrap_err();
        assert_eq!(err.kind(), CaErrorKind::IdentityMismatch);
        assert!(err.to_string().contains(&caller.uri()), "{err}");
    }
}

#[test]
fn sign_csr_refuses_bad_csrs() {
    let ca = Authority::generate(DEFAULT_TRUST_DOMAIN).unwrap();
    let id = ca.identity("default", "echo").unwrap();
    let err = ca.sign_csr("not a csr", &id, None).unwrap_err();
    assert_eq!(err.kind(), CaErrorKind::InvalidCsr);

    // Flip one byte inside the signed body: the self-signature breaks.
    let csr = csr_for(&KeyPair::generate().unwrap(), vec![]);
    let der =
        rustls::pki_types::CertificateSigningRequestDer::from_pem_slice(csr.as_bytes()).unwrap();
    let mut bytes = der.as_ref().to_vec();
    let i = bytes.len() / 3;
    bytes[i] ^= 0x01;
    let tampered = pem_block("CERTIFICATE REQUEST", &bytes);
    let err = ca.sign_csr(&tampered, &id, None).unwrap_err();
    assert_eq!(err.kind(), CaErrorKind::InvalidCsr, "{err}");
}

fn pem_block(label: &str, der: &[u8]) -> String {
    // Minimal base64 for the test (standard alphabet, padded).
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut b64 = String::new();
    for chunk in der.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                b64.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                b64.push('=');
            }
        }
    }
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

#[test]
fn identities_outside_the_trust_domain_are_refused() {
    let ca = Authority::generate("example.org").unwrap();
    let foreign: SpiffeId = "spiffe://cluster.local/ns/default/sa/echo".parse().unwrap();
    assert_eq!(
        ca.issue_for(&foreign, None).unwrap_err().kind(),
        CaErrorKind::InvalidIdentity
    );
    let issued = ca.issue("default", "echo").unwrap();
    let info = cert_info(&leaf_der(&issued.chain_pem)).unwrap();
    assert_eq!(
        info.sans.uris,
        vec!["spiffe://example.org/ns/default/sa/echo"]
    );
    assert_eq!(
        ca.issue("bad/ns", "x").unwrap_err().kind(),
        CaErrorKind::InvalidIdentity
    );
}

#[test]
fn saved_root_loads_and_keeps_signing_for_the_same_root() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Authority::generate(DEFAULT_TRUST_DOMAIN).unwrap();
    ca.save(dir.path()).unwrap();
    let loaded = Authority::load(dir.path(), DEFAULT_TRUST_DOMAIN).unwrap();
    assert_eq!(loaded.root_pem(), ca.root_pem());
    let issued = loaded.issue("default", "echo").unwrap();
    verify_client_chain(&issued.chain_pem, ca.root_pem(), SystemTime::now()).unwrap();
    assert_eq!(certs_from_pem("chain", &issued.chain_pem).unwrap().len(), 2);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(dir.path().join(CA_KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // load_or_generate finds it instead of making a new one.
    let again = Authority::load_or_generate(dir.path(), DEFAULT_TRUST_DOMAIN).unwrap();
    assert_eq!(again.root_pem(), ca.root_pem());
}

#[test]
fn load_refuses_mismatched_missing_or_non_ca_material() {
    let dir = tempfile::tempdir().unwrap();
    let err = Authority::load(dir.path(), DEFAULT_TRUST_DOMAIN).unwrap_err();
    assert_eq!(err.kind(), CaErrorKind::InvalidRoot);
    assert!(err.to_string().contains(CA_CERT_FILE), "{err}");

    let ca = Authority::generate(DEFAULT_TRUST_DOMAIN).unwrap();
    ca.save(dir.path()).unwrap();
    let other = KeyPair::generate().unwrap();
    std::fs::write(dir.path().join(CA_KEY_FILE), other.serialize_pem()).unwrap();
    let err = Authority::load(dir.path(), DEFAULT_TRUST_DOMAIN).unwrap_err();
    assert_eq!(err.kind(), CaErrorKind::InvalidRoot);
    assert!(err.to_string().contains("does not match"), "{err}");

    // A workload cert is not a CA.
    let leaf = ca.issue("default", "echo").unwrap();
    std::fs::write(dir.path().join(CA_CERT_FILE), &leaf.chain_pem).unwrap();
    std::fs::write(dir.path().join(CA_KEY_FILE), &leaf.key_pem).unwrap();
    let err = Authority::load(dir.path(), DEFAULT_TRUST_DOMAIN).unwrap_err();
    assert!(err.to_string().contains("not a CA"), "{err}");
}

#[test]
fn intermediate_ca_chains_up_to_the_root() {
    // Root R signs intermediate I; the CA signs with I. Chain: leaf, I, R.
    let root = Authority::generate(DEFAULT_TRUST_DOMAIN).unwrap();
    let dir = tempfile::tempdir().unwrap();
    root.save(dir.path()).unwrap();
    let root_key =
        KeyPair::from_pem(&std::fs::read_to_string(dir.path().join(CA_KEY_FILE)).unwrap()).unwrap();
    let root_issuer = rcgen::Issuer::from_ca_cert_pem(root.root_pem(), root_key).unwrap();
    let mut p = CertificateParams::default();
    p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    p.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    let ikey = KeyPair::generate().unwrap();
    let icert = p.signed_by(&ikey, &root_issuer).unwrap();

    let idir = tempfile::tempdir().unwrap();
    std::fs::write(idir.path().join(CA_CERT_FILE), icert.pem()).unwrap();
    std::fs::write(idir.path().join(CA_KEY_FILE), ikey.serialize_pem()).unwrap();
    std::fs::write(idir.path().join(ROOT_CERT_FILE), root.root_pem()).unwrap();
    let ca = Authority::load(idir.path(), DEFAULT_TRUST_DOMAIN).unwrap();
    assert_eq!(ca.root_pem(), root.root_pem());
    let issued = ca.issue("default", "echo").unwrap();
    assert_eq!(certs_from_pem("chain", &issued.chain_pem).unwrap().len(), 3);
    verify_client_chain(&issued.chain_pem, root.root_pem(), SystemTime::now()).unwrap();
    let csr = csr_for(&KeyPair::generate().unwrap(), vec![]);
    let chain = ca
        .sign_csr(&csr, &ca.identity("default", "echo").unwrap(), None)
        .unwrap();
    assert_eq!(chain.len(), 3);
    assert_eq!(chain[2], root.root_pem());
}

#[test]
fn config_workloads_get_one_cert_per_identity() {
    let yaml = r#"
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: a1, namespace: default}
spec: {address: 10.0.0.1, serviceAccount: echo}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: a2, namespace: default}
spec: {address: 10.0.0.2, serviceAccount: echo}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: anon, namespace: default}
spec: {address: 10.0.0.3}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db, namespace: data}
spec:
  hosts: [db.data.svc.cluster.local]
  ports: [{number: 5432, name: grpc, protocol: GRPC}]
  resolution: STATIC
  endpoints: [{address: 10.0.1.1, serviceAccount: db}]
"#;
    let config = crate::config::Config::from_yaml_str("w.yaml", yaml)
        .unwrap()
        .config;
    let ids: Vec<_> = workload_identities(&config).into_iter().collect();
    assert_eq!(
        ids,
        vec![
            ("data".to_owned(), "db".to_owned()),
            ("default".to_owned(), "echo".to_owned())
        ]
    );

    let ca = Authority::generate(DEFAULT_TRUST_DOMAIN).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let written = issue_for_config(&ca, &config, dir.path()).unwrap();
    assert_eq!(written.len(), 2);
    let echo = &written[&ca.identity("default", "echo").unwrap()];
    assert_eq!(echo.dir, dir.path().join("default").join("echo"));
    assert_eq!(echo.cert_chain, echo.dir.join("cert-chain.pem"));
    let chain = std::fs::read_to_string(&echo.cert_chain).unwrap();
    let root = std::fs::read_to_string(&echo.root_cert).unwrap();
    assert_eq!(root, ca.root_pem());
    verify_client_chain(&chain, &root, SystemTime::now()).unwrap();
    let info = cert_info(&leaf_der(&chain)).unwrap();
    assert_eq!(
        info.sans.uris,
        vec!["spiffe://cluster.local/ns/default/sa/echo"]
    );
    // The key matches the chain's leaf.
    let key = KeyPair::from_pem(&std::fs::read_to_string(&echo.key).unwrap()).unwrap();
    let leaf = leaf_der(&chain);
    let (_, leaf) = x509_parser::parse_x509_certificate(&leaf).unwrap();
    assert_eq!(
        leaf.public_key().raw,
        rcgen::PublicKeyData::subject_public_key_info(&key)
    );

    let json = echo.bootstrap_certificate_providers(AGENT_REFRESH_INTERVAL);
    let d = &json["default"];
    assert_eq!(d["plugin_name"], "file_watcher");
    assert_eq!(
        d["config"]["certificate_file"],
        echo.cert_chain.to_str().unwrap()
    );
    assert_eq!(d["config"]["private_key_file"], echo.key.to_str().unwrap());
    assert_eq!(
        d["config"]["ca_certificate_file"],
        echo.root_cert.to_str().unwrap()
    );
    assert_eq!(d["config"]["refresh_interval"], "900s");
}

#[test]
fn config_with_an_invalid_service_account_fails_naming_it() {
    let yaml = r#"
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: a1, namespace: default}
spec: {address: 10.0.0.1, serviceAccount: "bad/sa"}
"#;
    let config = crate::config::Config::from_yaml_str("w.yaml", yaml)
        .unwrap()
        .config;
    let ca = Authority::generate(DEFAULT_TRUST_DOMAIN).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let err = issue_for_config(&ca, &config, dir.path()).unwrap_err();
    assert_eq!(err.kind(), CaErrorKind::InvalidIdentity);
    assert!(err.to_string().contains("bad/sa"), "{err}");
}
