//! Peer certificate verifiers that read the provider's *current* CAs at
//! every handshake, so a CA rotation reaches the next handshake without
//! rebuilding any config.
//!
//! [`ServerVerifier`] (client side) checks the chain with webpki against
//! the CAs, then the SANs against `match_subject_alt_names`; it does not
//! check the chain against the host name, since xDS names the expected
//! identity through the SAN matchers instead (as gRPC's xDS credentials
//! do). [`ClientVerifier`] (server side) checks the client's chain and
//! nothing about its identity: that is RBAC's job.

use std::sync::Arc;

use mesh_core::resource::matcher::StringMatcher;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::verify_server_cert_signed_by_trust_anchor;
use rustls::crypto::{WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature};
use rustls::server::ParsedCertificate;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, OtherError, SignatureScheme,
};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use x509_parser::prelude::{FromDer, X509Certificate};

use super::crypto;
use super::provider::CertificateProvider;
use super::san::Sans;

/// Verifies servers against a provider's CAs and the SAN matchers.
#[derive(Debug)]
pub(crate) struct ServerVerifier {
    ca: CertificateProvider,
    sans: Arc<[StringMatcher]>,
    algs: WebPkiSupportedAlgorithms,
}

impl ServerVerifier {
    pub(crate) fn new(ca: CertificateProvider, sans: Vec<StringMatcher>) -> Self {
        ServerVerifier {
            ca,
            sans: sans.into(),
            algs: crypto().signature_verification_algorithms,
        }
    }
}

impl ServerCertVerifier for ServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let material = self.ca.current();
        let roots = material.roots().ok_or_else(|| no_ca(&self.ca))?;
        let cert = ParsedCertificate::try_from(end_entity)?;
        verify_server_cert_signed_by_trust_anchor(&cert, roots, intermediates, now, self.algs.all)?;
        if !self.sans.is_empty() {
            let (_, parsed) = X509Certificate::from_der(end_entity)
                .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
            Sans::of(&parsed).check(&self.sans).map_err(|e| {
                rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(e))))
            })?;
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

/// Verifies client certificates against a provider's CAs.
#[derive(Debug)]
pub(crate) struct ClientVerifier {
    ca: CertificateProvider,
    mandatory: bool,
    algs: WebPkiSupportedAlgorithms,
}

impl ClientVerifier {
    pub(crate) fn new(ca: CertificateProvider, mandatory: bool) -> Self {
        ClientVerifier {
            ca,
            mandatory,
            algs: crypto().signature_verification_algorithms,
        }
    }
}

impl ClientCertVerifier for ClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        // No hints: they would have to follow CA rotation, and mesh clients
        // have one identity to present anyway.
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let material = self.ca.current();
        let verifier = material.client_verifier().ok_or_else(|| no_ca(&self.ca))?;
        verifier.verify_client_cert(end_entity, intermediates, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

fn no_ca(p: &CertificateProvider) -> rustls::Error {
    rustls::Error::General(format!(
        "certificate provider instance {:?} has no CA certificates",
        p.name()
    ))
}
