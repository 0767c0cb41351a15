//! One certificate request's local halves: a fresh key pair and its CSR
//! before the call, and checking what the CA returned after it.
//!
//! The CSR carries no subject and no SAN: the CA derives the identity from
//! the caller's credentials (mesh-control's CA signs `spiffe://<td>/ns/<ns>/
//! sa/<sa>` for the token's or certificate's identity). The returned chain
//! is accepted only if it parses, its leaf matches the new key, it chains
//! to the trust anchor and is valid now, and the leaf carries a SPIFFE ID.

use std::time::{SystemTime, UNIX_EPOCH};

use mesh_core::bootstrap::KeyType;
use rcgen::{CertificateParams, DistinguishedName, KeyPair};
use rustls_pki_types::UnixTime;

use crate::tls::error::{TlsError, TlsErrorKind};
use crate::tls::identity::PeerIdentity;
use crate::tls::material::CertifiedMaterial;

/// A new key pair and the CSR for it (PEM).
pub(crate) struct KeyAndCsr {
    pub(crate) key_pem: String,
    pub(crate) csr_pem: String,
}

impl KeyAndCsr {
    pub(crate) fn generate(key_type: KeyType) -> Result<Self, TlsError> {
        let alg = match key_type {
            KeyType::EcdsaP256 => &rcgen::PKCS_ECDSA_P256_SHA256,
            KeyType::EcdsaP384 => &rcgen::PKCS_ECDSA_P384_SHA384,
        };
        let err = |what: &str, e: rcgen::Error| {
            TlsError::with_source(TlsErrorKind::Load, format!("cannot {what}"), e)
        };
        let key = KeyPair::generate_for(alg).map_err(|e| err("generate a key pair", e))?;
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        let csr = params
            .serialize_request(&key)
            .and_then(|c| c.pem())
            .map_err(|e| err("build a CSR", e))?;
        Ok(KeyAndCsr {
            key_pem: key.serialize_pem(),
            csr_pem: csr,
        })
    }
}

/// A certificate the CA issued and the checks passed.
#[derive(Debug)]
pub(crate) struct Issued {
    pub(crate) material: std::sync::Arc<CertifiedMaterial>,
    /// The chain as one PEM (istio-agent's `cert-chain.pem`).
    pub(crate) chain_pem: String,
    pub(crate) key_pem: String,
    pub(crate) spiffe_id: String,
    pub(crate) not_before: SystemTime,
    pub(crate) not_after: SystemTime,
}

/// Checks the CA's answer `chain` (leaf first) for the key `key_pem` and
/// builds the material to publish: that identity, trusting `roots_pem`.
/// Errors start with `what` (the instance).
pub(crate) fn accept(
    what: &str,
    chain: &[String],
    key_pem: &str,
    roots_pem: &[u8],
    now: SystemTime,
) -> Result<Issued, TlsError> {
    let bad = |m: String| TlsError::new(TlsErrorKind::Load, format!("{what}: {m}"));
    let chain_pem = chain
        .iter()
        .map(|c| c.trim_end())
        .collect::<Vec<_>>()
        .join("\n")
        + "\n";
    let what_issued = format!("{what}: the issued certificate");
    // Parses the chain and checks the leaf belongs to our key.
    let material = CertifiedMaterial::from_pem(
        &what_issued,
        Some(chain_pem.as_bytes()),
        Some(key_pem.as_bytes()),
        Some(roots_pem),
    )?;
    let identity = material.identity().expect("from_pem with a chain has one");
    let verifier = material
        .client_verifier()
        .expect("from_pem with CAs has one");
    let since_epoch = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    verifier
        .verify_client_cert(
            &identity.cert[0],
            &identity.cert[1..],
            UnixTime::since_unix_epoch(since_epoch),
        )
        .map_err(|e| {
            bad(format!(
                "the issued certificate does not verify against ca_certificate_file: {e}"
            ))
        })?;
    let peer = PeerIdentity::from_chain(&identity.cert)?;
    let spiffe_id = peer
        .spiffe_id()
        .ok_or_else(|| {
            bad(format!(
                "the issued certificate has no spiffe:// URI SAN (SANs: {:?})",
                peer.uri_sans()
            ))
        })?
        .to_owned();
    let (_, leaf) = x509_parser::parse_x509_certificate(&identity.cert[0])
        .map_err(|e| bad(format!("the issued certificate does not parse: {e}")))?;
    let not_before = UNIX_EPOCH
        + std::time::Duration::from_secs(leaf.validity().not_before.timestamp().max(0) as u64);
    Ok(Issued {
        spiffe_id,
        not_before,
        not_after: peer.not_after(),
        chain_pem,
        key_pem: key_pem.to_owned(),
        material: std::sync::Arc::new(material),
    })
}

