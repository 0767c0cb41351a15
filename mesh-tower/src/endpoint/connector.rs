//! The seam that opens a byte stream to an endpoint: plain TCP by default,
//! TLS later (mesh-tonic wraps or replaces it). HTTP/2 runs on top of
//! whatever it returns.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// A byte stream HTTP/2 can run over. `Any`, so introspection can look
/// inside a boxed stream (its TCP addresses, its TLS session).
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin + Any + 'static {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Io for T {}

/// A connected stream, boxed (connecting is off the request path).
pub type BoxIo = Box<dyn Io>;

/// The future of one connect attempt.
pub type ConnectFuture = Pin<Box<dyn Future<Output = io::Result<BoxIo>> + Send>>;

/// Opens streams to endpoints. One connector serves a whole cluster, so a
/// TLS connector can hold the cluster's credentials.
pub trait Connector: fmt::Debug + Send + Sync + 'static {
    /// Opens a stream to `address`. The caller bounds the attempt with the
    /// connect timeout.
    fn connect(&self, address: SocketAddr) -> ConnectFuture;

    /// The URI scheme requests get when their URI has none (`http` for
    /// plaintext, `https` for TLS).
    fn scheme(&self) -> http::uri::Scheme {
        http::uri::Scheme::HTTP
    }
}

/// Plain TCP with `TCP_NODELAY`.
#[derive(Debug, Clone, Copy, Default)]
pub struct TcpConnector;

impl Connector for TcpConnector {
    fn connect(&self, address: SocketAddr) -> ConnectFuture {
        Box::pin(async move {
            let stream = TcpStream::connect(address).await?;
            stream.set_nodelay(true)?;
            Ok(Box::new(stream) as BoxIo)
        })
    }
}
