use std::time::Duration;

use prost::Message;

use super::wire::{IstioCertificateRequest, IstioCertificateResponse};
use super::*;

#[test]
fn messages_use_istios_field_numbers() {
    let req = IstioCertificateRequest {
        csr: "C".into(),
        validity_duration: 4,
    };
    // Field 1 (string, wire type 2) "C"; field 3 (varint) 4.
    assert_eq!(req.encode_to_vec(), [0x0a, 1, b'C', 0x18, 4]);
    let resp = IstioCertificateResponse::decode(&[0x0a, 1, b'a', 0x0a, 1, b'b'][..]).unwrap();
    assert_eq!(resp.cert_chain, ["a", "b"]);
    // A response with fields mesh does not know still decodes.
    let resp = IstioCertificateResponse::decode(&[0x0a, 1, b'a', 0x10, 1][..]).unwrap();
    assert_eq!(resp.cert_chain, ["a"]);
}

#[tokio::test]
async fn a_bad_uri_is_a_config_error() {
    let e = CaClient::new("not a uri", "")
        .create_certificate("csr", Duration::ZERO, &Credentials::default())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), CaClientErrorKind::Config);
    assert!(e.to_string().starts_with("CA address \"not a uri\""), "{e}");
}

#[tokio::test]
async fn an_unreachable_ca_is_unavailable() {
    // A port nothing listens on: bind one, then free it.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let client = CaClient::new(format!("https://{addr}"), "").timeout(Duration::from_secs(5));
    assert_eq!(client.uri(), format!("https://{addr}"));
    let e = client
        .create_certificate("csr", Duration::ZERO, &Credentials::default())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), CaClientErrorKind::Unavailable, "{e}");
    assert!(
        e.to_string()
            .contains(&format!("CA https://{addr}: cannot connect")),
        "{e}"
    );
    assert_eq!(e.code(), None);
}

#[test]
fn credentials_debug_hides_secrets() {
    let c = Credentials {
        token: Some("s3cret".into()),
        identity: None,
    };
    let s = format!("{c:?}");
    assert!(!s.contains("s3cret"), "{s}");
}
