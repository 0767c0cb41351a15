//! The CA server: Istio's CA API over TLS on its own listener.
//!
//! [`CaServer`] serves [`CaService`] with a serving certificate the
//! [`Authority`] issues for itself (`istiod.istio-system.svc`, `localhost`,
//! `127.0.0.1`, `::1`), asking for but not requiring a client certificate
//! verified against the CA's root: workloads renew with their current
//! certificate, or bootstrap with a token.

mod auth;
mod service;

use std::net::SocketAddr;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};

pub use self::auth::Tokens;
pub use self::service::CaService;
use super::authority::Authority;
use super::error::{CaError, CaErrorKind as Kind};
use super::files::WorkloadCertPaths;

/// Where the CA listens by default (istiod's CA port, on loopback).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:15012";
/// The name the CA's serving certificate carries, as istiod's.
pub const SERVER_NAME: &str = "istiod.istio-system.svc";
/// All names in the serving certificate.
pub const SERVER_HOSTS: &[&str] = &[SERVER_NAME, "localhost", "127.0.0.1", "::1"];

/// Builds a [`CaServer`].
#[derive(Debug, Default)]
pub struct CaServerBuilder {
    authority: Option<Authority>,
    tokens: Vec<(String, String, String)>,
    listen: Option<SocketAddr>,
}

impl CaServerBuilder {
    /// The CA that signs (required).
    pub fn authority(mut self, authority: Authority) -> Self {
        self.authority = Some(authority);
        self
    }

    /// Bootstrap tokens: token → (namespace, service account). Adds to any
    /// given before.
    pub fn tokens<T, N, S>(mut self, tokens: impl IntoIterator<Item = (T, (N, S))>) -> Self
    where
        T: Into<String>,
        N: Into<String>,
        S: Into<String>,
    {
        self.tokens.extend(
            tokens
                .into_iter()
                .map(|(t, (n, s))| (t.into(), n.into(), s.into())),
        );
        self
    }

    /// One bootstrap token for `ns`/`sa`.
    pub fn token(
        self,
        token: impl Into<String>,
        ns: impl Into<String>,
        sa: impl Into<String>,
    ) -> Self {
        self.tokens([(token.into(), (ns.into(), sa.into()))])
    }

    /// Where to listen (default [`DEFAULT_LISTEN`]; port 0 picks one).
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = Some(addr);
        self
    }

    /// Validates the tokens, issues the serving certificate, binds and
    /// starts serving. Fails on a missing authority, an invalid token
    /// identity or an address that cannot be bound.
    pub async fn start(self) -> Result<CaServer, CaError> {
        let authority = self
            .authority
            .ok_or_else(|| CaError::new(Kind::Server, "CaServer: no authority given"))?;
        let mut tokens = Tokens::default();
        for (token, ns, sa) in self.tokens {
            if token.is_empty() {
                return Err(CaError::new(
                    Kind::InvalidIdentity,
                    format!("empty bootstrap token for {ns}/{sa}"),
                ));
            }
            tokens.insert(token, authority.identity(&ns, &sa)?);
        }
        let listen = self
            .listen
            .unwrap_or_else(|| DEFAULT_LISTEN.parse().expect("a socket address"));

        let serving = authority.issue_server(SERVER_HOSTS)?;
        let tls = ServerTlsConfig::new()
            .identity(Identity::from_pem(&serving.chain_pem, &serving.key_pem))
            .client_ca_root(Certificate::from_pem(authority.root_pem()))
            .client_auth_optional(true);
        // tonic's server builds its rustls config from the process-wide
        // provider; make sure one is installed (a no-op when it is).
        let _ = rustls::crypto::ring::default_provider().install_default();

        let listener = tokio::net::TcpListener::bind(listen).await.map_err(|e| {
            CaError::with_source(Kind::Server, format!("CA server: cannot bind {listen}"), e)
        })?;
        let local_addr = listener
            .local_addr()
            .map_err(|e| CaError::with_source(Kind::Server, "CA server: local address", e))?;
        let router = Server::builder()
            .tls_config(tls)
            .map_err(|e| CaError::with_source(Kind::Server, "CA server: TLS config", e))?
            .add_service(CaService::new(authority.clone(), tokens).into_server());
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
            let stop = async {
                let _ = stop_rx.await;
            };
            if let Err(e) = router.serve_with_incoming_shutdown(incoming, stop).await {
                tracing::error!(error = %e, "CA server stopped");
            }
        });
        tracing::info!(%local_addr, trust_domain = authority.trust_domain(), "CA server listening");
        Ok(CaServer {
            local_addr,
            root_pem: authority.root_pem().to_owned(),
            stop: Some(stop_tx),
            task: Some(task),
        })
    }
}

/// A running CA server. Dropping it stops serving; [`CaServer::shutdown`]
/// also waits for the task to finish.
#[derive(Debug)]
pub struct CaServer {
    local_addr: SocketAddr,
    root_pem: String,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl CaServer {
    /// A builder.
    pub fn builder() -> CaServerBuilder {
        CaServerBuilder::default()
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The `https://` URI clients dial.
    pub fn uri(&self) -> String {
        format!("https://{}", self.local_addr)
    }

    /// The root clients verify the server (and their own chains) against.
    pub fn root_pem(&self) -> &str {
        &self.root_pem
    }

    /// Stops serving and waits for the server task.
    pub async fn shutdown(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

impl Drop for CaServer {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

/// Convenience for clients that keep their material in istio-agent's
/// files: a TLS config trusting `root-cert.pem` and presenting
/// `cert-chain.pem`/`key.pem` when present, for [`SERVER_NAME`].
pub fn client_tls_from_files(
    paths: &WorkloadCertPaths,
) -> Result<tonic::transport::ClientTlsConfig, CaError> {
    let read = |p: &std::path::Path| {
        std::fs::read_to_string(p)
            .map_err(|e| CaError::with_source(Kind::Io, format!("cannot read {}", p.display()), e))
    };
    let mut tls = tonic::transport::ClientTlsConfig::new()
        .domain_name(SERVER_NAME)
        .ca_certificate(Certificate::from_pem(read(&paths.root_cert)?));
    if paths.cert_chain.exists() && paths.key.exists() {
        tls = tls.identity(Identity::from_pem(
            read(&paths.cert_chain)?,
            read(&paths.key)?,
        ));
    }
    Ok(tls)
}
