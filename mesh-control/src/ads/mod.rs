//! The ADS server: serves [`XdsSnapshot`]s over
//! `envoy.service.discovery.v3.AggregatedDiscoveryService`, state of the
//! world, to any proxyless client (mesh, grpcio, grpc-go, grpc-java).
//!
//! [`AdsServer`] follows a `watch` channel of snapshots; each stream runs a
//! `stream` session that decides what to send (only to clients watching a
//! changed resource) and records ACKs and NACKs in a [`ClientRegistry`].
//! Delta xDS answers UNIMPLEMENTED for now.
//!
//! This module does not build snapshots (that is [`crate::translate`]'s
//! job) nor set their versions (the control plane does, see
//! [`crate::server`]).

mod node;
pub mod status;
mod stream;

use std::pin::Pin;
use std::sync::Arc;

use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_server::{
    AggregatedDiscoveryService, AggregatedDiscoveryServiceServer,
};
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use futures::Stream;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

pub use node::{INSTANCE_IPS, LABELS, NAMESPACE, node_info};
pub use status::{ClientRegistry, ClientStatus, Nack, Subscription};
pub use stream::CONTROL_PLANE_ID;

use crate::snapshot::XdsSnapshot;
use stream::Session;

/// Responses queued per stream before the session waits for the client.
const STREAM_BUFFER: usize = 16;

/// The ADS service. Clone it freely; every clone serves the same snapshots
/// and reports to the same registry.
#[derive(Debug, Clone)]
pub struct AdsServer {
    snapshots: watch::Receiver<Arc<XdsSnapshot>>,
    clients: ClientRegistry,
}

impl AdsServer {
    /// Serves the snapshots `snapshots` publishes. When its sender is
    /// dropped, every stream ends with UNAVAILABLE (shutdown).
    pub fn new(snapshots: watch::Receiver<Arc<XdsSnapshot>>, clients: ClientRegistry) -> Self {
        AdsServer { snapshots, clients }
    }

    /// The status table the streams write to.
    pub fn clients(&self) -> &ClientRegistry {
        &self.clients
    }

    /// The tonic service to add to a `Server` (no message size limits:
    /// large meshes make large CDS responses).
    pub fn into_service(self) -> AggregatedDiscoveryServiceServer<Self> {
        AggregatedDiscoveryServiceServer::new(self)
            .max_decoding_message_size(usize::MAX)
            .max_encoding_message_size(usize::MAX)
    }
}

type ResponseStream = Pin<Box<dyn Stream<Item = Result<DiscoveryResponse, Status>> + Send>>;
type DeltaStream = Pin<Box<dyn Stream<Item = Result<DeltaDiscoveryResponse, Status>> + Send>>;

#[tonic::async_trait]
impl AggregatedDiscoveryService for AdsServer {
    type StreamAggregatedResourcesStream = ResponseStream;
    type DeltaAggregatedResourcesStream = DeltaStream;

    async fn stream_aggregated_resources(
        &self,
        request: Request<Streaming<DiscoveryRequest>>,
    ) -> Result<Response<Self::StreamAggregatedResourcesStream>, Status> {
        let peer = request.remote_addr();
        let incoming = request.into_inner();
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        let status = self.clients.open(peer);
        let task = StreamTask {
            session: Session::new(status),
            snapshots: self.snapshots.clone(),
            clients: self.clients.clone(),
            tx,
        };
        tokio::spawn(task.run(incoming));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn delta_aggregated_resources(
        &self,
        _request: Request<Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<Response<Self::DeltaAggregatedResourcesStream>, Status> {
        Err(Status::unimplemented(
            "mesh-control serves state-of-the-world ADS only",
        ))
    }
}

/// One stream: requests and snapshot changes into the session, responses
/// out.
struct StreamTask {
    session: Session,
    snapshots: watch::Receiver<Arc<XdsSnapshot>>,
    clients: ClientRegistry,
    tx: mpsc::Sender<Result<DiscoveryResponse, Status>>,
}

impl StreamTask {
    async fn run(mut self, mut incoming: Streaming<DiscoveryRequest>) {
        self.snapshots.mark_unchanged();
        let end = loop {
            let out = tokio::select! {
                msg = incoming.message() => match msg {
                    Ok(Some(req)) => {
                        let snap = self.snapshots.borrow().clone();
                        self.session.on_request(req, &snap)
                    }
                    Ok(None) => break None,
                    Err(e) => break Some(e.to_string()),
                },
                changed = self.snapshots.changed() => {
                    if changed.is_err() {
                        let _ = self
                            .tx
                            .send(Err(Status::unavailable("mesh-control is shutting down")))
                            .await;
                        break None;
                    }
                    let snap = self.snapshots.borrow_and_update().clone();
                    self.session.on_snapshot(&snap)
                }
                () = self.tx.closed() => break None,
            };
            for resp in out {
                if self.tx.send(Ok(resp)).await.is_err() {
                    break;
                }
            }
            // Every event may change the status (ACKed versions, NACKs),
            // even when nothing is sent.
            self.clients.update(self.session.status());
        };
        let status = self.session.status().clone();
        match end {
            Some(error) => tracing::debug!(node = %status.node_id, "ADS stream ended: {error}"),
            None => tracing::debug!(node = %status.node_id, "ADS stream closed"),
        }
        self.clients.close(status);
    }
}
