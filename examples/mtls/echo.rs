//! The echo server: an xDS-enabled server whose handler answers every call
//! with the caller's verified SPIFFE ID, read from the `PeerIdentity`
//! request extension, and remembers each client certificate it sees. TLS,
//! RBAC and the Listener are the server's (`mesh_tonic::server`), configured
//! by mesh-control.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mesh_core::bootstrap::Bootstrap;
use mesh_core::testing::proto::grpc_testing::test_service_server::{
    TestService, TestServiceServer,
};
use mesh_core::testing::proto::grpc_testing::{Empty, SimpleRequest, SimpleResponse};
use mesh_tonic::server::{ServingMode, XdsServer};
use mesh_tower::tls::PeerIdentity;
use tokio::net::TcpListener;
use tonic::{Request, Response, Status};

use crate::CONVERGE;
use crate::common::BoxError;
use crate::secrets::cert_tag;

/// A caller as echo saw it: its verified SPIFFE ID and which certificate,
/// or neither (plaintext).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Peer {
    spiffe_id: Option<String>,
    cert: Option<String>,
}

/// The echo service: answers every call with the caller's identity in
/// `SimpleResponse.username`, and remembers each peer certificate it sees.
#[derive(Debug, Clone, Default)]
pub(crate) struct Echo {
    peers: Arc<Mutex<BTreeSet<Peer>>>,
    fresh: Arc<Mutex<Vec<Peer>>>,
    plaintext: Arc<AtomicU64>,
}

impl Echo {
    /// Who is calling: the `PeerIdentity` the server attached to the request
    /// after verifying the client certificate (none over plaintext).
    fn caller<T>(&self, req: &Request<T>) -> String {
        let peer = req.extensions().get::<PeerIdentity>();
        let seen = Peer {
            spiffe_id: peer.and_then(|p| p.spiffe_id().map(str::to_owned)),
            cert: peer.and_then(|p| p.chain_der().first().map(|c| cert_tag(c))),
        };
        if peer.is_none() {
            self.plaintext.fetch_add(1, Ordering::Relaxed);
        }
        let id = seen.spiffe_id.clone().unwrap_or_default();
        if self.peers.lock().unwrap().insert(seen.clone()) {
            self.fresh.lock().unwrap().push(seen);
        }
        id
    }

    /// Calls served without a client certificate so far.
    pub(crate) fn plaintext_calls(&self) -> u64 {
        self.plaintext.load(Ordering::Relaxed)
    }

    /// Whether echo has seen certificate `tag`.
    pub(crate) fn has_seen(&self, tag: &str) -> bool {
        self.peers
            .lock()
            .unwrap()
            .iter()
            .any(|p| p.cert.as_deref() == Some(tag))
    }

    /// Prints the peers seen for the first time since the last call.
    pub(crate) fn print_new_peers(&self) {
        for p in self.fresh.lock().unwrap().drain(..) {
            match (&p.spiffe_id, &p.cert) {
                (Some(id), Some(cert)) => {
                    println!("   [echo] new peer: {id} (verified client certificate {cert})");
                }
                (None, Some(cert)) => {
                    println!("   [echo] new peer: a certificate without SPIFFE ID ({cert})");
                }
                _ => println!("   [echo] new peer: no certificate (plaintext)"),
            }
        }
    }
}

#[tonic::async_trait]
impl TestService for Echo {
    async fn empty_call(&self, req: Request<Empty>) -> Result<Response<Empty>, Status> {
        self.caller(&req);
        Ok(Response::new(Empty {}))
    }

    async fn unary_call(
        &self,
        req: Request<SimpleRequest>,
    ) -> Result<Response<SimpleResponse>, Status> {
        Ok(Response::new(SimpleResponse {
            username: self.caller(&req),
            hostname: "echo".into(),
            ..Default::default()
        }))
    }

    async fn cacheable_unary_call(
        &self,
        req: Request<SimpleRequest>,
    ) -> Result<Response<SimpleResponse>, Status> {
        self.unary_call(req).await
    }
}

/// Starts echo as an xDS-enabled server on `listener`; returns once it
/// serves.
pub(crate) async fn start_echo(
    listener: TcpListener,
    bootstrap: Bootstrap,
    echo: Echo,
) -> Result<tokio::sync::oneshot::Sender<()>, BoxError> {
    let (serving_tx, mut serving) = tokio::sync::watch::channel(false);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let routes = tonic::service::Routes::new(TestServiceServer::new(echo));
    let server = XdsServer::builder()
        .bootstrap(bootstrap)
        .drain_grace(Duration::from_secs(1))
        .on_serving_mode_change(move |mode, _| {
            serving_tx.send_replace(mode == ServingMode::Serving);
        });
    tokio::spawn(server.serve_with_shutdown(listener, routes, async {
        let _ = stopped.await;
    }));
    tokio::time::timeout(CONVERGE, serving.wait_for(|s| *s))
        .await
        .map_err(|_| "echo never got its inbound Listener")??;
    Ok(stop)
}
