//! What an endpoint's connections look like from outside, for
//! introspection (mesh-tonic's channelz): call counters per endpoint, and
//! per open HTTP/2 connection its addresses, its TLS session (the server's
//! certificate, the cipher suite) and counters of the streams sent on it.
//!
//! Counters are relaxed atomics bumped by the pool's in-flight guard: no
//! lock and no allocation per request. A [`SocketInfo`] is built once per
//! connection, from the stream the [`Connector`](super::Connector)
//! returned: plain TCP and mesh's TLS over TCP are recognised; any other
//! stream type reports only the endpoint's address.
//!
//! Not here: the client's own certificate (rustls does not expose the one a
//! handshake sent; the certificate provider's current one is the caller's
//! to read), HTTP/1.1 connections (they are counted per endpoint only).

use std::any::Any;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream as ClientTls;

use super::connector::{BoxIo, Io};

/// Counts of calls (or streams): started, and of those finished, how many
/// succeeded and how many failed. A call succeeds on an endpoint or a
/// connection when it got an answer (response headers), whatever the
/// answer; it fails when it got none (connect or transport error, reset,
/// dropped before the answer).
#[derive(Debug, Default)]
pub struct CallCounts {
    started: AtomicU64,
    succeeded: AtomicU64,
    failed: AtomicU64,
}

impl CallCounts {
    /// Calls started.
    pub fn started(&self) -> u64 {
        self.started.load(Ordering::Relaxed)
    }

    /// Calls answered.
    pub fn succeeded(&self) -> u64 {
        self.succeeded.load(Ordering::Relaxed)
    }

    /// Calls that ended without an answer.
    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }

    #[inline]
    pub(crate) fn start(&self) {
        self.started.fetch_add(1, Ordering::Relaxed);
    }

    #[inline]
    pub(crate) fn finish(&self, answered: bool) {
        let counter = if answered {
            &self.succeeded
        } else {
            &self.failed
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// The TLS session of a connection, as the client saw it.
#[derive(Debug, Clone, Default)]
pub struct TlsInfo {
    /// The server's leaf certificate (DER), when it sent one.
    pub peer_certificate: Option<Vec<u8>>,
    /// The negotiated cipher suite (rustls's name, `TLS13_AES_128_GCM_SHA256`).
    pub cipher_suite: Option<&'static str>,
}

/// One open connection of an endpoint.
#[derive(Debug)]
pub struct SocketInfo {
    local: Option<SocketAddr>,
    remote: SocketAddr,
    tls: Option<TlsInfo>,
    streams: CallCounts,
}

impl SocketInfo {
    /// Describes the stream `io` a connector opened to `endpoint`.
    pub(crate) fn of(io: &BoxIo, endpoint: SocketAddr) -> Self {
        let mut info = SocketInfo {
            local: None,
            remote: endpoint,
            tls: None,
            streams: CallCounts::default(),
        };
        info.describe(&**io);
        info
    }

    /// Reads what it can from a stream: a TCP stream's addresses, a TLS
    /// stream's session and then its inner stream.
    fn describe(&mut self, io: &dyn Io) {
        let any: &dyn Any = io;
        if let Some(tcp) = any.downcast_ref::<TcpStream>() {
            self.local = tcp.local_addr().ok();
            if let Ok(peer) = tcp.peer_addr() {
                self.remote = peer;
            }
        } else if let Some(tls) = any.downcast_ref::<ClientTls<BoxIo>>() {
            let (inner, session) = session_of(tls);
            self.tls = Some(session);
            self.describe(&**inner);
        } else if let Some(tls) = any.downcast_ref::<ClientTls<TcpStream>>() {
            let (inner, session) = session_of(tls);
            self.tls = Some(session);
            self.describe(inner);
        } else if let Some(boxed) = any.downcast_ref::<BoxIo>() {
            self.describe(&**boxed);
        }
    }

    /// The connection's local address, when the stream is TCP underneath.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local
    }

    /// The peer's address (the endpoint's, unless TCP said otherwise).
    pub fn remote_addr(&self) -> SocketAddr {
        self.remote
    }

    /// The TLS session, when the connection is TLS.
    pub fn tls(&self) -> Option<&TlsInfo> {
        self.tls.as_ref()
    }

    /// Streams (requests) sent on this connection.
    pub fn streams(&self) -> &CallCounts {
        &self.streams
    }
}

/// A TLS stream's session, and the stream it runs over.
fn session_of<IO>(tls: &ClientTls<IO>) -> (&IO, TlsInfo) {
    let (inner, session) = tls.get_ref();
    let info = TlsInfo {
        peer_certificate: session
            .peer_certificates()
            .and_then(|chain| chain.first())
            .map(|cert| cert.as_ref().to_vec()),
        cipher_suite: session
            .negotiated_cipher_suite()
            .and_then(|s| s.suite().as_str()),
    };
    (inner, info)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_tcp_stream_reports_both_addresses() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (client, server) = tokio::join!(TcpStream::connect(addr), listener.accept());
        let client = client.unwrap();
        let (_server, peer) = server.unwrap();
        let io: BoxIo = Box::new(client);
        let info = SocketInfo::of(&io, addr);
        assert_eq!(info.remote_addr(), addr);
        assert_eq!(info.local_addr(), Some(peer));
        assert!(info.tls().is_none());
        // A boxed box is looked through.
        let io: BoxIo = Box::new(io);
        assert_eq!(SocketInfo::of(&io, addr).local_addr(), Some(peer));
    }

    #[test]
    fn an_unknown_stream_reports_the_endpoint_only() {
        let (a, _b) = tokio::io::duplex(64);
        let endpoint: SocketAddr = "10.0.0.1:80".parse().unwrap();
        let io: BoxIo = Box::new(a);
        let info = SocketInfo::of(&io, endpoint);
        assert_eq!(info.remote_addr(), endpoint);
        assert_eq!(info.local_addr(), None);
    }

    #[test]
    fn counts_split_answers_from_failures() {
        let c = CallCounts::default();
        c.start();
        c.start();
        c.start();
        c.finish(true);
        c.finish(false);
        assert_eq!((c.started(), c.succeeded(), c.failed()), (3, 1, 1));
    }
}
