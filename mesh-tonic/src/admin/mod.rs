//! Admin services: CSDS (`envoy.service.status.v3.ClientStatusDiscoveryService`,
//! gRFC A40), which reports what this process's xDS clients subscribed to,
//! the status of each resource (REQUESTED, DOES_NOT_EXIST, ACKED, NACKED,
//! RECEIVED_ERROR, TIMEOUT), its version and raw config, and the last
//! rejection.
//!
//! Node matchers in requests are ignored: a process answers for itself.
//!
//! Channelz (`grpc.channelz.v1.Channelz`, A14): [`Channelz`], over every
//! channel and xDS-enabled server of the process (see its module,
//! `channelz`, for what is reported).

pub(crate) mod channelz;
mod convert;

use std::pin::Pin;

use envoy_types::pb::envoy::service::status::v3::client_status_discovery_service_server::{
    ClientStatusDiscoveryService, ClientStatusDiscoveryServiceServer,
};
use envoy_types::pb::envoy::service::status::v3::{ClientStatusRequest, ClientStatusResponse};
use futures::{Stream, StreamExt};
use mesh_core::xds::XdsClient;
use tonic::{Request, Response, Status, Streaming};

pub use self::channelz::{Channelz, ChannelzService};
pub use self::convert::client_config;

/// The CSDS service over a set of xDS clients, each with its scope (A71:
/// the data-plane target, or `#server` for xDS-enabled servers). Cheap to
/// clone.
#[derive(Debug, Clone, Default)]
pub struct Csds {
    clients: Vec<(String, XdsClient)>,
}

impl Csds {
    /// No clients yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a client reported under `scope` (`client_scope` in the dump).
    pub fn client(mut self, scope: impl Into<String>, client: XdsClient) -> Self {
        self.clients.push((scope.into(), client));
        self
    }

    /// The tonic service, ready for `Server::add_service` or `Routes`.
    pub fn into_service(self) -> ClientStatusDiscoveryServiceServer<Self> {
        ClientStatusDiscoveryServiceServer::new(self)
    }

    /// The status of every client, as a CSDS response.
    pub async fn snapshot(&self) -> ClientStatusResponse {
        let mut config = Vec::with_capacity(self.clients.len());
        for (scope, client) in &self.clients {
            config.push(client_config(scope, &client.status().await));
        }
        ClientStatusResponse { config }
    }
}

type StatusStream = Pin<Box<dyn Stream<Item = Result<ClientStatusResponse, Status>> + Send>>;

#[tonic::async_trait]
impl ClientStatusDiscoveryService for Csds {
    type StreamClientStatusStream = StatusStream;

    async fn stream_client_status(
        &self,
        request: Request<Streaming<ClientStatusRequest>>,
    ) -> Result<Response<Self::StreamClientStatusStream>, Status> {
        let this = self.clone();
        // One response per request, in order.
        let stream = request.into_inner().then(move |req| {
            let this = this.clone();
            async move {
                req?;
                Ok(this.snapshot().await)
            }
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn fetch_client_status(
        &self,
        _request: Request<ClientStatusRequest>,
    ) -> Result<Response<ClientStatusResponse>, Status> {
        Ok(Response::new(self.snapshot().await))
    }
}
