//! The CA server over loopback TLS: Istio's CreateCertificate with a
//! bootstrap token, with a CA-issued client certificate (renewal), and the
//! refusals.

use std::time::{Duration, SystemTime};

use mesh_control::ca::proto::IstioCertificateRequest;
use mesh_control::ca::proto::istio_certificate_service_client::IstioCertificateServiceClient;
use mesh_control::ca::server::SERVER_NAME;
use mesh_control::ca::{Authority, CaServer, DEFAULT_TRUST_DOMAIN, IssuedCert};
use rcgen::{CertificateParams, DistinguishedName, KeyPair, SanType};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};
use tonic::{Code, Request};
use x509_parser::extensions::GeneralName;

const TOKEN: &str = "bootstrap-token-for-echo";

async fn start(ca: &Authority) -> CaServer {
    CaServer::builder()
        .authority(ca.clone())
        .tokens([(TOKEN, ("default", "echo"))])
        .listen("127.0.0.1:0".parse().unwrap())
        .start()
        .await
        .expect("CA server starts")
}

async fn client(
    server: &CaServer,
    root_pem: &str,
    identity: Option<(&str, &str)>,
) -> Result<IstioCertificateServiceClient<Channel>, tonic::transport::Error> {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(root_pem))
        .domain_name(SERVER_NAME);
    if let Some((chain, key)) = identity {
        tls = tls.identity(Identity::from_pem(chain, key));
    }
    let channel = Channel::from_shared(server.uri())
        .unwrap()
        .tls_config(tls)?
        .connect()
        .await?;
    Ok(IstioCertificateServiceClient::new(channel))
}

fn csr(key: &KeyPair, san: Option<&str>) -> String {
    let mut p = CertificateParams::default();
    p.distinguished_name = DistinguishedName::new();
    p.subject_alt_names = san
        .map(|s| SanType::URI(s.try_into().unwrap()))
        .into_iter()
        .collect();
    p.serialize_request(key).unwrap().pem().unwrap()
}

fn request(csr: String, token: Option<&str>) -> Request<IstioCertificateRequest> {
    let mut r = Request::new(IstioCertificateRequest {
        csr,
        validity_duration: 3600,
        metadata: None,
    });
    if let Some(t) = token {
        r.metadata_mut()
            .insert("authorization", format!("Bearer {t}").parse().unwrap());
    }
    r
}

