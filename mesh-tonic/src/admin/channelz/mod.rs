//! gRPC channelz (`grpc.channelz.v1.Channelz`, gRFC A14): what this
//! process's channels, servers and connections are doing, as grpc-go and
//! grpc-java report it from their admin packages.
//!
//! - Channels: every [`Channel`](crate::Channel) (its target, a state
//!   aggregated from its endpoints, calls started, succeeded and failed,
//!   the last call's start time). Its subchannels are the endpoints of the
//!   clusters it currently routes to (address, connectivity state, calls
//!   answered or not, see [`mesh_tower::endpoint::CallCounts`]); each
//!   subchannel's sockets are its open HTTP/2 connections (local and remote
//!   address, streams, and on TLS `security.tls` with the server's
//!   certificate and the client's).
//! - Servers: every [`XdsServer`](crate::server::XdsServer) (its listening
//!   socket, call counts) and its open connections as server sockets, with
//!   the TLS certificates of both sides on mTLS connections.
//!
//! Counting happens on the request path with relaxed atomics only; ids,
//! entity lists and protobuf messages are built when channelz is queried.
//! Channels and servers register themselves process-wide; the service
//! answers for all of them.
//!
//! Not here: channel traces (no events are logged), messages and keepalive
//! counts, socket options, HTTP/1.1 connections of plain-HTTP clients,
//! servers other than `XdsServer` (a plain `tonic::transport::Server` is
//! not seen).

mod calls;
mod convert;
mod registry;
mod track;

#[allow(missing_docs, dead_code, clippy::all, clippy::pedantic)]
mod proto {
    tonic::include_proto!("grpc.channelz.v1");
}

use std::convert::Infallible;
use std::task::{Context, Poll};

use tonic::server::NamedService;
use tonic::{Request, Response, Status};

pub(crate) use self::calls::{Call, TrackedBody};
pub(crate) use self::convert::leaf_certificate;
pub(crate) use self::registry::{
    ChannelEntry, ChannelView, ServerEntry, SocketTls, register_channel, register_server,
    register_server_socket,
};
pub(crate) use self::track::TrackedService;

use self::proto::channelz_server::{Channelz as ChannelzApi, ChannelzServer};

/// Entries per page when a request sets no `max_results`.
const DEFAULT_PAGE: usize = 100;

/// The channelz service over every channel and server of this process.
/// Cheap to clone; mount it with [`into_service`](Self::into_service).
#[derive(Debug, Clone, Copy, Default)]
pub struct Channelz {
    _private: (),
}

impl Channelz {
    /// The service (the registry is process-wide: nothing to configure).
    pub fn new() -> Self {
        Self::default()
    }

    /// The tonic service, ready for `Server::add_service` or `Routes`.
    pub fn into_service(self) -> ChannelzService {
        ChannelzService {
            inner: ChannelzServer::new(self),
        }
    }
}

fn page_size(max_results: i64) -> usize {
    match usize::try_from(max_results) {
        Ok(0) | Err(_) => DEFAULT_PAGE,
        Ok(n) => n,
    }
}

fn not_found(what: &str, id: i64) -> Status {
    Status::not_found(format!("channelz: no {what} with id {id}"))
}

#[tonic::async_trait]
impl ChannelzApi for Channelz {
    async fn get_top_channels(
        &self,
        request: Request<proto::GetTopChannelsRequest>,
    ) -> Result<Response<proto::GetTopChannelsResponse>, Status> {
        let req = request.into_inner();
        let (entries, end) = registry::channels(req.start_channel_id, page_size(req.max_results));
        let channel = entries.iter().map(|e| convert::channel(e)).collect();
        Ok(Response::new(proto::GetTopChannelsResponse {
            channel,
            end,
        }))
    }

    async fn get_servers(
        &self,
        request: Request<proto::GetServersRequest>,
    ) -> Result<Response<proto::GetServersResponse>, Status> {
        let req = request.into_inner();
        let (entries, end) = registry::servers(req.start_server_id, page_size(req.max_results));
        let server = entries.iter().map(|e| convert::server(e)).collect();
        Ok(Response::new(proto::GetServersResponse { server, end }))
    }

    async fn get_server(
        &self,
        request: Request<proto::GetServerRequest>,
    ) -> Result<Response<proto::GetServerResponse>, Status> {
        let id = request.into_inner().server_id;
        let entry = registry::server(id).ok_or_else(|| not_found("server", id))?;
        Ok(Response::new(proto::GetServerResponse {
            server: Some(convert::server(&entry)),
        }))
    }

    async fn get_server_sockets(
        &self,
        request: Request<proto::GetServerSocketsRequest>,
    ) -> Result<Response<proto::GetServerSocketsResponse>, Status> {
        let req = request.into_inner();
        if registry::server(req.server_id).is_none() {
            return Err(not_found("server", req.server_id));
        }
        let (sockets, end) = registry::server_sockets(
            req.server_id,
            req.start_socket_id,
            page_size(req.max_results),
        );
        let socket_ref = sockets
            .iter()
            .map(|s| convert::socket_ref(s.id, s.remote))
            .collect();
        Ok(Response::new(proto::GetServerSocketsResponse {
            socket_ref,
            end,
        }))
    }

    async fn get_channel(
        &self,
        request: Request<proto::GetChannelRequest>,
    ) -> Result<Response<proto::GetChannelResponse>, Status> {
        let id = request.into_inner().channel_id;
        let entry = registry::channel(id).ok_or_else(|| not_found("channel", id))?;
        Ok(Response::new(proto::GetChannelResponse {
            channel: Some(convert::channel(&entry)),
        }))
    }

    async fn get_subchannel(
        &self,
        request: Request<proto::GetSubchannelRequest>,
    ) -> Result<Response<proto::GetSubchannelResponse>, Status> {
        let id = request.into_inner().subchannel_id;
        let (endpoint, ctx) =
            registry::subchannel(id).ok_or_else(|| not_found("subchannel", id))?;
        Ok(Response::new(proto::GetSubchannelResponse {
            subchannel: Some(convert::subchannel(id, &endpoint, &ctx)),
        }))
    }

    async fn get_socket(
        &self,
        request: Request<proto::GetSocketRequest>,
    ) -> Result<Response<proto::GetSocketResponse>, Status> {
        let req = request.into_inner();
        let entity =
            registry::socket(req.socket_id).ok_or_else(|| not_found("socket", req.socket_id))?;
        Ok(Response::new(proto::GetSocketResponse {
            socket: Some(convert::socket(req.socket_id, &entity, req.summary)),
        }))
    }
}

/// The mountable channelz service (`grpc.channelz.v1.Channelz`), from
/// [`Channelz::into_service`]. Works with `tonic::transport::Server` and
/// `tonic::service::Routes` like any generated service.
#[derive(Debug, Clone)]
pub struct ChannelzService {
    inner: ChannelzServer<Channelz>,
}

impl NamedService for ChannelzService {
    const NAME: &'static str = "grpc.channelz.v1.Channelz";
}

impl<B> tower::Service<http::Request<B>> for ChannelzService
where
    B: http_body::Body + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = tonic::codegen::BoxFuture<Self::Response, Infallible>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        tower::Service::<http::Request<B>>::poll_ready(&mut self.inner, cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        self.inner.call(req)
    }
}