#[cfg(test)]
mod tests {
    use rcgen::{BasicConstraints, IsCa, Issuer, SanType};

    use super::*;

    struct Ca {
        issuer: Issuer<'static, KeyPair>,
        pem: String,
    }

    fn ca() -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let cert = p.self_signed(&key).unwrap();
        Ca {
            pem: cert.pem(),
            issuer: Issuer::new(p, key),
        }
    }

    /// Signs a certificate for `key_pem` with these SANs, as a CA would.
    fn sign(ca: &Ca, key_pem: &str, sans: Vec<SanType>) -> Vec<String> {
        let key = KeyPair::from_pem(key_pem).unwrap();
        let mut p = CertificateParams::default();
        p.subject_alt_names = sans;
        let now = SystemTime::now();
        p.not_before = (now - std::time::Duration::from_secs(60)).into();
        p.not_after = (now + std::time::Duration::from_secs(3600)).into();
        p.extended_key_usages = vec![
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
            rcgen::ExtendedKeyUsagePurpose::ClientAuth,
        ];
        vec![p.signed_by(&key, &ca.issuer).unwrap().pem(), ca.pem.clone()]
    }

    fn spiffe() -> Vec<SanType> {
        vec![SanType::URI(
            "spiffe://cluster.local/ns/default/sa/a".try_into().unwrap(),
        )]
    }

    #[test]
    fn csr_is_pem_and_key_types_work() {
        for kt in [KeyType::EcdsaP256, KeyType::EcdsaP384] {
            let k = KeyAndCsr::generate(kt).unwrap();
            assert!(k.csr_pem.starts_with("-----BEGIN CERTIFICATE REQUEST-----"));
            assert!(k.key_pem.contains("PRIVATE KEY"));
        }
    }

    #[test]
    fn accepts_a_good_chain() {
        let ca = ca();
        let k = KeyAndCsr::generate(KeyType::EcdsaP256).unwrap();
        let chain = sign(&ca, &k.key_pem, spiffe());
        let issued = accept(
            "p",
            &chain,
            &k.key_pem,
            ca.pem.as_bytes(),
            SystemTime::now(),
        )
        .unwrap();
        assert_eq!(issued.spiffe_id, "spiffe://cluster.local/ns/default/sa/a");
        assert!(issued.not_after > issued.not_before);
        assert_eq!(issued.material.identity().unwrap().cert.len(), 2);
        assert_eq!(issued.material.roots().unwrap().len(), 1);
    }

    #[test]
    fn refuses_bad_answers_with_clear_errors() {
        let ca = ca();
        let other = self::ca();
        let k = KeyAndCsr::generate(KeyType::EcdsaP256).unwrap();
        let k2 = KeyAndCsr::generate(KeyType::EcdsaP256).unwrap();
        let now = SystemTime::now();
        let err = |chain: &[String], roots: &str| {
            accept(
                "instance \"default\"",
                chain,
                &k.key_pem,
                roots.as_bytes(),
                now,
            )
            .unwrap_err()
            .to_string()
        };
        let e = err(&sign(&ca, &k2.key_pem, spiffe()), &ca.pem);
        assert!(e.contains("unusable certificate and key"), "{e}");
        let e = err(&sign(&ca, &k.key_pem, spiffe()), &other.pem);
        assert!(
            e.contains("does not verify against ca_certificate_file"),
            "{e}"
        );
        let e = err(
            &sign(
                &ca,
                &k.key_pem,
                vec![SanType::DnsName("a.test".try_into().unwrap())],
            ),
            &ca.pem,
        );
        assert!(e.contains("has no spiffe:// URI SAN"), "{e}");
        let e = err(&["garbage".to_owned()], &ca.pem);
        assert!(
            e.starts_with("instance \"default\": the issued certificate"),
            "{e}"
        );
        // Expired by the time it arrived.
        let late = now + std::time::Duration::from_secs(7200);
        let e = accept(
            "p",
            &sign(&ca, &k.key_pem, spiffe()),
            &k.key_pem,
            ca.pem.as_bytes(),
            late,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("does not verify"), "{e}");
    }
}
