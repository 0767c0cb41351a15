//! The server side: a rustls `ServerConfig` from an xDS
//! `DownstreamTlsContext`, [`TlsAcceptor`], and [`accept`], which runs one
//! handshake and returns the stream with the client's [`PeerIdentity`].
//!
//! The server certificate is the identity provider's current one. With a
//! validation context, client certificates are requested and verified
//! against the CA provider's current CAs: required when
//! `require_client_certificate`, optional otherwise (a client that sends
//! none gets no `PeerIdentity`). No SAN check here: who may call what is
//! RBAC's decision. ALPN offers `h2` and `http/1.1`. No session
//! resumption, for the reason given in [`super::client`].

use std::fmt;
use std::sync::Arc;

use mesh_core::resource::tls::DownstreamTlsContext;
use rustls::ServerConfig;
use rustls::server::NoServerSessionStorage;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::server::TlsStream;

use super::error::{TlsError, TlsErrorKind, handshake_message};
use super::identity::PeerIdentity;
use super::provider::{CertificateProvider, ProviderRegistry};
use super::resolve::IdentityResolver;
use super::verify::ClientVerifier;
use super::{crypto, require_ca, require_identity};

/// Builds the rustls server config for `ctx`, starting the providers it
/// names. Errors name the provider instance.
pub fn server_config(
    ctx: &DownstreamTlsContext,
    registry: &ProviderRegistry,
) -> Result<Arc<ServerConfig>, TlsError> {
    let identity = registry.get(&ctx.identity.instance_name)?;
    let ca = ctx
        .validation
        .as_ref()
        .map(|v| registry.get(&v.ca.instance_name))
        .transpose()?;
    if ctx.require_client_certificate && ca.is_none() {
        return Err(TlsError::new(
            TlsErrorKind::Config,
            "require_client_certificate needs a validation context",
        ));
    }
    server_config_from(identity, ca, ctx.require_client_certificate)
}

/// Builds a server config from providers directly: `identity` supplies the
/// server certificate; with `client_ca`, client certificates are verified
/// against it (`require_client_cert`: mandatory, else optional).
pub fn server_config_from(
    identity: CertificateProvider,
    client_ca: Option<CertificateProvider>,
    require_client_cert: bool,
) -> Result<Arc<ServerConfig>, TlsError> {
    require_identity(&identity)?;
    let builder = ServerConfig::builder_with_provider(crypto())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::with_source(TlsErrorKind::Config, "TLS server config", e))?;
    let builder = match client_ca {
        Some(ca) => {
            require_ca(&ca)?;
            builder
                .with_client_cert_verifier(Arc::new(ClientVerifier::new(ca, require_client_cert)))
        }
        None if require_client_cert => {
            return Err(TlsError::new(
                TlsErrorKind::Config,
                "requiring client certificates needs a CA to verify them",
            ));
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_cert_resolver(Arc::new(IdentityResolver(identity)));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    config.session_storage = Arc::new(NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    Ok(Arc::new(config))
}

/// Accepts TLS connections with one server config (one filter chain's).
/// Cheap to clone.
#[derive(Clone)]
pub struct TlsAcceptor {
    inner: tokio_rustls::TlsAcceptor,
    /// The server certificate's provider, to refuse early, naming it,
    /// while it has no certificate yet (`mesh_ca` before its first one).
    identity: Option<CertificateProvider>,
}

impl TlsAcceptor {
    /// An acceptor for `ctx` (see [`server_config`]).
    pub fn from_context(
        ctx: &DownstreamTlsContext,
        registry: &ProviderRegistry,
    ) -> Result<Self, TlsError> {
        let mut acceptor = Self::new(server_config(ctx, registry)?);
        acceptor.identity = Some(registry.get(&ctx.identity.instance_name)?);
        Ok(acceptor)
    }

    /// An acceptor with a ready config.
    pub fn new(config: Arc<ServerConfig>) -> Self {
        TlsAcceptor {
            inner: tokio_rustls::TlsAcceptor::from(config),
            identity: None,
        }
    }
}

impl fmt::Debug for TlsAcceptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsAcceptor").finish_non_exhaustive()
    }
}

/// Runs the server handshake on an accepted connection and returns the
/// encrypted stream with the client's verified identity (`None` when the
/// client sent no certificate and none was required).
///
/// The handshake is not time-bounded here: the accept loop should wrap
/// this in a timeout, so a silent client cannot hold a task forever.
pub async fn accept<IO>(
    acceptor: &TlsAcceptor,
    io: IO,
) -> Result<(TlsStream<IO>, Option<PeerIdentity>), TlsError>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    if let Some(reason) = acceptor.identity.as_ref().and_then(|p| p.pending_reason()) {
        return Err(TlsError::new(
            TlsErrorKind::MissingMaterial,
            format!("TLS handshake refused: {reason}"),
        ));
    }
    let stream = acceptor.inner.accept(io).await.map_err(|e| {
        TlsError::new(
            TlsErrorKind::Handshake,
            format!("TLS handshake failed: {}", handshake_message(&e)),
        )
    })?;
    let peer = match stream.get_ref().1.peer_certificates() {
        Some(chain) if !chain.is_empty() => Some(PeerIdentity::from_chain(chain)?),
        _ => None,
    };
    Ok((stream, peer))
}
