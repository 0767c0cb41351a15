//! Reading certificates and CSRs: PEM decoding, SAN and validity
//! extraction, CSR signature checks. Nothing here signs anything.

use std::time::{Duration, SystemTime};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateSigningRequestDer};
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::FromDer;

use super::error::{CaError, CaErrorKind as Kind};
use super::identity::SpiffeId;

/// Every certificate in a PEM bundle, in order.
pub(crate) fn certs_from_pem(
    what: &str,
    pem: &str,
) -> Result<Vec<CertificateDer<'static>>, CaError> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| CaError::with_source(Kind::InvalidRoot, format!("{what}: bad PEM"), e))?;
    if certs.is_empty() {
        return Err(CaError::new(
            Kind::InvalidRoot,
            format!("{what}: no CERTIFICATE block"),
        ));
    }
    Ok(certs)
}

/// The SANs of a certificate (DER) that matter to the mesh.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Sans {
    /// URI SANs (SPIFFE IDs live here).
    pub uris: Vec<String>,
    /// Everything else (DNS names, IPs, e-mail, ...), printed for messages.
    pub others: Vec<String>,
}

fn collect_sans<'a>(names: impl Iterator<Item = &'a GeneralName<'a>>) -> Sans {
    let mut sans = Sans::default();
    for n in names {
        match n {
            GeneralName::URI(u) => sans.uris.push((*u).to_owned()),
            other => sans.others.push(other.to_string()),
        }
    }
    sans
}

/// A parsed certificate's SANs and validity window.
#[derive(Debug, Clone)]
pub(crate) struct CertInfo {
    pub sans: Sans,
    #[cfg_attr(not(test), allow(dead_code))] // read by tests
    pub not_before: SystemTime,
    pub not_after: SystemTime,
}

/// Parses a DER certificate's SANs and validity.
pub(crate) fn cert_info(der: &[u8]) -> Result<CertInfo, CaError> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| CaError::with_source(Kind::InvalidRoot, "cannot parse certificate", e))?;
    let sans = match cert.subject_alternative_name() {
        Ok(Some(ext)) => collect_sans(ext.value.general_names.iter()),
        Ok(None) => Sans::default(),
        Err(e) => {
            return Err(CaError::with_source(
                Kind::InvalidRoot,
                "bad subjectAltName extension",
                e,
            ));
        }
    };
    let v = cert.validity();
    Ok(CertInfo {
        sans,
        not_before: unix(v.not_before.timestamp()),
        not_after: unix(v.not_after.timestamp()),
    })
}

fn unix(secs: i64) -> SystemTime {
    if secs >= 0 {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs as u64)
    } else {
        SystemTime::UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
    }
}

/// The workload identity in a certificate: its one URI SAN in
/// `trust_domain` parsed as a SPIFFE ID.
pub(crate) fn spiffe_id_of(der: &[u8], trust_domain: &str) -> Result<SpiffeId, CaError> {
    let info = cert_info(der)?;
    let mut ids = info
        .sans
        .uris
        .iter()
        .filter(|u| u.starts_with("spiffe://"))
        .map(|u| u.parse::<SpiffeId>());
    match (ids.next(), ids.next()) {
        (Some(Ok(id)), None) if id.trust_domain() == trust_domain => Ok(id),
        (Some(Ok(id)), None) => Err(CaError::new(
            Kind::InvalidIdentity,
            format!("certificate identity {id} is not in trust domain {trust_domain:?}"),
        )),
        (Some(Err(e)), None) => Err(e),
        (None, _) => Err(CaError::new(
            Kind::InvalidIdentity,
            "certificate carries no spiffe:// URI SAN",
        )),
        (Some(_), Some(_)) => Err(CaError::new(
            Kind::InvalidIdentity,
            "certificate carries more than one spiffe:// URI SAN",
        )),
    }
}

/// A CSR whose signature verified: the public key to certify and the SANs
/// it asks for.
#[derive(Debug)]
pub(crate) struct VerifiedCsr {
    /// The subject public key info, DER.
    pub spki_der: Vec<u8>,
    /// Requested SANs.
    pub sans: Sans,
}

/// Parses a PEM CSR and checks its self-signature (proof the requester
/// holds the private key). Extensions other than SANs are ignored: the CA
/// decides key usage and validity.
pub(crate) fn parse_csr(csr_pem: &str) -> Result<VerifiedCsr, CaError> {
    let der = CertificateSigningRequestDer::from_pem_slice(csr_pem.as_bytes()).map_err(|e| {
        CaError::with_source(
            Kind::InvalidCsr,
            "CSR: expected a PEM CERTIFICATE REQUEST block",
            e,
        )
    })?;
    let (_, csr) = X509CertificationRequest::from_der(der.as_ref())
        .map_err(|e| CaError::with_source(Kind::InvalidCsr, "CSR: cannot parse", e))?;
    csr.verify_signature()
        .map_err(|e| CaError::with_source(Kind::InvalidCsr, "CSR: signature does not verify", e))?;
    let mut sans = Sans::default();
    if let Some(exts) = csr.requested_extensions() {
        for ext in exts {
            if let ParsedExtension::SubjectAlternativeName(san) = ext {
                let more = collect_sans(san.general_names.iter());
                sans.uris.extend(more.uris);
                sans.others.extend(more.others);
            }
        }
    }
    Ok(VerifiedCsr {
        spki_der: csr.certification_request_info.subject_pki.raw.to_vec(),
        sans,
    })
}
