//! The `backends` subcommand: the echo servers every contender calls,
//! all in one process on a runtime of fixed size, so the server side costs
//! the same whichever client drives it.
//!
//! - `count` plaintext backends: mesh-core's grpc.testing
//!   `TestServiceBackend` on loopback ports (UnaryCall answers with a
//!   payload of the requested size);
//! - with a certificate directory ([`CertDirs`]), as many mTLS backends
//!   (the same service behind tonic's rustls server, presenting the SPIFFE
//!   workload certificate and requiring a client certificate from the
//!   bench CA) and one more TLS backend for bare tonic, identical but for
//!   its certificate's SAN (`localhost`).
//!
//! The process prints one JSON line, [`BackendsReady`], and serves until
//! its stdin closes (the orchestrator holds the other end).

use std::io::Write;
use std::net::SocketAddr;

use mesh_control::ca::WorkloadCertPaths;
use mesh_core::testing::proto::grpc_testing::test_service_server::TestServiceServer;
use mesh_core::testing::test_service::TestServiceBackend;
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;
use tokio_stream::StreamExt as _;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};

use crate::BoxError;
use crate::certs::{CertDirs, read_pem};

/// What the `backends` process prints once it listens.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct BackendsReady {
    /// The plaintext backends' loopback ports, in order.
    pub ports: Vec<u16>,
    /// The mTLS backends' ports (SPIFFE certificate), in order; empty
    /// without certificates.
    #[serde(default)]
    pub mtls_ports: Vec<u16>,
    /// The bare tonic TLS backend's port (DNS certificate), if any.
    #[serde(default)]
    pub tls_port: Option<u16>,
}

/// Runs `count` backends (and, with `certs`, the TLS ones) on a runtime of
/// `workers` threads until stdin closes.
pub fn run(count: usize, workers: usize, certs: Option<&CertDirs>) -> Result<(), BoxError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let mut running = Vec::with_capacity(count);
        for i in 0..count {
            running.push(TestServiceBackend::new(format!("b{i}")).serve().await?);
        }
        let mut ready = BackendsReady {
            ports: running.iter().map(|b| b.local_addr().port()).collect(),
            ..Default::default()
        };
        let mut tls = Vec::new();
        if let Some(dirs) = certs {
            for i in 0..count {
                let b = TlsBackend::start(&format!("m{i}"), &dirs.server()).await?;
                ready.mtls_ports.push(b.addr.port());
                tls.push(b);
            }
            let b = TlsBackend::start("t0", &dirs.tls_server()).await?;
            ready.tls_port = Some(b.addr.port());
            tls.push(b);
        }
        print_line(&serde_json::to_string(&ready)?)?;
        wait_for_stdin_eof().await;
        for b in running {
            b.shutdown().await;
        }
        for b in tls {
            b.stop().await;
        }
        Ok(())
    })
}

/// TestService behind tonic's TLS server, requiring a client certificate
/// signed by the bench root.
struct TlsBackend {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl TlsBackend {
    async fn start(id: &str, files: &WorkloadCertPaths) -> Result<TlsBackend, BoxError> {
        let tls = ServerTlsConfig::new()
            .identity(Identity::from_pem(
                read_pem(&files.cert_chain)?,
                read_pem(&files.key)?,
            ))
            .client_ca_root(Certificate::from_pem(read_pem(&files.root_cert)?));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let router = Server::builder()
            .tls_config(tls)?
            .add_service(TestServiceServer::new(TestServiceBackend::new(id)));
        // As the plaintext backends: no Nagle delay on small responses
        // (tonic sets TCP_NODELAY only on listeners it binds itself).
        let incoming = TcpListenerStream::new(listener).map(|accepted| {
            accepted.and_then(|io| {
                io.set_nodelay(true)?;
                Ok(io)
            })
        });
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let stopped = async {
                let _ = stopped.await;
            };
            if let Err(e) = router.serve_with_incoming_shutdown(incoming, stopped).await {
                eprintln!("TLS backend stopped: {e}");
            }
        });
        Ok(TlsBackend { addr, stop, task })
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

/// Prints `line` to stdout and flushes it (stdout is a pipe).
pub(crate) fn print_line(line: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")?;
    out.flush()
}

/// Resolves when stdin reaches end of file: the parent exited or closed
/// its end, so this helper process should go too.
pub(crate) async fn wait_for_stdin_eof() {
    let _ = tokio::task::spawn_blocking(|| {
        let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
    })
    .await;
}
