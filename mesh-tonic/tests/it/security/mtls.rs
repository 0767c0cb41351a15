//! mTLS handshakes through the channel and the server: success, refusals,
//! plaintext fallback, the handshake timeout.

use super::*;

#[tokio::test]
async fn mtls_succeeds_and_the_service_sees_the_client_spiffe_id() {
    let ca = TestCa::new("mesh-root");
    let (_, server_secret) = workload(&ca, SERVER_ID);
    let (client_leaf, client_secret) = workload(&ca, CLIENT_ID);
    let mesh = Mesh::start(Setup {
        server_secret: Some(&server_secret),
        server_registry: None,
        handshake_timeout: None,
        mtls: true,
        rbac: &[],
        client_tls: ClientTls::Mutual(SERVER_ID),
    })
    .await;
    let client = Client::new(&mesh.ads, "client", Some(&client_secret));
    let mut rpc = client.connect().await;
    unary(&mut rpc).await.unwrap();
    unary(&mut rpc).await.unwrap();
    let seen = mesh.seen();
    assert_eq!(seen.len(), 2);
    for peer in seen {
        let (spiffe, leaf) = peer.expect("a PeerIdentity in the request extensions");
        assert_eq!(spiffe.as_deref(), Some(CLIENT_ID));
        assert_eq!(leaf, client_leaf.der.to_vec());
    }
}

#[tokio::test]
async fn a_wrong_spiffe_san_is_refused_naming_the_expected_san() {
    let ca = TestCa::new("mesh-root");
    let (_, server_secret) = workload(&ca, SERVER_ID);
    let (_, client_secret) = workload(&ca, CLIENT_ID);
    const EXPECTED: &str = "spiffe://cluster.local/ns/default/sa/not-echo";
    let mesh = Mesh::start(Setup {
        server_secret: Some(&server_secret),
        server_registry: None,
        handshake_timeout: None,
        mtls: true,
        rbac: &[],
        client_tls: ClientTls::Mutual(EXPECTED),
    })
    .await;
    let client = Client::new(&mesh.ads, "client", Some(&client_secret));
    let status = refused(&mut client.connect().await).await;
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(status.message().contains(EXPECTED), "{status:?}");
    assert!(mesh.seen().is_empty());
}

#[tokio::test]
async fn a_server_from_another_ca_is_refused() {
    let ca = TestCa::new("mesh-root");
    let rogue = TestCa::new("rogue-root");
    let (_, server_secret) = workload(&rogue, SERVER_ID);
    let (_, client_secret) = workload(&ca, CLIENT_ID);
    let mesh = Mesh::start(Setup {
        server_secret: Some(&server_secret),
        server_registry: None,
        handshake_timeout: None,
        mtls: true,
        rbac: &[],
        client_tls: ClientTls::Mutual(SERVER_ID),
    })
    .await;
    let client = Client::new(&mesh.ads, "client", Some(&client_secret));
    let status = refused(&mut client.connect().await).await;
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(status.message().contains("TLS handshake"), "{status:?}");
    assert!(mesh.seen().is_empty());
}

#[tokio::test]
async fn a_client_without_a_certificate_is_refused() {
    let ca = TestCa::new("mesh-root");
    let (_, server_secret) = workload(&ca, SERVER_ID);
    let (_, client_secret) = workload(&ca, CLIENT_ID);
    let mesh = Mesh::start(Setup {
        server_secret: Some(&server_secret),
        server_registry: None,
        handshake_timeout: None,
        mtls: true,
        rbac: &[],
        client_tls: ClientTls::NoCertificate(SERVER_ID),
    })
    .await;
    let client = Client::new(&mesh.ads, "client", Some(&client_secret));
    let status = refused(&mut client.connect().await).await;
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(mesh.seen().is_empty());
}

#[tokio::test]
async fn plaintext_without_tls_contexts() {
    let mesh = Mesh::start(Setup {
        server_secret: None,
        server_registry: None,
        handshake_timeout: None,
        mtls: false,
        rbac: &[],
        client_tls: ClientTls::Plaintext,
    })
    .await;
    // No certificate providers at all on either side.
    let client = Client::new(&mesh.ads, "client", None);
    unary(&mut client.connect().await).await.unwrap();
    assert_eq!(mesh.seen(), vec![None]);
}

#[tokio::test]
async fn a_client_that_never_finishes_its_handshake_is_cut_off() {
    use tokio::io::AsyncReadExt;
    let ca = TestCa::new("mesh-root");
    let (_, server_secret) = workload(&ca, SERVER_ID);
    let mesh = Mesh::start(Setup {
        server_secret: Some(&server_secret),
        server_registry: None,
        handshake_timeout: Some(Duration::from_millis(200)),
        mtls: true,
        rbac: &[],
        client_tls: ClientTls::Plaintext,
    })
    .await;
    // A TCP client that sends nothing: the server closes it once the
    // handshake timeout passes (without one, the read below never ends).
    let mut tcp = tokio::net::TcpStream::connect(mesh.addr).await.unwrap();
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(CONVERGE, tcp.read(&mut buf))
        .await
        .expect("the server closes a silent connection");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
}
