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
    leaf_uris_der(&CertificateDer::from_pem_slice(pem.as_bytes()).unwrap())
}

/// [`leaf_uris`] of a DER certificate.
fn leaf_uris_der(der: &[u8]) -> (Vec<String>, SystemTime) {
    let (_, cert) = x509_parser::parse_x509_certificate(der).unwrap();
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

/// `serve --ca --write-bootstrap` without the binary: the CA server started
/// as `serve` starts it, with a minted token per bootstrap and one from
/// `--ca-token`; the written bootstraps' `mesh_ca` providers get
/// certificates for their identities, and the `ROOTCA` provider trusts the
/// CA's root.
mod serve {
    use std::path::Path;
    use std::time::{Duration, Instant};

    use mesh_control::bootstrap_gen::{
        IDENTITY_PROVIDER_INSTANCE, ROOT_PROVIDER_INSTANCE, client_bootstrap, server_bootstrap,
        write_bootstraps,
    };
    use mesh_control::ca::cli::{
        BootstrapTokens, CaOptions, DEFAULT_CLIENT_SA, DEFAULT_SERVER_SA, RunningCa,
        parse_ca_token, parse_workload, start_ca, write_bootstrap_credentials,
    };
    use mesh_control::ca::{DEFAULT_TRUST_DOMAIN, ROOT_CERT_FILE};
    use mesh_core::bootstrap::{Bootstrap, CertificateProviderConfig};
    use mesh_core::ca_client::{CaClient, Credentials};
    use mesh_tower::tls::CertificateProvider;
    use mesh_tower::tls::provider::ProviderRegistry;
    use rcgen::KeyPair;

    use super::{csr, leaf_uris, leaf_uris_der};

    fn options(dir: &Path, tokens: &[&str]) -> CaOptions {
        CaOptions {
            dir: dir.to_owned(),
            listen: "127.0.0.1:0".parse().unwrap(),
            trust_domain: DEFAULT_TRUST_DOMAIN.to_owned(),
            tokens: tokens.iter().map(|t| parse_ca_token(t).unwrap()).collect(),
        }
    }

    /// Starts the CA and writes the bootstraps as `serve` does; returns the
    /// CA and the two bootstraps as a workload reads them back.
    async fn serve(
        ca_dir: &Path,
        out: &Path,
        extra_tokens: &[&str],
    ) -> (RunningCa, BootstrapTokens, Bootstrap, Bootstrap) {
        let tokens = BootstrapTokens::mint(
            parse_workload("--client-sa", DEFAULT_CLIENT_SA).unwrap(),
            parse_workload("--server-sa", &format!("default/{DEFAULT_SERVER_SA}")).unwrap(),
        );
        let ca = start_ca(&options(ca_dir, extra_tokens), Some(&tokens))
            .await
            .expect("CA starts");
        let xds = "127.0.0.1:15010".parse().unwrap();
        let client = client_bootstrap(
            xds,
            "sidecar~127.0.0.1~client.default~default.svc.cluster.local",
        );
        let server = server_bootstrap(
            xds,
            "127.0.0.1".parse().unwrap(),
            "default",
            &Default::default(),
        );
        let (client, server, _) =
            write_bootstrap_credentials(out, &ca.uri(), ca.root_pem(), &tokens, client, server)
                .unwrap();
        let (c, s) = write_bootstraps(out, &client, &server).unwrap();
        let (c, s) = (
            Bootstrap::from_file(c).unwrap(),
            Bootstrap::from_file(s).unwrap(),
        );
        (ca, tokens, c, s)
    }

    /// The URI SANs of the provider's certificate once it has one
    /// (polling: the CA is on a real socket).
    async fn identity_uris(p: &CertificateProvider) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(key) = p.current().identity() {
                return leaf_uris_der(key.cert[0].as_ref()).0;
            }
            assert!(
                Instant::now() < deadline,
                "no certificate: {:?}",
                p.pending_reason()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test]
    async fn written_bootstraps_get_their_identities_from_the_ca() {
        let tmp = tempfile::tempdir().unwrap();
        let (ca_dir, out) = (tmp.path().join("ca"), tmp.path().join("out"));
        let (ca, _tokens, client, server) = serve(&ca_dir, &out, &[]).await;
        assert!(
            ca_dir.join(ROOT_CERT_FILE).exists(),
            "root generated into --ca DIR"
        );

        for (b, want) in [
            (&client, "spiffe://cluster.local/ns/default/sa/client"),
            (&server, "spiffe://cluster.local/ns/default/sa/default"),
        ] {
            assert!(matches!(
                b.certificate_providers[IDENTITY_PROVIDER_INSTANCE],
                CertificateProviderConfig::MeshCa(_)
            ));
            let registry = ProviderRegistry::from_bootstrap(b);
            let identity = registry.get(IDENTITY_PROVIDER_INSTANCE).unwrap();
            assert_eq!(identity_uris(&identity).await, vec![want.to_owned()]);

            let roots = registry.get(ROOT_PROVIDER_INSTANCE).unwrap();
            let material = roots.current();
            assert!(material.identity().is_none(), "ROOTCA has no identity");
            assert_eq!(material.roots().expect("ROOTCA trusts the root").len(), 1);
        }
        ca.shutdown().await;
    }

    #[tokio::test]
    async fn ca_token_flags_and_the_root_survive_a_restart() {
        let tmp = tempfile::tempdir().unwrap();
        let (ca_dir, out) = (tmp.path().join("ca"), tmp.path().join("out"));
        let (ca, first, _, _) = serve(&ca_dir, &out, &["ops-token=prod/billing"]).await;
        let root = ca.root_pem().to_owned();

        // A `--ca-token` caller gets its own identity.
        let client = CaClient::new(ca.uri(), ca.root_pem()).server_name("istiod.istio-system.svc");
        let key = KeyPair::generate().unwrap();
        let creds = |t: &str| Credentials {
            token: Some(t.to_owned()),
            identity: None,
        };
        let chain = client
            .create_certificate(&csr(&key, None), Duration::ZERO, &creds("ops-token"))
            .await
            .unwrap();
        assert_eq!(
            leaf_uris(&chain[0]).0,
            vec!["spiffe://cluster.local/ns/prod/sa/billing"]
        );
        ca.shutdown().await;

        // Restarted on the same directory: same root, fresh tokens; the old
        // minted token no longer works.
        let (ca, second, _, _) = serve(&ca_dir, &out, &[]).await;
        assert_eq!(ca.root_pem(), root);
        assert_ne!(first.client.token, second.client.token);
        let client = CaClient::new(ca.uri(), ca.root_pem());
        let err = client
            .create_certificate(
                &csr(&key, None),
                Duration::ZERO,
                &creds(&first.client.token),
            )
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some(Code::Unauthenticated), "{err}");
        let written = std::fs::read_to_string(out.join("client.token")).unwrap();
        assert_eq!(written, second.client.token);
        ca.shutdown().await;
    }

    use tonic::Code;
}
