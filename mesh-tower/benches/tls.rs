//! Handshakes per second over loopback: a full mTLS handshake (ECDSA
//! P-256, TLS 1.3, both chains verified, the client's SANs checked, no
//! resumption) as mesh's connector and acceptor run it, against a TLS
//! handshake without client certificates and a plain TCP connect, in the
//! same run. Each iteration connects, handshakes and echoes one byte, so
//! the server's verification of the client is included.

#![allow(missing_docs)] // criterion's macros generate undocumented items.

#[path = "../src/tls/testing.rs"]
mod certs;

use std::net::SocketAddr;

use certs::{Leaf, TestCa};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mesh_core::resource::matcher::StringMatcher;
use mesh_tower::endpoint::{Connector, TcpConnector};
use mesh_tower::tls::client::client_config_from;
use mesh_tower::tls::server::server_config_from;
use mesh_tower::tls::{CertificateProvider, CertifiedMaterial, TlsAcceptor, TlsConnector};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::runtime::Runtime;

const ECHO: &str = "spiffe://cluster.local/ns/default/sa/echo";
const CLIENT: &str = "spiffe://cluster.local/ns/default/sa/client";

fn provider(name: &str, leaf: Option<&Leaf>, ca: Option<&TestCa>) -> CertificateProvider {
    let ca_pem = ca.map(TestCa::pem);
    let material = CertifiedMaterial::from_pem(
        name,
        leaf.map(|l| l.chain_pem.as_bytes()),
        leaf.map(|l| l.key_pem.as_bytes()),
        ca_pem.as_deref().map(str::as_bytes),
    )
    .expect("bench material");
    CertificateProvider::fixed(name, material)
}

/// Accepts connections: TLS ones are handshaken with `acceptor`; each
/// echoes one byte and closes.
async fn serve(acceptor: Option<TlsAcceptor>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let _ = tcp.set_nodelay(true);
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 1];
                match acceptor {
                    Some(acceptor) => {
                        if let Ok((mut s, _)) = mesh_tower::tls::accept(&acceptor, tcp).await
                            && s.read_exact(&mut buf).await.is_ok()
                        {
                            let _ = s.write_all(&buf).await;
                        }
                    }
                    None => {
                        let mut s = tcp;
                        if s.read_exact(&mut buf).await.is_ok() {
                            let _ = s.write_all(&buf).await;
                        }
                    }
                }
            });
        }
    });
    addr
}

async fn connect_and_echo(connector: &dyn Connector, addr: SocketAddr) {
    let mut io = connector.connect(addr).await.expect("connect");
    io.write_all(b"x").await.expect("write");
    let mut buf = [0u8; 1];
    io.read_exact(&mut buf).await.expect("read");
}

fn handshakes(c: &mut Criterion) {
    let rt = Runtime::new().expect("runtime");
    let _guard = rt.enter();
    let ca = TestCa::new("bench root");
    let (server_leaf, client_leaf) = (ca.leaf(&[ECHO]), ca.leaf(&[CLIENT]));
    let server_id = provider("server", Some(&server_leaf), None);
    let server_ca = provider("server-ca", None, Some(&ca));
    let client_ca = provider("client-ca", None, Some(&ca));
    let client_id = provider("client", Some(&client_leaf), None);

    let mtls_server =
        server_config_from(server_id.clone(), Some(server_ca), true).expect("server config");
    let tls_server = server_config_from(server_id, None, false).expect("server config");
    let mtls_addr = rt.block_on(serve(Some(TlsAcceptor::new(mtls_server))));
    let tls_addr = rt.block_on(serve(Some(TlsAcceptor::new(tls_server))));
    let tcp_addr = rt.block_on(serve(None));

    let sans = vec![StringMatcher::exact(ECHO)];
    let mtls = TlsConnector::new(
        client_config_from(client_ca.clone(), Some(client_id), sans.clone()).expect("client"),
        None,
    );
    let tls = TlsConnector::new(
        client_config_from(client_ca, None, sans).expect("client"),
        None,
    );

    let mut group = c.benchmark_group("handshake");
    group.throughput(Throughput::Elements(1));
    group.bench_function("mtls", |b| {
        b.iter(|| rt.block_on(connect_and_echo(&mtls, mtls_addr)))
    });
    group.bench_function("tls_server_auth_only", |b| {
        b.iter(|| rt.block_on(connect_and_echo(&tls, tls_addr)))
    });
    group.bench_function("plain_tcp", |b| {
        b.iter(|| rt.block_on(connect_and_echo(&TcpConnector, tcp_addr)))
    });
    group.finish();
}

criterion_group!(benches, handshakes);
criterion_main!(benches);
