//! The grpc.testing TestService backend of the xDS interop tests
//! (gRPC `doc/xds-test-descriptions.md`, "Server"), for tests, the interop
//! server and the examples.
//!
//! [`TestServiceBackend`] answers EmptyCall, UnaryCall and CacheableUnaryCall:
//! UnaryCall returns the backend's `server_id` and `hostname` (and a payload of
//! `response_size` bytes), and every successful call sends the initial
//! metadata `hostname`. The `rpc-behavior` request header steers a call
//! (`sleep-N`, `keep-open`, `error-code-N`, `succeed-on-retry-attempt-N`,
//! each optionally prefixed by `hostname=H `); failures are sent
//! Trailers-Only, so no `hostname` header reaches the client. Every RPC that
//! reaches the backend is counted ([`TestServiceBackend::served`]).
//!
//! [`TestServiceBackend::serve`] runs it on a loopback port next to
//! `grpc.health.v1.Health` and [`UpdateHealth`] (XdsUpdateHealthService); the
//! returned [`RunningBackend`] stops the server when dropped, closing open
//! connections as a crashed backend would.
//!
//! Not implemented (they answer UNIMPLEMENTED): the streaming methods,
//! `SendHookRequest`, compression and ORCA reports.

use std::collections::HashMap;
use std::io;
use std::net::{Shutdown, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::StreamExt;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::metadata::{AsciiMetadataValue, MetadataMap};
use tonic::transport::server::{Connected, TcpConnectInfo};
use tonic::{Code, Request, Response, Status};
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use super::proto::grpc_testing::test_service_server::{TestService, TestServiceServer};
use super::proto::grpc_testing::xds_update_health_service_server::{
    XdsUpdateHealthService, XdsUpdateHealthServiceServer,
};
use super::proto::grpc_testing::{Empty, Payload, PayloadType, SimpleRequest, SimpleResponse};

/// Request header carrying the behaviours the client asks for.
pub const RPC_BEHAVIOR_HEADER: &str = "rpc-behavior";
/// Request header with the number of earlier attempts of a retried RPC (gRFC A6).
pub const PREVIOUS_RPC_ATTEMPTS_HEADER: &str = "grpc-previous-rpc-attempts";
/// Response header (initial metadata) naming the backend's hostname.
pub const HOSTNAME_HEADER: &str = "hostname";
/// The service name the health service reports besides the server-wide `""`.
pub const TEST_SERVICE_NAME: &str = "grpc.testing.TestService";
/// How long [`RunningBackend::shutdown`] lets in-flight RPCs finish.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// A grpc.testing.TestService implementation with an identity (`server_id`,
/// `hostname`) and a shared counter of the RPCs it received. Clones share the
/// counter.
#[derive(Debug, Clone)]
pub struct TestServiceBackend {
    server_id: Arc<str>,
    hostname: Arc<str>,
    hostname_header: AsciiMetadataValue,
    served: Arc<AtomicU64>,
}

impl TestServiceBackend {
    /// A backend answering with `server_id`; its hostname is `server_id`
    /// too until [`hostname`](Self::hostname) sets another.
    ///
    /// Panics if `server_id` is not a valid ASCII header value.
    pub fn new(server_id: impl Into<String>) -> Self {
        let server_id: String = server_id.into();
        let backend = Self {
            server_id: Arc::from(server_id.as_str()),
            hostname: Arc::from(""),
            hostname_header: AsciiMetadataValue::from_static(""),
            served: Arc::new(AtomicU64::new(0)),
        };
        backend.hostname(server_id)
    }

    /// Sets the hostname returned in `SimpleResponse.hostname`, in the
    /// `hostname` header and matched by `rpc-behavior: hostname=H ...`.
    ///
    /// Panics if `hostname` is not a valid ASCII header value.
    pub fn hostname(mut self, hostname: impl Into<String>) -> Self {
        let hostname: String = hostname.into();
        self.hostname_header = AsciiMetadataValue::try_from(hostname.as_str())
            .unwrap_or_else(|_| panic!("hostname {hostname:?} is not a valid header value"));
        self.hostname = Arc::from(hostname);
        self
    }

    /// The `server_id` this backend answers with.
    pub fn server_id(&self) -> &str {
        &self.server_id
    }

    /// The hostname this backend answers with.
    pub fn hostname_str(&self) -> &str {
        &self.hostname
    }

    /// The number of TestService RPCs received so far (failed ones included).
    pub fn served(&self) -> u64 {
        self.served.load(Ordering::Relaxed)
    }

    /// Returns [`served`](Self::served) and resets it to zero.
    pub fn take_served(&self) -> u64 {
        self.served.swap(0, Ordering::Relaxed)
    }

    /// The counter behind [`served`](Self::served), shared by every clone.
    pub fn served_counter(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.served)
    }

    /// Serves this backend on `127.0.0.1:0`; see [`serve_on`](Self::serve_on).
    pub async fn serve(self) -> io::Result<RunningBackend> {
        self.serve_on(SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// Serves TestService, `grpc.health.v1.Health` (SERVING) and
    /// XdsUpdateHealthService on a socket address or an already bound
    /// (std or tokio) listener, in a background task.
    pub async fn serve_on(self, listen: impl Into<Listen>) -> io::Result<RunningBackend> {
        let listener = match listen.into() {
            Listen::Addr(addr) => TcpListener::bind(addr).await?,
            Listen::Tokio(listener) => listener,
            Listen::Std(listener) => {
                listener.set_nonblocking(true)?;
                TcpListener::from_std(listener)?
            }
        };
        let local_addr = listener.local_addr()?;

        let (reporter, health_server) = tonic_health::server::health_reporter();
        reporter
            .set_service_status(TEST_SERVICE_NAME, ServingStatus::Serving)
            .await;
        let connections = Arc::new(Mutex::new(Connections::default()));
        let incoming = {
            let connections = Arc::clone(&connections);
            TcpListenerStream::new(listener)
                .map(move |accepted| accepted.and_then(|io| Connections::track(&connections, io)))
        };
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let router = tonic::transport::Server::builder()
            .add_service(health_server)
            .add_service(TestServiceServer::new(self.clone()))
            .add_service(XdsUpdateHealthServiceServer::new(UpdateHealth::new(
                reporter.clone(),
            )));
        let task = tokio::spawn(async move {
            let stopped = async {
                let _ = stop_rx.await;
            };
            if let Err(error) = router.serve_with_incoming_shutdown(incoming, stopped).await {
                tracing::debug!(%error, "test backend stopped");
            }
        });
        Ok(RunningBackend {
            local_addr,
            backend: self,
            health: reporter,
            stop: Some(stop_tx),
            task,
            connections,
        })
    }

    /// Applies the `rpc-behavior` header: `Ok` lets the call succeed, `Err`
    /// fails it, and `keep-open` never returns.
    async fn apply_rpc_behavior(&self, metadata: &MetadataMap) -> Result<(), Status> {
        let values = metadata
            .get_all(RPC_BEHAVIOR_HEADER)
            .iter()
            .map(|value| {
                value.to_str().map_err(|_| {
                    Status::invalid_argument("rpc-behavior header is not printable ASCII")
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let behaviors =
            parse_rpc_behaviors(values, &self.hostname).map_err(Status::invalid_argument)?;
        if behaviors.is_empty() {
            return Ok(());
        }
        let attempts = match metadata.get(PREVIOUS_RPC_ATTEMPTS_HEADER) {
            None => 0,
            Some(value) => value
                .to_str()
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .ok_or_else(|| {
                    Status::invalid_argument(format!(
                        "invalid {PREVIOUS_RPC_ATTEMPTS_HEADER} header: {value:?}"
                    ))
                })?,
        };
        for behavior in behaviors {
            match behavior {
                Behavior::Sleep(seconds) => tokio::time::sleep(Duration::from_secs(seconds)).await,
                Behavior::SucceedOnRetryAttempt(n) if n == attempts => return Ok(()),
                Behavior::SucceedOnRetryAttempt(_) => {}
                Behavior::KeepOpen => std::future::pending::<()>().await,
                Behavior::ErrorCode(code) => {
                    return Err(Status::new(
                        Code::from_i32(code),
                        format!("RPC failed as directed by rpc-behavior error-code-{code}"),
                    ));
                }
            }
        }
        Ok(())
    }

    /// A successful response carrying the `hostname` header.
    fn respond<T>(&self, message: T) -> Response<T> {
        let mut response = Response::new(message);
        response
            .metadata_mut()
            .insert(HOSTNAME_HEADER, self.hostname_header.clone());
        response
    }

    async fn unary(&self, request: Request<SimpleRequest>) -> Result<SimpleResponse, Status> {
        self.served.fetch_add(1, Ordering::Relaxed);
        self.apply_rpc_behavior(request.metadata()).await?;
        let request = request.into_inner();
        if let Some(status) = request.response_status.as_ref().filter(|s| s.code != 0) {
            return Err(Status::new(
                Code::from_i32(status.code),
                status.message.clone(),
            ));
        }
        let size = usize::try_from(request.response_size)
            .map_err(|_| Status::invalid_argument("response_size is negative"))?;
        Ok(SimpleResponse {
            payload: (size > 0).then(|| Payload {
                r#type: PayloadType::Compressable.into(),
                body: vec![0; size],
            }),
            server_id: self.server_id.to_string(),
            hostname: self.hostname.to_string(),
            ..SimpleResponse::default()
        })
    }
}

#[tonic::async_trait]
impl TestService for TestServiceBackend {
    async fn empty_call(&self, request: Request<Empty>) -> Result<Response<Empty>, Status> {
        self.served.fetch_add(1, Ordering::Relaxed);
        self.apply_rpc_behavior(request.metadata()).await?;
        Ok(self.respond(Empty {}))
    }

    async fn unary_call(
        &self,
        request: Request<SimpleRequest>,
    ) -> Result<Response<SimpleResponse>, Status> {
        let response = self.unary(request).await?;
        Ok(self.respond(response))
    }

    async fn cacheable_unary_call(
        &self,
        request: Request<SimpleRequest>,
    ) -> Result<Response<SimpleResponse>, Status> {
        let mut response = self.respond(self.unary(request).await?);
        response.metadata_mut().insert(
            "cache-control",
            AsciiMetadataValue::from_static("max-age=60, public"),
        );
        Ok(response)
    }
}

/// One entry of the `rpc-behavior` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Behavior {
    /// `sleep-N`: wait N seconds, then go on.
    Sleep(u64),
    /// `keep-open`: never answer.
    KeepOpen,
    /// `error-code-N`: fail with status code N.
    ErrorCode(i32),
    /// `succeed-on-retry-attempt-N`: succeed now if this is retry attempt N.
    SucceedOnRetryAttempt(u64),
}

/// Parses the values of the `rpc-behavior` header (each comma-separated)
/// into the behaviours that apply to a backend called `hostname`, in order.
/// Entries prefixed by `hostname=H ` apply only when H is `hostname`.
fn parse_rpc_behaviors<'a>(
    values: impl IntoIterator<Item = &'a str>,
    hostname: &str,
) -> Result<Vec<Behavior>, String> {
    let mut behaviors = Vec::new();
    let entries = values
        .into_iter()
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .filter(|entry| !entry.is_empty());
    for entry in entries {
        let behavior = match entry.strip_prefix("hostname=") {
            Some(rest) => {
                let Some((host, behavior)) = rest.split_once(' ') else {
                    return Err(format!(
                        "invalid rpc-behavior {entry:?}: expected \"hostname=H BEHAVIOR\""
                    ));
                };
                if host != hostname {
                    continue;
                }
                behavior.trim()
            }
            None => entry,
        };
        let number = |prefix: &str| behavior.strip_prefix(prefix).map(str::parse::<u64>);
        let invalid = || format!("invalid rpc-behavior {entry:?}: expected a number");
        let parsed = if behavior == "keep-open" {
            Behavior::KeepOpen
        } else if let Some(seconds) = number("sleep-") {
            Behavior::Sleep(seconds.map_err(|_| invalid())?)
        } else if let Some(code) = behavior.strip_prefix("error-code-") {
            Behavior::ErrorCode(code.parse().map_err(|_| invalid())?)
        } else if let Some(attempt) = number("succeed-on-retry-attempt-") {
            Behavior::SucceedOnRetryAttempt(attempt.map_err(|_| invalid())?)
        } else {
            return Err(format!(
                "unknown rpc-behavior {entry:?}: expected sleep-N, keep-open, error-code-N \
                 or succeed-on-retry-attempt-N"
            ));
        };
        behaviors.push(parsed);
    }
    Ok(behaviors)
}

/// XdsUpdateHealthService: SetServing / SetNotServing switch the health
/// status (server-wide `""` and `grpc.testing.TestService`) of a
/// [`HealthReporter`]. SendHookRequest answers UNIMPLEMENTED.
#[derive(Debug, Clone)]
pub struct UpdateHealth {
    reporter: HealthReporter,
}

impl UpdateHealth {
    /// Toggles the statuses `reporter` publishes.
    pub fn new(reporter: HealthReporter) -> Self {
        Self { reporter }
    }

    /// Sets both health statuses to SERVING or NOT_SERVING.
    pub async fn set_serving(&self, serving: bool) {
        set_serving(&self.reporter, serving).await;
    }
}

async fn set_serving(reporter: &HealthReporter, serving: bool) {
    let status = if serving {
        ServingStatus::Serving
    } else {
        ServingStatus::NotServing
    };
    for service in ["", TEST_SERVICE_NAME] {
        reporter.set_service_status(service, status).await;
    }
}

#[tonic::async_trait]
impl XdsUpdateHealthService for UpdateHealth {
    async fn set_serving(&self, _: Request<Empty>) -> Result<Response<Empty>, Status> {
        set_serving(&self.reporter, true).await;
        Ok(Response::new(Empty {}))
    }

    async fn set_not_serving(&self, _: Request<Empty>) -> Result<Response<Empty>, Status> {
        set_serving(&self.reporter, false).await;
        Ok(Response::new(Empty {}))
    }
}

/// Where [`TestServiceBackend::serve_on`] listens.
#[derive(Debug)]
pub enum Listen {
    /// Bind this address (port 0 picks a free port).
    Addr(SocketAddr),
    /// Use a bound tokio listener.
    Tokio(TcpListener),
    /// Use a bound std listener (it is switched to non-blocking).
    Std(std::net::TcpListener),
}

impl From<SocketAddr> for Listen {
    fn from(addr: SocketAddr) -> Self {
        Listen::Addr(addr)
    }
}

impl From<TcpListener> for Listen {
    fn from(listener: TcpListener) -> Self {
        Listen::Tokio(listener)
    }
}

impl From<std::net::TcpListener> for Listen {
    fn from(listener: std::net::TcpListener) -> Self {
        Listen::Std(listener)
    }
}

/// A [`TestServiceBackend`] serving in a background task. Dropping it stops
/// the server at once: the listener closes and open connections are shut
/// down, as when a backend crashes. [`shutdown`](Self::shutdown) stops it
/// gracefully.
#[derive(Debug)]
pub struct RunningBackend {
    local_addr: SocketAddr,
    backend: TestServiceBackend,
    health: HealthReporter,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
    connections: Arc<Mutex<Connections>>,
}

impl RunningBackend {
    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// `http://ADDR`, to connect a tonic channel to.
    pub fn url(&self) -> String {
        format!("http://{}", self.local_addr)
    }

    /// The backend being served.
    pub fn backend(&self) -> &TestServiceBackend {
        &self.backend
    }

    /// The number of TestService RPCs received so far.
    pub fn served(&self) -> u64 {
        self.backend.served()
    }

    /// The reporter behind the server's `grpc.health.v1.Health`.
    pub fn health(&self) -> &HealthReporter {
        &self.health
    }

    /// Sets the health status (server-wide and TestService) to SERVING or
    /// NOT_SERVING, as XdsUpdateHealthService does.
    pub async fn set_serving(&self, serving: bool) {
        set_serving(&self.health, serving).await;
    }

    /// Stops accepting connections, sends GOAWAY and waits for in-flight
    /// RPCs to finish (at most [`SHUTDOWN_GRACE`], then connections are
    /// closed).
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = tokio::time::timeout(SHUTDOWN_GRACE, &mut self.task).await;
        // Drop closes whatever is left.
    }
}

impl Drop for RunningBackend {
    fn drop(&mut self) {
        self.task.abort();
        Connections::kill(&self.connections);
    }
}

/// The open connections of a server, so that dropping it closes them (tonic
/// serves each connection in a detached task).
#[derive(Debug, Default)]
struct Connections {
    next_id: u64,
    killed: bool,
    /// Duplicated handles of the open sockets, to shut them down.
    open: HashMap<u64, std::net::TcpStream>,
}

impl Connections {
    fn track(this: &Arc<Mutex<Self>>, io: TcpStream) -> io::Result<TrackedStream> {
        io.set_nodelay(true)?;
        let std = io.into_std()?;
        let handle = std.try_clone()?;
        let io = TcpStream::from_std(std)?;
        let mut connections = this.lock().unwrap_or_else(|e| e.into_inner());
        if connections.killed {
            let _ = handle.shutdown(Shutdown::Both);
        }
        let id = connections.next_id;
        connections.next_id += 1;
        connections.open.insert(id, handle);
        Ok(TrackedStream {
            io,
            id,
            connections: Arc::clone(this),
        })
    }

    fn kill(this: &Arc<Mutex<Self>>) {
        let mut connections = this.lock().unwrap_or_else(|e| e.into_inner());
        connections.killed = true;
        for (_, socket) in connections.open.drain() {
            let _ = socket.shutdown(Shutdown::Both);
        }
    }
}

/// An accepted connection that unregisters itself when closed.
#[derive(Debug)]
struct TrackedStream {
    io: TcpStream,
    id: u64,
    connections: Arc<Mutex<Connections>>,
}

impl Drop for TrackedStream {
    fn drop(&mut self) {
        let mut connections = self.connections.lock().unwrap_or_else(|e| e.into_inner());
        connections.open.remove(&self.id);
    }
}

impl Connected for TrackedStream {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        self.io.connect_info()
    }
}

impl AsyncRead for TrackedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for TrackedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

#[cfg(test)]
mod tests;
