//! TLS termination for filter chains with a `DownstreamTlsContext` (A29):
//! one [`TlsAcceptor`] per distinct context, built from the server's
//! certificate provider registry on first use and kept while a Listener
//! uses the context (certificates are read per handshake, so a rotation
//! needs no rebuild); the handshake, bounded in time; and what it proved
//! about the client.
//!
//! Not here: choosing the chain (the accept loop) or deciding what the
//! client may do (RBAC, in routing).

use std::sync::Arc;
use std::time::{Duration, Instant};

use mesh_core::resource::tls::DownstreamTlsContext;
use mesh_core::watch::ServerConfig;
use mesh_tower::tls::{CertificateProvider, PeerIdentity, ProviderRegistry, TlsAcceptor};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::admin::channelz::{self, SocketTls};

/// How long a failed acceptor build is remembered before it is tried
/// again (the provider's files may appear), so a broken context costs one
/// attempt per period rather than one per connection.
const RETRY_FAILED_BUILD: Duration = Duration::from_secs(5);

/// What the handshake established about the client.
#[derive(Debug, Clone)]
pub(crate) struct TlsPeer {
    /// The verified client certificate; `None` when none was sent (allowed
    /// without `require_client_certificate`).
    pub(crate) identity: Option<PeerIdentity>,
    /// The SNI the client sent.
    pub(crate) sni: Option<Arc<str>>,
    /// Both sides' certificates and the cipher suite (channelz).
    pub(crate) security: SocketTls,
}

struct Cached {
    context: DownstreamTlsContext,
    acceptor: Result<TlsAcceptor, Arc<str>>,
    built: Instant,
}

/// The acceptors of the current Listener's TLS contexts.
pub(crate) struct Acceptors {
    registry: Arc<ProviderRegistry>,
    cached: Vec<Cached>,
}

impl Acceptors {
    pub(crate) fn new(registry: Arc<ProviderRegistry>) -> Self {
        Acceptors {
            registry,
            cached: Vec::new(),
        }
    }

    /// The acceptor for `context`; the error says why none can be built
    /// (an unknown provider instance, files that do not load).
    pub(crate) fn get(&mut self, context: &DownstreamTlsContext) -> Result<TlsAcceptor, Arc<str>> {
        let now = Instant::now();
        if let Some(c) = self.cached.iter().find(|c| c.context == *context) {
            let fresh = c.acceptor.is_ok() || now.duration_since(c.built) < RETRY_FAILED_BUILD;
            if fresh {
                return c.acceptor.clone();
            }
        }
        let acceptor = TlsAcceptor::from_context(context, &self.registry).map_err(|e| {
            tracing::warn!(error = %e, "cannot terminate TLS for a filter chain: its connections are closed");
            Arc::<str>::from(e.to_string())
        });
        self.cached.retain(|c| c.context != *context);
        self.cached.push(Cached {
            context: context.clone(),
            acceptor: acceptor.clone(),
            built: now,
        });
        acceptor
    }

    /// The provider of `context`'s server certificate, if it runs (the
    /// certificate a handshake presents, for channelz).
    pub(crate) fn identity(&self, context: &DownstreamTlsContext) -> Option<CertificateProvider> {
        self.registry.get(&context.identity.instance_name).ok()
    }

    /// Forgets the contexts `config` no longer uses (their providers stop
    /// once nothing else holds them).
    pub(crate) fn retain_used(&mut self, config: Option<&ServerConfig>) {
        let Some(config) = config else {
            self.cached.clear();
            return;
        };
        let server = config.server();
        self.cached.retain(|c| {
            server
                .chains()
                .any(|ch| ch.tls.as_ref() == Some(&c.context))
        });
    }
}

/// Runs the server handshake on `io`, at most `timeout` long;
/// `server_identity` is the server certificate's provider.
pub(crate) async fn handshake(
    acceptor: &TlsAcceptor,
    io: TcpStream,
    timeout: Duration,
    server_identity: Option<&CertificateProvider>,
) -> Result<
    (
        impl AsyncRead + AsyncWrite + Unpin + Send + 'static,
        TlsPeer,
    ),
    String,
> {
    let accepted = tokio::time::timeout(timeout, mesh_tower::tls::accept(acceptor, io))
        .await
        .map_err(|_| format!("TLS handshake not done within {timeout:?}"))?;
    let (stream, identity) = accepted.map_err(|e| e.to_string())?;
    let session = stream.get_ref().1;
    let sni = session.server_name().map(Arc::from);
    let security = SocketTls {
        // rustls does not say which certificate it sent: the provider's
        // current one, read right after the handshake.
        local_certificate: server_identity.and_then(channelz::leaf_certificate),
        remote_certificate: session
            .peer_certificates()
            .and_then(|chain| chain.first())
            .map(|c| c.as_ref().to_vec()),
        cipher_suite: session
            .negotiated_cipher_suite()
            .and_then(|s| s.suite().as_str()),
    };
    Ok((
        stream,
        TlsPeer {
            identity,
            sni,
            security,
        },
    ))
}
