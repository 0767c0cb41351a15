//! The client side: a rustls `ClientConfig` from an xDS
//! `UpstreamTlsContext`, and [`TlsConnector`], the endpoint
//! [`Connector`] that runs TLS over another connector's streams.
//!
//! The server's chain is verified against the CA provider's current CAs
//! and its SANs against `match_subject_alt_names` (see
//! the verify module); the client certificate, when the context names an
//! identity, is the identity provider's current one. ALPN offers `h2`
//! (`http/1.1` instead for HTTP/1.1 clusters: [`TlsConnector::with_alpn`]). Session resumption is off: a resumed session would skip the
//! certificate checks, and so outlive a CA rotation; connections are
//! long-lived HTTP/2, so resumption would save little.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use mesh_core::resource::tls::UpstreamTlsContext;
use rustls::ClientConfig;
use rustls::client::Resumption;
use rustls_pki_types::ServerName;

use super::error::{TlsError, TlsErrorKind, handshake_message};
use super::provider::{CertificateProvider, ProviderRegistry};
use super::resolve::IdentityResolver;
use super::verify::ServerVerifier;
use super::{crypto, require_ca, require_identity};
use crate::endpoint::{BoxIo, ConnectFuture, Connector, TcpConnector};

/// Builds the rustls client config for `ctx`, starting the providers it
/// names. Errors name the provider instance or field.
pub fn client_config(
    ctx: &UpstreamTlsContext,
    registry: &ProviderRegistry,
) -> Result<Arc<ClientConfig>, TlsError> {
    let ca = registry.get(&ctx.validation.ca.instance_name)?;
    let identity = ctx
        .identity
        .as_ref()
        .map(|i| registry.get(&i.instance_name))
        .transpose()?;
    client_config_from(ca, identity, ctx.validation.match_subject_alt_names.clone())
}

/// Builds a client config from providers directly: `ca` verifies the
/// server (chain, then SANs against `match_sans`; empty accepts any SAN),
/// `identity` (if any) supplies the client certificate.
pub fn client_config_from(
    ca: CertificateProvider,
    identity: Option<CertificateProvider>,
    match_sans: Vec<mesh_core::resource::matcher::StringMatcher>,
) -> Result<Arc<ClientConfig>, TlsError> {
    require_ca(&ca)?;
    if let Some(identity) = &identity {
        require_identity(identity)?;
    }
    let builder = ClientConfig::builder_with_provider(crypto())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::with_source(TlsErrorKind::Config, "TLS client config", e))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(ServerVerifier::new(ca, match_sans)));
    let mut config = match identity {
        Some(identity) => builder.with_client_cert_resolver(Arc::new(IdentityResolver(identity))),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    config.resumption = Resumption::disabled();
    Ok(Arc::new(config))
}

/// Opens TLS connections over an inner connector (TCP by default): the
/// [`Connector`] a cluster with an `UpstreamTlsContext` uses. The scheme
/// of its requests is `https`.
#[derive(Clone)]
pub struct TlsConnector {
    inner: Arc<dyn Connector>,
    tls: tokio_rustls::TlsConnector,
    sni: Option<ServerName<'static>>,
    /// The client certificate's provider, to fail early, naming it, while
    /// it has no certificate yet (`mesh_ca` before its first one).
    identity: Option<CertificateProvider>,
}

impl TlsConnector {
    /// A connector for `ctx` (see [`client_config`]); the context's `sni`
    /// is sent when set.
    pub fn from_context(
        ctx: &UpstreamTlsContext,
        registry: &ProviderRegistry,
    ) -> Result<Self, TlsError> {
        let sni = if ctx.sni.is_empty() {
            None
        } else {
            Some(ServerName::try_from(ctx.sni.clone()).map_err(|e| {
                TlsError::with_source(
                    TlsErrorKind::Config,
                    format!("sni {:?} is not a valid DNS name", ctx.sni),
                    e,
                )
            })?)
        };
        let mut connector = Self::new(client_config(ctx, registry)?, sni);
        connector.identity = ctx
            .identity
            .as_ref()
            .map(|i| registry.get(&i.instance_name))
            .transpose()?;
        Ok(connector)
    }

    /// A connector with a ready config, sending `sni` if given (else no
    /// SNI: the endpoint's IP address is the server name, which rustls
    /// does not send).
    pub fn new(config: Arc<ClientConfig>, sni: Option<ServerName<'static>>) -> Self {
        TlsConnector {
            inner: Arc::new(TcpConnector),
            tls: tokio_rustls::TlsConnector::from(config),
            sni,
            identity: None,
        }
    }

    /// Runs TLS over `inner`'s streams instead of plain TCP.
    pub fn with_inner(mut self, inner: Arc<dyn Connector>) -> Self {
        self.inner = inner;
        self
    }

    /// Offers `protocols` in ALPN instead of `h2` alone (`http/1.1` for a
    /// cluster whose connections speak HTTP/1.1).
    pub fn with_alpn(mut self, protocols: Vec<Vec<u8>>) -> Self {
        let mut config = ClientConfig::clone(self.tls.config());
        config.alpn_protocols = protocols;
        self.tls = tokio_rustls::TlsConnector::from(Arc::new(config));
        self
    }
}

impl Connector for TlsConnector {
    fn connect(&self, address: SocketAddr) -> ConnectFuture {
        if let Some(reason) = self.identity.as_ref().and_then(|p| p.pending_reason()) {
            let e = TlsError::new(
                TlsErrorKind::MissingMaterial,
                format!("TLS handshake with {address} not attempted: {reason}"),
            );
            return Box::pin(async move { Err(std::io::Error::other(e)) });
        }
        let tcp = self.inner.connect(address);
        let tls = self.tls.clone();
        let name = self
            .sni
            .clone()
            .unwrap_or(ServerName::IpAddress(address.ip().into()));
        Box::pin(async move {
            let io = tcp.await?;
            let stream = tls.connect(name, io).await.map_err(|e| {
                std::io::Error::new(
                    e.kind(),
                    TlsError::new(
                        TlsErrorKind::Handshake,
                        format!(
                            "TLS handshake with {address} failed: {}",
                            handshake_message(&e)
                        ),
                    ),
                )
            })?;
            Ok(Box::new(stream) as BoxIo)
        })
    }

    fn scheme(&self) -> http::uri::Scheme {
        http::uri::Scheme::HTTPS
    }
}

impl fmt::Debug for TlsConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConnector")
            .field("inner", &self.inner)
            .field("sni", &self.sni)
            .finish()
    }
}