/// The leaf's URI SANs and expiry.
fn leaf_uris(pem: &str) -> (Vec<String>, SystemTime) {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject as _;
    let der = CertificateDer::from_pem_slice(pem.as_bytes()).unwrap();
    let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
    let uris = cert
        .subject_alternative_name()
        .unwrap()
        .map(|s| {
            s.value
                .general_names
                .iter()
                .filter_map(|g| match g {
                    GeneralName::URI(u) => Some((*u).to_owned()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    let not_after =
        SystemTime::UNIX_EPOCH + Duration::from_secs(cert.validity().not_after.timestamp() as u64);
    (uris, not_after)
}

#[tokio::test]
async fn token_caller_gets_a_chain_for_the_tokens_identity() {
    let ca = Authority::generate(DEFAULT_TRUST_DOMAIN).unwrap();
    let server = start(&ca).await;
    let mut c = client(&server, ca.root_pem(), None).await.unwrap();

    let key = KeyPair::generate().unwrap();
    let resp = c
        .create_certificate(request(csr(&key, None), Some(TOKEN)))
        .await
        .expect("issued")
        .into_inner();
    assert_eq!(resp.cert_chain.len(), 2, "[leaf, root]");
    assert_eq!(resp.cert_chain[1], ca.root_pem());
    let (uris, not_after) = leaf_uris(&resp.cert_chain[0]);
    assert_eq!(uris, vec!["spiffe://cluster.local/ns/default/sa/echo"]);
    // validity_duration 3600 was honoured.
    let left = not_after.duration_since(SystemTime::now()).unwrap();
    assert!(left <= Duration::from_secs(3600), "{left:?}");
    assert!(left > Duration::from_secs(3000), "{left:?}");

    // Asking explicitly for its own identity is fine too.
    let own = csr(&key, Some("spiffe://cluster.local/ns/default/sa/echo"));
    c.create_certificate(request(own, Some(TOKEN)))
        .await
        .expect("own identity is allowed");
    server.shutdown().await;
}

#[tokio::test]
async fn csr_for_another_identity_is_permission_denied() {
    let ca = Authority::generate(DEFAULT_TRUST_DOMAIN).unwrap();
    let server = start(&ca).await;
    let mut c = client(&server, ca.root_pem(), None).await.unwrap();
    let key = KeyPair::generate().unwrap();
    let other = csr(
        &key,
        Some("spiffe://cluster.local/ns/istio-system/sa/istiod"),
    );
    let err = c
        .create_certificate(request(other, Some(TOKEN)))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    server.shutdown().await;
}

#[tokio::test]
async fn missing_or_unknown_credentials_are_unauthenticated() {
    let ca = Authority::generate(DEFAULT_TRUST_DOMAIN).unwrap();
    let server = start(&ca).await;
    let mut c = client(&server, ca.root_pem(), None).await.unwrap();
    let key = KeyPair::generate().unwrap();
    for token in [None, Some("not-a-token")] {
        let err = c
            .create_certificate(request(csr(&key, None), token))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::Unauthenticated, "{token:?}: {err:?}");
    }
    // A garbage CSR from an authenticated caller is the caller's mistake.
    let err = c
        .create_certificate(request("garbage".into(), Some(TOKEN)))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    server.shutdown().await;
}

#[tokio::test]
async fn renewal_with_the_current_client_certificate_over_mtls() {
    let ca = Authority::generate(DEFAULT_TRUST_DOMAIN).unwrap();
    let server = start(&ca).await;

    // Bootstrap: token in, first certificate out.
    let key = KeyPair::generate().unwrap();
    let mut boot = client(&server, ca.root_pem(), None).await.unwrap();
    let first = boot
        .create_certificate(request(csr(&key, None), Some(TOKEN)))
        .await
        .unwrap()
        .into_inner()
        .cert_chain;

    // Renew: present the issued certificate, no token.
    let chain_pem = first.concat();
    let key_pem = key.serialize_pem();
    let mut renew = client(&server, ca.root_pem(), Some((&chain_pem, &key_pem)))
        .await
        .unwrap();
    let new_key = KeyPair::generate().unwrap();
    let second = renew
        .create_certificate(request(csr(&new_key, None), None))
        .await
        .expect("renewal over mTLS")
        .into_inner()
        .cert_chain;
    assert_eq!(
        leaf_uris(&second[0]).0,
        vec!["spiffe://cluster.local/ns/default/sa/echo"]
    );
    assert_ne!(second[0], first[0]);

    // The client certificate's identity is the caller's: it cannot ask for
    // another one either.
    let err = renew
        .create_certificate(request(
            csr(&new_key, Some("spiffe://cluster.local/ns/default/sa/other")),
            None,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    server.shutdown().await;
}

#[tokio::test]
async fn client_certificate_identity_wins_over_a_token() {
    let ca = Authority::generate(DEFAULT_TRUST_DOMAIN).unwrap();
    let server = start(&ca).await;
    let other: IssuedCert = ca.issue("prod", "billing").unwrap();
    let mut c = client(
        &server,
        ca.root_pem(),
        Some((&other.chain_pem, &other.key_pem)),
    )
    .await
    .unwrap();
    let key = KeyPair::generate().unwrap();
    let chain = c
        .create_certificate(request(csr(&key, None), Some(TOKEN)))
        .await
        .unwrap()
        .into_inner()
        .cert_chain;
    assert_eq!(
        leaf_uris(&chain[0]).0,
        vec!["spiffe://cluster.local/ns/prod/sa/billing"]
    );
    server.shutdown().await;
}

#[tokio::test]
async fn certificates_from_another_ca_or_expired_do_not_authenticate() {
    let ca = Authority::generate(DEFAULT_TRUST_DOMAIN).unwrap();
    let server = start(&ca).await;
    let key = KeyPair::generate().unwrap();

    let foreign_ca = Authority::generate(DEFAULT_TRUST_DOMAIN).unwrap();
    let foreign = foreign_ca.issue("default", "echo").unwrap();
    let id = ca.identity("default", "echo").unwrap();
    let now = SystemTime::now();
    let expired = ca
        .issue_window(
            &id,
            now - Duration::from_secs(7200),
            now - Duration::from_secs(3600),
        )
        .unwrap();

    for (what, cert) in [("foreign CA", &foreign), ("expired", &expired)] {
        // The TLS handshake rejects the certificate: either connecting or
        // the first call fails, never with a certificate issued.
        let outcome = match client(
            &server,
            ca.root_pem(),
            Some((&cert.chain_pem, &cert.key_pem)),
        )
        .await
        {
            Err(_) => None,
            Ok(mut c) => Some(
                c.create_certificate(request(csr(&key, None), None))
                    .await
                    .unwrap_err(),
            ),
        };
        if let Some(status) = outcome {
            assert_ne!(status.code(), Code::Ok, "{what}");
            assert!(
                matches!(
                    status.code(),
                    Code::Unavailable | Code::Unknown | Code::Unauthenticated
                ),
                "{what}: {status:?}"
            );
        }
    }
    server.shutdown().await;
}

#[tokio::test]
async fn server_refuses_invalid_token_identities() {
    let ca = Authority::generate(DEFAULT_TRUST_DOMAIN).unwrap();
    let err = CaServer::builder()
        .authority(ca)
        .token("t", "bad/ns", "sa")
        .listen("127.0.0.1:0".parse().unwrap())
        .start()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("bad/ns"), "{err}");
    let err = CaServer::builder().start().await.unwrap_err();
    assert!(err.to_string().contains("no authority"), "{err}");
}
